"""GNNDelete (Cheng, Dasoulas, He, Agarwal & Zitnik, "GNNDelete: A General Strategy for Unlearning in
Graph Neural Networks", ICLR 2023), written on the modality protocol.

Update: the whole model is frozen; only small *deletion operators* are trained, which the model applies
to the representations of the neighbourhood of the deleted data. As published: one linear map per GNN
layer ``l``, applied to the layer's output states of the nodes within ``l`` hops of the deleted edges,
identity elsewhere, and starting at the identity (so ``f' = f`` before the first step).

The model provides the operator through one hook, ``model.deletion_parameters(forget_sampler, kind) ->
[parameters]``, which installs an operator for the request and returns its parameters (``kind`` is
:attr:`GNNDeleteConfig.operator`); a model without the hook cannot be unlearned by this method
(:class:`~graphdel.errors.ConfigError`). Operators accumulate: a request applied to a model that GNNDelete
already unlearned adds its own operator and leaves the earlier ones (and their masks) as they are, frozen.

Loss, ``L = lam * DEC + (1 - lam) * NI``, with the paper's two properties in protocol terms:

* **Deleted Edge Consistency** (DEC): a deleted pair must look to ``f'`` like a random pair looks to the
  original, ``d(f'.fuse(x_i, t_i), f.fuse(x_i, t_j))`` on the Df batch (``t_j`` a derangement of the
  batch's texts: for a KG, a random tail, and ``fuse`` carries the DistMult interaction whose sum is the
  triple score; from the Dr batch when the Df batch has fewer than 2 distinct items, e.g. a one-triple
  request).
* **Neighbourhood Influence** (NI): the representations of the nodes within ``l`` hops of the deleted
  edges, at each layer ``l``, must stay what the original computes on the graph without them:
  ``d(f'.deletion_neighbourhood(), target)``, the target taken from ``f'`` before its first step (the
  original's weights on the graph without the deleted edges, operators at the identity; the paper's
  official code does the same). The deleted edges' own endpoints are left out (DEC moves them). So NI is
  exactly 0 at the start, which needs dropout off (:attr:`GNNDeleteConfig.dropout`, off by default).
  A model without ``deletion_neighbourhood`` (no graph to count hops in) gets the protocol-level
  stand-in: retention of the fused representations on a Dr batch plus unimodal retention on Df.

``operator="final"`` keeps the earlier adaptation reachable for comparison: one map on the final states
over the 1-hop neighbourhood, and the protocol-level NI stand-in above (run it with ``dropout=true`` to
reproduce it exactly). Defaults: lam = 0.5, MSE, Adam lr 1e-3 (only the operator moves), up to 10 epochs
over Df, calibrated stopping and selection like every gradient method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import (GradientConfig, GradientMethod, Trainer, check, make_optimizer,
                                      register_method)
from graphdel.unlearning.losses import distance, modality_decoupling, multimodal_retention, unimodal_retention
from graphdel.unlearning.selection import eval_mode


@dataclass
class GNNDeleteConfig(GradientConfig):
    """GNNDelete hyperparameters; the fields of :class:`~graphdel.unlearning.base.GradientConfig` apply.

    Attributes:
        lam: weight of the deleted-edge consistency loss (DEC); neighbourhood influence (NI) gets ``1 - lam``.
        distance: ``mse`` | ``cosine`` | ``l1``, between the operator's and the original's representations.
        operator: ``per_layer`` (GNNDelete as published: one operator per GNN layer on the layer's
            ``l``-hop neighbourhood of the deleted edges, NI on that neighbourhood) or ``final`` (the
            earlier adaptation, kept for comparison: one operator on the final states over 1 hop, NI on
            a Dr batch and unimodal retention on Df).
        dropout: dropout active in ``f'`` during updates; off by default, so that every frozen part runs
            as at evaluation and NI is exactly 0 before the first step (with dropout it would be the
            distance between a noisy and a clean pass, and the operators would learn that noise).
    """

    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    lam: float = 0.5
    distance: Literal["mse", "cosine", "l1"] = "mse"
    operator: Literal["per_layer", "final"] = "per_layer"
    dropout: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], got {self.lam}")


@register_method
class GNNDelete(GradientMethod):
    __doc__ = __doc__
    name = "gnndelete"
    summary = "Train only per-layer deletion operators on the k-hop neighbourhood of Df (model frozen)."
    citation = "Cheng et al., GNNDelete: A General Strategy for Unlearning in Graph Neural Networks, ICLR 2023"
    Config = GNNDeleteConfig

    def __init__(self) -> None:
        #: NI's target ``[M, d]``: the neighbourhood's states before the first step (None: protocol stand-in)
        self.target: Tensor | None = None

    def setup(self, trainer: Trainer, cfg: GNNDeleteConfig) -> None:
        """Install the request's deletion operator (``deletion_parameters(forget, kind)``), freeze every
        other parameter, optimise only the operator, and record NI's target."""
        student = trainer.student
        try:
            params = student.deletion_parameters(trainer.ctx.forget, kind=cfg.operator)
        except ValueError as e:
            raise ConfigError(f"gnndelete: {e}") from e
        if params is None:
            raise ConfigError(f"method 'gnndelete' needs a model with a deletion operator "
                              f"(deletion_parameters(forget, kind)); {type(student).__name__} has none")
        params = list(params)
        if not params:
            raise ConfigError("the model's deletion operator has no parameters")
        chosen = {id(p) for p in params}
        for _, p in student.named_parameters():
            p.requires_grad_(id(p) in chosen)
        trainer.params = [(n, p) for n, p in student.named_parameters() if id(p) in chosen]
        trainer.optimizer = make_optimizer([p for _, p in trainer.params], cfg.optimizer, cfg.lr,
                                           cfg.weight_decay, cfg.momentum)
        self.target = None
        if cfg.operator == "per_layer":
            # f' now = the original's weights on the graph without Df, operators at the identity: what the
            # neighbourhood must keep (taken in eval mode, as the updates run with dropout off)
            with torch.no_grad(), eval_mode(student):
                states = student.deletion_neighbourhood()
            self.target = None if states is None else states.detach().clone()

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: GNNDeleteConfig):
        """``lam * DEC(Df) + (1 - lam) * NI`` (see the module docstring)."""
        s, t = trainer.student, trainer.teacher
        # dr: where the unrelated tails come from when the Df batch has fewer than 2 distinct items
        dec = modality_decoupling(s, t, df, dr=dr, distance=cfg.distance, generator=trainer.generator)
        if self.target is not None:
            ni = neighbourhood_influence(s.deletion_neighbourhood(), self.target, cfg.distance)
        else:
            ni = (multimodal_retention(s, t, dr, distance=cfg.distance)
                  + unimodal_retention(s, t, df, distance=cfg.distance))
        total = cfg.lam * dec + (1.0 - cfg.lam) * ni
        return total, {"dec": float(dec.detach()), "ni": float(ni.detach())}


def neighbourhood_influence(states: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """NI: the distance between the neighbourhood's states ``[M, d]`` under ``f'`` and their ``target``
    ``[M, d]``; 0 (with a gradient path) when the neighbourhood is empty (deleted edges whose endpoints
    have no other neighbour)."""
    if states.numel() == 0:
        return states.sum() * 0.0
    return distance(states, target, kind)
