from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

import graphdel.evaluation.membership as membership
import graphdel.evaluation.suite as suite
from graphdel.evaluation.membership import (attack_auc, attack_roc, leak_flag, lira_auc, lira_scores,
                                            logit_scale, signal_attack)


def test_attack_auc_exact():
    # members 1: 0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1 -> 3/4
    assert attack_auc(np.array([0.9, 0.4]), np.array([0.5, 0.1])) == pytest.approx(0.75)
    fpr, tpr, auc = attack_roc(np.array([0.9, 0.4]), np.array([0.5, 0.1]))
    assert auc == pytest.approx(0.75) and fpr[0] == 0 and tpr[-1] == 1


def test_attack_auc_on_the_brief_example_and_ties():
    # Df (label 1) [0.1, 0.4] vs held-out [0.35, 0.8]: Df above in 1 pair of 4 (0.4 > 0.35)
    assert attack_auc(np.array([0.1, 0.4]), np.array([0.35, 0.8])) == 0.25
    assert attack_auc(np.array([0.35, 0.8]), np.array([0.1, 0.4])) == 0.75
    assert attack_auc(np.array([0.5, 0.5]), np.array([0.5, 0.9])) == 0.25      # ties count half
    assert lira_auc(np.array([0.35, 0.8, 0.1, 0.4]), np.array([1, 1, 0, 0])) == 0.75


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Scores a row by its first signal (a monotone attack, so its AUCs are those of the raw signal) and
    records every row it is fitted on, under cross-validation clones included."""

    fitted: list[np.ndarray] = []

    def fit(self, x, y):
        RecordingClassifier.fitted.append(np.array(x, copy=True))
        self.classes_ = np.array([0.0, 1.0])
        return self

    def predict_proba(self, x):
        p = 1.0 / (1.0 + np.exp(-np.asarray(x)[:, 0]))
        return np.stack([1.0 - p, p], axis=1)


@pytest.fixture
def recording(monkeypatch):
    RecordingClassifier.fitted = []
    monkeypatch.setattr(membership, "_make_classifier", lambda kind, seed: RecordingClassifier())
    return RecordingClassifier.fitted


def rows(a: np.ndarray) -> set[tuple]:
    return {tuple(r) for r in np.asarray(a, dtype=np.float64).reshape(len(a), -1)}


def test_signal_attack_trains_on_members_and_non_members_only(recording):
    mem = np.array([[2.0, 1.0], [2.5, 1.0], [3.0, 1.0], [3.5, 1.0], [4.0, 1.0]])
    non = np.array([[-2.0, 2.0], [-1.5, 2.0], [-1.0, 2.0], [-0.5, 2.0]])
    df = np.array([[0.1, 3.0], [0.4, 3.0]])
    test = np.array([[0.35, 4.0], [0.8, 4.0]])
    out = signal_attack(mem, non, df, reference_signals=test, seed=0, cv_folds=2)
    assert len(recording) == 3                                   # 2 cross-validation folds + the final fit
    seen = set().union(*(rows(x) for x in recording))
    assert seen <= rows(mem) | rows(non)
    assert not seen & (rows(df) | rows(test))                    # never Df, never the held-out test pairs
    final = rows(recording[-1])                                  # balanced: all 4 non-members, 4 of 5 members
    assert rows(non) <= final and len(final - rows(non)) == 4 and final - rows(non) <= rows(mem)
    # Df is scored as the target (label 1) against test: the brief's example, 1 pair of 4
    assert out["attack_auc"] == 0.25 and out["n_per_class"] == 4


def signals(first: list[float], tag: float) -> SimpleNamespace:
    """A stand-in for the suite's PairSignals: features ``[first, tag, -first]``, fusion-free (the three
    columns of similarity, minus the pool loss and the reciprocal rank)."""
    return SimpleNamespace(features=lambda: np.array([[f, tag, -f] for f in first]), match_prob=None)


def test_the_suite_attack_trains_on_dr_vs_val_and_calibration_and_holds_out_df_and_test(recording):
    # the function of graphdel.evaluation.suite that assembles the attack's data from the per-split signals
    sig = {"dr": signals([2.0, 2.5, 3.0, 3.5], 1.0), "val": signals([-2.0, -1.5], 2.0),
           "calibration": signals([-1.0, -0.5], 3.0), "forget": signals([0.1, 0.4], 4.0),
           "test": signals([0.35, 0.8], 5.0), "retain": signals([9.0, 9.5], 6.0)}
    out, roc = suite._signal_membership(sig, seed=0)
    seen = set().union(*(rows(x) for x in recording))
    tags = {r[1] for r in seen}
    assert tags == {1.0, 2.0, 3.0}                               # Dr sample, val and calibration only
    assert rows(recording[-1]) == rows(sig["dr"].features()) | rows(sig["val"].features()) \
        | rows(sig["calibration"].features())
    assert out["attack_auc"] == 0.25 and roc[2] == 0.25         # Df (target) against test (held out)
    assert (out["members"], out["non_members"], out["held_out"]) == ("Dr sample", "val + calibration", "test")
    # each signal alone, Df (0.1, 0.4) against test (0.35, 0.8): by the first, 1 of 4 pairs ordered
    # member-first; the tag is larger on test (4 < 5); the third is the first reversed
    assert out["signal_auc"] == {"similarity": 0.25, "neg_pool_loss": 0.0, "pool_reciprocal_rank": 0.75}


def test_identically_distributed_members_look_unseen():
    rng = np.random.default_rng(0)
    mem, non = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    tgt, ref = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    out = signal_attack(mem, non, tgt, reference_signals=ref, seed=0)
    assert abs(out["cv_auc"] - 0.5) < 0.08
    assert abs(out["attack_auc"] - 0.5) < 0.08
    assert out["target_scores"].shape == (300,) and out["reference_scores"].shape == (300,)
    assert leak_flag(out["attack_auc"]) == "ok"


def test_memorised_members_are_detected():
    rng = np.random.default_rng(1)
    mem, non = rng.normal(3.0, 1.0, size=(400, 3)), rng.normal(0.0, 1.0, size=(300, 3))
    tgt, ref = rng.normal(3.0, 1.0, size=(100, 3)), rng.normal(0.0, 1.0, size=(100, 3))
    out = signal_attack(mem, non, tgt, reference_signals=ref, seed=0)
    assert out["n_per_class"] == 300  # members subsampled to the non-member count
    assert out["cv_auc"] > 0.95
    assert out["attack_auc"] > 0.95
    assert out["member_rate"] > 0.9
    assert leak_flag(out["attack_auc"]) == "remembers"


def test_one_dimensional_signals():
    rng = np.random.default_rng(2)
    out = signal_attack(rng.normal(2, 1, 200), rng.normal(0, 1, 200), rng.normal(0, 1, 50))
    assert out["cv_auc"] > 0.8 and out["member_rate"] < 0.5
    assert "attack_auc" not in out
    with pytest.raises(ValueError):
        signal_attack(rng.normal(size=(5, 2)), rng.normal(size=(5, 3)), rng.normal(size=(2, 2)))
    with pytest.raises(ValueError):
        signal_attack(rng.normal(size=5), rng.normal(size=5), rng.normal(size=2), classifier="svm")


def test_hgb_classifier():
    rng = np.random.default_rng(2)
    out = signal_attack(rng.normal(2, 1, 60), rng.normal(0, 1, 60), rng.normal(0, 1, 20), classifier="hgb")
    assert out["cv_auc"] > 0.8


def test_leak_flag():
    assert leak_flag(0.5) == "ok"
    assert leak_flag(0.6) == "ok"  # boundary is ok
    assert leak_flag(0.75) == "remembers"
    assert leak_flag(0.3) == "over-forgotten"
    assert leak_flag(0.7, reference_auc=0.65) == "ok"
    assert leak_flag(0.5, reference_auc=0.65) == "over-forgotten"
    assert leak_flag(0.5, tol=0.2, reference_auc=0.65) == "ok"


def _shadows(seed=0, t=200, s=16, gap=2.0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 3, size=t)  # per-example difficulty: raw signals are poorly calibrated
    keep = np.zeros((s, t), dtype=bool)
    for j in range(t):
        keep[rng.permutation(s)[: s // 2], j] = True
    vals_in = base + gap + rng.normal(0, 0.5, size=(s, t))
    vals_out = base + rng.normal(0, 0.5, size=(s, t))
    shadow_in = np.where(keep, vals_in, np.nan)
    shadow_out = np.where(~keep, vals_out, np.nan)
    is_member = np.arange(t) < t // 2
    target = np.where(is_member, base + gap, base) + rng.normal(0, 0.5, size=t)
    return target, shadow_in, shadow_out, is_member


def test_lira_online_and_offline_separate_members():
    target, s_in, s_out, is_member = _shadows()
    online = lira_scores(target, s_in, s_out)
    offline = lira_scores(target, np.full_like(s_in, np.nan), s_out)
    assert np.array_equal(offline, lira_scores(target, s_in, s_out, mode="offline"))
    assert lira_auc(online, is_member) > 0.95
    assert lira_auc(offline, is_member) > 0.95
    # per-example calibration beats the raw signal
    assert lira_auc(online, is_member) > lira_auc(target, is_member) + 0.1
    fixed = lira_scores(target, s_in, s_out, fix_variance=True)
    assert lira_auc(fixed, is_member) > 0.95


def test_lira_offline_exact_value():
    # x equal to the out mean: -log P(Z >= 0) = log 2
    s_out = np.array([[1.0], [3.0]])
    s_in = np.full((2, 1), np.nan)
    assert lira_scores(np.array([2.0]), s_in, s_out) == pytest.approx([np.log(2)])


def test_lira_online_exact_value():
    s_in = np.array([[3.0, np.nan], [5.0, np.nan]])  # example 0: in mean 4, std 1
    s_out = np.array([[np.nan, 0.0], [np.nan, 2.0]])
    s_in[:, 1] = [9.0, 11.0]
    s_out[:, 0] = [0.0, 2.0]  # example 0: out mean 1, std 1
    out = lira_scores(np.array([4.0, 10.0]), s_in, s_out)
    # ex. 0: log N(4; 4, 1) - log N(4; 1, 1) = 3^2 / 2; ex. 1 (in 10 +- 1, out 1 +- 1): 9^2 / 2
    assert out == pytest.approx([4.5, 40.5])


def test_lira_needs_out_values():
    with pytest.raises(ValueError):
        lira_scores(np.zeros(2), np.zeros((3, 2)), np.full((3, 2), np.nan))
    with pytest.raises(ValueError):
        lira_auc(np.zeros(3), np.ones(3))


def test_logit_scale():
    assert logit_scale(np.array([0.5]))[0] == pytest.approx(0.0)
    assert np.isfinite(logit_scale(np.array([0.0, 1.0]))).all()
