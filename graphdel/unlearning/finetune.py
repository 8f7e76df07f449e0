"""FT (fine-tuning): keep training on Dr only and let catastrophic forgetting erase Df.

Golatkar, Achille & Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep
Networks", CVPR 2020 (the "Fine-tune" baseline); Warnecke et al. 2023 and most unlearning benchmarks
use it.

Update: ``theta <- theta - lr * grad L_train(Dr batch)`` with the model's own ``training_loss``; Df is
never used for gradients. Defaults: Adam lr 1e-4, 2 epochs over Dr, batch 32, gradient norm clipped at 1,
``selection="last"`` (FT has no forgetting pressure to calibrate; the scores are still logged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, register_method


@dataclass
class FinetuneConfig(GradientConfig):
    """FT hyperparameters; ``epochs`` count passes over Dr."""

    lr: float = 1e-4
    epochs: int = 2
    selection: Literal["calibrated", "last"] = "last"


@register_method
class Finetune(GradientMethod):
    __doc__ = __doc__
    name = "ft"
    aliases = ("finetune",)
    summary = "Fine-tune on Dr with the training loss; forgetting comes from catastrophic forgetting only."
    citation = "Golatkar et al., Eternal Sunshine of the Spotless Net, CVPR 2020 (fine-tune baseline)"
    Config = FinetuneConfig

    def train_epoch(self, trainer: Trainer, cfg: Any) -> None:
        """One pass over Dr: a step on the model's training loss per batch (Df is never used)."""
        for dr in trainer.retain_batches():
            if not trainer.step(trainer.student.training_loss(dr), phase="retain"):
                return
