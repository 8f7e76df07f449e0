"""Weight masks that restrict which parameters an unlearning update may move.

Two scores, one selection rule (:func:`top_fraction_mask`):

* **saliency** (SalUn, Fan et al., ICLR 2024): ``|sum over Df batches of grad L(Df)|``, how much the forget
  loss would change per weight;
* **Df/Dr importance ratio** (in the spirit of Selective Synaptic Dampening, Foster et al., AAAI 2024):
  ``F_df / (F_dr + lam * mean(F_dr))`` with ``F`` the empirical diagonal Fisher (squared batch gradients
  of the model's ``training_loss``, averaged over batches). A weight scores high when the deleted pairs
  rely on it *more than the retained pairs do*. Restricting an update to those weights is what makes it
  selective: the retained pairs' knowledge lives mostly in weights that stay put.

The engine-level code here uses only the modality protocol (``training_loss`` on :class:`PairBatch`).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from graphdel.models.protocol import PairBatch


def top_fraction_mask(scores: dict[str, Tensor], fraction: float) -> dict[str, Tensor]:
    """``{name: 0/1 mask}`` (same shapes as ``scores``) keeping the ``fraction`` of all entries with the
    largest score, one global threshold over every tensor. Ties at the threshold are all kept."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = max(1, int(round(fraction * flat.numel())))
    threshold = torch.topk(flat, k, largest=True, sorted=False).values.min()
    return {n: (s >= threshold).to(s.dtype) for n, s in scores.items()}


def summed_gradients(model: torch.nn.Module, params: list[tuple[str, torch.nn.Parameter]],
                     batches: Iterable[PairBatch], loss_fn: Callable[[PairBatch], Tensor] | None = None
                     ) -> dict[str, Tensor]:
    """``{name: sum over batches of grad loss_fn(batch)}`` at the current weights (SalUn's score before the
    absolute value); ``loss_fn`` defaults to ``model.training_loss``. Leaves no gradient behind."""
    loss_fn = loss_fn or model.training_loss
    out = {n: torch.zeros_like(p) for n, p in params}
    for b in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(b).backward()
        for n, p in params:
            if p.grad is not None:
                out[n] += p.grad.detach()
    model.zero_grad(set_to_none=True)
    return out


def fisher_diagonal(model: torch.nn.Module, params: list[tuple[str, torch.nn.Parameter]],
                    batches: Iterable[PairBatch], loss_fn: Callable[[PairBatch], Tensor] | None = None
                    ) -> dict[str, Tensor]:
    """Empirical diagonal Fisher ``mean over batches of grad loss_fn(batch) ** 2`` per weight (same shapes
    as the parameters); ``loss_fn`` defaults to ``model.training_loss``. Leaves no gradient behind."""
    loss_fn = loss_fn or model.training_loss
    out = {n: torch.zeros_like(p) for n, p in params}
    count = 0
    for b in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(b).backward()
        count += 1
        for n, p in params:
            if p.grad is not None:
                out[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("fisher_diagonal: no batches")
    return {n: f / count for n, f in out.items()}


def importance_ratio(f_df: dict[str, Tensor], f_dr: dict[str, Tensor], lam: float = 0.1) -> dict[str, Tensor]:
    """``F_df / (F_dr + lam * mean(F_dr))`` per weight; ``lam`` (relative to the mean Dr importance)
    keeps weights that neither set uses from getting a large ratio out of two tiny numbers."""
    mean_dr = torch.cat([f.flatten() for f in f_dr.values()]).mean()
    eps = lam * mean_dr + 1e-20
    return {n: f_df[n] / (f_dr[n] + eps) for n in f_df}
