import pytest

from graphdel.evaluation.summary import (flatten, forget_gap, method_score, retention_change, summary_score,
                                         thresholds)

RETRAIN = {"splits.forget.pool64.g2t_mrr": 0.68, "splits.test.pool64.g2t_mrr": 0.64,
           "distinguishability.mean": 0.70, "membership.attack_auc": 0.55, "wall_time_s": 100.0}
ORIGINAL = {"splits.forget.pool64.g2t_mrr": 0.92, "splits.test.pool64.g2t_mrr": 0.62,
            "distinguishability.mean": 0.50, "membership.attack_auc": 0.80, "wall_time_s": 100.0}


def m(**kw):
    out = dict(RETRAIN)
    out.update({"wall_time_s": 5.0, "splits.test.pool64.g2t_mrr": 0.62})
    for k, v in kw.items():
        out[{"forget": "splits.forget.pool64.g2t_mrr", "test": "splits.test.pool64.g2t_mrr",
             "dfdr": "distinguishability.mean", "attack": "membership.attack_auc",
             "time": "wall_time_s"}[k]] = v
    return out


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert flatten({"a.b": 1}) == {"a.b": 1}


def test_gaps():
    g = forget_gap(m(forget=0.60), RETRAIN)
    assert g["splits.forget.pool64.g2t_mrr"] == pytest.approx(-0.08)
    assert retention_change(m(test=0.55), ORIGINAL, keys=["splits.test.pool64.g2t_mrr"]) == \
        {"splits.test.pool64.g2t_mrr": pytest.approx(-0.07)}
    nested = {"splits": {"forget": {"pool64": {"g2t_mrr": 0.78}}}}
    assert forget_gap(nested, RETRAIN) == {"splits.forget.pool64.g2t_mrr": pytest.approx(0.10)}


def test_perfect_method_scores_one_and_gain_is_no_extra_credit():
    assert method_score(m(), RETRAIN, ORIGINAL)["score"] == pytest.approx(1.0)
    assert method_score(m(test=0.70), RETRAIN, ORIGINAL)["score"] == pytest.approx(1.0)


def test_exact_score_and_symmetry():
    under = method_score(m(forget=0.78), RETRAIN, ORIGINAL)  # gap 0.1 / scale 0.2 = 0.5, weight 0.25
    over = method_score(m(forget=0.58), RETRAIN, ORIGINAL)
    assert under["score"] == pytest.approx(1 - 0.25 * 0.5)
    assert over["score"] == pytest.approx(under["score"])
    # test drop 0.1 -> error 1 (weight .5); attack gap .4 -> error 1 (weight .125)
    s = method_score(m(test=0.52, attack=0.95), RETRAIN, ORIGINAL)
    assert s["score"] == pytest.approx(1 - 0.5 - 0.125)
    assert s["components"]["attack_auc"]["error"] == 1.0


def test_missing_component_reweights():
    method = m(forget=0.78)
    del method["membership.attack_auc"]
    s = method_score(method, RETRAIN, ORIGINAL)
    assert s["components"]["attack_auc"]["error"] is None
    assert s["score"] == pytest.approx(1 - 0.25 * 0.5 / 0.875)
    assert method_score({}, RETRAIN, ORIGINAL)["score"] is None


def test_ranking():
    out = summary_score({"bad": m(forget=0.40), "good": m(), "none": {}}, RETRAIN, ORIGINAL)
    assert out["ranking"] == ["good", "bad", "none"]
    assert out["methods"]["good"]["rank"] == 1 and out["methods"]["none"]["rank"] is None


def test_thresholds():
    t = thresholds(m(forget=0.73, test=0.60, time=10.0), RETRAIN, ORIGINAL)
    assert t["forget_mrr_vs_retrain"]["value"] == pytest.approx(0.05)
    assert t["forget_mrr_vs_retrain"]["passed"] is True  # boundary passes despite float rounding
    assert t["test_mrr_drop"]["value"] == pytest.approx(0.02) and t["test_mrr_drop"]["passed"] is True
    assert t["time_vs_retrain"]["value"] == pytest.approx(0.10) and t["time_vs_retrain"]["passed"] is True
    t = thresholds(m(forget=0.60, test=0.59, time=11.0), RETRAIN, ORIGINAL)
    names = ("forget_mrr_vs_retrain", "test_mrr_drop", "time_vs_retrain")
    assert [t[k]["passed"] for k in names] == [False] * 3
    assert t["forget_mrr_vs_retrain"]["limit"] == 0.05
    assert thresholds(m(test=0.9), RETRAIN, ORIGINAL)["test_mrr_drop"]["passed"] is True  # gains pass
    t = thresholds({}, RETRAIN, ORIGINAL)
    assert t["time_vs_retrain"]["value"] is None and t["time_vs_retrain"]["passed"] is None
