"""U-LiRA (Hayes et al. 2024), the per-example likelihood-ratio attack of the privacy audit: shadow models
that trained on each deleted example and unlearned it against shadows retrained without it, the attack's ROC
over held-out target models. The sources and their reading are in the module docstring of
:mod:`graphdel.evaluation.per_example`, which exports every name of this module too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from graphdel.errors import InvalidInputError
from graphdel.evaluation.signal_arrays import same_examples, signal_matrix

#: U-LiRA's ``variance="auto"`` uses one global (pooled) variance per side when either side has fewer
#: shadow models than this, per-example variances otherwise. LiRA (Carlini et al. 2022), which U-LiRA
#: adapts, advises the fixed/global variance when shadow models are few (the reference code's README: the
#: fixed-variance variants are best with its 16 models); 64 is the paper's order of magnitude for "enough"
#: shadow models per side, below which a per-example variance is a noisy estimate.
ULIRA_GLOBAL_VARIANCE_BELOW = 64

#: Floor on a fitted standard deviation (a constant shadow signal would otherwise divide by zero), as in
#: :func:`graphdel.evaluation.membership.lira_scores`.
_STD_FLOOR = 1e-6


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
    t_in = signal_matrix("target_in", target_in, min_models=1)
    t_out = signal_matrix("target_out", target_out, min_models=1)
    s_in = signal_matrix("shadow_in", shadow_in)
    s_out = signal_matrix("shadow_out", shadow_out)
    same_examples([("shadow_in", s_in), ("shadow_out", s_out), ("target_in", t_in), ("target_out", t_out)])
    if variance not in ("auto", "global", "per_example"):
        raise InvalidInputError(f"variance must be 'auto', 'global' or 'per_example', got {variance!r}")
    rates = _rates(fpr)
    if variance == "auto":
        small = min(s_in.shape[0], s_out.shape[0]) < ULIRA_GLOBAL_VARIANCE_BELOW
        variance = "global" if small else "per_example"
    fit_in, fit_out = _fit_gaussian(s_in, variance), _fit_gaussian(s_out, variance)
    scores_in = _log_likelihood_ratio(t_in, fit_in, fit_out)
    scores_out = _log_likelihood_ratio(t_out, fit_in, fit_out)
    y = np.concatenate([np.ones(scores_in.size), np.zeros(scores_out.size)])
    s = np.concatenate([scores_in.reshape(-1), scores_out.reshape(-1)])
    roc_fpr, roc_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return ULiRAResult(scores_in=scores_in, scores_out=scores_out, auc=float(roc_auc_score(y, s)),
                       tpr_at={f: _tpr_at(roc_fpr, roc_tpr, f) for f in rates}, fpr=roc_fpr, tpr=roc_tpr,
                       variance=variance, shadows=(s_in.shape[0], s_out.shape[0]))


def _rates(fpr: Sequence[float] | float) -> list[float]:
    """The requested false-positive rates as floats, each in (0, 1) (:class:`InvalidInputError` otherwise)."""
    try:
        rates = [float(f) for f in (fpr if isinstance(fpr, (list, tuple, np.ndarray)) else [fpr])]
    except (TypeError, ValueError):
        raise InvalidInputError(f"fpr must be numbers in (0, 1), got {fpr!r}") from None
    for f in rates:
        if not 0 < f < 1:
            raise InvalidInputError(f"fpr must be numbers in (0, 1), got {f!r} in {fpr!r}")
    return rates


def _log_likelihood_ratio(x: np.ndarray, fit_in: tuple[np.ndarray, np.ndarray],
                          fit_out: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``[T, N]`` scores of signals ``x [T, N]``: ``log N(x; mu_in, sd_in) - log N(x; mu_out, sd_out)`` per
    example, ``fit_in`` and ``fit_out`` the ``(mu [N], sd [N])`` of :func:`_fit_gaussian`."""
    (mu_in, sd_in), (mu_out, sd_out) = fit_in, fit_out
    return _log_normal_pdf(x, mu_in[None, :], sd_in[None, :]) - _log_normal_pdf(x, mu_out[None, :],
                                                                                 sd_out[None, :])
