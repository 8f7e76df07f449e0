"""Membership inference against the unlearned model: does Df still look trained on?

Two attacks, both pure statistics over per-example *signals* computed by the caller (the model side is
not here). A signal is any per-pair number or vector where larger means "looks more like training data",
e.g. ``[cosine(z_x, z_t), retrieval rank reciprocal, -loss, matching logit]``.

(a) **Signal attack** (:func:`signal_attack`, a population attack in the spirit of MultiDelete's MIA):
a classifier is trained to separate *members* (a sample of Dr, which the model trained on) from
*non-members* (validation/calibration pairs it never saw), and is then applied to the forget set Df.
Its cross-validated AUC on the training populations says how strong the attack is at all (an attack
with AUC 0.5 there proves nothing). On Df it reports ``member_rate`` and per-pair scores; comparing those
scores with the scores of *held-out* non-members (test pairs, not used to train the attack) gives
:func:`attack_auc`, with members (Df) labelled 1:

* ≈ Retrain's value (≈ 0.5 when Df is drawn like test): Df looks like unseen data — forgotten;
* far above: Df still looks trained on — ``"remembers"``;
* far below: Df looks *less* familiar than data never seen — over-forgetting, which leaks the deletion
  just as much (Streisand effect) — ``"over-forgotten"``. See :func:`leak_flag`.

(b) **LiRA** (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022):
per-example Gaussian likelihood ratio between the signal distributions of shadow models that trained on
the example ("in") and that did not ("out"). The shadow training is done by the caller; here are the
statistics (:func:`lira_scores`, :func:`lira_auc`). Confidences in (0, 1) should first be mapped with
:func:`logit_scale`, which makes them close to Gaussian.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = ["signal_attack", "attack_auc", "attack_roc", "leak_flag", "lira_scores", "lira_auc", "logit_scale"]


def _as_features(name: str, a: Any) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [n] or [n, k], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _make_classifier(kind: str, seed: int):
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if kind == "hgb":
        return HistGradientBoostingClassifier(random_state=seed)
    raise ValueError(f"unknown attack classifier {kind!r}; use 'logistic' or 'hgb'")


def signal_attack(member_signals: np.ndarray, nonmember_signals: np.ndarray, target_signals: np.ndarray, *,
                  reference_signals: np.ndarray | None = None, seed: int = 0, classifier: str = "logistic",
                  cv_folds: int = 5, threshold: float = 0.5) -> dict[str, Any]:
    """Train a member/non-member classifier on signals and apply it to the target set (Df).

    The larger of the two training populations is subsampled (``numpy.random.default_rng(seed)``, without
    replacement) to the size of the smaller, so the classifier sees balanced classes. ``classifier`` is
    ``"logistic"`` (standardised features + logistic regression, default) or ``"hgb"``
    (histogram gradient boosting).

    Args:
        member_signals: ``[M, k]`` (or ``[M]``) signals of pairs the model trained on (a Dr sample).
        nonmember_signals: ``[N, k]`` signals of pairs it never saw (validation / calibration).
        target_signals: ``[T, k]`` signals of the forget set Df.
        reference_signals: optional ``[R, k]`` signals of *held-out* non-members (test pairs), not used
            for training; when given, the result also holds ``reference_scores`` and ``attack_auc``.
        seed: seed of the subsampling and of the cross-validation folds.
        classifier: ``"logistic"`` or ``"hgb"``.
        cv_folds: folds of the stratified cross-validation (reduced to the class size if smaller).
        threshold: a target is called a member when its predicted member probability is ``>= threshold``.

    Returns:
        ``{"cv_auc", "cv_auc_std", "n_per_class", "classifier", "member_rate", "target_scores" [T]}`` plus
        ``"reference_scores" [R]`` and ``"attack_auc"`` when ``reference_signals`` is given. Scores are the
        predicted probability of being a member.
    """
    mem = _as_features("member_signals", member_signals)
    non = _as_features("nonmember_signals", nonmember_signals)
    tgt = _as_features("target_signals", target_signals)
    if not (mem.shape[1] == non.shape[1] == tgt.shape[1]):
        raise ValueError(f"signal widths differ: members {mem.shape[1]}, non-members {non.shape[1]}, "
                         f"targets {tgt.shape[1]}")
    n = min(len(mem), len(non))
    if n < 2:
        raise ValueError(f"signal_attack needs >= 2 members and >= 2 non-members, got {len(mem)} and "
                         f"{len(non)}")
    x, y = _balanced(mem, non, n, seed)
    cv, model = _fit_attack(x, y, n, classifier=classifier, seed=seed, cv_folds=cv_folds)
    target_scores = model.predict_proba(tgt)[:, 1] if len(tgt) else np.zeros(0)
    out: dict[str, Any] = {
        "cv_auc": float(np.mean(cv)),
        "cv_auc_std": float(np.std(cv)),
        "n_per_class": int(n),
        "classifier": classifier,
        "member_rate": float(np.mean(target_scores >= threshold)) if len(tgt) else float("nan"),
        "target_scores": target_scores,
    }
    if reference_signals is not None:
        ref = _as_features("reference_signals", reference_signals)
        if ref.shape[1] != mem.shape[1]:
            raise ValueError(f"reference_signals have width {ref.shape[1]}, members {mem.shape[1]}")
        out["reference_scores"] = model.predict_proba(ref)[:, 1]
        out["attack_auc"] = attack_auc(target_scores, out["reference_scores"])
    return out


def _balanced(mem: np.ndarray, non: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x [2n, k], y [2n])``: ``n`` members (label 1) then ``n`` non-members (label 0) of ``mem [M, k]`` and
    ``non [N, k]``, the larger population subsampled without replacement (``numpy.random.default_rng(seed)``,
    rows kept in their order)."""
    rng = np.random.default_rng(seed)
    if len(mem) > n:
        mem = mem[np.sort(rng.choice(len(mem), n, replace=False))]
    if len(non) > n:
        non = non[np.sort(rng.choice(len(non), n, replace=False))]
    x = np.concatenate([mem, non])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    return x, y


