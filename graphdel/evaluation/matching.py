"""What the matching head knows: true pairs against random and hard partners, and re-ranking retrieval.

For a set of ``N`` pairs, with ``p_i`` the matching probability of the true pair ``(x_i, t_i)``:

* ``match_bal_acc``: balanced accuracy at threshold 0.5 against *random* partners,
  ``(mean[p_i >= 0.5] + mean[q_i < 0.5]) / 2`` with ``q_i`` the probability of ``(x_i, t_j)``, ``j`` the
  item-aware derangement seeded by ``seed`` -- the same partners and number as the evaluation suite's
  ``match_bal_acc`` (:mod:`graphdel.evaluation.suite`);
* ``match_hard_bal_acc``: the same against the *hardest* partner, ``j`` = the pair of another item of the
  set whose text is most similar to ``x_i`` under the model's cosine similarity
  (:func:`~graphdel.evaluation.retrieval.hardest_of_other_items`);
* ``rerank``: pool-k graph->text retrieval (the pools of :func:`~graphdel.evaluation.retrieval.pool_retrieval`)
  with each query's top ``top_k`` candidates by similarity re-ordered by a costlier score (ALBEF, BLIP):
  the matching head's logit (``score="head"``) or, as BLIP ranks, that logit plus the contrastive logit of
  the same candidate, its cosine similarity times the model's inverse temperature
  (``score="head+similarity"``), beside similarity alone: ``{"top_k", "k", "g2t_acc", "g2t_mrr",
  "sim_g2t_acc", "sim_g2t_mrr"}`` (acc = hits@1). The headline pool-k MRR stays the similarity one.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from graphdel.evaluation.derangements import item_derangement
from graphdel.evaluation.embed import embed_pairs, item_states_cached
from graphdel.evaluation.retrieval import (PairEmbeddings, Ranks, draw_distractors, hardest_of_other_items,
                                           pool_candidate_scores, rank_summary, rerank_columns, rerank_ranks,
                                           usable_pool_size)

__all__ = ["RERANK_TOP_K", "RERANK_SCORE", "rerank_settings", "rerank_scores", "pair_match_logits",
           "balanced_accuracy",
           "matching_partners", "matching_accuracies", "pool_rerank", "matching_metrics"]

#: Candidates re-ranked by the matching head per pool-64 query unless the model declares its own
#: (``rerank_settings``): chosen on ``drugs``' validation split for the earlier molecule head (hits@1 0.505
#: at 4, 0.502 at 2, 0.485 at 8, similarity alone 0.446; docs/experiments/2026-12-04-fusion-stage.md).
RERANK_TOP_K = 4

#: What re-orders the top ``RERANK_TOP_K`` (see the module docstring) unless the model declares its own.
RERANK_SCORE = "head"
RERANK_SCORES = ("head", "head+similarity")


def rerank_settings(model) -> tuple[str, int]:
    """``(score, top_k)`` a model is re-ranked with: its ``rerank_settings`` attribute where it declares one
    (the molecule model: ``("head+similarity", 8)``), else ``(RERANK_SCORE, RERANK_TOP_K)``."""
    return getattr(model, "rerank_settings", None) or (RERANK_SCORE, RERANK_TOP_K)


@torch.no_grad()
def pair_match_logits(model, data, x_rows: Tensor, text_rows: Tensor, *, batch_size: int = 256,
                      device: str | torch.device = "cpu") -> Tensor:
    """``[M]`` float32 (CPU) matching-head logits of the pairs ``(item of x_rows[m], text of text_rows[m])``.

    Each chunk of ``batch_size`` pairs builds and encodes each distinct item and text once and fuses them
    by ``fuse``'s ``pairs``: re-ranking fuses every query's item with its ``top_k`` candidate texts, so a
    chunk names a few items many times.

    Args:
        model: a model with ``fuse`` (taking ``pairs``) and ``match_logits`` (evaluated in eval mode; modes
            restored).
        data: the :class:`~graphdel.data.pairs.PairData` both row sets index (corpus rows).
        x_rows, text_rows: ``[M]`` long corpus rows.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    out = []
    try:
        with item_states_cached(model):
            for s in range(0, x_rows.numel(), batch_size):
                x_distinct, x_of = x_rows[s:s + batch_size].unique(return_inverse=True)
                text_distinct, text_of = text_rows[s:s + batch_size].unique(return_inverse=True)
                x = data.batch(x_distinct).to(device).x
                text = data.text_batch(text_distinct).to(device).text
                pairs = torch.stack([x_of, text_of], dim=1).to(device)
                out.append(model.match_logits(model.fuse(x, text, pairs)).float().cpu())
    finally:
        for m, flag in flags:
            m.training = flag
    return torch.cat(out) if out else torch.zeros(0)


