"""`graphdel demo --quick` on the tiny CSV corpus: every file, one shared Retrain, the run cache."""

import json
from pathlib import Path

import pytest

from graphdel.cli import main
from graphdel.demo import DemoConfig, run_demo
from graphdel.evaluation.report import SMOKE_BANNER


def test_demo_quick_produces_every_file(tiny_csv, tmp_path, capsys, monkeypatch):
    import graphdel.api as api

    calls = []
    real = api.retrain_model
    monkeypatch.setattr(api, "retrain_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--data", f"csv:{tiny_csv}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert len(calls) == 1  # one Retrain, shared by the `retrain` method and the evaluation reference
    from graphdel.unlearning import available_methods

    demo = json.loads((out / "demo.json").read_text())
    methods = ["retrain"] + [n for n in demo["methods"] if n not in demo["skipped"]]
    assert set(methods) | set(demo["skipped"]) == {n for n, _, _ in available_methods()}
    # MultiDelete is attempted; on this corpus the deleted pairs already rank as never-seen ones do (pool
    # MRR 1.0 both), and a run that changes nothing is recorded with its reason, the demo going on
    assert "multidelete" in methods or "nothing was deleted" in demo["skipped"]["multidelete"]
    # where the time went: the original's training is its run's own time, each step is counted once
    steps = demo["steps_s"]
    trained = json.loads((Path(demo["original"]) / "metrics.json").read_text())["wall_time_s"]
    assert steps["original"]["training"] == round(trained, 2) and not demo["original_reused"]
    original = steps["original"]
    assert original["total"] == pytest.approx(original["training"] + original["data"], abs=0.011)
    [request] = steps["requests"]
    ran = [json.loads((out / "runs" / m / "metrics.json").read_text())["wall_time_s"] for m in methods]
    assert request["seed"] == 0 and request["runs"] == round(sum(ran), 2) <= request["unlearning"]
    parts = steps["original"]["total"] + request["unlearning"] + request["evaluation"] + steps["report"]
    assert min(request["evaluation"], steps["report"]) > 0 and parts <= demo["wall_time_s"] + 0.02
    for rel in ["report.html", "report.md", "metrics.json", "request.json", "demo.json",
                "plots/attack_roc.png", "plots/metrics_vs_retrain.png", "plots/similarity_original.png",
                "plots/embedding_original.png"] + [f"certificates/{m}.json" for m in methods] \
            + [f"runs/{m}/certificate.json" for m in methods]:
        assert (out / rel).is_file(), rel
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"original", *methods}
    assert metrics["models"]["retrain"]["role"] == "reference"
    assert all("peak_mem_mb" in metrics["models"][m] for m in methods)
    assert all(metrics["models"][m]["peak_mem_mb"] >= metrics["models"][m]["start_mem_mb"] > 0
               for m in methods)
    assert printed.strip().splitlines()[-1] == f"report: {(out / 'report.html').resolve()}"
    assert "neggrad" in printed and "verdict" in printed
    html = (out / "report.html").read_text()
    assert "<script" not in html and "data:image/png;base64," in html

    # --quick is a smoke run: said at the top of the printed summary and of the report, nothing judged
    assert printed.splitlines()[0] == SMOKE_BANNER
    table = printed.split(SMOKE_BANNER + "\n")[-1].split("\ndemo finished")[0]
    assert table.splitlines()[0].startswith("model") and table.splitlines()[0].endswith("verdict")
    rows = {line.split()[0]: line for line in table.strip().splitlines()[2:]}
    assert rows["neggrad"].endswith("  not judged") and not rows["retrain"].endswith("not judged")
    assert "PASS" not in table and "FAIL" not in table
    md = (out / "report.md").read_text()
    assert md.splitlines()[2] == f"> **{SMOKE_BANNER}**"
    assert "**not judged** neggrad" in md and "**PASS**" not in md and "**FAIL**" not in md
    assert "pass every target" not in md.splitlines()[0]
    assert metrics["smoke"] is True
    # the memory each method's run used, as measured: a figure in MB, never 0; n/a for the original
    runs = md.split("### Runs")[1].split("###")[0]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in runs.splitlines() if r.startswith("| ")]
    mem = {c[0]: c[-2:] for c in cells}
    assert mem["model"] == ["peak RSS (MB)", "added over start (MB)"]
    for m in methods:
        peak, start = metrics["models"][m]["peak_mem_mb"], metrics["models"][m]["start_mem_mb"]
        assert mem[m] == [f"{peak:.1f}", f"{peak - start:+.1f}".replace("-", "−")]
    assert mem["original"] == ["n/a", "n/a"]

    # a second demo reuses the cached original run (same config and data hash)
    assert main(["demo", "--quick", "--data", f"csv:{tiny_csv}", "--out", str(tmp_path / "again"),
                 "--methods", "multidelete"]) == 0
    printed = capsys.readouterr().out
    assert "reusing the cached original model" in printed
    first = json.loads((out / "demo.json").read_text())["original"]
    again = json.loads((tmp_path / "again" / "demo.json").read_text())
    assert again["original"] == first and again["original_reused"]
    assert again["steps_s"]["original"]["training"] is None  # nothing trained: all of it is data and cache
    assert again["steps_s"]["original"]["data"] == again["steps_s"]["original"]["total"]


