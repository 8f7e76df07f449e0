"""RandomPair: train the deleted x's towards random texts, and keep descending on Dr.

The multimodal counterpart of random relabelling (Golatkar et al., CVPR 2020 "random labels"; Hayase et
al. 2020); used as the "random label/pair" baseline by MultiDelete (Cheng & Amiri, ECCV 2024) and as the
update of SalUn (Fan et al., ICLR 2024).

Update: ``theta <- theta - lr * grad[ L_train(x_f, t_rand) + retain_weight * L_train(Dr batch) ]`` where
``(x_f, t_rand)`` re-pairs each x of the Df batch with a random text: texts of a separate Dr sample
(``text_source="dr"``, default) or a derangement of the Df batch's texts (``"df"``), never its own
nor another caption of its own item. A Df batch of fewer than 2 distinct items (a one-pair request) takes
its random texts from Dr and is ranked against a Dr sample of ``batch_size`` pairs
(:func:`random_pair_loss`).
Defaults: Adam lr 1e-4, retain_weight 1, up to 5 epochs over Df, batch 32, calibrated stopping/selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, check, register_method
from graphdel.unlearning.losses import forget_loss, negative_texts


@dataclass
class RandomPairConfig(GradientConfig):
    """RandomPair hyperparameters.

    Attributes:
        text_source: where the random texts come from: ``dr`` (a fresh Dr sample) or ``df`` (deranged
            Df texts).
        retain_weight: weight of the Dr descent term.
    """

    lr: float = 1e-4
    epochs: int = 5
    text_source: Literal["dr", "df"] = "dr"
    retain_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.retain_weight >= 0, f"retain_weight must be >= 0, got {self.retain_weight}")


def random_pair_loss(trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: RandomPairConfig):
    """The RandomPair loss of one step (shared with SalUn).

    The random texts are never a caption of the Df pair's own item
    (:func:`~graphdel.unlearning.losses.negative_texts`), and the relabelled batch keeps the Df items, so
    that the model's contrastive loss treats the pairs of one item (several captions of one molecule, each
    now with its random text) as positives of each other, as in training.

    A Df batch of fewer than 2 distinct items holds no text of another item and no in-batch negative
    (:meth:`Trainer.lacks_negatives`): the random texts then come from a separate Dr sample of
    ``batch_size`` pairs whatever ``text_source`` says, and the relabelled pairs are also ranked against
    ``dr`` (another ``batch_size`` Dr sample, :meth:`Trainer.paired_batches`), since the InfoNCE of a lone
    relabelled pair is constant."""
    lacking = trainer.lacks_negatives(df)
    if lacking:  # a full batch of candidates: the lone pair's item may have other captions in Dr
        pool = trainer.full_retain_sample()
    else:
        pool = trainer.retain_sample(len(df)) if cfg.text_source == "dr" else None
    texts, _ = negative_texts(df, source=cfg.text_source, dr=pool, generator=trainer.generator)
    relabelled = PairBatch(df.x, texts, df.rows, items=df.items, shard=df.shard)  # shard: global InfoNCE
    forget = forget_loss(trainer.student, relabelled, dr if lacking else None)
    retain_loss = trainer.student.training_loss(dr)
    return forget + cfg.retain_weight * retain_loss, {
        "random_pair_loss": float(forget.detach()), "retain_loss": float(retain_loss.detach())}


@register_method
class RandomPair(GradientMethod):
    __doc__ = __doc__
    name = "randompair"
    aliases = ("random_pair", "randomlabel")
    summary = "Train Df's x towards random texts with the training loss, plus descent on Dr."
    citation = "Golatkar et al., CVPR 2020 (random labels); multimodal form as in Cheng & Amiri, ECCV 2024"
    Config = RandomPairConfig

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: RandomPairConfig):
        """The RandomPair loss of one step (:func:`random_pair_loss`)."""
        return random_pair_loss(trainer, df, dr, cfg)