def _fit_attack(x: np.ndarray, y: np.ndarray, n: int, *, classifier: str, seed: int, cv_folds: int):
    """``(cv [folds], model)``: the stratified cross-validated ROC-AUCs of the attack classifier on
    ``x [2n, k]``, ``y [2n]``, and the classifier fitted on all of it."""
    folds = StratifiedKFold(n_splits=min(cv_folds, n), shuffle=True, random_state=seed)
    # On small populations OpenMP thread start-up dominates gradient boosting (~10x slower); one thread.
    with threadpool_limits(limits=1 if 2 * n < 20000 else None, user_api="openmp"):
        cv = cross_val_score(_make_classifier(classifier, seed), x, y, cv=folds, scoring="roc_auc")
        model = _make_classifier(classifier, seed).fit(x, y)
    return cv, model


def attack_auc(target_scores: np.ndarray, reference_nonmember_scores: np.ndarray) -> float:
    """ROC-AUC of the attack's scores on Df (label 1) against held-out non-members (label 0).

    0.5: Df indistinguishable from unseen data; > 0.5: Df still looks like training data; < 0.5: Df looks
    less familiar than unseen data (over-forgetting). Judge it with :func:`leak_flag` against Retrain.
    """
    t = np.asarray(target_scores, dtype=np.float64).reshape(-1)
    r = np.asarray(reference_nonmember_scores, dtype=np.float64).reshape(-1)
    if t.size == 0 or r.size == 0:
        raise ValueError(f"attack_auc needs scores on both sides, got {t.size} targets and {r.size} "
                         "references")
    y = np.concatenate([np.ones(t.size), np.zeros(r.size)])
    return float(roc_auc_score(y, np.concatenate([t, r])))