def test_demo_without_quick_judges_the_methods(tiny_csv, tmp_path):
    lines = []
    cfg = DemoConfig(out=tmp_path / "full", data=f"csv:{tiny_csv}", methods=("multidelete",), progress=False,
                     device="cpu", requests=2)
    assert cfg.out == str(tmp_path / "full") and cfg.methods == ["multidelete"]  # kept as config.json keeps them
    assert DemoConfig(out="x").request_seeds() == [0, 1, 2] and DemoConfig(out="x", quick=True).request_seeds() == [0]
    res = run_demo(cfg, log=lines.append)
    # demo.json records the settings, and they rebuild the demo's config
    assert DemoConfig.from_dict(json.loads((tmp_path / "full" / "demo.json").read_text())["config"]) == cfg
    printed = "\n".join(lines)
    assert SMOKE_BANNER not in printed and "not judged" not in printed
    row = next(line for line in printed.splitlines() if line.startswith("multidelete "))
    assert row.endswith(("  PASS", "  FAIL"))
    md = (tmp_path / "full" / "report.md").read_text()
    assert SMOKE_BANNER not in md and "not judged" not in md
    assert ("**PASS** multidelete" in md) or ("**FAIL** multidelete" in md)
    assert res["audit"]["results"]["smoke"] is False
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["smoke"] is False
    # the second request (seed 1) has its own folder and report; the first report adds the spread of both
    second = json.loads((tmp_path / "full" / "requests" / "seed-1" / "metrics.json").read_text())
    assert second["request"]["seed"] == 1 and (tmp_path / "full" / "requests" / "seed-1" / "runs" / "retrain").is_dir()
    spread = metrics["spread"]
    assert [r["seed"] for r in spread["requests"]] == [0, 1]
    gaps = [m["models"]["multidelete"]["splits"]["forget"]["pool64"]["g2t_mrr"]
            - m["models"]["retrain"]["splits"]["forget"]["pool64"]["g2t_mrr"] for m in (metrics, second)]
    assert spread["methods"]["multidelete"]["forget_mrr"]["values"] == pytest.approx(gaps)
    assert "## Spread over 2 requests" in md and "mean ± standard deviation over 2 requests" in printed


def test_demo_goes_on_past_a_method_that_deleted_nothing(tiny_csv, tmp_path, monkeypatch):
    import graphdel.api as api
    from graphdel.errors import UnlearningNoOpError

    real = api.forget
    def forget(original, request, *, method, **kw):
        if method == "ft":
            raise UnlearningNoOpError("ft left every weight of X unchanged: nothing was deleted")
        return real(original, request, method=method, **kw)

    monkeypatch.setattr(api, "forget", forget)
    lines = []
    out = tmp_path / "demo"
    run_demo(DemoConfig(out=out, quick=True, data=f"csv:{tiny_csv}", methods=["ft", "neggrad"],
                        progress=False, device="cpu"), log=lines.append)
    demo = json.loads((out / "demo.json").read_text())
    assert demo["skipped"] == {"ft": "ft left every weight of X unchanged: nothing was deleted"}
    assert (out / "runs" / "neggrad").is_dir() and not (out / "runs" / "ft").exists()
    assert "            deleted nothing: ft left every weight" in "\n".join(lines)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"original", "retrain", "neggrad"}
    assert "nothing was deleted" in (out / "report.md").read_text()


