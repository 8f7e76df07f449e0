"""Tests of graphdel.evaluation.per_example: per-example ε (NeurIPS 2023 challenge), U-LiRA and the floor."""

import functools
import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binomtest, ks_2samp, norm

from graphdel.errors import InvalidInputError
from graphdel.evaluation.per_example import (DELTA, EPSILON_CAP, EpsilonEstimate, floor, forgetting_score,
                                             per_example_epsilon, ulira)

ALPHA = 0.05


@functools.lru_cache(maxsize=None)
def _cp_upper(k: int, n: int, alpha: float = ALPHA) -> float:
    """Clopper–Pearson upper end from scipy's exact binomial test (independent of the module's beta.ppf)."""
    return binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact").high


def _rules(u: np.ndarray, r: np.ndarray, intervals: bool):
    """Every rule as (flagged unlearned, flagged retrained) boolean masks.

    Single thresholds: every pooled value t, "unlearned if s >= t" and "unlearned if s <= t". Intervals:
    every pair of pooled values a <= b, "unlearned if a <= s <= b" and "unlearned if s < a or s > b".
    """
    pooled = np.concatenate([u, r])
    for t in pooled:
        yield u >= t, r >= t
        yield u <= t, r <= t
    if intervals:
        for a in pooled:
            for b in pooled[pooled >= a]:
                inside_u, inside_r = (u >= a) & (u <= b), (r >= a) & (r <= b)
                yield inside_u, inside_r
                yield ~inside_u, ~inside_r


def _reference_epsilon(u: np.ndarray, r: np.ndarray, alpha: float | None = ALPHA, delta: float = DELTA,
                       cap: float = EPSILON_CAP, intervals: bool = False) -> float:
    """Brute force, straight from the definition, for one example (no peaky rule).

    Every rule of :func:`_rules`; a rule with exactly one of FN, FP zero is discarded, both zero -> cap;
    else max(0, log((1-d-FPR)/FNR), log((1-d-FNR)/FPR)) with the Clopper-Pearson upper bounds (or the
    plug-in rates when alpha is None).
    """
    m_u, m_r = len(u), len(r)
    best = 0.0
    for flag_u, flag_r in _rules(u, r, intervals):
        fn, fp = int(np.sum(~flag_u)), int(np.sum(flag_r))
        if fn == 0 and fp == 0:
            return cap
        if fn == 0 or fp == 0:
            continue
        fnr = fn / m_u if alpha is None else _cp_upper(fn, m_u, alpha)
        fpr = fp / m_r if alpha is None else _cp_upper(fp, m_r, alpha)
        for top, bottom in ((1 - delta - fpr, fnr), (1 - delta - fnr, fpr)):
            if top > 0:
                best = max(best, math.log(top) - math.log(bottom))
    return min(best, cap)


def _ks_cp_bound(d_count: int, m: int, alpha: float = ALPHA, delta: float = DELTA) -> float:
    """Largest ε the Clopper–Pearson estimator can read on an example whose two samples (m each) are at
    two-sample Kolmogorov–Smirnov distance D = d_count / m.

    At any cut, with a false negatives and b false positives, |F_u - F_r| = |a + b - m| / m <= D, so
    a + b >= m - d_count. The reading of a surviving cut (a, b >= 1) is
    max(g(b, a), g(a, b)) with g(x, y) = log(1 - delta - U(x)) - log(U(y)), decreasing in x and y (U, the
    Clopper-Pearson upper bound, increases with the count), so the max over the feasible set is on the
    line a + b = max(2, m - d_count): enumerate it. Clipped at 0 like the estimator.
    """
    s = max(2, m - d_count)
    best = 0.0
    for a in range(max(1, s - m), min(m, s - 1) + 1):
        b = s - a
        for x, y in ((b, a), (a, b)):
            top = 1 - delta - _cp_upper(x, m, alpha)
            if top > 0:
                best = max(best, math.log(top) - math.log(_cp_upper(y, m, alpha)))
    return best


