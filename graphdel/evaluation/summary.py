"""Judging methods against Retrain (forget side) and the original model (retain side).

Everything is judged against **Retrain** (docs/design.md): forgetting means Df behaves as it does
under Retrain, and forgetting *more* than Retrain is a failure too (over-forgetting leaks the deletion).
Retention is judged against the **original** model on the test split: a drop is a loss, a gain is
welcome but earns no extra credit.

Metrics are read from *flat* dicts with dotted keys; a nested per-model entry of the report layout
(see :mod:`graphdel.evaluation.report`) is flattened automatically, so
``models["multidelete"]["splits"]["forget"]["pool64"]["g2t_mrr"]`` is ``"splits.forget.pool64.g2t_mrr"``.
The keys used (overridable with ``keys=``) are:

====================  ====================================  =========================================
name                  default key                           meaning
====================  ====================================  =========================================
``forget_mrr``        ``splits.forget.pool64.g2t_mrr``      pool-64 graph->text MRR on Df
``test_mrr``          ``splits.test.pool64.g2t_mrr``        pool-64 graph->text MRR on test
``df_dr_auc``         ``distinguishability.mean``           Df-vs-Dr AUC (Df = 0, Dr = 1)
``attack_auc``        ``membership.attack_auc``             membership attack AUC, Df vs test
``wall_time``         ``wall_time_s``                       wall time of the method (or of Retrain)
====================  ====================================  =========================================

**Summary score** (:func:`summary_score`). For each component ``i`` an error
``e_i = min(1, g_i / s_i)`` with

======================  ===============================================  ===========  ========
component               gap ``g_i``                                       scale s_i    weight
======================  ===============================================  ===========  ========
``forget_mrr``          ``|MRR_Df(method) - MRR_Df(Retrain)|``            0.20         0.25
``df_dr_auc``           ``|AUC(method) - AUC(Retrain)|``                  0.25         0.125
``attack_auc``          ``|AUC(method) - AUC(Retrain)|``                  0.25         0.125
``test_retention``      ``max(0, MRR_test(original) - MRR_test(method))`` 0.10         0.5
======================  ===============================================  ===========  ========

and ``score = 1 - sum_i w_i e_i / sum_i w_i`` over the components whose metrics are present in all the
dicts involved (missing ones are reported with ``error = None`` and their weight is dropped). So the
score lies in [0, 1]; 1 means indistinguishable from Retrain on Df and no test loss; the forget side
(symmetric: over-forgetting costs as much as under-forgetting) and the retain side weigh half each. The
scale is the gap at which a component counts as a complete failure (e.g. a test drop of 0.10 MRR, or a
Df MRR 0.20 away from Retrain's). If no component can be computed the score is ``None``.

**Targets** (:func:`thresholds`): forget pool-64 g2t MRR within 0.05 of Retrain (either side), test
pool-64 g2t MRR at most 0.02 below the original, wall time at most 10% of Retrain's.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

__all__ = ["DEFAULT_KEYS", "DEFAULT_WEIGHTS", "DEFAULT_SCALES", "flatten", "forget_gap", "retention_change",
           "method_score", "summary_score", "thresholds", "pool_key", "summary_keys", "judgement"]

DEFAULT_KEYS: dict[str, str] = {
    "forget_mrr": "splits.forget.pool64.g2t_mrr",
    "test_mrr": "splits.test.pool64.g2t_mrr",
    "df_dr_auc": "distinguishability.mean",
    "attack_auc": "membership.attack_auc",
    "wall_time": "wall_time_s",
}
DEFAULT_WEIGHTS: dict[str, float] = {"forget_mrr": 0.25, "df_dr_auc": 0.125, "attack_auc": 0.125,
                                     "test_retention": 0.5}
DEFAULT_SCALES: dict[str, float] = {"forget_mrr": 0.20, "df_dr_auc": 0.25, "attack_auc": 0.25,
                                    "test_retention": 0.10}
_EPS = 1e-9  # comparisons of differences of floats: 0.70 - 0.65 must pass a 0.05 limit


def flatten(d: Mapping[str, Any], sep: str = ".", _prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (already flat dicts are returned unchanged, as a copy)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{_prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, sep, key + sep))
        else:
            out[key] = v
    return out


def _num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:  # numpy / torch scalars
            v = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    v = float(v)
    return v if math.isfinite(v) else None


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], keys: list[str] | None) -> dict[str, float]:
    fa, fb = flatten(a), flatten(b)
    names = keys if keys is not None else [k for k in fa if k in fb]
    out = {}
    for k in names:
        x, y = _num(fa, k), _num(fb, k)
        if x is not None and y is not None:
            out[k] = x - y
    return out


def forget_gap(method_metrics: Mapping[str, Any], retrain_metrics: Mapping[str, Any],
               keys: list[str] | None = None) -> dict[str, float]:
    """``method - retrain`` for every numeric key present in both (or only ``keys``).

    Positive on a Df score means the method remembers Df more than Retrain; negative means it forgot
    more than Retrain (over-forgetting). Both are failures once large.
    """
    return _diff(method_metrics, retrain_metrics, keys)


def retention_change(method_metrics: Mapping[str, Any], original_metrics: Mapping[str, Any],
                     keys: list[str] | None = None) -> dict[str, float]:
    """``method - original`` for every numeric key present in both (or only ``keys``); negative = loss."""
    return _diff(method_metrics, original_metrics, keys)


def method_score(method: Mapping[str, Any], retrain: Mapping[str, Any], original: Mapping[str, Any], *,
                 weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None,
                 keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Summary score of one method (definition in the module docstring).

    Returns:
        ``{"score": float | None, "components": {name: {"gap", "error", "weight", "scale"}}}``.
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    s = {**DEFAULT_SCALES, **(scales or {})}
    k = {**DEFAULT_KEYS, **(keys or {})}
    fm, fr, fo = flatten(method), flatten(retrain), flatten(original)
    gaps: dict[str, float | None] = {}
    for name in ("forget_mrr", "df_dr_auc", "attack_auc"):
        m, r = _num(fm, k[name]), _num(fr, k[name])
        gaps[name] = None if m is None or r is None else abs(m - r)
    m, o = _num(fm, k["test_mrr"]), _num(fo, k["test_mrr"])
    gaps["test_retention"] = None if m is None or o is None else max(0.0, o - m)
    components, num, den = {}, 0.0, 0.0
    for name, gap in gaps.items():
        err = None if gap is None else min(1.0, gap / s[name])
        components[name] = {"gap": gap, "error": err, "weight": float(w[name]), "scale": float(s[name])}
        if err is not None and w[name] > 0:
            num += w[name] * err
            den += w[name]
    return {"score": (1.0 - num / den) if den > 0 else None, "components": components}


def summary_score(methods: Mapping[str, Mapping[str, Any]], retrain: Mapping[str, Any],
                  original: Mapping[str, Any], *, weights: Mapping[str, float] | None = None,
                  scales: Mapping[str, float] | None = None, keys: Mapping[str, str] | None = None
                  ) -> dict[str, Any]:
    """Score and rank several methods (definition in the module docstring).

    Returns:
        ``{"methods": {name: {"score", "rank", "components"}}, "ranking": [names, best first],
        "weights": {...}, "scales": {...}}``. Methods without a score rank last (rank ``None``); equal
        scores keep the input order.
    """
    scored = {name: method_score(m, retrain, original, weights=weights, scales=scales, keys=keys)
              for name, m in methods.items()}
    order = sorted((n for n in scored if scored[n]["score"] is not None), key=lambda n: -scored[n]["score"])
    for i, name in enumerate(order, start=1):
        scored[name]["rank"] = i
    for name in scored:
        scored[name].setdefault("rank", None)
    ranking = order + [n for n in scored if scored[n]["rank"] is None]
    return {"methods": scored, "ranking": ranking,
            "weights": {**DEFAULT_WEIGHTS, **(weights or {})}, "scales": {**DEFAULT_SCALES, **(scales or {})}}


def thresholds(method: Mapping[str, Any], retrain: Mapping[str, Any], original: Mapping[str, Any], *,
               forget_tol: float = 0.05, test_tol: float = 0.02, max_time_ratio: float = 0.10,
               keys: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The three targets of an unlearning run.

    Returns ``{name: {"value", "limit", "passed", "rule"}}`` (``value``/``passed`` are ``None`` when a
    metric is missing):

    * ``forget_mrr_vs_retrain``: value = Df pool-64 g2t MRR of the method minus Retrain's (signed);
      passed when ``|value| <= forget_tol`` (over-forgetting fails too).
    * ``test_mrr_drop``: value = original test pool-64 g2t MRR minus the method's (positive = loss);
      passed when ``value <= test_tol`` (a gain always passes).
    * ``time_vs_retrain``: value = method wall time / Retrain wall time; passed when ``<= max_time_ratio``.
    """
    k = {**DEFAULT_KEYS, **(keys or {})}
    fm, fr, fo = flatten(method), flatten(retrain), flatten(original)

    def entry(value: float | None, limit: float, ok, rule: str) -> dict[str, Any]:
        passed = None if value is None else bool(ok(value))
        return {"value": value, "limit": limit, "passed": passed, "rule": rule}

    m, r = _num(fm, k["forget_mrr"]), _num(fr, k["forget_mrr"])
    forget = None if m is None or r is None else m - r
    m, o = _num(fm, k["test_mrr"]), _num(fo, k["test_mrr"])
    drop = None if m is None or o is None else o - m
    tm, tr = _num(fm, k["wall_time"]), _num(fr, k["wall_time"])
    ratio = None if tm is None or tr is None or tr <= 0 else tm / tr
    return {
        "forget_mrr_vs_retrain": entry(forget, forget_tol, lambda v: abs(v) <= forget_tol + _EPS,
                                       "|Df MRR - Retrain Df MRR| <= limit"),
        "test_mrr_drop": entry(drop, test_tol, lambda v: v <= test_tol + _EPS,
                               "original test MRR - test MRR <= limit"),
        "time_vs_retrain": entry(ratio, max_time_ratio, lambda v: v <= max_time_ratio + _EPS,
                                 "wall time / Retrain wall time <= limit"),
    }


