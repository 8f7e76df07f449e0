"""Embedding a set of pairs with a model (evaluation mode, no gradients), and the pool-k score of a model.

:func:`pool_score` is the one number that training's early stopping and unlearning's stopping and
selection read; it is the ``g2t_mrr`` of :func:`graphdel.evaluation.retrieval.pool_retrieval`, the same
``pool64`` that ``metrics.json`` and the report hold.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Mapping

import torch

from graphdel.device import model_device, placed
from graphdel.evaluation.ranks import weighted_mean_error
from graphdel.evaluation.retrieval import PairEmbeddings, pool_g2t_reciprocal, usable_pool_size
from graphdel.models.protocol import PairBatch, PairSampler

__all__ = ["PairEmbeddings", "embed_pairs", "pool_score", "pool_score_error", "weighted_mean_error"]


@torch.no_grad()
def embed_pairs(model, pairs: PairSampler | Iterable[PairBatch], *, batch_size: int = 256,
                with_matching: bool = False, texts_only: bool = False,
                device: str | torch.device | None = None) -> PairEmbeddings:
    """Embed every pair of ``pairs`` (a sampler, in its order, or an iterable of batches) with ``model`` in
    eval mode; the model's train/eval mode of every submodule is restored afterwards.

    Args:
        texts_only: embed the texts alone (``z_x`` is ``None``): graph->text distractors need no more, and
            their graphs cost the most to encode.
        device: where to compute: ``None`` (default) on the device of ``model``'s parameters, which the
            batches are moved to; a device name or :class:`torch.device`: ``model`` is moved there for the
            call and back afterwards (:func:`graphdel.device.placed`).

    Returns:
        :class:`PairEmbeddings` on the CPU: ``z_x``, ``z_t`` ``[N, d]`` float32, ``items``, ``rows`` ``[N]``
        long (a batch without item indices uses its rows as items), ``match_prob`` ``[N]`` when asked for.
    """
    if texts_only and with_matching:
        raise ValueError("the matching head reads both sides of a pair: with_matching needs texts_only=False")
    with placed(model, device):
        return _embed(model, pairs, batch_size, with_matching, texts_only)


def _embed(model, pairs, batch_size: int, with_matching: bool, texts_only: bool) -> PairEmbeddings:
    """:func:`embed_pairs` on the device ``model`` is on."""
    device = model_device(model)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    zx, zt, items, rows, probs = [], [], [], [], []
    batches = pairs.batches(batch_size) if hasattr(pairs, "batches") else pairs
    try:
        for batch in batches:
            batch = batch.to(device)
            if not texts_only:
                zx.append(model.encode_x(batch.x).float().cpu())
            zt.append(model.encode_text(batch.text).float().cpu())
            items.append(batch.items.cpu() if batch.items is not None else batch.rows.cpu())
            rows.append(batch.rows.cpu())
            if with_matching:
                probs.append(torch.sigmoid(model.match_logits(model.fuse(batch.x, batch.text))).float().cpu())
    finally:
        for m, flag in flags:
            m.training = flag
    cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0)  # noqa: E731
    return PairEmbeddings(None if texts_only else cat(zx), cat(zt), cat(items).long().reshape(-1),
                          cat(rows).long().reshape(-1), cat(probs) if with_matching else None)


def pool_score(model, pairs: PairSampler | Iterable[PairBatch], distractors: PairSampler | PairEmbeddings, *,
               pool_size: int = 64, seed: int = 0, batch_size: int = 256,
               device: str | torch.device | None = None, draws: int = 1,
               weights: Mapping[int, float] | None = None) -> float:
    """Pool-``pool_size`` graph->text MRR of ``pairs`` under ``model``, against ``distractors`` (a sampler,
    whose texts alone are embedded here by the same model, or its embeddings already); ``nan`` for no pairs,
    or for a distractor set with nothing to rank against
    (:func:`~graphdel.evaluation.retrieval.usable_pool_size` below 2). ``device`` as in :func:`embed_pairs`
    (default: where ``model`` is).

    ``draws``: the mean over that many draws of the distractors (seeds ``seed``, ``seed + 1``, ...), the
    pairs embedded once: one draw moves the score of a few hundred pairs by 0.01-0.02
    (docs/experiments/2026-12-06-pool-draw-spread.md). ``weights``: corpus row -> weight of its pair in the
    mean (rows it lacks weigh 0; ``None``: every pair alike)."""
    return pool_score_error(model, pairs, distractors, pool_size=pool_size, seed=seed, batch_size=batch_size,
                            device=device, draws=draws, weights=weights)[0]


def pool_score_error(model, pairs: PairSampler | Iterable[PairBatch],
                     distractors: PairSampler | PairEmbeddings, *, pool_size: int = 64, seed: int = 0,
                     batch_size: int = 256, device: str | torch.device | None = None, draws: int = 1,
                     weights: Mapping[int, float] | None = None) -> tuple[float, float, int]:
    """``(score, standard error, pairs)``: :func:`pool_score` (the same number, same arguments), the standard
    error of that mean over the pairs (:func:`weighted_mean_error` of the pairs' reciprocal ranks, each
    averaged over the ``draws``) and how many pairs it rests on (those of positive weight). ``nan`` and 0
    pairs where :func:`pool_score` gives ``nan``. The error costs one pass over the pairs' reciprocal ranks,
    which the mean reads anyway.

    Why: the calibration reference a run stops at is such a mean over a few hundred never-trained pairs, and
    a pair's score is mostly its own (sd 0.27 over pairs after 20 draws on ``drugs``): the reference carries
    a standard error of about 0.02 that no setting removes (docs/experiments/2026-12-07-reference-noise.md).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    with placed(model, device):
        queries = embed_pairs(model, pairs, batch_size=batch_size)
        if not isinstance(distractors, PairEmbeddings):
            distractors = embed_pairs(model, distractors, batch_size=batch_size, texts_only=True)
    if len(queries) == 0 or usable_pool_size(distractors.items, pool_size) < 2:
        return float("nan"), float("nan"), 0
    w = (torch.ones(len(queries), dtype=torch.float64) if weights is None else
         torch.tensor([float(weights.get(int(r), 0.0)) for r in queries.rows], dtype=torch.float64))
    if not float(w.sum()) > 0:
        raise ValueError("the weights give no pair of the set a positive weight")
    rr = sum(pool_g2t_reciprocal(queries, distractors, pool_size=pool_size, seed=seed + d).cpu()
             for d in range(draws)) / draws
    # one draw unweighted: the plain mean, the number pool_g2t_mrr (and pool_retrieval's g2t_mrr) gives
    score = float(rr.mean()) if weights is None and draws == 1 else float((w * rr).sum() / w.sum())
    return score, weighted_mean_error(rr, w), int((w > 0).sum())


@contextlib.contextmanager
def item_states_cached(model) -> Iterator[None]:
    """While active, a model that can cache its frozen encoder's states per item (molecules:
    ``share_frozen_states``) computes each item's states once: every parameter is marked frozen (evaluation
    trains nothing; the flags are restored). Why: scoring a pair set embeds each item and fuses it with its
    own text and with another's (the suite's signals), and re-ranking fuses each query's item with ``top_k``
    texts; each of those ran the graph encoder again."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with model.share_frozen_states():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