@pytest.fixture(scope="module")
def identical():
    """M = 200 models per side, N = 40 examples, both families N(mu_j, 1) with per-example means."""
    rng = np.random.default_rng(20231)
    mu = rng.normal(size=40)
    return mu + rng.normal(size=(200, 40)), mu + rng.normal(size=(200, 40))


# ---------------------------------------------------------------------------------------------------
# per-example ε


def test_identical_distributions_stay_below_the_ks_clopper_pearson_bound(identical):
    # The KS bound speaks of single thresholds (one-sided cuts), so it is checked on those.
    u, r = identical
    est = per_example_epsilon(u, r, intervals=False)
    assert isinstance(est, EpsilonEstimate)
    assert est.models == (200, 200) and est.delta == DELTA and est.alpha == ALPHA and est.cap == EPSILON_CAP
    assert est.intervals is False
    d_counts = [int(round(ks_2samp(u[:, j], r[:, j]).statistic * 200)) for j in range(u.shape[1])]
    bounds = np.array([_ks_cp_bound(d, 200) for d in d_counts])
    # The bound is the exact worst case given D (e.g. D = 0.1 -> a = 1, b = 179: 0.877); here the bounds
    # run from 0 to 1.7 and the readings from 0 to 0.52 (median 0).
    assert np.all(est.epsilon <= bounds + 1e-9)
    # The bound is tight enough to matter: the challenge's plug-in rates (no Clopper-Pearson) break it.
    plug_in = per_example_epsilon(u, r, alpha=None, intervals=False)
    assert np.any(plug_in.epsilon > bounds)
    # And the vectorised estimator equals the brute-force definition on every example.
    ref = [_reference_epsilon(u[:, j], r[:, j]) for j in range(u.shape[1])]
    np.testing.assert_allclose(est.epsilon, ref, rtol=0, atol=1e-9)
    # The interval rules (the default) add rules: they read at least as much, and on identical families
    # with 200 models per side still little (Clopper-Pearson keeps the many extra rules in check).
    both = per_example_epsilon(u, r)
    assert both.intervals is True
    assert np.all(both.epsilon >= est.epsilon - 1e-12) and np.any(both.epsilon > est.epsilon)
    assert float(np.max(both.epsilon)) < 1.0


def test_estimator_matches_brute_force_with_ties_and_unequal_model_counts():
    # Integer signals (many ties) and M_u != M_r exercise the tie handling and both rate denominators.
    rng = np.random.default_rng(7)
    u = rng.integers(0, 6, size=(9, 30)).astype(float)
    r = rng.integers(1, 7, size=(13, 30)).astype(float)
    for alpha in (ALPHA, None):
        for intervals in (False, True):
            est = per_example_epsilon(u, r, alpha=alpha, peaky_ratio=None, intervals=intervals)
            ref = [_reference_epsilon(u[:, j], r[:, j], alpha=alpha, intervals=intervals) for j in range(30)]
            np.testing.assert_allclose(est.epsilon, ref, rtol=0, atol=1e-9)
    assert est.models == (9, 13) and est.alpha is None


def test_perfect_separation_gives_the_cap_and_the_minimum_forgetting_score():
    rng = np.random.default_rng(3)
    u = 10.0 + np.abs(rng.normal(size=(200, 25)))      # every unlearned value above every retrained one
    r = -np.abs(rng.normal(size=(200, 25)))
    for alpha in (ALPHA, None):
        est = per_example_epsilon(u, r, alpha=alpha)
        np.testing.assert_array_equal(est.epsilon, np.full(25, EPSILON_CAP))
        assert est.forgetting_score == 0.0
        assert est.summary()["share_at_cap"] == 1.0
    # The other direction (unlearned below retrained) is separated too.
    np.testing.assert_array_equal(per_example_epsilon(r, u).epsilon, np.full(25, EPSILON_CAP))
    assert per_example_epsilon(u, r, cap=7.0).epsilon.tolist() == [7.0] * 25


