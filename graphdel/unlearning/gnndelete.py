"""GNNDelete (Cheng, Dasoulas, He, Agarwal & Zitnik, "GNNDelete: A General Strategy for Unlearning in
Graph Neural Networks", ICLR 2023), written on the modality protocol.

Update: the whole model is frozen; only a small *deletion operator* is trained, which the model applies
to the representations of the neighbourhood of the deleted data (in GNNDelete: a linear map on the
states of the nodes within k hops of the deleted edges, identity elsewhere). The model provides it
through one optional hook, ``model.deletion_parameters(forget_sampler) -> [parameters]``, which installs
the operator for the request (e.g. marks the neighbourhood) and returns its parameters; a model without
the hook cannot be unlearned by this method (:class:`~graphdel.errors.ConfigError`).

Loss, with the paper's two properties in protocol terms and ``lam`` weighting them:

* Deleted Edge Consistency (DEC): a deleted pair must look like a random pair does to the original,
  ``d(f'.fuse(x_i, t_i), f.fuse(x_i, t_j))`` (``t_j`` a derangement of the Df batch: for a KG, a random tail;
  from the Dr batch when the Df batch has fewer than 2 distinct items, e.g. a one-triple request);
* Neighbourhood Influence (NI): the representations around the deletion keep what the original had,
  ``d(f'.fuse(x, t), f.fuse(x, t))`` on a Dr batch plus ``d(f'.encode_x, f.encode_x) + d(f'.encode_text,
  f.encode_text)`` on the Df batch.

``L = lam * DEC + (1 - lam) * NI``; defaults lam = 0.5, MSE, Adam lr 1e-3 (only the operator moves), up to
10 epochs over Df, calibrated stopping and selection like every gradient method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import (GradientConfig, GradientMethod, Trainer, check, make_optimizer,
                                      register_method)
from graphdel.unlearning.losses import modality_decoupling, multimodal_retention, unimodal_retention


@dataclass
class GNNDeleteConfig(GradientConfig):
    """GNNDelete hyperparameters; the fields of :class:`~graphdel.unlearning.base.GradientConfig` apply.

    Attributes:
        lam: weight of the deleted-edge consistency loss (DEC); neighbourhood influence (NI) gets ``1 - lam``.
        distance: ``mse`` | ``cosine`` | ``l1``, between the operator's and the original's representations.
    """

    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    lam: float = 0.5
    distance: Literal["mse", "cosine", "l1"] = "mse"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], got {self.lam}")


@register_method
class GNNDelete(GradientMethod):
    __doc__ = __doc__
    name = "gnndelete"
    summary = "Train only a deletion operator on the neighbourhood of Df (model frozen): DEC + NI losses."
    citation = "Cheng et al., GNNDelete: A General Strategy for Unlearning in Graph Neural Networks, ICLR 2023"
    Config = GNNDeleteConfig

    def setup(self, trainer: Trainer, cfg: GNNDeleteConfig) -> None:
        """Freeze the student except its deletion operator (``deletion_parameters(forget)``); optimise only it."""
        hook = getattr(trainer.student, "deletion_parameters", None)
        if hook is None:
            raise ConfigError(f"method 'gnndelete' needs a model with a deletion operator "
                              f"(deletion_parameters(forget)); {type(trainer.student).__name__} has none")
        params = list(hook(trainer.ctx.forget))
        if not params:
            raise ConfigError("the model's deletion operator has no parameters")
        chosen = {id(p) for p in params}
        for _, p in trainer.student.named_parameters():
            p.requires_grad_(id(p) in chosen)
        trainer.params = [(n, p) for n, p in trainer.student.named_parameters() if id(p) in chosen]
        trainer.optimizer = make_optimizer([p for _, p in trainer.params], cfg.optimizer, cfg.lr,
                                           cfg.weight_decay, cfg.momentum)

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: GNNDeleteConfig):
        """``lam * DEC(Df) + (1 - lam) * NI`` (multimodal retention on Dr + unimodal retention on Df)."""
        s, t = trainer.student, trainer.teacher
        # dr: where the unrelated tails come from when the Df batch has fewer than 2 distinct items
        dec = modality_decoupling(s, t, df, dr=dr, distance=cfg.distance, generator=trainer.generator)
        ni = (multimodal_retention(s, t, dr, distance=cfg.distance)
              + unimodal_retention(s, t, df, distance=cfg.distance))
        total = cfg.lam * dec + (1.0 - cfg.lam) * ni
        return total, {"dec": float(dec.detach()), "ni": float(ni.detach())}
