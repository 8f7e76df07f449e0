"""NegGrad+ (a.k.a. GradDiff): gradient ascent on Df plus gradient descent on Dr.

Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023
(NegGrad+); Liu et al., "Continual Learning and Private Unlearning", CoLLAs 2022 / Maini et al., TOFU 2024
(Gradient Difference).

Update: ``theta <- theta - lr * grad[ retain_weight * L_train(Dr batch) - forget_weight * L_train(Df batch) ]``
with one Df batch and a Dr batch of the same size per step. The ascent part has NegGrad's divergence guard
(Df loss bound, non-finite stop). Defaults: forget_weight = retain_weight = 1, Adam lr 1e-5, up to 5
epochs over Df, batch 32, calibrated stopping/selection.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import GradientMethod, Trainer, check, register_method
from graphdel.unlearning.neggrad import NegGrad, NegGradConfig, ascent_term


@dataclass
class NegGradPlusConfig(NegGradConfig):
    """NegGrad+ hyperparameters: NegGrad's plus the weights of the two parts.

    Attributes:
        forget_weight: weight of the ascent term, ``L_train(Df)``.
        retain_weight: weight of the descent term, ``L_train(Dr)``.
    """

    forget_weight: float = 1.0
    retain_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.forget_weight >= 0 and self.retain_weight >= 0, "forget_weight/retain_weight must be >= 0")


@register_method
class NegGradPlus(NegGrad):
    __doc__ = __doc__
    name = "neggrad+"
    aliases = ("graddiff",)
    summary = "Gradient ascent on Df plus descent on Dr (gradient difference), with a divergence guard."
    citation = "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023 (NegGrad+)"
    Config = NegGradPlusConfig

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: NegGradPlusConfig):
        """``retain_weight * L_train(Dr) - forget_weight * L_train(Df)``, or ``None`` once the guard stopped.
        For a Df batch of fewer than 2 distinct items, ``dr`` is a ``batch_size`` Dr sample
        (:meth:`Trainer.paired_batches`) and the Df loss is also ranked against its pairs (NegGrad's rule)."""
        out = ascent_term(trainer, df, cfg, dr if trainer.lacks_negatives(df) else None)
        if out is None:
            return None
        forget_loss, value = out
        retain_loss = trainer.student.training_loss(dr)
        total = cfg.retain_weight * retain_loss - cfg.forget_weight * forget_loss
        return total, {"forget_loss": value, "retain_loss": float(retain_loss.detach())}

    train_epoch = GradientMethod.train_epoch  # Df batches each matched with a Dr batch