def test_hand_computed_case_four_models_per_side():
    # unlearned u = 3, 5, 6, 8; retrained r = 1, 2, 4, 7 (one example). Rule "unlearned if s >= t":
    #   t = 8: FN = 3 (3,5,6), FP = 0 -> discarded     t = 7: FN = 3, FP = 1 (7) -> rates 3/4, 1/4
    #   t = 6: FN = 2, FP = 1 -> 1/2, 1/4              t = 5: FN = 1 (3), FP = 1 -> 1/4, 1/4
    #   t = 4: FN = 1, FP = 2 (4,7) -> 1/4, 1/2        t <= 3: FN = 0 -> discarded
    # Plug-in ε of (FNR, FPR): (3/4,1/4): log(1-4d) < 0 -> 0; (1/2,1/4): log((1/2-d)/(1/4)) = log(2-4d);
    # (1/4,1/4): log((3/4-d)/(1/4)) = log(3-4d); (1/4,1/2): log(2-4d). Rule "s <= t" (t = 1..8) gives
    # (FN, FP) = (4,1) (4,2) (3,2) (3,3) (2,3) (1,3) (1,4) (0,4): each surviving cut has FNR + FPR >= 1,
    # so 1 - d - FPR < FNR (and the symmetric) and both terms are negative -> 0.
    # Max: ε = log(3 - 4·1e-5) = 1.0985989...
    u, r = [[3.0], [5.0], [6.0], [8.0]], [[1.0], [2.0], [4.0], [7.0]]
    est = per_example_epsilon(u, r, alpha=None)
    assert est.epsilon[0] == pytest.approx(math.log(3 - 4 * DELTA), abs=1e-12)
    # ε in [1, 1.5): bucket 2 of the forgetting score -> 2^-2 (M_u = 4: buckets up to ceil(log 3) = 2).
    assert est.forgetting_score == 0.25
    # With Clopper-Pearson at M = 4, the best cut (1 of 4 missed, 1 of 4 flagged) reads
    # log((1 - d - p1) / p1) with p1 = U(1, 4), the root of P(Bin(4, p) <= 1) = (1-p)^3 (1+3p) = 0.025:
    # p1 = 0.8059 > (1 - d)/2, so the reading is negative and ε = 0. At M = 4 only perfect separation
    # reads anything.
    p1 = brentq(lambda p: (1 - p) ** 3 * (1 + 3 * p) - ALPHA / 2, 1e-9, 1 - 1e-9)
    assert p1 == pytest.approx(0.8059, abs=1e-4) and p1 > (1 - DELTA) / 2
    assert per_example_epsilon(u, r).epsilon[0] == 0.0


def test_hand_computed_clopper_pearson_case_twenty_models_per_side():
    # r = 0..18 and 100; u = -1 and 51..69. The cut t in (18, 51], rule "s >= t", misses one unlearned
    # model (-1) and flags one retrained model (100): FN = FP = 1 of 20. Every other surviving cut has
    # FN or FP >= 19 of 20 and reads <= 0. Plug-in: log((1 - d - 1/20) / (1/20)) = log(19 - 20 d).
    # Clopper-Pearson: log((1 - d - p1) / p1), p1 = U(1, 20), the root of (1-p)^19 (1 + 19 p) = 0.025
    # (P(Bin(20, p) <= 1) = alpha/2): p1 = 0.2487, ε = log(0.75129 / 0.24870) = 1.1055.
    u = np.array([-1.0] + list(range(51, 70)))[:, None]
    r = np.array(list(range(0, 19)) + [100.0])[:, None]
    plug_in = per_example_epsilon(u, r, alpha=None).epsilon[0]
    assert plug_in == pytest.approx(math.log(19 - 20 * DELTA), abs=1e-12)
    p1 = brentq(lambda p: (1 - p) ** 19 * (1 + 19 * p) - ALPHA / 2, 1e-9, 1 - 1e-9)
    expected = math.log(1 - DELTA - p1) - math.log(p1)
    assert expected == pytest.approx(1.1055, abs=1e-3)
    assert per_example_epsilon(u, r).epsilon[0] == pytest.approx(expected, abs=1e-9)
    # A smaller alpha widens the bounds and lowers the reading.
    assert per_example_epsilon(u, r, alpha=0.01).epsilon[0] < expected