def balanced_accuracy(true_prob: np.ndarray | Tensor, false_prob: np.ndarray | Tensor) -> float:
    """``(mean[true_prob >= 0.5] + mean[false_prob < 0.5]) / 2``: the matching head's balanced accuracy at
    threshold 0.5 over true pairs and false pairs."""
    p, q = np.asarray(true_prob, dtype=np.float64), np.asarray(false_prob, dtype=np.float64)
    return float(0.5 * (np.mean(p >= 0.5) + np.mean(q < 0.5)))


def matching_partners(emb: PairEmbeddings, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(random [N], hard [N])`` long: each pair's partner position in the set (a pair of another item).

    ``random`` is the item-aware derangement seeded by ``seed`` (the evaluation suite's partners), ``hard``
    the pair whose text is most similar to the pair's item (:func:`hardest_of_other_items`, ``k = 1``).

    Raises:
        ValueError: fewer than two distinct items.
    """
    random_j = item_derangement(emb.items, torch.Generator().manual_seed(seed))
    hard_j = hardest_of_other_items(emb.z_x, emb.z_t, emb.items, emb.items, 1)[:, 0]
    return random_j, hard_j


def matching_accuracies(model, pairs, emb: PairEmbeddings, *, seed: int = 0, batch_size: int = 256,
                        device: str | torch.device = "cpu") -> dict[str, float]:
    """``{"match_bal_acc", "match_hard_bal_acc"}`` of ``pairs`` against :func:`matching_partners` (see the
    module docstring); ``{}`` for a set of fewer than two items.

    Args:
        pairs: a :class:`~graphdel.data.pairs.PairSet`.
        emb: its embeddings with ``match_prob`` (:func:`~graphdel.evaluation.embed.embed_pairs`
            ``with_matching=True``).
    """
    if emb.items.numel() < 2 or emb.items.unique().numel() < 2:
        return {}
    rows = torch.as_tensor(pairs.rows).long()
    out = {}
    for name, partner in zip(("match_bal_acc", "match_hard_bal_acc"), matching_partners(emb, seed)):
        logits = pair_match_logits(model, pairs.data, rows, rows[partner], batch_size=batch_size, device=device)
        out[name] = balanced_accuracy(emb.match_prob, torch.sigmoid(logits))
    return out


def rerank_scores(model, scores: Tensor, cols: Tensor, logits: Tensor, score: str) -> Tensor:
    """``[Q, K]`` re-ranking scores of the candidates at ``cols`` (NaN elsewhere: never computed).

    Args:
        scores: ``[Q, K]`` first-stage cosine similarities; ``cols``: ``[Q, t]`` the columns re-ranked
            (:func:`~graphdel.evaluation.retrieval.rerank_columns`); ``logits``: ``[Q, t]`` the matching
            head's logits of those candidates.
        score: ``"head"`` (the logits) or ``"head+similarity"`` (BLIP's: the logits plus the contrastive
            logit, the cosine times ``model.temperature_scale()``).
    """
    if score not in RERANK_SCORES:
        raise ValueError(f"re-ranking score {score!r} is not one of {', '.join(RERANK_SCORES)}")
    out = torch.full_like(scores, float("nan")).scatter(1, cols, logits.float())
    if score == "head+similarity":
        out = out + scores * float(model.temperature_scale().detach())
    return out


def pool_rerank(model, pairs, emb: PairEmbeddings, distractors, distractor_emb: PairEmbeddings, *,
                pool_size: int = 64, top_k: int = RERANK_TOP_K, score: str = RERANK_SCORE, seed: int = 0,
                batch_size: int = 256, device: str | torch.device = "cpu") -> dict:
    """Pool-k graph->text retrieval of ``pairs`` re-ranked by ``score`` (see the module docstring).

    The pools are exactly those of :func:`~graphdel.evaluation.retrieval.pool_retrieval` (same distractors,
    same seed), so ``sim_g2t_mrr`` equals its ``g2t_mrr``. Costs ``N * top_k`` fusions.

    Args:
        pairs, distractors: :class:`~graphdel.data.pairs.PairSet` s of one :class:`~graphdel.data.pairs.PairData`.
        emb, distractor_emb: their embeddings under ``model``.
        score: ``"head"`` or ``"head+similarity"`` (the latter needs ``model.temperature_scale()``).
    """
    if score not in RERANK_SCORES:
        raise ValueError(f"re-ranking score {score!r} is not one of {', '.join(RERANK_SCORES)}")
    k = usable_pool_size(distractor_emb.items, pool_size)
    scores, _ = pool_candidate_scores(emb, distractor_emb, pool_size=pool_size, seed=seed)  # [N, k]
    idx = draw_distractors(emb.items, emb.rows, distractor_emb.items, pool_size=k, seed=seed)  # its distractors
    candidate_rows = torch.cat([emb.rows[:, None], distractor_emb.rows[idx]], 1)  # [N, k] corpus rows
    cols = rerank_columns(scores, top_k)  # [N, t]: the target, then the t - 1 most similar others
    logits = pair_match_logits(model, pairs.data, emb.rows[:, None].expand_as(cols).reshape(-1),
                               candidate_rows.gather(1, cols).reshape(-1), batch_size=batch_size, device=device)
    rerank = rerank_scores(model, scores, cols, logits.reshape(cols.shape), score)
    after, before = rank_summary(rerank_ranks(scores, rerank, top_k)), rank_summary(Ranks.of_scores(scores))
    return {"top_k": int(cols.size(1)), "k": k, "g2t_acc": after["hits@1"], "g2t_mrr": after["mrr"],
            "sim_g2t_acc": before["hits@1"], "sim_g2t_mrr": before["mrr"]}


def matching_metrics(model, sets: Mapping, distractors, *, pool_size: int = 64, top_k: int | None = None,
                     score: str | None = None, seed: int = 0, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> dict[str, dict]:
    """``{name: {"match_bal_acc", "match_hard_bal_acc", "rerank": {...}}}`` for each named, non-empty pair set
    (see the module docstring); ``distractors`` is the run's distractor set (a pair set of the same data).
    ``score`` and ``top_k`` default to the model's :func:`rerank_settings`."""
    default_score, default_top_k = rerank_settings(model)
    score, top_k = score or default_score, top_k or default_top_k
    distractor_emb = embed_pairs(model, distractors, batch_size=batch_size, device=device)
    can_pool = usable_pool_size(distractor_emb.items, pool_size) >= 2
    out = {}
    for name, pairs in sets.items():
        if pairs is None or len(pairs) == 0:
            continue
        emb = embed_pairs(model, pairs, batch_size=batch_size, with_matching=True, device=device)
        entry: dict = matching_accuracies(model, pairs, emb, seed=seed, batch_size=batch_size, device=device)
        if can_pool:
            entry["rerank"] = pool_rerank(model, pairs, emb, distractors, distractor_emb, pool_size=pool_size,
                                          top_k=top_k, score=score, seed=seed, batch_size=batch_size,
                                          device=device)
        out[name] = entry
    return out
