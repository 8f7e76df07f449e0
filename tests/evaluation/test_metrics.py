"""The metric registry: built-in order, the side each key is judged on, and a metric registered from outside
reaching the entry, the comparison with Retrain and the original, and the report, with nothing else edited."""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import pytest

from graphdel.evaluation.metrics import METRICS, MetricInputs, MetricResult, judged_side, register_metric
from graphdel.evaluation.report import write_report
from graphdel.evaluation.suite import compare_to_references, evaluate_model, suite_sets


@contextlib.contextmanager
def metrics_restored() -> Iterator[None]:
    """Whatever a test registers is gone afterwards."""
    saved = METRICS.copy()
    try:
        yield
    finally:
        METRICS.clear()
        METRICS.update(saved)


def test_the_built_in_metrics_run_in_this_order():
    assert list(METRICS)[:7] == ["retrieval", "matching", "model_splits", "distinguishability", "membership",
                                   "probes", "drift"]
    assert {m.section: m.judged for m in METRICS.values() if m.section} == {
        "distinguishability": "forget", "membership": "forget", "probes": "by_split", "drift": "by_split"}


@pytest.mark.parametrize("key, side", [
    ("splits.forget.pool64.g2t_mrr", "forget"),
    ("splits.test.pool64.g2t_mrr", "retain"),
    ("splits.calibration.match_acc", "retain"),
    ("splits.dr.n", None),  # the Dr sample is the attack's, not a judged split
    ("distinguishability.mean", "forget"),
    ("membership.attack_auc", "forget"),
    ("probes.logp.forget", "forget"),
    ("probes.logp.test", "retain"),
    ("probes.logp.fit_n", None),
    ("drift.forget.graph", "forget"),
    ("drift.test.text", "retain"),
    ("wall_time_s", None),
    ("nobody_registered_this.forget", None),
])
def test_each_key_is_judged_on_the_side_its_metric_declares(key, side):
    assert judged_side(key) == side


def test_a_metric_judged_other_than_forget_or_by_split_is_refused():
    with pytest.raises(ValueError, match="'odd': judged must be"):
        register_metric("odd", section="odd", judged="retain")


def test_a_registered_metric_reaches_the_entry_the_comparison_and_the_report(tiny_runs, tmp_path):
    original, prepared, request, (retrain, multidelete) = tiny_runs
    sets = suite_sets(prepared, request.rows(prepared.corpus))
    seen: list[MetricInputs] = []
    with metrics_restored():
        @register_metric("pair_sim", section="pair_sim", title="Mean true-pair similarity", judged="by_split")
        def pair_sim(inputs: MetricInputs) -> MetricResult:
            seen.append(inputs)
            return MetricResult(section={s: float(np.mean(inputs.signals[s].similarity)) for s in ("forget", "test")},
                                splits={"forget": {"sim_max": float(np.max(inputs.signals["forget"].similarity))}},
                                arrays={"pair_sim": 1})

        entries = {name: evaluate_model(run.model, sets, corpus=prepared.corpus)[0]
                   for name, run in (("original", original), ("retrain", retrain), ("multidelete", multidelete))}
        m, r, o = entries["multidelete"], entries["retrain"], entries["original"]
        assert set(seen[0].signals) == {"forget", "retain", "calibration", "val", "test", "dr"}
        assert "distractors" not in seen[0].sets
        assert m["pair_sim"]["forget"] == pytest.approx(float(np.mean(seen[2].signals["forget"].similarity)))
        assert m["splits"]["forget"]["sim_max"] == pytest.approx(float(np.max(seen[2].signals["forget"].similarity)))
        assert m["_arrays"]["pair_sim"] == 1 and "similarity" in m["_arrays"]
        judged = compare_to_references(m, retrain=r, original=o)
        assert judged["vs_retrain"]["pair_sim.forget"] == pytest.approx(m["pair_sim"]["forget"] - r["pair_sim"]["forget"])
        assert judged["vs_retrain"]["splits.forget.sim_max"] == pytest.approx(
            m["splits"]["forget"]["sim_max"] - r["splits"]["forget"]["sim_max"])
        assert judged["vs_original"]["pair_sim.test"] == pytest.approx(m["pair_sim"]["test"] - o["pair_sim"]["test"])
        assert "pair_sim.test" not in judged["vs_retrain"]
        for e in entries.values():
            e.pop("_arrays")
        files = write_report(tmp_path / "report", {"models": {n: {**e, "role": role} for (n, e), role in
                                                             zip(entries.items(), ("original", "reference", "method"))}})
        text = files["report.md"].read_text()
    assert "### Mean true-pair similarity" in text
    assert "pair_sim" not in METRICS  # restored


def test_the_report_uses_the_suites_judgement_instead_of_judging_again(tiny_runs, tmp_path, monkeypatch):
    import json

    from graphdel.evaluation import report, summary

    original, prepared, request, (retrain, multidelete) = tiny_runs
    sets = suite_sets(prepared, request.rows(prepared.corpus))
    models = {}
    for (name, run), role in zip((("original", original), ("retrain", retrain), ("multidelete", multidelete)),
                                 ("original", "reference", "method")):
        entry = evaluate_model(run.model, sets, corpus=prepared.corpus)[0]
        entry.pop("_arrays")
        models[name] = {**entry, "role": role}
    calls = []
    monkeypatch.setattr(report, "judgement", lambda *a, **k: calls.append(a) or summary.judgement(*a, **k))
    given = {"scores": {"methods": {"multidelete": {"score": 0.123, "rank": 1, "components": {}}},
                        "ranking": ["multidelete"], "weights": {}, "scales": {}},
             "thresholds": {"multidelete": {}}}
    files = write_report(tmp_path / "r", {"models": models, "summary": given})
    assert json.loads(files["metrics.json"].read_text())["summary"] == given and calls == []
    files = write_report(tmp_path / "r2", {"models": models})  # results without one: judged here, once
    computed = json.loads(files["metrics.json"].read_text())["summary"]
    assert len(calls) == 1 and computed["scores"]["ranking"] == ["multidelete"]
    assert set(computed["thresholds"]["multidelete"]) == {"forget_mrr_vs_retrain", "test_mrr_drop", "time_vs_retrain"}