def test_hand_computed_interval_rule():
    # unlearned u = 4, 5, 6, 20; retrained r = 1, 2, 3, 5.5, 8, 9, 10, 11. The unlearned values sit inside
    # Retrain's range. The interval [4, 6] flags u = 4, 5, 6 (FN = 1 of 4: 20) and r = 5.5 (FP = 1 of 8):
    # plug-in ε = log((1 - d - 1/8) / (1/4)) ∨ log((1 - d - 1/4) / (1/8)) = log(6 - 8d) = 1.7917.
    # The best single threshold, "unlearned if s <= 6", flags u = 4, 5, 6 (FN = 1) but r = 1, 2, 3, 5.5
    # (FP = 4 of 8): log((1 - d - 1/2) / (1/4)) = log(2 - 4d) = 0.6931.
    u = np.array([4.0, 5.0, 6.0, 20.0])[:, None]
    r = np.array([1.0, 2.0, 3.0, 5.5, 8.0, 9.0, 10.0, 11.0])[:, None]
    assert per_example_epsilon(u, r, alpha=None).epsilon[0] == pytest.approx(math.log(6 - 8 * DELTA), abs=1e-12)
    assert per_example_epsilon(u, r, alpha=None, intervals=False).epsilon[0] == pytest.approx(
        math.log(2 - 4 * DELTA), abs=1e-12)
    # Flagging "unlearned" *outside* an interval is a rule too: swap the roles, and the retrained values
    # now sit around the unlearned ones; the interval [4, 6] now holds the retrained 4, 5, 6.
    assert per_example_epsilon(r, u, alpha=None).epsilon[0] == pytest.approx(math.log(6 - 8 * DELTA), abs=1e-12)


def test_chance_perfect_separation_by_intervals_matches_its_count():
    # Identical continuous families, 3 models per side: each of the C(6, 3) = 20 orders of the pooled values
    # is equally likely. Single thresholds separate perfectly only when all unlearned values are below or
    # above every retrained one (2 orders); intervals also when either family's values are contiguous in
    # the order: M_u + M_r = 6 orders (the module docstring's (M_u + M_r) / C(M_u + M_r, M_u)).
    capped = {False: 0, True: 0}
    for slots in itertools.combinations(range(6), 3):
        is_u = np.isin(np.arange(6), slots)
        values = np.arange(6.0)
        for intervals in (False, True):
            est = per_example_epsilon(values[is_u][:, None], values[~is_u][:, None], peaky_ratio=None,
                                      intervals=intervals)
            capped[intervals] += int(est.epsilon[0] == EPSILON_CAP)
    assert capped == {False: 2, True: 6}


def test_examples_are_estimated_alike_in_any_chunking(monkeypatch):
    # The rules are evaluated a block of examples at a time; one example per block gives the same ε.
    import graphdel.evaluation.epsilon_rules as rules

    rng = np.random.default_rng(2)
    u, r = rng.normal(size=(7, 50)), rng.normal(0.5, 1.0, size=(6, 50))
    whole = per_example_epsilon(u, r).epsilon
    monkeypatch.setattr(rules, "_RULE_CELLS", 1)
    np.testing.assert_array_equal(per_example_epsilon(u, r).epsilon, whole)
    assert np.any(whole > 0)


