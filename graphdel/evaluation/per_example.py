"""Per-example privacy audit of unlearning: how well can one deleted example's fate be told apart?

Everything here is pure statistics over an *attack signal* that the caller has already computed for each
deleted example under several independently trained models (e.g. the cosine similarity of a deleted
graph–text pair, or a logit-scaled matching confidence; any number will do). Two families of models are
compared, both trained with different seeds:

* **unlearned**: trained on the full data, then unlearned with the method under audit (``[M_u, N]``);
* **retrained**: trained from scratch without the deleted examples — the gold standard (``[M_r, N]``).

If unlearning were perfect, the two families would give each example the same *distribution* of signal,
and no test could tell them apart. Three estimators read how far from that a method is:

1. :func:`per_example_epsilon` — the (ε, δ) estimate of the NeurIPS 2023 Machine Unlearning Challenge,
   one ε per example, plus the challenge's bucketed *forgetting score*.
2. :func:`ulira` — U-LiRA (Hayes et al. 2024), a per-example Gaussian likelihood-ratio attack with
   shadow models, summarised by the ROC of the attack over held-out target models.
3. :func:`floor` — (1) run on Retrain against itself: what the ε estimator reads when there is nothing to
   find, i.e. its noise level at this number of models.

Sources followed (read for the definitions, not copied):

* Challenge metric: ``metric.py`` of ``google-deepmind/unlearning_evaluation`` (commit ffae0ff):
  ``DELTA = 1e-05``, ``EPSILON_CAP = 50``; per threshold ``eps = max(log(1-δ-FPR) - log(FNR),
  log(1-δ-FNR) - log(FPR))`` clipped below at 0; a threshold with ``FPR = FNR = 0`` (perfect separation)
  gives ε = ∞ (then capped); a threshold with exactly one of FPR, FNR equal to 0 is *discarded*
  ("an indication of insufficient samples"); an example whose two signal ranges differ by more than a
  factor 100 (``smallest/largest < 0.01``, one distribution "very peaky") gets the cap; the final ε is
  clipped to ``[0, EPSILON_CAP]``. Forgetting score in ``compute_forget_score_from_confs``: see
  :func:`forgetting_score`. The competition's write-up: Triantafillou et al. 2024, "Are we making
  progress in unlearning? Findings from the first NeurIPS unlearning competition" (arXiv 2406.09073).
* U-LiRA: Hayes, Shumailov, Triantafillou, Khalifa, Papernot 2024, "Inexact unlearning needs more careful
  evaluations to avoid a false sense of privacy" (arXiv 2403.01218): LiRA (Carlini et al. 2022,
  "Membership inference attacks from first principles", arXiv 2112.03570) where the "in" shadows are
  models that trained on the example *and then unlearned it*, and the "out" shadows never saw it (for the
  earlier LiRA-on-unlearning experiments of SCRUB, Kurmanji et al. 2023, Hayes, a co-author, described
  the code as LiRA's reference code run on unlearned models: ``meghdadk/SCRUB`` issue #1). The Gaussian
  fit and score follow that reference code, ``research/mi_lira_2021/plot.py`` of
  ``tensorflow/privacy`` (``generate_ours``, with its ``fix_variance`` option), whose README reports that
  with few shadow models (16 there) the fixed (global) variance variants perform best.

Differences from the challenge code, on purpose:

* **Thresholds.** The challenge sweeps a grid (100 thresholds per unit of signal) in one direction (the
  class with the larger median is "positive") and adds a family of two-threshold (interval) rules: the
  values between a left and a right threshold are called the *peakier* class (the one whose values span
  the smaller range), the interval's width within 2 units of that range, both ends on grids of 100 per
  unit (``_get_double_threshold_rates``). Here the rules are exact instead of gridded: every interval
  ``(a, b]`` between two distinct cuts of the pooled values (a cut below the smallest value included, so
  the single thresholds "signal <= t" and "signal > t" are the intervals open at one end), calling
  "unlearned" the values inside it, or those outside it (= "retrained" inside: the challenge's rule when
  the retrained values are the peakier). A rule's reading depends only on which pooled values it flags,
  and every rule of the challenge's grids flags one class inside some such interval, so each of its rules
  is one of these and its ε is matched or exceeded: exceeded where its grid is too coarse for the
  signal's scale (cosine similarities that differ in the third decimal), for intervals outside its width
  window, and for the non-peakier class inside. ``intervals=False`` keeps only the single thresholds.
* **Confidence bounds.** The challenge plugs in the empirical rates. Here, by default (``alpha=0.05``),
  each surviving rule uses the upper Clopper–Pearson bounds of FPR and FNR (the upper end of the
  two-sided exact binomial interval at level ``alpha``, i.e. one-sided ``1 - alpha/2`` each, so both hold
  together with probability ``>= 1 - alpha`` by the union bound), as in DP auditing (Jagielski et al.
  2020, Nasr et al. 2021). ε for one rule is then a ``1 - alpha`` lower confidence bound; the max
  over many rules is not corrected for multiplicity, so the result is a lower-bound-*style*
  estimate. ``alpha=None`` reproduces the challenge's plug-in rates. The zero-rate conventions (perfect
  separation → cap, one zero → discard) are decided on the *observed* counts in both cases, as in the
  challenge; note that perfect separation is therefore capped even at tiny M, where it can happen by
  chance: for identical continuous distributions with the interval rules, when the unlearned values or
  the retrained values sit next to each other in the pooled order, probability
  ``(M_u + M_r) / C(M_u + M_r, M_u)`` (``2 / C(M_u + M_r, M_u)`` with single thresholds only): 0.11 at
  4 models per side, 0.0012 at 8, 5e-8 at 16.

Consequence worth knowing: with Clopper–Pearson bounds, a rule with ``a`` false negatives out of
``M_u`` and ``b`` false positives out of ``M_r`` can give at most ``log(1-δ-U(b, M_r)) - log(U(a, M_u))``;
with ``a = b = 1`` and ``M = 4`` per side this is already negative (``U(1, 4) ≈ 0.806``), so at M = 4 the
estimate is 0 unless the two families are perfectly separated (then the cap). :func:`floor` shows the
noise level at the M in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

from graphdel.errors import InvalidInputError

__all__ = ["DELTA", "EPSILON_CAP", "PEAKY_RATIO", "BUCKET_WIDTH", "ULIRA_GLOBAL_VARIANCE_BELOW",
           "EpsilonEstimate", "ULiRAResult", "per_example_epsilon", "forgetting_score", "floor",
           "clopper_pearson_upper", "ulira"]

#: δ of the (ε, δ) estimate. The challenge's value (``DELTA = 1e-05`` in its ``metric.py``); as in DP
#: practice it is far below 1/(number of training examples), and it only enters as ``1 - δ - rate``, so
#: any such small value gives the same ε to ~1e-5.
DELTA = 1e-5

#: ε given to an example whose two families are perfectly separated (ε = ∞) or "peaky" (see
#: :data:`PEAKY_RATIO`). The challenge's ``EPSILON_CAP = 50``: a finite stand-in for ∞ that keeps means and
#: plots finite. Any value above ``ceil(log(M_u - 1))`` scores 0 points in :func:`forgetting_score`, so the
#: score does not depend on it; 50 keeps summaries comparable with the challenge.
EPSILON_CAP = 50.0

#: The challenge's "peaky" rule: when ``min(range_u, range_r) / max(range_u, range_r)`` is below this, one
#: family is nearly constant while the other varies — an easy tell that the threshold sweep may miss — and
#: the example gets the cap. ``None`` (argument) switches the rule off.
PEAKY_RATIO = 0.01

#: Width of the ε buckets of the challenge's forgetting score.
BUCKET_WIDTH = 0.5

#: U-LiRA's ``variance="auto"`` uses one global (pooled) variance per side when either side has fewer
#: shadow models than this, per-example variances otherwise. LiRA (Carlini et al. 2022), which U-LiRA
#: adapts, advises the fixed/global variance when shadow models are few (the reference code's README: the
#: fixed-variance variants are best with its 16 models); 64 is the paper's order of magnitude for "enough"
#: shadow models per side, below which a per-example variance is a noisy estimate.
ULIRA_GLOBAL_VARIANCE_BELOW = 64

#: Floor on a fitted standard deviation (a constant shadow signal would otherwise divide by zero), as in
#: :func:`graphdel.evaluation.membership.lira_scores`.
_STD_FLOOR = 1e-6


# ----------------------------------------------------------------------------------------------------
# Input checks (one-line messages that name the argument)


def _as_models(name: str, a: Any, *, min_models: int = 2) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array [models, examples]: {exc}") from None
    if x.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array [models, examples], got shape {x.shape}")
    if x.shape[0] < min_models:
        raise InvalidInputError(f"{name} needs at least {min_models} models (rows), got {x.shape[0]} "
                                f"(shape {x.shape})")
    if x.shape[1] < 1:
        raise InvalidInputError(f"{name} needs at least 1 example (column), got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidInputError(f"{name} contains NaN or inf ({int(bad.sum())} values; first at model {i}, "
                                f"example {j})")
    return x


def _same_examples(arrays: Sequence[tuple[str, np.ndarray]]) -> None:
    first_name, first = arrays[0]
    for name, x in arrays[1:]:
        if x.shape[1] != first.shape[1]:
            raise InvalidInputError(f"{name} has {x.shape[1]} examples (shape {x.shape}) but {first_name} "
                                    f"has {first.shape[1]} (shape {first.shape}); columns must be the same "
                                    f"examples")


def _check_params(delta: float, alpha: float | None, cap: float, peaky_ratio: float | None) -> None:
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise InvalidInputError(f"delta must be in (0, 1), got {delta!r}")
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InvalidInputError(f"alpha must be in (0, 1) or None, got {alpha!r}")
    if not (isinstance(cap, (int, float)) and math.isfinite(cap) and cap > 0):
        raise InvalidInputError(f"cap must be a finite number > 0, got {cap!r}")
    if peaky_ratio is not None and not (isinstance(peaky_ratio, (int, float)) and 0 <= peaky_ratio < 1):
        raise InvalidInputError(f"peaky_ratio must be in [0, 1) or None, got {peaky_ratio!r}")


# ----------------------------------------------------------------------------------------------------
# ε estimate


def clopper_pearson_upper(k: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """Upper end of the two-sided Clopper–Pearson interval at level ``alpha`` for ``k`` successes in ``n``.

    ``U(k, n) = Beta.ppf(1 - alpha/2; k + 1, n - k)`` for ``k < n`` and ``1`` for ``k = n``; closed forms:
    ``U(0, n) = 1 - (alpha/2)^(1/n)`` and ``U(n-1, n) = (1 - alpha/2)^(1/n)``.

    Args:
        k: counts, any shape, integers in ``[0, n]``.
        n: number of trials (>= 1).
        alpha: level in (0, 1).

    Returns:
        float64 array of the shape of ``k``.
    """
    k = np.asarray(k, dtype=np.float64)
    out = np.ones_like(k)
    below = k < n
    out[below] = beta.ppf(1.0 - alpha / 2.0, k[below] + 1.0, n - k[below])
    return out


def _log_ratio(num_rate: np.ndarray, den_rate: np.ndarray, delta: float) -> np.ndarray:
    """``log(1 - delta - num_rate) - log(den_rate)``, ``-inf`` where ``1 - delta - num_rate <= 0``."""
    top = 1.0 - delta - num_rate
    out = np.full(np.broadcast(top, den_rate).shape, -np.inf)
    ok = (top > 0) & (den_rate > 0)
    out[ok] = np.log(top[ok]) - np.log(den_rate[ok])
    return out


#: Columns (examples) handled at once by :func:`_epsilons`, so that its ``[rules, examples]`` arrays stay
#: near 2 million entries whatever the number of models (with 64 models per side there are 8,256 cuts
#: pairs per example).
_RULE_CELLS = 2_000_000


def _epsilons(u: np.ndarray, r: np.ndarray, delta: float, alpha: float | None, cap: float,
              peaky_ratio: float | None, intervals: bool = True) -> np.ndarray:
    """ε per column of ``u`` ``[M_u, N]`` against ``r`` ``[M_r, N]`` (validated inputs).

    Every rule is an interval of the pooled sorted values, ``(cut_i, cut_j]``, with a cut before the
    first value (``i = 0``, "from -inf") and after the last of each run of ties, so tied values are never
    split. A rule flags "unlearned" either inside the interval or outside it. With ``intervals`` every
    ``i < j`` is tried (the challenge's two-threshold family and its single thresholds); without, only the
    intervals open at one end (``i = 0`` or ``j = P``: the single thresholds in both directions).
    """
    m_u, n = u.shape
    m_r = r.shape[0]
    p = m_u + m_r
    pooled = np.concatenate([u, r], axis=0)                                 # [P, N]
    is_u = np.concatenate([np.ones(m_u), np.zeros(m_r)])
    order = np.argsort(pooled, axis=0, kind="stable")
    values = np.take_along_axis(pooled, order, axis=0)
    labels = is_u[order]                                                    # 1 = unlearned
    zero = np.zeros((1, n), dtype=np.int64)
    # cu[t] / cr[t]: unlearned / retrained values among the t smallest (t = 0..P).
    cu = np.concatenate([zero, np.cumsum(labels, axis=0).astype(np.int64)])
    cr = np.arange(p + 1)[:, None] - cu
    # A cut after t values is a real threshold when it does not split a run of ties (t = 0 and t = P are).
    valid = np.concatenate([np.ones((1, n), dtype=bool), np.ones((p, n), dtype=bool)])
    valid[1:p] = values[1:] != values[:-1]
    lo, hi = np.triu_indices(p + 1, k=1)                                    # every interval (lo, hi]
    if not intervals:
        keep = (lo == 0) | (hi == p)
        lo, hi = lo[keep], hi[keep]
    if alpha is None:
        fnr_of = np.arange(m_u + 1) / m_u
        fpr_of = np.arange(m_r + 1) / m_r
    else:
        fnr_of = clopper_pearson_upper(np.arange(m_u + 1), m_u, alpha)
        fpr_of = clopper_pearson_upper(np.arange(m_r + 1), m_r, alpha)
    eps = np.zeros(n)
    step = max(1, _RULE_CELLS // len(lo))
    for start in range(0, n, step):
        cols = slice(start, min(n, start + step))
        u_in = cu[hi, cols] - cu[lo, cols]                                  # [rules, C]
        r_in = cr[hi, cols] - cr[lo, cols]
        real = valid[lo, cols] & valid[hi, cols]
        # Flag "unlearned" inside: false negatives are the unlearned outside, false positives the
        # retrained inside. Flag it outside: the reverse. (The rules "flag all" and "flag none" always have
        # exactly one zero rate: discarded below.)
        fn = np.stack([m_u - u_in, u_in])                                   # [2, rules, C]
        fp = np.stack([r_in, m_r - r_in])
        both_zero = real & (fn == 0) & (fp == 0)
        survive = real & (fn > 0) & (fp > 0)
        fnr, fpr = fnr_of[fn], fpr_of[fp]
        per_rule = np.maximum(_log_ratio(fpr, fnr, delta), _log_ratio(fnr, fpr, delta))
        # The challenge clips each rule at 0; redundant here (the max always includes a discarded
        # rule at 0 and the result is clipped again), kept so the steps read like the reference.
        per_rule = np.maximum(per_rule, 0.0)
        per_rule = np.where(survive, per_rule, 0.0)                        # discarded rules
        part = per_rule.max(axis=(0, 1))
        eps[cols] = np.where(both_zero.any(axis=(0, 1)), np.inf, part)
    if peaky_ratio is not None:
        range_u = u.max(axis=0) - u.min(axis=0)
        range_r = r.max(axis=0) - r.min(axis=0)
        largest = np.maximum(range_u, range_r)
        smallest = np.minimum(range_u, range_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            peaky = (largest > 0) & (smallest / np.where(largest > 0, largest, 1.0) < peaky_ratio)
        eps = np.where(peaky, np.inf, eps)
    return np.clip(eps, 0.0, cap)


def forgetting_score(epsilon: np.ndarray | Sequence[float], unlearned_models: int) -> float:
    """The challenge's forgetting score of a vector of per-example ε (``compute_forget_score_from_confs``).

    Buckets of width :data:`BUCKET_WIDTH` (0.5) start at 0 and are kept while their right end is
    ``<= ceil(log(M_u - 1))`` (natural log; the challenge's "back-of-the-envelope" largest ε measurable
    with ``M_u`` unlearned models). Bucket ``k`` covers ``[0.5 k, 0.5 k + 0.5)`` and is worth
    ``2^-k`` points; an ε at or above the last bucket's right end is worth 0. The score is the mean of
    the points over examples: 1 when every ε < 0.5, 0 when every ε is beyond the last bucket (e.g. at the
    cap). With ``M_u = 2`` (``log 1 = 0``) there is no bucket and the score is 0 whatever ε.

    Args:
        epsilon: ``[N]`` per-example ε (finite or not; NaN is rejected).
        unlearned_models: ``M_u`` (>= 2), the number of unlearned models behind ε.

    Returns:
        Score in ``[0, 1]``.
    """
    eps = np.asarray(epsilon, dtype=np.float64).reshape(-1)
    if eps.size == 0:
        raise InvalidInputError("epsilon must hold at least one value, got an empty array")
    if np.isnan(eps).any():
        raise InvalidInputError(f"epsilon contains NaN (first at index {int(np.argmax(np.isnan(eps)))})")
    if isinstance(unlearned_models, bool) or not isinstance(unlearned_models, (int, np.integer)) \
            or unlearned_models < 2:
        raise InvalidInputError(f"unlearned_models must be an integer >= 2, got {unlearned_models!r}")
    max_epsilon = math.ceil(math.log(unlearned_models - 1))
    n_buckets = int(max_epsilon / BUCKET_WIDTH)      # buckets whose right end is <= max_epsilon
    if n_buckets == 0:
        return 0.0
    k = np.floor(np.where(np.isfinite(eps), eps, np.inf) / BUCKET_WIDTH)
    inside = k < n_buckets
    points = np.where(inside, np.power(0.5, np.where(inside, k, 0)), 0.0)
    return float(points.sum() / eps.size)


@dataclass(frozen=True)
class EpsilonEstimate:
    """Per-example ε of unlearned vs retrained models (see :func:`per_example_epsilon`).

    Attributes:
        epsilon: ``[N]`` ε per example, in ``[0, cap]``.
        delta: δ used.
        alpha: Clopper–Pearson level used (``None``: plug-in rates, as in the challenge code).
        cap: the cap (ε of perfectly separated or "peaky" examples).
        models: ``(M_u, M_r)``, models per side.
        forgetting_score: the challenge's bucketed score of ``epsilon`` (:func:`forgetting_score`).
        intervals: whether the two-threshold (interval) rules were tried, as in the challenge.
    """

    epsilon: np.ndarray = field(repr=False)
    delta: float
    alpha: float | None
    cap: float
    models: tuple[int, int]
    forgetting_score: float
    intervals: bool = True

    def summary(self) -> dict[str, float]:
        """``{"median", "p90", "max", "share_at_cap", "forgetting_score", "examples"}`` of ``epsilon``.

        ``p90`` is numpy's default (linear) 90th percentile; ``share_at_cap`` the fraction of examples
        with ε equal to the cap (perfectly separated or peaky).
        """
        eps = self.epsilon
        return {
            "median": float(np.median(eps)),
            "p90": float(np.percentile(eps, 90)),
            "max": float(np.max(eps)),
            "share_at_cap": float(np.mean(eps >= self.cap)),
            "forgetting_score": float(self.forgetting_score),
            "examples": int(eps.size),
        }


def per_example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, *, delta: float = DELTA,
                        alpha: float | None = 0.05, cap: float = EPSILON_CAP,
                        peaky_ratio: float | None = PEAKY_RATIO, intervals: bool = True) -> EpsilonEstimate:
    """ε per deleted example, from the signal under unlearned and under retrained models.

    For example ``j``, the ``M_u + M_r`` values of column ``j`` are pooled and every rule is tried: each
    interval ``(v, w]`` between two distinct values (or from -inf), flagging "unlearned" inside it or
    outside it (``intervals=False``: only the intervals open at one end, i.e. the single thresholds
    "unlearned if signal > v" and "unlearned if signal <= v"). With ``a`` unlearned
    models missed (false negatives) and ``b`` retrained models flagged (false positives), and
    ``FNR = U(a, M_u)``, ``FPR = U(b, M_r)`` their upper Clopper–Pearson bounds at level ``alpha``
    (:func:`clopper_pearson_upper`; ``alpha=None``: the plug-in rates ``a / M_u``, ``b / M_r``), a rule
    scores ``max(0, log((1 - δ - FPR) / FNR), log((1 - δ - FNR) / FPR))`` (a log of a non-positive number
    counts as ``-inf``). As in the challenge, rules with ``a = 0`` or ``b = 0`` (but not both) are
    discarded, ``a = b = 0`` (perfect separation) gives ε = ∞, and so does the peaky rule
    (:data:`PEAKY_RATIO`). ε is the max over rules (0 when none survives), clipped to ``[0, cap]``.
    See the module docstring for the sources and the deliberate differences from the challenge code.

    Args:
        unlearned: ``[M_u, N]`` signal of the N deleted examples under M_u >= 2 trained-then-unlearned
            models (different seeds).
        retrained: ``[M_r, N]`` the same examples under M_r >= 2 models retrained without them.
        delta: δ in (0, 1); default :data:`DELTA`.
        alpha: Clopper–Pearson level in (0, 1), or ``None`` for the challenge's plug-in rates.
        cap: ε given for perfect separation; default :data:`EPSILON_CAP`.
        peaky_ratio: threshold of the challenge's peaky rule, ``None`` to switch it off.
        intervals: also try the two-threshold (interval) rules, as the challenge does (default); ``False``:
            single thresholds only.

    Returns:
        :class:`EpsilonEstimate` with ``epsilon`` ``[N]`` and the forgetting score (bucketed with M_u).

    Raises:
        InvalidInputError: an array that is not 2-D, has fewer than 2 models, no example, NaN or inf;
            different numbers of examples; a parameter out of range.
    """
    u = _as_models("unlearned", unlearned)
    r = _as_models("retrained", retrained)
    _same_examples([("unlearned", u), ("retrained", r)])
    _check_params(delta, alpha, cap, peaky_ratio)
    if not isinstance(intervals, (bool, np.bool_)):
        raise InvalidInputError(f"intervals must be True or False, got {intervals!r}")
    eps = _epsilons(u, r, float(delta), None if alpha is None else float(alpha), float(cap), peaky_ratio,
                    bool(intervals))
    return EpsilonEstimate(epsilon=eps, delta=float(delta), alpha=None if alpha is None else float(alpha),
                           cap=float(cap), models=(u.shape[0], r.shape[0]),
                           forgetting_score=forgetting_score(eps, u.shape[0]), intervals=bool(intervals))


def floor(retrained: np.ndarray, *, delta: float = DELTA, alpha: float | None = 0.05,
          cap: float = EPSILON_CAP, peaky_ratio: float | None = PEAKY_RATIO,
          seed: int | None = None, intervals: bool = True) -> EpsilonEstimate:
    """The ε estimate of Retrain against itself: what :func:`per_example_epsilon` reads with nothing to find.

    The retrained models are split in two halves, the first ``M_r // 2`` playing "unlearned" and the other
    ``M_r - M_r // 2`` playing "retrained" (after a random permutation of the models when ``seed`` is
    given; models of different seeds are exchangeable, so the plain split is as good unless their order
    means something). Any ε above 0 is estimator noise at that number of models; compare the audit of a
    method with the floor at the *same* models per side (the floor uses half of ``M_r`` per side).

    Args:
        retrained: ``[M_r, N]`` signal under M_r >= 4 retrained models.
        delta, alpha, cap, peaky_ratio, intervals: as in :func:`per_example_epsilon`.
        seed: permute the models with ``numpy.random.default_rng(seed)`` before splitting; ``None``: no.

    Returns:
        :class:`EpsilonEstimate` with ``models = (M_r // 2, M_r - M_r // 2)``.

    Raises:
        InvalidInputError: as :func:`per_example_epsilon`, or fewer than 4 retrained models.
    """
    r = _as_models("retrained", retrained, min_models=4)
    if seed is not None:
        r = r[np.random.default_rng(seed).permutation(r.shape[0])]
    half = r.shape[0] // 2
    return per_example_epsilon(r[:half], r[half:], delta=delta, alpha=alpha, cap=cap, peaky_ratio=peaky_ratio,
                               intervals=intervals)


# ----------------------------------------------------------------------------------------------------
# U-LiRA


@dataclass(frozen=True)
class ULiRAResult:
    """Outcome of :func:`ulira`.

    Attributes:
        scores_in: ``[T_in, N]`` log likelihood ratios of the trained-then-unlearned target models
            (label 1; higher = "looks unlearned rather than never trained").
        scores_out: ``[T_out, N]`` the same for the retrained target models (label 0).
        auc: ROC-AUC over all ``(T_in + T_out) * N`` pooled scores (0.5: no better than chance).
        tpr_at: ``{fpr: tpr}`` for each requested false-positive rate.
        fpr: ROC false-positive rates (``sklearn.metrics.roc_curve``, all thresholds kept), for plotting.
        tpr: ROC true-positive rates, same length as ``fpr``.
        variance: ``"global"`` or ``"per_example"``, the variance model used.
        shadows: ``(K_in, K_out)``.
    """

    scores_in: np.ndarray = field(repr=False)
    scores_out: np.ndarray = field(repr=False)
    auc: float
    tpr_at: dict[float, float]
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    variance: str
    shadows: tuple[int, int]

    def curve(self, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """The ROC thinned for storing and plotting on log axes: ``(fpr, tpr)`` at FPR 0 and at ``points``
        log-spaced FPRs from the smallest non-zero one of the ROC to 1, each TPR read on the ROC polyline
        as :attr:`tpr_at` reads it (so a stored curve gives the same TPR at 1% as ``tpr_at``, up to the
        grid).

        Args:
            points: number of log-spaced FPRs (>= 2).
        """
        if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
            raise InvalidInputError(f"points must be an integer >= 2, got {points!r}")
        positive = self.fpr[self.fpr > 0]
        low = float(positive.min()) if positive.size else 1.0
        grid = np.unique(np.concatenate([[0.0], np.geomspace(low, 1.0, int(points))]))
        return grid, np.array([_tpr_at(self.fpr, self.tpr, float(f)) for f in grid])


def _fit_gaussian(shadow: np.ndarray, variance: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean ``[N]`` and std ``[N]`` (population std; pooled within-example when global)."""
    mu = shadow.mean(axis=0)
    if variance == "global":
        sd = np.full(shadow.shape[1], np.sqrt(np.mean((shadow - mu[None, :]) ** 2)))
    else:
        sd = shadow.std(axis=0)
    return mu, np.maximum(sd, _STD_FLOOR)


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2.0 * np.pi * sd ** 2) - (x - mu) ** 2 / (2.0 * sd ** 2)


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """TPR at false-positive rate ``target``, linearly interpolated on the ROC polyline.

    The ROC points are sorted by FPR (non-decreasing) with TPR non-decreasing too; at an FPR reached by
    several points the highest TPR is used, between two FPRs the segment joining them (a randomised mix of
    the two thresholds, which an attacker can realise).
    """
    i = int(np.searchsorted(fpr, target, side="right")) - 1          # last point with fpr <= target
    if i >= len(fpr) - 1 or fpr[i] == target:
        return float(tpr[i])
    f0, f1, t0, t1 = fpr[i], fpr[i + 1], tpr[i], tpr[i + 1]
    return float(t0 + (t1 - t0) * (target - f0) / (f1 - f0))


