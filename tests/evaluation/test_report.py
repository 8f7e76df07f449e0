import json
import re

import numpy as np
import pytest

from graphdel.evaluation.report import SCHEMA, SMOKE_BANNER, write_report

EVIL = "<script>alert(1)</script>"


def split(pool_g2t, n=10):
    return {"g2t": {"mrr": pool_g2t - 0.2, "hits@1": 0.3, "hits@10": 0.9},
            "t2g": {"mrr": pool_g2t - 0.25, "hits@1": 0.25, "hits@10": 0.85},
            "pool64": {"g2t_mrr": pool_g2t, "t2g_mrr": pool_g2t - 0.01, "g2t_acc": 0.5, "t2g_acc": 0.45},
            "n": n, "match_acc": 0.8}


def model(role, method, forget, test, dfdr, attack, wall):
    return {"role": role, "method": method, "wall_time_s": wall, "peak_mem_mb": 512.0,
            "splits": {"forget": split(forget), "retain": split(0.93), "test": split(test)},
            "distinguishability": {"mean": dfdr, "std": 0.01, "per_chunk": [dfdr] * 5},
            "membership": {"attack_auc": attack, "cv_auc": 0.7, "member_rate": 0.4,
                           "target_scores": np.linspace(0, 1, 20)},
            "probes": {"logp": {"sets": {"forget": {"r2": 0.8, "n": 10}}}},
            "drift": {"forget_x": {"mean_cos": 0.99, "min_cos": 0.9}}}


@pytest.fixture
def results():
    return {
        "title": "tiny " + EVIL,
        "request": {"ids": ["m1", EVIL], "fraction": 0.05, "by": "molecule"},
        "models": {
            "original": model("original", "train", 0.92, 0.62, 0.50, 0.80, 100.0),
            "retrain": model("reference", "retrain", 0.68, 0.64, 0.70, 0.55, 100.0),
            "multidelete": model("method", "multidelete", 0.70, 0.61, 0.68, 0.57, 5.0),
            EVIL: model("method", "neggrad", 0.40, 0.40, 0.95, 0.20, 1.0),
        },
        "examples": [{"pair_id": "p<1>", "caption": "a caption " + EVIL, "rank_original": 1,
                      "rank_method": 40}],
    }


@pytest.fixture
def plots():
    rng = np.random.default_rng(0)
    names = ["original", "retrain", "multidelete", EVIL]
    return {
        "similarities": {n: {"forget": rng.normal(0.5, 0.1, 30), "retain": rng.normal(0.7, 0.1, 50),
                             "test": rng.normal(0.45, 0.1, 40)} for n in names},
        "roc": {n: (np.array([0, 0.5, 1.0]), np.array([0, 0.7, 1.0]), 0.6) for n in names},
        "embeddings": {"original": (rng.normal(size=(40, 8)), np.arange(40) < 5),
                       "multidelete": (rng.normal(size=(40, 2)), np.arange(40) < 5)},
    }