def test_forgetting_score_buckets_on_a_hand_made_vector():
    # M_u = 4: max ε = ceil(log 3) = 2 -> buckets [0,.5) 1, [.5,1) 1/2, [1,1.5) 1/4, [1.5,2) 1/8, >= 2: 0.
    eps = [0.0, 0.49, 0.5, 1.2, 1.99, 2.0, EPSILON_CAP]
    assert forgetting_score(eps, 4) == pytest.approx((1 + 1 + 0.5 + 0.25 + 0.125 + 0 + 0) / 7, abs=1e-15)
    # M_u = 200: ceil(log 199) = 6 -> 12 buckets, the last [5.5, 6) worth 2^-11; 6 and inf are worth 0.
    eps = [5.49, 5.5, 5.99, 6.0, np.inf]
    assert forgetting_score(eps, 200) == pytest.approx((2 ** -10 + 2 ** -11 + 2 ** -11) / 5, abs=1e-15)
    # M_u = 3: ceil(log 2) = 1 -> two buckets; M_u = 2: ceil(log 1) = 0 -> no bucket, score 0.
    assert forgetting_score([0.2, 0.7, 1.0], 3) == pytest.approx(1.5 / 3, abs=1e-15)
    assert forgetting_score([0.0, 0.0], 2) == 0.0
    # An estimate is bucketed with its number of *unlearned* models: M_u = 3 (buckets up to 1) against
    # M_r = 30 (buckets up to ceil(log 29) = 4). u = 0, 10, 11; r = 0.5, 1.0, ..., 15.0. The rule
    # "unlearned if s <= 0.5" misses 10 and 11 (FNR 2/3) and flags r = 0.5 (FPR 1/30): plug-in
    # log((1 - d - 2/3) / (1/30)) = log(10 - 30 d) = 2.3026, the largest reading. No bucket reaches it at
    # M_u = 3 (0 points); at M = 30 it would sit in bucket [2, 2.5), worth 2^-4.
    est = per_example_epsilon([[0.0], [10.0], [11.0]], np.arange(30)[:, None] / 2 + 0.5, alpha=None)
    assert est.epsilon[0] == pytest.approx(math.log(10 - 30 * DELTA), abs=1e-12)
    assert est.forgetting_score == 0.0
    assert forgetting_score(est.epsilon, 30) == 2 ** -4


def test_peaky_rule_caps_a_nearly_constant_family():
    rng = np.random.default_rng(11)
    r = rng.normal(size=(30, 1))
    u = np.full((30, 1), float(np.median(r))) + 1e-4 * rng.normal(size=(30, 1))   # range ratio ~1e-4 < 0.01
    assert per_example_epsilon(u, r).epsilon[0] == EPSILON_CAP
    # Without the peaky rule, single thresholds read little (the spike sits at Retrain's median) ...
    assert per_example_epsilon(u, r, peaky_ratio=None, intervals=False).epsilon[0] < 2.0
    # ... but an interval around the spike holds every unlearned value and no retrained one: perfect
    # separation, the case the challenge's interval rules exist for.
    lo, hi = float(u.min()), float(u.max())
    assert not np.any((r >= lo) & (r <= hi))
    assert per_example_epsilon(u, r, peaky_ratio=None).epsilon[0] == EPSILON_CAP
    # Two constant families: equal -> nothing to tell (0); different -> perfectly separated (cap).
    assert per_example_epsilon(np.ones((5, 1)), np.ones((5, 1))).epsilon[0] == 0.0
    assert per_example_epsilon(np.ones((5, 1)), np.zeros((5, 1))).epsilon[0] == EPSILON_CAP


def test_summary_reports_median_p90_max_and_share_at_cap():
    est = EpsilonEstimate(epsilon=np.array([0.0, 1.0, 2.0, 3.0, EPSILON_CAP]), delta=DELTA, alpha=ALPHA,
                          cap=EPSILON_CAP, models=(4, 4), forgetting_score=0.0)
    s = est.summary()
    assert s["median"] == 2.0 and s["max"] == EPSILON_CAP and s["share_at_cap"] == 0.2 and s["examples"] == 5
    assert s["p90"] == pytest.approx(3.0 + 0.6 * (EPSILON_CAP - 3.0))   # linear percentile, 0.9 * 4 = 3.6