def ulira(target_in: np.ndarray, target_out: np.ndarray, shadow_in: np.ndarray, shadow_out: np.ndarray,
          fpr: Sequence[float] = (0.01, 0.001), *, variance: str = "auto") -> ULiRAResult:
    """U-LiRA (Hayes et al. 2024): per-example likelihood-ratio attack telling unlearned from retrained.

    For each example ``j``, a Gaussian is fitted to its signal under the "in" shadows (trained on it, then
    unlearned with the method under audit) and one under the "out" shadows (never trained on it:
    retrained without it): ``mu`` is the mean, ``sigma`` the population standard deviation (LiRA's
    reference code uses ``np.std``; this module floors it at 1e-6). A target model with signal ``x`` for
    ``j`` scores ``log N(x; mu_in, sigma_in) - log N(x; mu_out, sigma_out)`` (LiRA's online test).
    The attack's ROC pools every (target model, example) score, target_in labelled 1 and target_out 0.

    Variance (``variance``): ``"per_example"`` fits ``sigma`` per example; ``"global"`` uses, per side, one
    ``sigma`` pooled over all examples (root mean square of the deviations from each example's own mean —
    LiRA's ``fix_variance``; unlike its reference code, the between-example spread of the means is not
    counted and the "out" side gets its own pooled sigma). ``"auto"`` (default) takes ``"global"`` when
    ``min(K_in, K_out) < ULIRA_GLOBAL_VARIANCE_BELOW`` (64), following LiRA's recommendation for few shadow
    models (with K of a few dozen, a per-example variance is a noisy estimate and the tails of the
    likelihood ratio, which decide the TPR at low FPR, become unreliable); ``"per_example"`` otherwise.

    TPR at a requested FPR is read on the ROC polyline (see :func:`_tpr_at`); it is only meaningful when
    ``T_out * N`` is well above ``1 / fpr``.

    Args:
        target_in: ``[T_in, N]`` signal under T_in >= 1 held-out trained-then-unlearned target models.
        target_out: ``[T_out, N]`` signal under T_out >= 1 held-out retrained target models.
        shadow_in: ``[K_in, N]`` signal under K_in >= 2 trained-then-unlearned shadow models.
        shadow_out: ``[K_out, N]`` signal under K_out >= 2 retrained shadow models.
        fpr: false-positive rates in (0, 1) at which to report the TPR.
        variance: ``"auto"``, ``"global"`` or ``"per_example"``.

    Returns:
        :class:`ULiRAResult`.

    Raises:
        InvalidInputError: a non-2-D array, too few models, NaN or inf, different numbers of examples, an
            FPR outside (0, 1), an unknown ``variance``.
    """
    t_in = _as_models("target_in", target_in, min_models=1)
    t_out = _as_models("target_out", target_out, min_models=1)
    s_in = _as_models("shadow_in", shadow_in)
    s_out = _as_models("shadow_out", shadow_out)
    _same_examples([("shadow_in", s_in), ("shadow_out", s_out), ("target_in", t_in), ("target_out", t_out)])
    if variance not in ("auto", "global", "per_example"):
        raise InvalidInputError(f"variance must be 'auto', 'global' or 'per_example', got {variance!r}")
    try:
        rates = [float(f) for f in (fpr if isinstance(fpr, (list, tuple, np.ndarray)) else [fpr])]
    except (TypeError, ValueError):
        raise InvalidInputError(f"fpr must be numbers in (0, 1), got {fpr!r}") from None
    for f in rates:
        if not 0 < f < 1:
            raise InvalidInputError(f"fpr must be numbers in (0, 1), got {f!r} in {fpr!r}")
    if variance == "auto":
        small = min(s_in.shape[0], s_out.shape[0]) < ULIRA_GLOBAL_VARIANCE_BELOW
        variance = "global" if small else "per_example"
    mu_in, sd_in = _fit_gaussian(s_in, variance)
    mu_out, sd_out = _fit_gaussian(s_out, variance)

    def score(x: np.ndarray) -> np.ndarray:
        return _log_normal_pdf(x, mu_in[None, :], sd_in[None, :]) - _log_normal_pdf(x, mu_out[None, :],
                                                                                     sd_out[None, :])

    scores_in, scores_out = score(t_in), score(t_out)
    y = np.concatenate([np.ones(scores_in.size), np.zeros(scores_out.size)])
    s = np.concatenate([scores_in.reshape(-1), scores_out.reshape(-1)])
    roc_fpr, roc_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return ULiRAResult(scores_in=scores_in, scores_out=scores_out, auc=float(roc_auc_score(y, s)),
                       tpr_at={f: _tpr_at(roc_fpr, roc_tpr, f) for f in rates}, fpr=roc_fpr, tpr=roc_tpr,
                       variance=variance, shadows=(s_in.shape[0], s_out.shape[0]))
