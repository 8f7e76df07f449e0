"""The rule sweep behind the per-example ε of
:func:`graphdel.evaluation.per_example.per_example_epsilon`: every threshold and interval rule of the pooled
values of one example, its false-negative and false-positive rates (plug-in or Clopper–Pearson upper bounds)
and the best ε over the rules. The module docstring of
:mod:`graphdel.evaluation.per_example` gives the sources and the differences from the challenge's code.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta


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


#: Columns (examples) handled at once by :func:`rule_epsilons`, so that its ``[rules, examples]`` arrays stay
#: near 2 million entries whatever the number of models (with 64 models per side there are 8,256 cuts
#: pairs per example).
_RULE_CELLS = 2_000_000


def rule_epsilons(u: np.ndarray, r: np.ndarray, delta: float, alpha: float | None, cap: float,
                  peaky_ratio: float | None, intervals: bool = True) -> np.ndarray:
    """ε per column of ``u`` ``[M_u, N]`` against ``r`` ``[M_r, N]`` (validated inputs): ``[N]`` in
    ``[0, cap]``.

    Every rule is an interval of the pooled sorted values, ``(cut_i, cut_j]``, with a cut before the
    first value (``i = 0``, "from -inf") and after the last of each run of ties, so tied values are never
    split. A rule flags "unlearned" either inside the interval or outside it. With ``intervals`` every
    ``i < j`` is tried (the challenge's two-threshold family and its single thresholds); without, only the
    intervals open at one end (``i = 0`` or ``j = P``: the single thresholds in both directions).
    """
    m_u, n = u.shape
    m_r = r.shape[0]
    p = m_u + m_r
    cu, cr, valid = _pooled_counts(u, r)
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
        eps[cols] = _best_rule(cu[hi, cols] - cu[lo, cols], cr[hi, cols] - cr[lo, cols],
                               valid[lo, cols] & valid[hi, cols], m_u, m_r, fnr_of, fpr_of, delta)
    if peaky_ratio is not None:
        eps = np.where(_peaky(u, r, peaky_ratio), np.inf, eps)
    return np.clip(eps, 0.0, cap)


def _pooled_counts(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pooled values of each column sorted: ``(cu, cr, valid)``, each ``[P + 1, N]`` for ``P = M_u + M_r``.

    ``cu[t]`` / ``cr[t]`` count the unlearned / retrained values among the ``t`` smallest (``t = 0..P``);
    ``valid[t]`` says whether a cut after ``t`` values is a real threshold (it does not split a run of ties;
    ``t = 0`` and ``t = P`` always are).
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
    return cu, cr, valid


def _best_rule(u_in: np.ndarray, r_in: np.ndarray, real: np.ndarray, m_u: int, m_r: int, fnr_of: np.ndarray,
               fpr_of: np.ndarray, delta: float) -> np.ndarray:
    """ε of a block of ``C`` examples: the best rule's, ``inf`` where a rule separates the families perfectly.

    Args:
        u_in, r_in: ``[rules, C]`` unlearned / retrained values inside each rule's interval.
        real: ``[rules, C]`` whether both of the rule's cuts are real thresholds (:func:`_pooled_counts`).
        m_u, m_r: models per side.
        fnr_of, fpr_of: ``[M_u + 1]`` / ``[M_r + 1]`` the rate used for each count of errors.
        delta: δ.

    Returns:
        ``[C]`` float64 (before the peaky rule and the cap).
    """
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
    return np.where(both_zero.any(axis=(0, 1)), np.inf, part)


def _peaky(u: np.ndarray, r: np.ndarray, peaky_ratio: float) -> np.ndarray:
    """``[N]`` bool: the challenge's peaky rule (one family's range below ``peaky_ratio`` times the
    other's)."""
    range_u = u.max(axis=0) - u.min(axis=0)
    range_r = r.max(axis=0) - r.min(axis=0)
    largest = np.maximum(range_u, range_r)
    smallest = np.minimum(range_u, range_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (largest > 0) & (smallest / np.where(largest > 0, largest, 1.0) < peaky_ratio)