def test_floor_is_retrain_against_itself(identical):
    u, r = identical
    both = np.concatenate([u, r])             # 400 retrained-like models: nothing to find
    fl = floor(both)
    assert fl.models == (200, 200)
    np.testing.assert_array_equal(fl.epsilon, per_example_epsilon(u, r).epsilon)
    assert fl.forgetting_score == per_example_epsilon(u, r).forgetting_score
    # A random split reads the same noise level: within the KS/Clopper-Pearson bound of its own halves
    # (a bound on single thresholds, so checked with those).
    shuffled = floor(both, seed=5, intervals=False)
    assert shuffled.intervals is False and fl.intervals is True
    perm = np.random.default_rng(5).permutation(400)
    a, b = both[perm[:200]], both[perm[200:]]
    bounds = [_ks_cp_bound(int(round(ks_2samp(a[:, j], b[:, j]).statistic * 200)), 200) for j in range(40)]
    assert np.all(shuffled.epsilon <= np.array(bounds) + 1e-9)
    # the seed did permute the models
    assert not np.array_equal(shuffled.epsilon, floor(both, intervals=False).epsilon)
    # Odd counts: 5 models -> 2 vs 3.
    assert floor(np.random.default_rng(0).normal(size=(5, 3))).models == (2, 3)


# ---------------------------------------------------------------------------------------------------
# U-LiRA


def _gaussian_models(rng, mu, sd, k):
    return mu + sd * rng.normal(size=(k, mu.size))


def test_ulira_identical_in_and_out_is_chance():
    # T = 20 targets per side, N = 200 examples -> n = 4000 pooled scores per label. Under "no
    # difference" the Mann-Whitney AUC has sd sqrt((n0 + n1 + 1) / (12 n0 n1)) = 0.00646; with the shadow
    # fits shared by each example's scores, 200 seeds gave sd 0.0067 (within 5%), so 5 sd = 0.032.
    rng = np.random.default_rng(1)
    n_ex, t, k = 200, 20, 16
    mu, sd = rng.normal(size=n_ex), rng.uniform(0.5, 2.0, size=n_ex)
    res = ulira(*(_gaussian_models(rng, mu, sd, m) for m in (t, t, k, k)))
    n = t * n_ex
    assert abs(res.auc - 0.5) < 5 * math.sqrt((2 * n + 1) / (12 * n * n))
    assert res.variance == "global" and res.shadows == (16, 16)
    assert res.scores_in.shape == (t, n_ex) and res.scores_out.shape == (t, n_ex)
    assert res.fpr[0] == 0 and res.tpr[-1] == 1 and len(res.fpr) == len(res.tpr)


@pytest.mark.parametrize("k, variance", [(16, "global"), (64, "per_example")])
def test_ulira_shifted_means_are_found(k, variance):
    # in ~ N(mu_j + 4, 1), out ~ N(mu_j, 1). With known parameters the LR is linear in x and the attack's
    # AUC is Phi(4 / sqrt 2) = 0.9977, TPR at 1% FPR = P(N(2,1) > -2 + z_0.99) = 0.953. Fitted shadows
    # cost a little: over 20 seeds AUC was 0.9966-0.9978 and TPR@1% 0.936-0.960.
    rng = np.random.default_rng(2)
    mu, one = rng.normal(size=200), np.ones(200)
    res = ulira(_gaussian_models(rng, mu + 4, one, 20), _gaussian_models(rng, mu, one, 20),
                _gaussian_models(rng, mu + 4, one, k), _gaussian_models(rng, mu, one, k))
    assert res.variance == variance
    assert norm.cdf(4 / math.sqrt(2)) == pytest.approx(0.9977, abs=1e-4)
    assert res.auc > 0.995
    assert res.tpr_at[0.01] > 0.9
    assert set(res.tpr_at) == {0.01, 0.001} and 0 <= res.tpr_at[0.001] <= res.tpr_at[0.01]


