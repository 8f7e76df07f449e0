"""A method's learning rate chosen by a rule a user can run: the same small search for every modality, on
calibration and validation only, its whole cost counted as the method's time.

The rule (:func:`tune`), fixed before any run it is measured on:

1. the candidates are the method's learning rate as configured (the model's recommendation, or the
   user's ``lr=``) times each of ``lr_factors`` (default 1, 0.5, 2, in that order);
2. each candidate runs the method in full, with its own stopping rule and checkpoint selection, on the
   same context and seed;
3. each run is scored on pairs no model was trained on and nothing else: ``gap``, the distance between the
   deleted pairs' score and the calibration reference's at the selected checkpoint (the selection's own
   numbers, :class:`~graphdel.unlearning.selection.CalibratedSelector`), plus ``val_weight`` times
   ``val_drop``, how far the validation score fell below the original's (a gain counts 0);
4. the candidate with the smallest ``gap + val_weight * val_drop`` is kept; of equal ones the earlier
   (by default the configured rate).

The score is the model's own selection score where it has one (a KG: filtered link-prediction MRR),
otherwise pool-k graph->text MRR, as in the selection rule. Test data and Retrain are never read. The
returned result is the kept run's model, log and selected checkpoint; its ``wall_time_s`` is the whole
search (every candidate and the validation scoring), and ``selected["tuning"]`` records every candidate
(its ``config`` is the kept run's, so a replay of the run reproduces the kept run without searching).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from graphdel.config import ConfigMixin, check
from graphdel.unlearning.config import parse_overrides
from graphdel.unlearning.context import UnlearningContext, UnlearningResult
from graphdel.unlearning.registry import get_method
from graphdel.unlearning.selection import CalibratedSelector

__all__ = ["TuneConfig", "tune"]


@dataclass
class TuneConfig(ConfigMixin):
    """Settings of :func:`tune`.

    Attributes:
        lr_factors: the candidate learning rates, as multiples of the configured one, in the order they run
            (and win ties).
        val_weight: weight of the validation drop against the calibration gap.
    """

    lr_factors: list[float] = field(default_factory=lambda: [1.0, 0.5, 2.0])
    val_weight: float = 1.0

    config_name = "tuning config"

    def __post_init__(self) -> None:
        check(len(self.lr_factors) >= 1 and all(f > 0 and math.isfinite(f) for f in self.lr_factors),
              f"lr_factors must be positive numbers, got {self.lr_factors}")
        check(self.val_weight >= 0, f"val_weight must be >= 0, got {self.val_weight}")


def tune(original: nn.Module, ctx: UnlearningContext, method: str, overrides: list[str] | dict | None = None,
         config: TuneConfig | None = None) -> UnlearningResult:
    """Run ``method`` once per candidate learning rate and keep the run the rule prefers (module docstring).

    Args:
        original: the model to unlearn from (never modified).
        ctx: the unlearning context; it needs ``calibration`` (the reference) and ``val``.
        method: a registered gradient-based method (its config has ``lr``).
        overrides: the method's settings (the model's recommendation first, then the user's).
        config: :class:`TuneConfig`.

    Returns:
        The kept run's :class:`~graphdel.unlearning.context.UnlearningResult`, with ``wall_time_s`` the
        whole search and ``selected["tuning"] = {"rule", "val_weight", "val_before", "candidates": [{lr, gap,
        val_drop, criterion, wall_time_s}], "kept": index}``.

    Raises:
        ValueError: the context lacks calibration or validation pairs, or the method has no ``lr``.
    """
    cfg = config or TuneConfig()
    if ctx.calibration is None or ctx.val is None:
        raise ValueError("tuning needs the context's calibration and val pairs (the only data it may judge on)")
    base = parse_overrides(get_method(method).Config, overrides)
    if not hasattr(base, "lr"):
        raise ValueError(f"tuning chooses a learning rate; method {method!r} has none")
    t0 = time.perf_counter()
    judge = CalibratedSelector(ctx, pool_size=base.pool_size, batch_size=base.eval_batch_size, seed=ctx.seed)
    val_before = judge.score_of(original, ctx.val)
    runs: list[tuple[UnlearningResult, dict[str, Any]]] = []
    for factor in cfg.lr_factors:
        lr = base.lr * factor
        result = get_method(method)().run(original, ctx, parse_overrides(type(base), {"lr": lr}, base=base))
        scores = result.selected.get("scores") or {}
        gap = abs(scores["forget"] - scores["reference"]) if scores else math.inf
        val_drop = max(0.0, val_before - judge.score_of(result.model, ctx.val))
        runs.append((result, {"lr": lr, "gap": gap, "val_drop": val_drop,
                              "criterion": gap + cfg.val_weight * val_drop, "wall_time_s": result.wall_time_s}))
    kept = min(range(len(runs)), key=lambda i: runs[i][1]["criterion"])  # the first of equal ones
    result = runs[kept][0]
    result.wall_time_s = time.perf_counter() - t0
    result.selected["tuning"] = {"rule": "min |Df - calibration| + val_weight * validation drop",
                               "val_weight": cfg.val_weight, "val_before": val_before,
                               "candidates": [row for _, row in runs], "kept": kept}
    return result
