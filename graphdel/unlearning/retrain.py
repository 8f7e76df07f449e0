"""Retrain: the gold standard every unlearning result is judged against (docs/design.md).

Update: none on the original; ``ctx.retrain()`` trains a fresh model on Dr with the original recipe (the
training module provides it). No hyperparameters here: the recipe is the original training's; only its
seed may be changed, to see how far apart two retrainings of one request land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from graphdel.errors import ConfigError
from graphdel.training.loop import TrainResult
from graphdel.unlearning.base import UnlearningContext, UnlearningMethod, register_method


@dataclass
class RetrainConfig:
    """Retrain has no hyperparameters of its own (the original training recipe is used).

    Attributes:
        seed: the training seed (initial weights, batch order); ``None``: the original recipe's. A Retrain
            of the same request at another seed is as exact an unlearning as the first: how far apart the
            two land is the spread every gap to Retrain is read against.
    """

    seed: int | None = None


@register_method
class Retrain(UnlearningMethod):
    __doc__ = __doc__
    name = "retrain"
    summary = "Train a fresh model on Dr with the original recipe (gold standard, expensive)."
    citation = "Exact unlearning by retraining from scratch (the reference of every unlearning benchmark)"
    Config = RetrainConfig

    def execute(self, original: nn.Module, ctx: UnlearningContext, cfg: Any):
        """Train a fresh model on Dr with ``ctx.retrain()`` (``ctx.retrain(seed=cfg.seed)`` when a seed is
        set) and return it (eval mode) with its log and selection. When ``ctx.retrain`` returns a
        :class:`~graphdel.training.loop.TrainResult`, the log holds one record per training epoch and the
        selection names the epoch early stopping kept: a gap to Retrain is read knowing which Retrain it is."""
        if ctx.retrain is None:
            raise ConfigError("method 'retrain' needs ctx.retrain (a function that trains a fresh model on Dr "
                              "with the original recipe); none was given")
        trained = ctx.retrain() if cfg.seed is None else ctx.retrain(seed=cfg.seed)
        model = trained.model if isinstance(trained, TrainResult) else trained
        if model is original:
            raise ConfigError("ctx.retrain() returned the original model object; it must train a new one")
        model.eval()
        seed = "" if cfg.seed is None else f" at training seed {cfg.seed}"
        log: list[dict] = [{"phase": "retrain", "retain_pairs": len(ctx.retain)}]
        selected = {"rule": "retrain", "reason": f"model trained from scratch on Dr by ctx.retrain(){seed}"}
        if isinstance(trained, TrainResult):
            log += [{"phase": "retrain", **record} for record in trained.history]
            epochs = sum(1 for record in trained.history if record.get("stage") != "fusion")
            # the keys a certificate's procedure reads (procedure.selected_epoch, .epochs_run)
            selected.update(epoch=trained.best_epoch, epochs_run=epochs)
            selected["reason"] += f"; early stopping kept epoch {trained.best_epoch} of {epochs} run"
        return model, log, selected