def test_ulira_exact_likelihood_ratio_of_one_example():
    # Per-example variance: in = 1, 2, 3 (mean 2, population var 2/3); out = 0, 0, 3 (mean 1, var 2).
    # x = 2: log N(2; 2, 2/3) - log N(2; 1, 2) = -1/2 log(2 pi 2/3) + 1/2 log(2 pi 2) + (2-1)^2 / (2 * 2)
    #      = 1/2 log 3 + 1/4 = 0.79931.
    s_in = np.array([[1.0], [2.0], [3.0]])
    s_out = np.array([[0.0], [0.0], [3.0]])
    res = ulira([[2.0]], [[1.0]], s_in, s_out, variance="per_example")
    assert res.scores_in[0, 0] == pytest.approx(0.5 * math.log(3) + 0.25, abs=1e-12)
    # x = 1: -1/2 log(2 pi 2/3) - (1-2)^2/(2 * 2/3) + 1/2 log(2 pi 2) + 0 = 1/2 log 3 - 3/4.
    assert res.scores_out[0, 0] == pytest.approx(0.5 * math.log(3) - 0.75, abs=1e-12)
    # Global variance, 2 examples: in: ex0 1,2,3 and ex1 5,7,9 -> pooled within-example var
    # (2/3 + 8/3) / 2 = 5/3 (the spread of all six values, 6.67, would count the gap between the means);
    # out: ex0 0,0,3 (var 2) and ex1 4,4,4 (var 0) -> pooled var 1. Example 0 at x = 2:
    # log N(2; 2, 5/3) - log N(2; 1, 1) = -1/2 log(5/3) + 1/2 = 0.24459.
    s_in2 = np.array([[1.0, 5.0], [2.0, 7.0], [3.0, 9.0]])
    s_out2 = np.array([[0.0, 4.0], [0.0, 4.0], [3.0, 4.0]])
    res2 = ulira([[2.0, 0.0]], [[1.0, 0.0]], s_in2, s_out2, variance="global")
    assert res2.scores_in[0, 0] == pytest.approx(0.5 - 0.5 * math.log(5 / 3), abs=1e-12)
    assert res2.variance == "global"
    # "auto" with 3 shadows per side is the global variance.
    assert ulira([[2.0, 0.0]], [[1.0, 0.0]], s_in2, s_out2).scores_in[0, 0] == res2.scores_in[0, 0]


def test_ulira_roc_auc_and_interpolated_tpr_exact():
    # Shadows in = 4, 5, 6 and out = 0, 1, 2 (equal variances 2/3): score = 6 x - 18, increasing in x,
    # so the ROC is that of the raw values. Targets in = 2, 3, 4, 5; out = 0, 1, 3, 6 (a tie at 3).
    # Mann-Whitney: 2 beats 0,1 (2); 3 beats 0,1 and ties 3 (2.5); 4 and 5 beat 0,1,3 (3 + 3) -> 10.5/16.
    # ROC (decreasing threshold): (0,0) (.25,0) [6] (.25,.25) [5] (.25,.5) [4] (.5,.75) [3, tie: diagonal]
    # (.5,1) [2] (.75,1) (1,1). TPR at FPR .25 = .5 (best point with FPR <= .25); at .375 the diagonal
    # gives .625; at .1 the flat start gives 0; at .6 the top gives 1.
    s_in = np.array([[4.0], [5.0], [6.0]])
    s_out = np.array([[0.0], [1.0], [2.0]])
    t_in = np.array([[2.0], [3.0], [4.0], [5.0]])
    t_out = np.array([[0.0], [1.0], [3.0], [6.0]])
    res = ulira(t_in, t_out, s_in, s_out, fpr=(0.1, 0.25, 0.375, 0.6), variance="per_example")
    np.testing.assert_allclose(res.scores_in[:, 0], 6 * t_in[:, 0] - 18, atol=1e-12)
    assert res.auc == pytest.approx(10.5 / 16, abs=1e-12)
    assert res.tpr_at == pytest.approx({0.1: 0.0, 0.25: 0.5, 0.375: 0.625, 0.6: 1.0}, abs=1e-12)
    # The stored curve: FPR 0, then log-spaced from the smallest non-zero FPR (.25) to 1 (3 points: .25,
    # .5, 1), each TPR read like tpr_at (the best point at that FPR).
    fpr, tpr = res.curve(3)
    np.testing.assert_allclose(fpr, [0.0, 0.25, 0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0], atol=1e-12)
    assert len(res.curve()[0]) == 101
    with pytest.raises(InvalidInputError, match="points must be an integer >= 2, got 1"):
        res.curve(1)


