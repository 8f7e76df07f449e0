"""Beyond the first ranking: the hardest candidates of other items (the hard negatives of the matching head
and its training) and re-ranking each query's top ``k`` with a costlier scorer. Every name is imported from
:mod:`graphdel.evaluation.retrieval` too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from graphdel.evaluation.ranks import Ranks, check_2d


def hardest_of_other_items(queries: Tensor, candidates: Tensor, query_items: Tensor, candidate_items: Tensor,
                           k: int, *, block: int = 1024) -> Tensor:
    """``[Q, k]`` long: for each query the ``k`` candidates of highest dot product among the candidates of
    *another item*, most similar first (ties: lower index first).

    Why other items: a molecule's other captions are true captions, never negatives.

    Args:
        queries: ``[Q, d]`` normalised embeddings.
        candidates: ``[C, d]`` normalised embeddings.
        query_items: ``[Q]`` long item of each query.
        candidate_items: ``[C]`` long item of each candidate.
        k: how many (at least 1, at most the number of candidates of another item for every query).
        block: queries scored at a time (bounds memory to ``block x C`` floats).

    Raises:
        ValueError: ``k`` is out of range for some query.
    """
    query_items, candidate_items = query_items.reshape(-1).long(), candidate_items.reshape(-1).long()
    fewest = int(candidates.size(0) - torch.bincount(candidate_items).max()) if candidates.size(0) else 0
    if k < 1 or k > fewest:
        raise ValueError(f"k must be in 1..{fewest} (candidates of another item for every query), got {k}")
    out = []
    for s in range(0, queries.size(0), block):
        scores = queries[s:s + block].float() @ candidates.float().t()  # [b, C]
        same = query_items[s:s + block, None] == candidate_items[None, :]
        scores = scores.masked_fill(same, -math.inf)
        out.append(_top_k_stable(scores, k))
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def _top_k_stable(scores: Tensor, k: int) -> Tensor:
    """``[b, k]`` long: the columns of the ``k`` highest scores of each row of ``scores [b, C]``, highest
    first, equal scores in column order: exactly ``torch.sort(scores, descending=True, stable=True)``'s
    first ``k`` columns, so the result does not depend on ``block``. Why not that sort: it orders all ``C``
    columns of every row, which took 87% of mining the hard negatives of a 23,740-pair training set on the
    CPU; ``topk`` finds the k-th score, and only the ``k`` chosen columns are sorted."""
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # [b, 1] the k-th highest score of each row
    above = scores > kth
    tied = scores == kth
    # every column above the k-th score, then the tied ones in column order until the row holds k
    room = k - above.sum(1, keepdim=True)
    if bool((tied.sum(1, keepdim=True) == room).all()):  # no tie crosses the k-th place (the usual case)
        chosen = above | tied
    else:
        chosen = above | (tied & (tied.cumsum(1) <= room))
    columns = chosen.nonzero()[:, 1].view(scores.size(0), k)  # ascending column order within each row
    order = torch.sort(scores.gather(1, columns), dim=1, descending=True, stable=True).indices
    return columns.gather(1, order)


def rerank_columns(scores: Tensor, top_k: int) -> Tensor:
    """``[Q, min(top_k, K)]`` long: the columns of ``scores [Q, K]`` that a re-ranker of the top ``top_k``
    reads: column 0 (the target) first, then the ``top_k - 1`` other columns of highest score (stable
    descending order: equal scores keep column order).

    The target is listed even where it is not in the top ``top_k`` (then :func:`rerank_ranks` ignores the
    re-ranker for that query); listing it always keeps the shape fixed."""
    check_2d("scores", scores)
    k = min(top_k, scores.size(1))
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    others = torch.sort(scores[:, 1:], dim=1, descending=True, stable=True).indices[:, :k - 1] + 1
    return torch.cat([torch.zeros(scores.size(0), 1, dtype=torch.long, device=scores.device), others], 1)


def rerank_ranks(scores: Tensor, rerank_scores: Tensor, top_k: int) -> Ranks:
    """:class:`Ranks` of column 0 after re-ranking each query's top ``top_k`` candidates (ALBEF/BLIP style:
    rank by similarity, then re-order the best ``top_k`` by a costlier scorer such as the matching head).

    A query whose target is in its top ``top_k`` for sure (``above + tied < top_k`` under ``scores``: even
    with every tie placed before it) is ranked among the candidates of :func:`rerank_columns` by
    ``rerank_scores`` (ties counted as in :class:`Ranks`); any other query keeps its rank under ``scores``
    (beyond ``top_k``, where the re-ranker does not reach).

    Args:
        scores: ``[Q, K]`` first-stage scores, the target in column 0.
        rerank_scores: ``[Q, K]`` the re-ranker's scores of the same candidates; only the entries at
            :func:`rerank_columns` are read (the others may be anything, e.g. NaN: never computed).
        top_k: how many candidates are re-ranked (``>= 1``; 1 re-ranks nothing).
    """
    if rerank_scores.shape != scores.shape:
        raise ValueError(f"rerank_scores {tuple(rerank_scores.shape)} must have the shape of scores "
                         f"{tuple(scores.shape)}")
    base = Ranks.of_scores(scores)
    cols = rerank_columns(scores, top_k)
    picked = rerank_scores.gather(1, cols)
    target, others = picked[:, :1], picked[:, 1:]
    inside = (base.above + base.tied) < cols.size(1)
    above = torch.where(inside, (others > target).sum(1), base.above)
    tied = torch.where(inside, (others == target).sum(1), base.tied)
    return Ranks(above, tied)