def attack_roc(target_scores: np.ndarray, reference_nonmember_scores: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(fpr, tpr, auc)`` of the same comparison as :func:`attack_auc`, for ROC plots."""
    t = np.asarray(target_scores, dtype=np.float64).reshape(-1)
    r = np.asarray(reference_nonmember_scores, dtype=np.float64).reshape(-1)
    y = np.concatenate([np.ones(t.size), np.zeros(r.size)])
    s = np.concatenate([t, r])
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, float(roc_auc_score(y, s))


def leak_flag(auc: float, tol: float = 0.1, *, reference_auc: float | None = None) -> str:
    """Classify an attack AUC: ``"remembers"``, ``"over-forgotten"`` or ``"ok"``.

    The baseline is Retrain's attack AUC when ``reference_auc`` is given (the value an honest deletion
    should reproduce), else 0.5 (Df indistinguishable from unseen data). ``auc > baseline + tol`` is
    ``"remembers"``, ``auc < baseline - tol`` is ``"over-forgotten"``, anything in between ``"ok"``
    (boundaries count as ok).
    """
    if auc is None or not np.isfinite(auc):
        raise ValueError(f"leak_flag needs a finite AUC, got {auc!r}")
    base = 0.5 if reference_auc is None else float(reference_auc)
    if auc > base + tol:
        return "remembers"
    if auc < base - tol:
        return "over-forgotten"
    return "ok"


def logit_scale(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]`` (LiRA's confidence scaling)."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(q) - np.log1p(-q)


def _pooled_std(values: np.ndarray, means: np.ndarray) -> float:
    resid = values - means[None, :]
    resid = resid[np.isfinite(resid)]
    return float(np.sqrt(np.mean(resid ** 2))) if resid.size else float("nan")


def lira_scores(target_signal: np.ndarray, shadow_in: np.ndarray, shadow_out: np.ndarray, *,
                mode: str = "auto", min_in: int = 2, fix_variance: bool = False, eps: float = 1e-6
                ) -> np.ndarray:
    """Per-example LiRA membership scores (higher = more likely a member).

    For example ``t`` with target-model signal ``x_t``, the shadow models that trained on it give the
    "in" values (``shadow_in[:, t]``, NaN for models that did not) and the others the "out" values
    (``shadow_out[:, t]``, NaN for models that did). Each side is fitted with a Gaussian
    ``N(mu, sigma^2)`` (mean and population std of the non-NaN values; ``fix_variance=True`` uses one
    std pooled over all examples instead, which is more stable with few shadow models; stds are floored
    at ``eps``).

    * **online** (enough "in" models): ``score = log N(x; mu_in, s_in) - log N(x; mu_out, s_out)``.
    * **offline** (few or no "in" models): one-sided test against the "out" distribution only,
      ``score = -log P_out(X >= x) = -log sf((x - mu_out) / s_out)``: large when ``x`` is unusually high
      for a model that never saw the example.

    ``mode="auto"`` picks online when *every* example has at least ``min_in`` "in" values, else offline
    for all (the two scales are not comparable, so they are never mixed). ``mode`` may also be forced to
    ``"online"`` or ``"offline"``.

    Args:
        target_signal: ``[T]`` signal of each example under the model being attacked (e.g. logit-scaled
            confidence; larger = more member-like).
        shadow_in: ``[S, T]`` shadow signals, NaN where shadow ``s`` did not train on example ``t``.
        shadow_out: ``[S, T]`` shadow signals, NaN where shadow ``s`` did train on example ``t``.

    Returns:
        ``[T]`` float64 scores.
    """
    x, s_in, s_out = _lira_inputs(target_signal, shadow_in, shadow_out)
    if mode not in ("auto", "online", "offline"):
        raise ValueError(f"mode must be 'auto', 'online' or 'offline', got {mode!r}")
    n_in = np.sum(np.isfinite(s_in), axis=0)
    n_out = np.sum(np.isfinite(s_out), axis=0)
    need = 1 if fix_variance else 2
    if (n_out < need).any():
        bad = int(np.argmax(n_out < need))
        raise ValueError(f"example {bad} has {int(n_out[bad])} 'out' shadow values; need >= {need}")
    if mode == "auto":
        mode = "online" if (n_in >= max(min_in, need)).all() else "offline"
    mu_out, sd_out = _gaussian_fit(s_out, x.size, fix_variance, eps)
    if mode == "offline":
        return -norm.logsf((x - mu_out) / sd_out)
    if (n_in < need).any():
        bad = int(np.argmax(n_in < need))
        raise ValueError(f"online LiRA: example {bad} has {int(n_in[bad])} 'in' shadow values; "
                         f"need >= {need}")
    mu_in, sd_in = _gaussian_fit(s_in, x.size, fix_variance, eps)
    return norm.logpdf(x, mu_in, sd_in) - norm.logpdf(x, mu_out, sd_out)


def _lira_inputs(target_signal, shadow_in, shadow_out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x [T], s_in [S, T], s_out [S', T])`` float64 (a 1-D shadow array is one shadow), after checking that
    the shadow arrays have ``T`` columns and the target signal is finite."""
    x = np.asarray(target_signal, dtype=np.float64).reshape(-1)
    s_in = np.asarray(shadow_in, dtype=np.float64)
    s_out = np.asarray(shadow_out, dtype=np.float64)
    if s_in.ndim == 1:
        s_in = s_in[None, :]
    if s_out.ndim == 1:
        s_out = s_out[None, :]
    if s_in.shape[1] != x.size or s_out.shape[1] != x.size:
        raise ValueError(f"shadow arrays must be [S, {x.size}], got {s_in.shape} and {s_out.shape}")
    if not np.isfinite(x).all():
        raise ValueError("target_signal contains NaN or inf")
    return x, s_in, s_out


def _gaussian_fit(shadow: np.ndarray, size: int, fix_variance: bool, eps: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [T], sd [T])`` of one side's shadow signals ``[S, T]`` (NaN: not of this side): the mean and
    population std of each column's values, or with ``fix_variance`` one std pooled over all columns
    (:func:`_pooled_std`); stds floored at ``eps``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nanmean(shadow, axis=0)
        sd = (np.full(size, _pooled_std(shadow, mu)) if fix_variance else np.nanstd(shadow, axis=0))
    return mu, np.maximum(sd, eps)


def lira_auc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """ROC-AUC of LiRA scores with members (e.g. Df, or Dr for a sanity check) labelled 1."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(is_member).astype(bool).reshape(-1)
    if s.size != y.size:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if y.all() or not y.any():
        raise ValueError("lira_auc needs both members and non-members")
    return float(roc_auc_score(y, s))
