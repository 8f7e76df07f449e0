import numpy as np
import pytest

from graphdel.evaluation.membership import (attack_auc, attack_roc, leak_flag, lira_auc, lira_scores,
                                            logit_scale, signal_attack)


def test_attack_auc_exact():
    # members 1: 0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1 -> 3/4
    assert attack_auc(np.array([0.9, 0.4]), np.array([0.5, 0.1])) == pytest.approx(0.75)
    fpr, tpr, auc = attack_roc(np.array([0.9, 0.4]), np.array([0.5, 0.1]))
    assert auc == pytest.approx(0.75) and fpr[0] == 0 and tpr[-1] == 1


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