def pool_key(models: Mapping[str, Any]) -> str:
    """The pool-k key the judgement reads in per-model entries (``pool64`` when any split has it, else the
    first ``pool<k>`` found, else ``pool64``)."""
    for entry in models.values():
        for split in (entry.get("splits") or {}).values():
            if isinstance(split, Mapping):
                keys = [k for k in split if isinstance(k, str) and re.fullmatch(r"pool\d+", k)]
                if keys:
                    return "pool64" if "pool64" in keys else sorted(keys)[0]
    return "pool64"


def summary_keys(pool: str) -> dict[str, str]:
    """:data:`DEFAULT_KEYS` with the Df and test MRR read at pool key ``pool``."""
    return {**DEFAULT_KEYS, "forget_mrr": f"splits.forget.{pool}.g2t_mrr",
            "test_mrr": f"splits.test.{pool}.g2t_mrr"}


def judgement(models: Mapping[str, Mapping[str, Any]], original: str | None, reference: str | None,
              methods: Sequence[str], keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The methods judged against Retrain (``reference``) and the original, the one place the evaluation
    suite and the report get it from: ``{"scores": summary_score(...), "thresholds": {method:
    thresholds(...)}}`` over the per-model entries ``models``, as far as the roles allow (nothing without a
    reference and an original; no scores without a method). ``keys``: default :func:`summary_keys` of the
    entries' :func:`pool_key`."""
    if reference is None or original is None:
        return {}
    keys = dict(keys) if keys is not None else summary_keys(pool_key(models))
    out: dict[str, Any] = {}
    if methods:
        out["scores"] = summary_score({m: models[m] for m in methods}, models[reference], models[original],
                                      keys=keys)
    out["thresholds"] = {m: thresholds(models[m], models[reference], models[original], keys=keys)
                         for m in methods}
    return out
