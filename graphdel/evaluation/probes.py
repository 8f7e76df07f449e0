"""Unimodal knowledge probes: does a model still *know* the molecules and sentences of Df?

Deleting a pair must not erase the molecule or the sentence (docs/design.md, L_UKR). A linear probe
trained on frozen embeddings to predict simple chemistry (logP, TPSA, aromaticity) measures what an
embedding still encodes; run it on Df and on test embeddings of each model and compare with the
original. :func:`embedding_drift` measures how far each embedding moved.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from graphdel.data.molecules import molecular_properties, molecule_item_properties

__all__ = ["molecular_properties", "molecule_item_properties", "linear_probe", "embedding_drift", "RIDGE_ALPHAS"]

#: Fixed grid of Ridge penalties searched by :func:`linear_probe` (leave-one-out CV, RidgeCV's default).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))



def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a)


def linear_probe(train_emb: Any, train_y: Any, eval_sets: Mapping[str, tuple[Any, Any]], *,
                 kind: str = "regression", seed: int = 0) -> dict[str, Any]:
    """Fit a linear probe on ``train_emb -> train_y`` and score it on each evaluation set.

    * ``kind="regression"``: standardised features + :class:`~sklearn.linear_model.RidgeCV` over
      :data:`RIDGE_ALPHAS` (efficient leave-one-out CV); reports R² and the mean absolute error (in the
      target's units) per set. R² is relative to the set's own spread, so on a narrow set (one chemical
      series) it is low or negative even for a good probe; the MAE stays comparable across sets.
    * ``kind="classification"``: standardised features + logistic regression (C = 1, lbfgs); reports
      accuracy and ROC-AUC per set (binary labels). A set with a single class gets ``roc_auc = None`` and
      a ``reason``.

    A set with fewer than 2 items (regression) or a constant target gets ``r2 = None`` and a ``reason``.

    Args:
        train_emb: ``[n, d]`` embeddings (tensor or array) the probe is fitted on.
        train_y: ``[n]`` targets (float for regression, 0/1 or bool for classification).
        eval_sets: ``{name: (emb [m, d], y [m])}``.
        kind: ``"regression"`` or ``"classification"``.
        seed: random state of the solver (deterministic either way).

    Returns:
        regression: ``{"kind", "alpha", "train_r2", "sets": {name: {"n", "r2", "mae", "reason"?}}}``;
        classification: ``{"kind", "train_accuracy", "sets": {name: {"n", "accuracy", "roc_auc",
        "reason"?}}}``.
    """
    x = _to_numpy(train_emb).astype(np.float64)
    y = _to_numpy(train_y).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"train_emb {x.shape} and train_y {y.shape} do not match")
    if kind == "regression":
        return _regression_probe(x, y, eval_sets)
    if kind == "classification":
        return _classification_probe(x, y, eval_sets, seed)
    raise ValueError(f"kind must be 'regression' or 'classification', got {kind!r}")


def _regression_probe(x: np.ndarray, y: np.ndarray, eval_sets: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """:func:`linear_probe` with ``kind="regression"`` on ``x [n, d]`` float64 and ``y [n]``."""
    y = y.astype(np.float64)
    if x.shape[0] < 3:
        raise ValueError(f"regression probe needs >= 3 training items, got {x.shape[0]}")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x, y)
    out: dict[str, Any] = {"kind": "regression", "alpha": float(model[-1].alpha_),
                           "train_r2": float(r2_score(y, model.predict(x))), "sets": {}}
    for name, (emb, ye) in eval_sets.items():
        e, ye = _to_numpy(emb).astype(np.float64), _to_numpy(ye).reshape(-1).astype(np.float64)
        entry: dict[str, Any] = {"n": int(ye.size), "r2": None, "mae": None}
        if ye.size:
            entry["mae"] = float(np.mean(np.abs(model.predict(e) - ye)))
        if ye.size < 2:
            entry["reason"] = "fewer than 2 items"
        elif np.ptp(ye) == 0:
            entry["reason"] = "constant target"
        else:
            entry["r2"] = float(r2_score(ye, model.predict(e)))
        out["sets"][str(name)] = entry
    return out


def _classification_probe(x: np.ndarray, y: np.ndarray, eval_sets: Mapping[str, tuple[Any, Any]], seed: int
                          ) -> dict[str, Any]:
    """:func:`linear_probe` with ``kind="classification"`` on ``x [n, d]`` float64 and ``y [n]``."""
    y = y.astype(int)
    if np.unique(y).size < 2:
        raise ValueError("classification probe needs both classes in the training set")
    if np.unique(y).size > 2:
        raise ValueError("classification probe expects binary labels")
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    model = make_pipeline(StandardScaler(), clf).fit(x, y)
    out = {"kind": "classification", "train_accuracy": float(accuracy_score(y, model.predict(x))), "sets": {}}
    for name, (emb, ye) in eval_sets.items():
        e, ye = _to_numpy(emb).astype(np.float64), _to_numpy(ye).reshape(-1).astype(int)
        entry = {"n": int(ye.size), "accuracy": None, "roc_auc": None}
        if ye.size == 0:
            entry["reason"] = "empty set"
        else:
            entry["accuracy"] = float(accuracy_score(ye, model.predict(e)))
            if np.unique(ye).size < 2:
                entry["reason"] = "single class: ROC-AUC undefined"
            else:
                entry["roc_auc"] = float(roc_auc_score(ye, model.predict_proba(e)[:, 1]))
        out["sets"][str(name)] = entry
    return out


def embedding_drift(a: Tensor, b: Tensor) -> dict[str, float]:
    """Cosine similarity between matching rows of two embedding sets (e.g. original vs unlearned).

    Returns:
        ``{"mean_cos", "min_cos"}`` over the ``N`` rows (1.0 = unchanged).
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"embedding_drift needs two [N, d] tensors of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.size(0) == 0:
        raise ValueError("embedding_drift needs at least one row")
    cos = torch.nn.functional.cosine_similarity(a.double(), b.to(a.device).double(), dim=1)
    return {"mean_cos": float(cos.mean()), "min_cos": float(cos.min())}