# ---------------------------------------------------------------------------------------------------
# Bad inputs


GOOD = np.zeros((3, 2)) + np.arange(6).reshape(3, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: per_example_epsilon(np.zeros((1, 2)), GOOD),
     "unlearned needs at least 2 models (rows), got 1 (shape (1, 2))"),
    (lambda: per_example_epsilon(GOOD, np.zeros(3)),
     "retrained must be a 2-D array [models, examples], got shape (3,)"),
    (lambda: per_example_epsilon(GOOD, np.zeros((3, 5))),
     "retrained has 5 examples (shape (3, 5)) but unlearned has 2 (shape (3, 2)); columns must be the same "
     "examples"),
    (lambda: per_example_epsilon(np.where(np.eye(3, 2) > 0, np.nan, GOOD), GOOD),
     "unlearned contains NaN or inf (2 values; first at model 0, example 0)"),
    (lambda: per_example_epsilon(GOOD, GOOD, delta=0.0), "delta must be in (0, 1), got 0.0"),
    (lambda: per_example_epsilon(GOOD, GOOD, alpha=1.5), "alpha must be in (0, 1) or None, got 1.5"),
    (lambda: per_example_epsilon(GOOD, GOOD, cap=float("inf")), "cap must be a finite number > 0, got inf"),
    (lambda: per_example_epsilon(GOOD, GOOD, intervals="yes"), "intervals must be True or False, got 'yes'"),
    (lambda: per_example_epsilon(np.zeros((3, 0)), np.zeros((3, 0))),
     "unlearned needs at least 1 example (column), got shape (3, 0)"),
    (lambda: floor(GOOD), "retrained needs at least 4 models (rows), got 3 (shape (3, 2))"),
    (lambda: forgetting_score([0.1, float("nan")], 4), "epsilon contains NaN (first at index 1)"),
    (lambda: forgetting_score([0.1], 1), "unlearned_models must be an integer >= 2, got 1"),
    (lambda: ulira(GOOD, GOOD, np.zeros((1, 2)), GOOD),
     "shadow_in needs at least 2 models (rows), got 1 (shape (1, 2))"),
    (lambda: ulira(np.zeros((2, 3)), GOOD, GOOD, GOOD),
     "target_in has 3 examples (shape (2, 3)) but shadow_in has 2 (shape (3, 2)); columns must be the same "
     "examples"),
    (lambda: ulira(GOOD, np.full((2, 2), np.inf), GOOD, GOOD),
     "target_out contains NaN or inf (4 values; first at model 0, example 0)"),
    (lambda: ulira(GOOD, GOOD, GOOD, GOOD, fpr=(0.01, 1.0)),
     "fpr must be numbers in (0, 1), got 1.0 in (0.01, 1.0)"),
    (lambda: ulira(GOOD, GOOD, GOOD, GOOD, variance="pooled"),
     "variance must be 'auto', 'global' or 'per_example', got 'pooled'"),
])
def test_bad_inputs_raise_one_line_errors(call, message):
    with pytest.raises(InvalidInputError) as info:
        call()
    assert str(info.value) == message
    assert "\n" not in str(info.value)
