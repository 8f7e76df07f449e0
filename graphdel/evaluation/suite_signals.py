"""What the evaluation suite reads off one model for one pair set: embeddings and per-pair signals
(:class:`PairSignals`, :func:`pair_signals`).

Per-pair membership signals (larger = more member-like): cosine similarity of the pair, the matching
probability, minus the in-pool contrastive loss and the reciprocal rank of the true partner in its pool
(pools as in pool-k retrieval).

The matching probability of a deranged pair ``(x_i, t_j)`` is read here too: for every pair ``i`` a partner
``j`` (seeded, a pair of another item) is drawn, the partner of ``match_acc`` and ``match_bal_acc``
(:mod:`graphdel.evaluation.suite_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graphdel.device import model_device, placed
from graphdel.evaluation.derangements import item_derangement
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.matching import pair_match_logits
from graphdel.evaluation.membership import logit_scale
from graphdel.evaluation.retrieval import PairEmbeddings, Ranks, pool_candidate_scores
from graphdel.models.protocol import PairSampler, has_matching_head

__all__ = ["SIGNAL_NAMES", "PairSignals", "pair_signals"]

SIGNAL_NAMES = ("similarity", "match_prob", "neg_pool_loss", "pool_reciprocal_rank")


@dataclass
class PairSignals:
    """Everything the suite reads off one model for one pair set (arrays are ``[N]`` unless noted).

    Attributes:
        emb: the embeddings (``z_x``, ``z_t`` ``[N, d]``, items, rows, ``match_prob``).
        similarity: cosine similarity of each true pair.
        match_prob: matching probability of each true pair (``None`` for fusion-free models).
        deranged_prob: matching probability of ``(x_i, t_j)`` with ``j`` a deranged partner (or ``None``).
        pool_loss: per-pair InfoNCE loss within its pool-k candidates (mean of graph->text and text->graph).
        pool_reciprocal_rank: expected reciprocal rank of the true text among its pool-k candidates
            (graph->text; :func:`graphdel.evaluation.retrieval.pool_retrieval`).
    """

    emb: PairEmbeddings
    similarity: np.ndarray
    match_prob: np.ndarray | None
    deranged_prob: np.ndarray | None
    pool_loss: np.ndarray
    pool_reciprocal_rank: np.ndarray

    def features(self) -> np.ndarray:
        """``[N, k]`` membership-attack features (larger = more member-like), columns of
        :data:`SIGNAL_NAMES` (the matching column is dropped for fusion-free models)."""
        cols = [self.similarity]
        if self.match_prob is not None:
            cols.append(logit_scale(self.match_prob))
        cols += [-self.pool_loss, self.pool_reciprocal_rank]
        return np.stack(cols, axis=1).astype(np.float64)


def _derangement(items: np.ndarray, seed: int) -> np.ndarray | None:
    """Index ``j[i] != i`` with ``items[j[i]] != items[i]`` for every ``i`` (``None`` if one item only).

    The item-aware derangement (:func:`graphdel.evaluation.derangements.item_derangement`, one helper for
    the unlearning losses and the suite), seeded by ``seed``: the same ``j`` for the same items and seed."""
    if items.size < 2 or np.unique(items).size < 2:
        return None
    return item_derangement(torch.as_tensor(items), torch.Generator().manual_seed(seed)).numpy().astype(np.int64)


def _deranged_probs(model, pairs, j: np.ndarray, batch_size: int) -> np.ndarray | None:
    """Matching probability of ``(x_i, t_{j[i]})``, computed where ``model`` is, by
    :func:`~graphdel.evaluation.matching.pair_match_logits`; needs a
    :class:`~graphdel.data.pairs.PairSet`."""
    data, rows = getattr(pairs, "data", None), getattr(pairs, "rows", None)
    if data is None or rows is None:
        return None
    rows = torch.as_tensor(rows).long()
    logits = pair_match_logits(model, data, rows, rows[torch.as_tensor(j).long()], batch_size=batch_size,
                               device=model_device(model))
    return torch.sigmoid(logits).numpy().astype(np.float64)


@torch.no_grad()
def _pool_signals(model, emb: PairEmbeddings, distractors: PairEmbeddings, pool_size: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair pool-k loss and graph->text reciprocal rank, over the candidates of
    :func:`~graphdel.evaluation.retrieval.pool_candidate_scores` (so their size confounds nothing)."""
    g2t, t2g = pool_candidate_scores(emb, distractors, pool_size=pool_size, seed=seed)
    # The protocol's logits are the similarity times the model's inverse temperature: read that scale off
    # one unit vector, whose similarity with itself is 1.
    unit = emb.z_x[:1].to(model_device(model))
    scale = float(model.logits(unit, unit).reshape(-1)[0] / model.sim(unit, unit).reshape(-1)[0])
    target = torch.zeros(g2t.size(0), dtype=torch.long)
    loss = 0.5 * (torch.nn.functional.cross_entropy(scale * g2t, target, reduction="none")
                  + torch.nn.functional.cross_entropy(scale * t2g, target, reduction="none"))
    return loss.double().numpy(), Ranks.of_scores(g2t).reciprocal().numpy()


def pair_signals(model, pairs: PairSampler, distractors: PairEmbeddings, *, pool_size: int = 64, seed: int = 0,
                 batch_size: int = 256, device: str | torch.device | None = None) -> PairSignals:
    """Embeddings and per-pair signals of ``pairs`` under ``model`` (eval mode, no gradients);
    ``distractors`` are the run's distractor set embedded by the same model. ``device``: where to compute
    (``None``: where ``model`` is, see :func:`graphdel.evaluation.embed.embed_pairs`)."""
    has_match = has_matching_head(model)
    with placed(model, device):
        emb = embed_pairs(model, pairs, batch_size=batch_size, with_matching=has_match)
        sim = (emb.z_x * emb.z_t).sum(1).double().numpy()
        match = emb.match_prob.double().numpy() if emb.match_prob is not None else None
        deranged = None
        if match is not None:
            j = _derangement(emb.items.numpy(), seed)
            if j is not None:
                deranged = _deranged_probs(model, pairs, j, batch_size)
        loss, rr = _pool_signals(model, emb, distractors, pool_size, seed)
    return PairSignals(emb, sim, match, deranged, loss, rr)
