"""SalUn: saliency-based unlearning (Fan, Liu, Zhang, Wei, Wong & Liu, "SalUn: Empowering Machine
Unlearning via Gradient-based Weight Saliency in Both Image Classification and Generation", ICLR 2024).

Update: first a weight-saliency mask ``m = 1(|grad_theta L_f(theta_0; Df)| >= gamma)`` from the gradient
of the forget loss (the model's ``training_loss``) accumulated over all of Df at the original weights,
with ``gamma`` the global threshold that keeps the top ``saliency_fraction`` of weights (default 0.5, the
paper's median threshold). Then RandomPair updates (:mod:`graphdel.unlearning.random_pair`) are applied
with gradients multiplied by ``m``: only salient weights move (``theta <- theta - lr * m * grad``).
Defaults: RandomPair's (Adam lr 1e-4, text_source dr, retain_weight 1, up to 5 epochs over Df, batch 32),
saliency_fraction 0.5, calibrated stopping/selection. The frozen temperature is not in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import Trainer, check, register_method, set_update_mode
from graphdel.unlearning.losses import forget_loss
from graphdel.unlearning.masks import summed_gradients, top_fraction_mask
from graphdel.unlearning.random_pair import RandomPair, RandomPairConfig


@dataclass
class SalUnConfig(RandomPairConfig):
    """SalUn hyperparameters: RandomPair's plus the saliency mask.

    Attributes:
        saliency_fraction: share of the trainable weights updated, those with the largest |grad| of the Df
            training loss.
    """

    saliency_fraction: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.saliency_fraction <= 1, f"saliency_fraction must be in (0, 1], got {self.saliency_fraction}")


def saliency_mask(trainer: Trainer, fraction: float) -> dict[str, torch.Tensor]:
    """``{name: 0/1 mask}`` keeping the ``fraction`` of trainable weights with the largest |grad| of the
    Df training loss (summed over all Df batches, at the current weights).

    The loss of a Df batch of fewer than 2 distinct items is also ranked against a Dr sample
    (:func:`~graphdel.unlearning.losses.forget_loss`): the in-batch loss of a lone pair has zero gradient,
    and a mask taken from zeros would keep every weight (all tie at the threshold)."""
    set_update_mode(trainer.student)

    def loss_fn(df: PairBatch) -> torch.Tensor:
        return forget_loss(trainer.student, df, trainer.outside_negatives(df))

    grads = summed_gradients(trainer.student, trainer.params, trainer.forget_batches(), loss_fn)
    return top_fraction_mask({n: g.abs() for n, g in grads.items()}, fraction)


@register_method
class SalUn(RandomPair):
    __doc__ = __doc__
    name = "salun"
    summary = "RandomPair updates restricted to the weights most salient for the forget loss."
    citation = "Fan et al., SalUn: Gradient-based Weight Saliency for Machine Unlearning, ICLR 2024"
    Config = SalUnConfig

    def setup(self, trainer: Trainer, cfg: SalUnConfig) -> None:
        """Set the trainer's gradient mask to the saliency mask of Df at the original weights; log its size."""
        trainer.grad_mask = saliency_mask(trainer, cfg.saliency_fraction)
        kept = sum(int(m.sum()) for m in trainer.grad_mask.values())
        total = sum(m.numel() for m in trainer.grad_mask.values())
        trainer.log.append({"phase": "saliency", "salient_weights": kept, "total_weights": total})
