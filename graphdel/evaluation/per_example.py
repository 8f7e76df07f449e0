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

The estimators are cut along what each computes, every name importable from here: the ε rules in
:mod:`graphdel.evaluation.epsilon_rules`, U-LiRA in :mod:`graphdel.evaluation.ulira`, the checks of the
signal arrays in :mod:`graphdel.evaluation.signal_arrays`; this module holds the constants, the ε estimate,
the forgetting score and the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from graphdel.errors import InvalidInputError
from graphdel.evaluation.epsilon_rules import clopper_pearson_upper, rule_epsilons
from graphdel.evaluation.signal_arrays import same_examples, signal_matrix
from graphdel.evaluation.ulira import ULIRA_GLOBAL_VARIANCE_BELOW, ULiRAResult, ulira

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


# ----------------------------------------------------------------------------------------------------
# Input checks (one-line messages that name the argument)


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
    u = signal_matrix("unlearned", unlearned)
    r = signal_matrix("retrained", retrained)
    same_examples([("unlearned", u), ("retrained", r)])
    _check_params(delta, alpha, cap, peaky_ratio)
    if not isinstance(intervals, (bool, np.bool_)):
        raise InvalidInputError(f"intervals must be True or False, got {intervals!r}")
    eps = rule_epsilons(u, r, float(delta), None if alpha is None else float(alpha), float(cap), peaky_ratio,
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
    r = signal_matrix("retrained", retrained, min_models=4)
    if seed is not None:
        r = r[np.random.default_rng(seed).permutation(r.shape[0])]
    half = r.shape[0] // 2
    return per_example_epsilon(r[:half], r[half:], delta=delta, alpha=alpha, cap=cap, peaky_ratio=peaky_ratio,
                               intervals=intervals)
