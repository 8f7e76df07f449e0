import json

import numpy as np
import pytest

from graphdel.evaluation.report import SCHEMA, write_report

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
    details = md.index("## Details")
    head = md[:details]
    assert "**PASS** multidelete" in head and "forgot like Retrain" in head and "kept the rest" in head
    assert "**FAIL**" in head and "over-forgot Df" in head and "lost on test" in head
    assert "| model | role | Df MRR (Δ vs Retrain)" in head
    assert "0.700 (+0.020)" in head  # multidelete Df MRR vs Retrain's 0.68
    page = (tmp_path / "report.html").read_text()
    assert page.index('class="verdicts"') < page.index("<table>") < page.index("Details")
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