def test_write_report_produces_every_file(tmp_path, results, plots):
    written = write_report(tmp_path / "out", results, plots)
    out = tmp_path / "out"
    for rel in ("report.md", "report.html", "metrics.json", "plots/metrics_vs_retrain.png",
                "plots/attack_roc.png", "plots/similarity_original.png", "plots/similarity_retrain.png",
                "plots/similarity_multidelete.png",
                "plots/embedding_original.png", "plots/embedding_multidelete.png"):
        assert (out / rel).is_file(), rel
        assert written[rel] == (out / rel).resolve()
    pngs = [k for k in written if k.startswith("plots/")]
    assert len(pngs) == 4 + 1 + 1 + 2  # similarities, bars, roc, embeddings
    for k in pngs:
        assert written[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert written[k].parent == out / "plots"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == SCHEMA
    assert sorted(metrics["plots"]) == sorted(pngs)
    assert metrics["models"]["multidelete"]["membership"]["target_scores"][-1] == 1.0
    scores = metrics["summary"]["scores"]
    assert scores["ranking"][0] == "multidelete"
    thr = metrics["summary"]["thresholds"]["multidelete"]
    assert thr["forget_mrr_vs_retrain"]["passed"] is True
    assert thr["test_mrr_drop"]["passed"] is True
    assert thr["time_vs_retrain"]["passed"] is True
    assert metrics["summary"]["thresholds"][EVIL]["forget_mrr_vs_retrain"]["passed"] is False
    assert not list(out.glob("**/*.tmp"))


def test_html_escapes_user_strings(tmp_path, results, plots):
    write_report(tmp_path, results, plots)
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "p&lt;1&gt;" in page
    assert "data:image/png;base64," in page
    md = (tmp_path / "report.md").read_text()
    assert "<script" not in md.lower()
    assert "&lt;script&gt;" in md


def test_first_screen_tells_the_outcome(tmp_path, results):
    write_report(tmp_path, results, None)
    md = (tmp_path / "report.md").read_text()
    details = md.index("## Appendix: details")
    head = md[:details]
    assert "**PASS** multidelete" in head and "forgot like Retrain" in head and "kept the rest" in head
    assert "**FAIL**" in head and "over-forgot Df" in head and "lost on test" in head
    assert "| model | role | Df MRR (Δ vs Retrain)" in head
    assert "0.700 (+0.020)" in head  # multidelete Df MRR vs Retrain's 0.68
    page = (tmp_path / "report.html").read_text()
    assert page.index('class="verdicts"') < page.index("<table>") < page.index("Appendix: details")
    # without plots only the bar chart (drawn from the metrics) is written
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["metrics_vs_retrain.png"]


def test_given_summary_is_kept_and_nan_is_null(tmp_path, results):
    results["summary"] = {"note": "mine"}
    results["models"]["multidelete"]["peak_mem_mb"] = float("nan")
    write_report(tmp_path, results)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["summary"]["note"] == "mine" and "scores" in metrics["summary"]
    assert metrics["models"]["multidelete"]["peak_mem_mb"] is None


def test_report_without_reference(tmp_path, results):
    del results["models"]["retrain"]
    write_report(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    assert "no Retrain reference" in md


def test_invalid_results(tmp_path):
    with pytest.raises(ValueError):
        write_report(tmp_path, {})
    with pytest.raises(ValueError):
        write_report(tmp_path, {"models": {"a": {"role": "boss"}}})


# ------------------------------------------------------------------------ issue #25: readable outputs

FOUR = ["original", "retrain", "neggrad", "neggrad+"]


def _four(names):
    roles = {"original": ("original", "train"), "retrain": ("reference", "retrain")}
    return {n: model(*roles.get(n, ("method", n)), 0.7, 0.6, 0.6, 0.6, 5.0) for n in names}


@pytest.mark.parametrize("names", [FOUR, FOUR[:2] + FOUR[2:][::-1], FOUR[::-1]])
def test_plot_names_are_readable_and_do_not_depend_on_the_order(tmp_path, names):
    rng = np.random.default_rng(0)
    plots = {"similarities": {n: {"forget": rng.random(9), "test": rng.random(9)} for n in names},
             "embeddings": {n: (rng.normal(size=(10, 2)), np.arange(10) < 3) for n in names}}
    written = write_report(tmp_path, {"models": _four(names)}, plots)
    assert sorted(k for k in written if k.startswith("plots/")) == [
        "plots/embedding_neggrad.png", "plots/embedding_neggrad_plus.png", "plots/embedding_original.png",
        "plots/embedding_retrain.png", "plots/metrics_vs_retrain.png", "plots/similarity_neggrad.png",
        "plots/similarity_neggrad_plus.png", "plots/similarity_original.png", "plots/similarity_retrain.png"]
    md = (tmp_path / "report.md").read_text()
    # each file shows the model its name says, NegGrad+ never under neggrad's name
    assert "![Pair similarities of neggrad: Df, Dr and test](plots/similarity_neggrad.png)" in md
    assert "![Pair similarities of neggrad+: Df, Dr and test](plots/similarity_neggrad_plus.png)" in md
    assert "(plots/embedding_neggrad_plus.png)" in md and "neggrad_2" not in md


def test_plot_slugs_are_injective_and_order_free():
    from graphdel.evaluation.report_format import slugs

    names = ["A", "a", "a b", "a_b", "c++", "c+", "..", "x.y", "neggrad+", "neggrad"]
    first, second = slugs(names), slugs(names[::-1])
    assert first == second
    assert len(set(first.values())) == len(names)
    assert {n: first[n] for n in ("a", "a_b", "c++", "c+", "..", "x.y", "neggrad+", "neggrad")} == {
        "a": "a", "a_b": "a_b", "c++": "c_plus_plus", "c+": "c_plus", "..": "model", "x.y": "x_y",
        "neggrad+": "neggrad_plus", "neggrad": "neggrad"}
    assert re.fullmatch(r"a_[0-9a-f]{6}", first["A"]) and re.fullmatch(r"a_b_[0-9a-f]{6}", first["a b"])
    assert all(re.fullmatch(r"[a-z0-9_-]+", s) for s in first.values())


def _headings(md):
    return [line for line in md.splitlines() if line.startswith("#")]


def test_summary_first_details_in_an_appendix_after_the_plots(tmp_path, results, plots):
    results["request"]["seed"] = 7
    write_report(tmp_path, results, plots)
    md = (tmp_path / "report.md").read_text()
    assert _headings(md) == [
        "# tiny &lt;script&gt;alert(1)&lt;/script&gt;",
        "## Request", "## Verdicts", "## Headline: gaps to Retrain", "## Plots", "## Appendix: details",
        "### Deletion request", "### Runs", "### Targets", "### Summary score", "### Retrieval",
        "### Df-vs-Dr distinguishability", "### Membership inference", "### Unimodal probes",
        "### Embedding drift", "### Examples"]
    request = md.index("## Request")
    assert md.index("Deleted: ids m1, &lt;script&gt;alert(1)&lt;/script&gt;; fraction 0.050; by molecule; "
                    "seed 7") > request
    headline = md.index("| model | role | Df MRR (Δ vs Retrain)")
    appendix = md.index("## Appendix: details")
    assert request < md.index("**PASS** multidelete") < headline < md.index("![") < appendix
    for detail in ("| key | value |", "| model | role | method | wall time (s)", "| method | target |",
                   "| method | rank | score | component", "| model | split | n | g2t MRR", "| pair\\_id |"):
        assert md.index(detail) > appendix, detail
    # nothing dropped: the full request and every section's values are still there
    assert "| fraction | 0.050 |" in md and "| seed | 7 |" in md
    assert "| multidelete | logp.sets.forget.r2 | 0.800 |" in md
    assert "| multidelete | forget\\_x.mean\\_cos | 0.990 |" in md
    assert "| multidelete | attack\\_auc | 0.570 |" in md
    page = (tmp_path / "report.html").read_text()
    assert (page.index("<h2>Request</h2>") < page.index('class="verdicts"') < page.index("<table>")
            < page.index("<figure>") < page.index("<h2>Appendix: details</h2>") < page.index("<h3>Runs</h3>"))


def test_memory_shows_the_recorded_figure_or_na(tmp_path, results):
    md_of = lambda: (tmp_path / "report.md").read_text()  # noqa: E731
    results["models"]["multidelete"].update(peak_mem_mb=819.5078125, start_mem_mb=700.25,
                                            peak_mem_method="peak RSS of the process during the block")
    results["models"]["retrain"].update(peak_mem_mb=0.0)          # a 0 is no record, never "0"
    del results["models"]["original"]["peak_mem_mb"]              # no record at all
    write_report(tmp_path, results)
    md = md_of()
    assert "| model | role | method | wall time (s) | peak RSS (MB) | added over start (MB) |" in md
    assert "| multidelete | method | multidelete | 5.0 | 819.5 | +119.3 |" in md
    assert "| original | original | train | 100.0 | n/a | n/a |" in md
    assert "| retrain | reference | retrain | 100.0 | n/a | n/a |" in md
    assert "| 0 |" not in md.split("### Runs")[1].split("###")[0]
    assert "peak RSS of the process during the block" in md


def test_smoke_run_is_measured_not_judged(tmp_path, results):
    results["title"] = "t (smoke run: not judged)"  # evaluate_runs gives a smoke audit no pass count
    write_report(tmp_path / "smoke", results, smoke=True)
    md = (tmp_path / "smoke" / "report.md").read_text()
    assert md.splitlines()[0] == "# t (smoke run: not judged)"
    assert md.splitlines()[2] == f"> **{SMOKE_BANNER}**"
    assert SMOKE_BANNER == "smoke run (--quick): tiny model and data sample; verdicts are not computed"
    assert "**not judged** multidelete" in md and "**PASS**" not in md and "**FAIL**" not in md
    assert "| 5.0% | 0.905 | not judged |" in md  # the numbers stay, the verdict column says so
    assert "0.700 (+0.020)" in md
    assert not re.search(r"\b(PASS|FAIL)\b", md) and "forgot like Retrain" not in md and "✓" not in md
    assert "| multidelete | forget\\_mrr\\_vs\\_retrain | 0.020 | 0.050 | not judged |" in md
    page = (tmp_path / "smoke" / "report.html").read_text()
    assert page.index(SMOKE_BANNER) < page.index('class="verdicts"') and ">PASS<" not in page
    assert json.loads((tmp_path / "smoke" / "metrics.json").read_text())["smoke"] is True
    # the same results, not a smoke run: judged
    results["title"] = "t — best: multidelete (score 0.90); 1 of 2 pass every target"
    write_report(tmp_path / "full", results, smoke=False)
    md = (tmp_path / "full" / "report.md").read_text()
    assert SMOKE_BANNER not in md and "**PASS** multidelete" in md and "**FAIL**" in md
    assert "| 5.0% | 0.905 | PASS |" in md and "1 of 2 pass every target" in md
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["smoke"] is False
    # results["smoke"] (what the demo sets) says the same
    write_report(tmp_path / "flag", {**results, "smoke": True})
    assert "**not judged** multidelete" in (tmp_path / "flag" / "report.md").read_text()


QUICK_CONFIG = {"kind": "train", "data": {"source": "drugs", "max_items": 800, "sample_seed": 0}}
FULL_CONFIG = {"kind": "train", "data": {"source": "drugs", "max_items": None, "sample_seed": 0}}


@pytest.mark.parametrize("config, smoke", [(QUICK_CONFIG, True), (FULL_CONFIG, False),
                                           ({"quick": True, "data": {}}, True), (None, False)])
def test_a_report_of_quick_runs_is_a_smoke_report(tmp_path, results, config, smoke):
    run = tmp_path / "orig"
    run.mkdir()
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    results["models"]["original"]["path"] = str(run)
    write_report(tmp_path / "rep", results)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert (SMOKE_BANNER in md) is smoke
    assert ("**not judged** multidelete" in md) is smoke and ("**PASS** multidelete" in md) is not smoke


def test_short_table_of_a_smoke_audit_opens_with_the_banner_and_judges_nothing(tmp_path, results):
    from graphdel.evaluation.suite import SuiteConfig, short_table

    write_report(tmp_path, results, smoke=False)
    judged = json.loads((tmp_path / "metrics.json").read_text())
    table = short_table({"results": judged, "config": SuiteConfig()})  # the suite's own table judges
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert rows["multidelete"].endswith("  PASS") and rows[EVIL[:14]].endswith("  FAIL")
    smoke = short_table({"results": {**judged, "smoke": True}, "config": SuiteConfig()})
    assert smoke.splitlines()[0] == SMOKE_BANNER and smoke.splitlines()[1:3] == table.splitlines()[:2]
    for before, after in zip(table.splitlines()[2:], smoke.splitlines()[3:]):
        if before.endswith(("  PASS", "  FAIL")):  # a method: the numbers kept, the verdict not judged
            assert after == before[:-4] + "not judged"
        else:  # the original and Retrain have no verdict
            assert after == before


def test_kg_report_splits_the_deleted_triples_by_inferability(tmp_path, results):
    def by_inference(mirrored, path, rest):
        return {"mirrored": {"mrr": mirrored, "hits@1": 0.5, "hits@3": 0.6, "hits@10": 0.9, "n": 8, "triples": 4},
                "path": {"mrr": path, "hits@1": 0.2, "hits@3": 0.3, "hits@10": 0.7, "n": 4, "triples": 2},
                "not_inferable": {"mrr": rest, "hits@1": 0.0, "hits@3": 0.1, "hits@10": 0.2, "n": 0,
                                  "triples": 0}}

    for name, split in (("retrain", by_inference(0.81, 0.42, float("nan"))),
                        ("multidelete", by_inference(0.79, 0.40, 0.10))):
        results["models"][name]["splits"]["forget"]["lp"] = {"mrr": 0.6, "n": 12, "by_inference": split}
    write_report(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    section = md.index("### Deleted triples: inferable or not")
    assert md.index("### Link prediction") < section
    assert "| model | deleted triples | count | MRR | H@1 | H@10 |" in md[section:]
    for row in ("| retrain | mirrored | 4 | 0.810 | 0.500 | 0.900 |", "| retrain | path | 2 | 0.420 | 0.200 | 0.700 |",
                "| retrain | not inferable | 0 | – | 0.000 | 0.200 |",
                "| multidelete | not inferable | 0 | 0.100 | 0.000 | 0.200 |"):
        assert row in md[section:], row
    assert md[section:].index("| retrain | mirrored") < md[section:].index("| multidelete | mirrored")
    # without the split (a molecule report), no section
    del results["models"]["retrain"]["splits"]["forget"]["lp"], results["models"]["multidelete"]["splits"]["forget"]["lp"]
    write_report(tmp_path / "plain", results)
    assert "inferable or not" not in (tmp_path / "plain" / "report.md").read_text()


def test_headline_shows_the_matching_heads_df_vs_dr_auc_beside_the_judged_one(tmp_path, results):
    write_report(tmp_path / "without", results, None)
    assert "matching head" not in (tmp_path / "without" / "report.md").read_text()  # no model has a head
    for name, auc in [("original", 0.52), ("retrain", 0.61), ("multidelete", 0.66)]:
        results["models"][name]["distinguishability"]["matching"] = {"mean": auc, "std": 0.01}
    write_report(tmp_path / "with", results, None)
    md = (tmp_path / "with" / "report.md").read_text()
    assert "| Df-vs-Dr AUC (Δ vs Retrain) | Df-vs-Dr AUC, matching head (Δ vs Retrain) | attack AUC" in md
    row = next(line for line in md.splitlines() if line.startswith("| multidelete | method |"))
    assert "| 0.680 (−0.020) | 0.660 (+0.050) | 0.570 (+0.020) |" in row
    evil_row = next(line for line in md.splitlines() if line.startswith("| &lt;script") or "neggrad" in line
                    and line.startswith("|") and "method" in line)
    assert "| 0.950 (+0.250) | – | 0.200 (−0.350) |" in evil_row  # no head: a dash, the columns stay aligned


def test_headline_shows_df_against_the_calibration_pairs_without_a_gap(tmp_path, results):
    write_report(tmp_path / "without", results, None)
    assert "Df-vs-calibration AUC (0.5" not in (tmp_path / "without" / "report.md").read_text()
    for name, auc in [("original", 0.35), ("retrain", 0.52), ("multidelete", 0.48)]:
        results["models"][name]["distinguishability"]["vs_calibration"] = {"mean": auc, "std": 0.0}
    write_report(tmp_path / "with", results, None)
    md = (tmp_path / "with" / "report.md").read_text()
    assert "| Df-vs-Dr AUC (Δ vs Retrain) | Df-vs-calibration AUC (0.5: as never seen) | attack AUC" in md
    def row(name, role):  # the headline table's row of a model
        return next(line for line in md.splitlines() if line.startswith(f"| {name} | {role} |"))

    assert "| 0.680 (−0.020) | 0.480 | 0.570 (+0.020) |" in row("multidelete", "method")  # no gap: vs 0.5
    assert "| 0.350 |" in row("original", "original") and "| 0.520 |" in row("retrain", "reference")
    # a closed KG request: the header says the calibration pairs were read without their mirrors
    for name in ("original", "retrain", "multidelete"):
        results["models"][name]["distinguishability"]["vs_calibration"]["mirrors_hidden"] = 7
    write_report(tmp_path / "closed", results, None)
    md = (tmp_path / "closed" / "report.md").read_text()
    assert "| Df-vs-calibration AUC (0.5: as never seen; 7 calibration mirrors hidden) | attack AUC" in md


def test_headline_shows_df_above_each_models_own_calibration_level_with_its_error(tmp_path, results):
    # forget MRRs: original 0.92, retrain 0.68, multidelete 0.70, the EVIL neggrad 0.40
    for name, cal in [("original", 0.66), ("retrain", 0.67), ("multidelete", 0.64)]:
        results["models"][name]["splits"]["calibration"] = split(cal)
    errors = [("original", 0.03, 0.04), ("retrain", 0.03, 0.04), ("multidelete", 0.05, 0.12)]
    for name, df_se, cal_se in errors:
        results["models"][name]["splits"]["forget"]["pool64"]["g2t_mrr_se"] = df_se
        results["models"][name]["splits"]["calibration"]["pool64"]["g2t_mrr_se"] = cal_se
    # a model scored before pool scores carried their error
    del results["models"]["retrain"]["splits"]["calibration"]["pool64"]["g2t_mrr_se"]
    write_report(tmp_path / "out", results, None)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| Df-vs-Dr AUC (Δ vs Retrain) | Df − calibration MRR (0: as never seen) | attack AUC" in md

    def row(name, role):
        return next(line for line in md.splitlines() if line.startswith(f"| {name} | {role} |"))

    assert "| 0.680 (−0.020) | +0.060 ± 0.130 | 0.570 (+0.020) |" in row("multidelete", "method")  # 5-12-13
    assert "| +0.260 ± 0.050 |" in row("original", "original")                                     # 3-4-5
    assert "| +0.010 | 0.550 |" in row("retrain", "reference")     # no error recorded: the gap alone
    evil = row("&lt;script&gt;alert(1)&lt;/script&gt;", "method")  # the headline's row comes first
    assert "| 0.950 (+0.250) | – | 0.200 (−0.350) |" in evil       # no calibration split: a dash
    # a closed KG request: its calibration MRR would count triples whose mirrors stay in training, no column
    for name in ("original", "retrain", "multidelete"):
        results["models"][name]["distinguishability"]["vs_calibration"] = {"mean": 0.5, "mirrors_hidden": 3}
    column = "| Df − calibration MRR (0: as never seen) |"
    write_report(tmp_path / "closed", results, None)
    assert column not in (tmp_path / "closed" / "report.md").read_text()
    # no model with a calibration split: no column
    for name in ("original", "retrain", "multidelete"):
        del results["models"][name]["splits"]["calibration"], results["models"][name]["distinguishability"][
            "vs_calibration"]
    write_report(tmp_path / "without", results, None)
    assert column not in (tmp_path / "without" / "report.md").read_text()
