"""Embedding a set of pairs with a model, in evaluation mode and without gradients."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphdel.models.protocol import PairSampler


@dataclass
class PairEmbeddings:
    """Embeddings of ``N`` pairs.

    Attributes:
        z_x: ``[N, d]`` normalised item embeddings.
        z_t: ``[N, d]`` normalised text embeddings.
        items: ``[N]`` long item index of each pair (pairs of one item are each other's positives).
        rows: ``[N]`` corpus rows.
        match_prob: ``[N]`` matching-head probability of each true pair (``None`` unless asked for).
    """

    z_x: Tensor
    z_t: Tensor
    items: Tensor
    rows: Tensor
    match_prob: Tensor | None = None


@torch.no_grad()
def embed_pairs(model, pairs: PairSampler, *, batch_size: int = 256, with_matching: bool = False,
                device: str | torch.device = "cpu") -> PairEmbeddings:
    """Embed every pair of ``pairs`` (in sampler order) with ``model`` in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    zx, zt, items, rows, probs = [], [], [], [], []
    for batch in pairs.batches(batch_size):
        batch = batch.to(device)
        zx.append(model.encode_x(batch.x).float().cpu())
        zt.append(model.encode_text(batch.text).float().cpu())
        items.append(batch.items.cpu() if batch.items is not None else batch.rows.cpu())
        rows.append(batch.rows.cpu())
        if with_matching:
            probs.append(torch.sigmoid(model.match_logits(model.fuse(batch.x, batch.text))).float().cpu())
    model.train(was_training)
    cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0)
    return PairEmbeddings(cat(zx), cat(zt), cat(items).long(), cat(rows).long(),
                          cat(probs) if with_matching else None)


def pool_mrr(model, pairs: PairSampler, *, pool_size: int = 64, seed: int = 0) -> float:
    """Pool-``pool_size`` graph->text MRR of ``pairs`` (the early-stopping and selection score)."""
    from graphdel.evaluation.retrieval import pool_retrieval

    emb = embed_pairs(model, pairs)
    return float(pool_retrieval(emb.z_x, emb.z_t, pool_size=pool_size, seed=seed, groups=emb.items)["g2t_mrr"])
