"""NegGrad: gradient ascent on the forget set's training loss.

Golatkar, Achille & Soatto, CVPR 2020 (as a baseline); Thudi et al., "Unrolling SGD", EuroS&P 2022;
Kurmanji et al. 2023 name it NegGrad.

Update: ``theta <- theta + lr * grad L_train(Df batch)`` (descent on ``-training_loss``). Ascent is
unbounded, so a divergence guard stops the run (i) when the Df batch loss exceeds ``loss_bound``
(default ``None`` = ``2 * ln(batch_size)``, twice the chance level of an in-batch InfoNCE over the batch;
set ``loss_bound`` explicitly for models whose ``training_loss`` adds other terms), or (ii) on a
non-finite loss/gradient, in which case the last evaluated checkpoint is kept instead of raising.
Gradients are clipped (norm 1). Defaults: Adam lr 1e-5, up to 5 epochs over Df, batch 32, calibrated
stopping/selection like MultiDelete.

A Df batch of fewer than 2 distinct items (a one-pair request, an epoch's last lone pair) has no in-batch
negative: its InfoNCE is constant. Its loss is then ranked against a Dr sample of ``batch_size`` pairs as
well (:func:`~graphdel.unlearning.losses.forget_loss`), the contrast a full batch would give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, check, register_method
from graphdel.unlearning.losses import forget_loss


@dataclass
class NegGradConfig(GradientConfig):
    """NegGrad hyperparameters.

    Attributes:
        loss_bound: stop when the Df training loss exceeds this (``None``: ``2 ln(batch_size)``;
            ``inf`` disables the bound, the non-finite guard stays).
    """

    lr: float = 1e-5
    epochs: int = 5
    loss_bound: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.loss_bound is None or self.loss_bound > 0, f"loss_bound must be > 0, got {self.loss_bound}")


def resolved_bound(cfg: NegGradConfig) -> float:
    """The divergence bound on the Df loss: ``cfg.loss_bound``, or ``2 ln(batch_size)`` when it is None."""
    return cfg.loss_bound if cfg.loss_bound is not None else 2.0 * math.log(cfg.batch_size)


def ascent_term(trainer: Trainer, df: PairBatch, cfg: NegGradConfig, negatives: PairBatch | None = None
                ) -> tuple[Any, float] | None:
    """The Df training loss (:func:`~graphdel.unlearning.losses.forget_loss`: ``training_loss(df)``, plus the
    Df pairs' contrastive loss against ``negatives`` when given), or ``None`` (run stopped) when it exceeds
    the bound.

    ``negatives``: Dr pairs, given for a Df batch of fewer than 2 distinct items
    (:meth:`~graphdel.unlearning.base.Trainer.outside_negatives`). Why: the in-batch InfoNCE of a lone pair
    ranks it against itself only, a constant with zero gradient, so ascent on it alone would not move."""
    loss = forget_loss(trainer.student, df, negatives)
    value = float(loss.detach())
    bound = resolved_bound(cfg)
    if math.isfinite(value) and value > bound:
        trainer.stop(f"divergence guard: Df loss {value:.4g} > bound {bound:.4g} at epoch {trainer.epoch}, "
                     f"step {trainer.global_step}")
        return None
    return loss, value


@register_method
class NegGrad(GradientMethod):
    __doc__ = __doc__
    name = "neggrad"
    summary = "Gradient ascent on Df's training loss, with a divergence guard."
    citation = "Golatkar et al., CVPR 2020; Thudi et al., Unrolling SGD, EuroS&P 2022"
    Config = NegGradConfig
    on_nonfinite = "stop"

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch | None, cfg: NegGradConfig):
        """``-L_train(Df batch)``, or ``None`` once the divergence guard stopped the run. ``dr``: ``None``, or
        for a Df batch of fewer than 2 distinct items the Dr pairs its loss is ranked against."""
        out = ascent_term(trainer, df, cfg, dr)
        if out is None:
            return None
        forget_loss, value = out
        return -forget_loss, {"forget_loss": value}

    def train_epoch(self, trainer: Trainer, cfg: Any) -> None:
        """One pass over Df, an ascent step per batch. NegGrad uses Df only: no Dr batch is drawn, except the
        negatives of a Df batch of fewer than 2 distinct items (:meth:`Trainer.outside_negatives`)."""
        for df in trainer.forget_batches():
            out = self.loss(trainer, df, trainer.outside_negatives(df), cfg)
            if out is None or not trainer.step(*out, phase="ascent"):
                return