def test_demo_refuses_a_non_empty_out(tiny_csv, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    assert main(["demo", "--quick", "--data", f"csv:{tiny_csv}", "--out", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "busy" / "x").read_text() == "keep me"


def test_demo_refuses_an_unknown_method_before_training(tiny_csv, tmp_path):
    from graphdel.errors import GraphdelError

    with pytest.raises(GraphdelError):
        run_demo(DemoConfig(out=tmp_path / "d", quick=True, data=f"csv:{tiny_csv}", methods=["nope"],
                            progress=False), log=lambda s: None)
    assert not (tmp_path / "d").exists()


def test_cached_run_with_another_config_is_not_reused(tiny_csv, tmp_path):
    from graphdel import api
    from graphdel.demo import cached_train

    data, model, train = api.quick_configs(f"csv:{tiny_csv}")
    cache = tmp_path / "cache"
    a, _, reused_a = cached_train(data, model, train, cache=cache, progress=False, log=lambda s: None)
    b, _, reused_b = cached_train(data, model, train, cache=cache, progress=False, log=lambda s: None)
    assert (reused_a, reused_b) == (False, True) and a.path == b.path
    from dataclasses import replace

    c, _, reused_c = cached_train(data, model, replace(train, epochs=1), cache=cache, progress=False,
                                  log=lambda s: None)
    assert not reused_c and c.path != a.path


def test_a_run_cached_before_a_setting_existed_still_matches_while_the_setting_is_none():
    from dataclasses import replace

    from graphdel.api import DataConfig, ModelConfig, TrainConfig
    from graphdel.run_cache import _matches, _resolved, _without_none

    resolved = _resolved(DataConfig(source="drugs"), ModelConfig(), TrainConfig(), "hash")
    assert "fusion_dropout" not in resolved["model"]
    earlier = {"kind": "train", "data": resolved["data"], "train": TrainConfig().to_dict(),
               "model": {k: v for k, v in ModelConfig().to_dict().items() if k != "fusion_dropout"}}
    assert _matches(earlier, resolved)
    # set, the setting is another configuration
    no_dropout = replace(ModelConfig(), fusion_dropout=0.0)
    assert not _matches(earlier, _resolved(DataConfig(source="drugs"), no_dropout, TrainConfig(), "hash"))
    # nested configs lose their None settings too; `extra` is data and keeps them
    assert _without_none({"a": None, "text": {"b": None, "c": 1}, "extra": {"image": {"path": None}}}) == \
        {"text": {"c": 1}, "extra": {"image": {"path": None}}}


def test_demo_kg_scenario_on_a_tiny_kg(tmp_path, capsys):
    from tests.data.test_kg_view import write_tiny_kg

    folder = write_tiny_kg(tmp_path / "kg")
    out = tmp_path / "kgdemo"
    assert main(["demo", "--quick", "--kg", "--data", f"kg:{folder}", "--out", str(out),
                 "--methods", "multidelete,gnndelete"]) == 0
    printed = capsys.readouterr().out
    assert "by triple" in printed and "coll@2" in printed          # the link-prediction table is printed
    request = json.loads((out / "request.json").read_text())
    assert request["by"] == "triple" and request["count"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("original", "retrain", "multidelete", "gnndelete"):
        splits = metrics["models"][name]["splits"]
        assert {"forget", "test", "collateral@1", "collateral@2"} <= set(splits), name
        assert 0 <= splits["forget"]["lp"]["auroc_vs_retain"] <= 1
    assert "Link prediction" in (out / "report.md").read_text()


def test_demo_deletes_the_named_units_instead_of_a_random_share(tmp_path):
    from tests.data.test_kg_view import TRAIN, write_tiny_kg

    folder = write_tiny_kg(tmp_path / "kg")
    out = tmp_path / "reldemo"
    run_demo(DemoConfig(out=out, quick=True, data=f"kg:{folder}", by="relation", forget=["likes"],
                        methods=["multidelete"], progress=False, device="cpu"), log=lambda s: None)
    request = json.loads((out / "request.json").read_text())
    held_out = set(json.loads((out / "runs" / "retrain" / "config.json").read_text())["calibration_ids"])
    expected = sorted({f"tri:{h}|{r}|{t}" for h, r, t in TRAIN if r == "likes"} - held_out)
    assert request["by"] == "relation" and len(expected) == 5  # every trained "likes" triple
    assert sorted(p["pair_id"] for p in request["pairs"]) == expected


def test_demo_close_reaches_every_run(tmp_path, monkeypatch):
    import graphdel.api as api
    from tests.data.test_kg_view import write_tiny_kg

    seen = []
    real = api.forget
    monkeypatch.setattr(api, "forget", lambda *a, **k: seen.append((k["method"], k["close"])) or real(*a, **k))
    folder = write_tiny_kg(tmp_path / "kg")
    run_demo(DemoConfig(out=tmp_path / "closed", quick=True, data=f"kg:{folder}", by="triple", fraction=1,
                        close=True, methods=["multidelete"], progress=False, device="cpu"), log=lambda s: None)
    assert seen == [("retrain", True), ("multidelete", True)]
