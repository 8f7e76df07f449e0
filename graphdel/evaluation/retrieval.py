"""Cross-modal retrieval: ranks, MRR and hits@k, over a whole split and within small pools.

All functions take *normalised* embeddings (``z_x`` from ``encode_x``, ``z_t`` from ``encode_text``) and
score a pair by the dot product (= cosine similarity). Pair ``i`` is ``(z_x[i], z_t[i])``.

Ranks are 1-based and *pessimistic-free*: the rank of the target is ``1 + (number of candidates whose score
is strictly greater than the target's score)``. Ties therefore never hurt the target (an exact duplicate
of the target embedding does not push it down); with continuous embeddings exact ties are rare.

Filtered setting: when several pairs share an item (e.g. several captions of one molecule), give each pair
a *group* id (the molecule). A candidate from the query's own group other than the target is another
correct answer, so it is not counted as outranking the target.

Two protocols are reported (DESIGN.md, FINDINGS.md):

* **full split** (:func:`retrieval_ranks`): every query against every candidate of the split. Depends on
  the split's size, so splits of different sizes are not comparable.
* **pool-k** (:func:`pool_retrieval`, default k = 64): the pairs are shuffled (seeded) and cut into pools
  of ``k``; each query is ranked among the candidates of its own pool only. Chance MRR is the same for
  every split (≈ 0.074 for k = 64), so Df, Dr, val and test are comparable. This is the headline metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["retrieval_ranks", "rank_summary", "pool_retrieval", "split_retrieval", "pool_partition"]

#: Upper bound on one block of scores, in bytes (float32). See :func:`retrieval_ranks`.
DEFAULT_MAX_BLOCK_BYTES = 512 * 2**20
#: Column slices a score block is counted in (bounds the temporaries of the comparison; see
#: :func:`retrieval_ranks`).
COUNT_CHUNKS = 8


def _check_2d(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor) or t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor [n, d], got {getattr(t, 'shape', type(t))}")


def retrieval_ranks(queries: Tensor, candidates: Tensor, target: Tensor, *,
                    query_groups: Tensor | None = None, candidate_groups: Tensor | None = None,
                    chunk_size: int = 4096, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> Tensor:
    """1-based rank of candidate ``target[q]`` for every query ``q``, by dot-product score.

    ``rank[q] = 1 + #{c : s(q, c) > s(q, target[q])  and  not (same group as q and c != target[q])}``
    with ``s(q, c) = <queries[q], candidates[c]>``. Ties count in the target's favour (strictly greater
    only). The target's own score is read from the same matrix product as its competitors', so an exact
    duplicate of the target candidate always ties with it.

    The scores are computed block by block: ``rows`` queries at a time against all ``C`` candidates, with
    ``rows = min(chunk_size, max(1, max_block_bytes // (4 * C)))``; each block's counts are then taken
    over :data:`COUNT_CHUNKS` column slices. The only Python loops are over blocks and slices, never over
    pairs. Results do not depend on the block size (up to float rounding of the matrix product).

    Memory: working memory ≤ ``rows × C × 4 bytes × 1.35`` on top of the inputs (``(Q + C) × d × 4`` bytes):
    the float32 score block, plus, for one column slice at a time, a bool mask, a second bool mask in the
    filtered setting and the int64 copy that ``sum`` makes of a bool tensor (10 bytes per entry of a slice
    of ``C / 8`` columns: 0.31 of the block). Counting the whole block at once would make that int64 copy
    of the whole block (2x the score block; measured). ``max_block_bytes`` (default 512 MiB) caps the
    score block whatever ``chunk_size`` says, so the defaults stay under ~700 MiB of working memory for
    any ``C``.

    Benchmark (``python bench/memory.py``; CPU, 2 shared cores, torch 2.13, float32, d = 256,
    Q = C = 100,000, unit vectors, groups given, defaults): ``rows`` = 1342, peak RSS of the whole process
    1.44 GiB, 0.65 GiB of it before the call (torch, the two 100 MB inputs); 166 s. Counting whole blocks,
    as this function did before, peaked at 1.78 GiB. Not part of the test-suite.

    Args:
        queries: ``[Q, d]`` float, normalised query embeddings.
        candidates: ``[C, d]`` float, normalised candidate embeddings (same device as ``queries``).
        target: ``[Q]`` long, index into ``candidates`` of each query's correct answer.
        query_groups: ``[Q]`` long group id of each query (filtered setting), or ``None``.
        candidate_groups: ``[C]`` long group id of each candidate; given together with ``query_groups``.
        chunk_size: maximum number of queries per block (>= 1).
        max_block_bytes: maximum size of one float32 score block, in bytes.

    Returns:
        ``[Q]`` long tensor of ranks in ``1..C``, on the device of ``queries``.
    """
    _check_2d("queries", queries)
    _check_2d("candidates", candidates)
    if queries.size(1) != candidates.size(1):
        raise ValueError(f"queries have dimension {queries.size(1)} but candidates {candidates.size(1)}")
    n_q, n_c = queries.size(0), candidates.size(0)
    target = torch.as_tensor(target, device=queries.device).long().reshape(-1)
    if target.numel() != n_q:
        raise ValueError(f"target has {target.numel()} entries for {n_q} queries")
    if n_q == 0:
        return torch.zeros(0, dtype=torch.long, device=queries.device)
    if n_c == 0:
        raise ValueError("no candidates to rank against")
    if int(target.min()) < 0 or int(target.max()) >= n_c:
        raise ValueError(f"target indices must lie in [0, {n_c}), got "
                         f"[{int(target.min())}, {int(target.max())}]")
    if (query_groups is None) != (candidate_groups is None):
        raise ValueError("give both query_groups and candidate_groups, or neither")
    if query_groups is not None:
        query_groups = torch.as_tensor(query_groups, device=queries.device).long().reshape(-1)
        candidate_groups = torch.as_tensor(candidate_groups, device=queries.device).long().reshape(-1)
        if query_groups.numel() != n_q or candidate_groups.numel() != n_c:
            raise ValueError(f"groups must have {n_q} (queries) and {n_c} (candidates) entries, got "
                             f"{query_groups.numel()} and {candidate_groups.numel()}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = max(1, min(chunk_size, max_block_bytes // (4 * n_c)))

    cand = candidates.to(device=queries.device, dtype=torch.float32)
    cand_t = cand.t()
    cols = max(1, -(-n_c // COUNT_CHUNKS))
    ranks = torch.empty(n_q, dtype=torch.long, device=queries.device)
    for start in range(0, n_q, rows):
        stop = min(start + rows, n_q)
        scores = queries[start:stop].to(torch.float32) @ cand_t  # [r, C]
        tgt = target[start:stop]
        tgt_score = scores.gather(1, tgt.unsqueeze(1))  # [r, 1], from the same product
        count = torch.zeros(stop - start, dtype=torch.long, device=queries.device)
        for c0 in range(0, n_c, cols):  # column slices: the comparison's temporaries stay small
            above = scores[:, c0:c0 + cols] > tgt_score  # [r, cols] bool
            if query_groups is not None:
                # Same-group candidates are other correct answers; the target itself is never "above".
                above &= candidate_groups[c0:c0 + cols].unsqueeze(0) != query_groups[start:stop].unsqueeze(1)
            count += above.sum(dim=1)
            del above
        ranks[start:stop] = count + 1
        del scores
    return ranks


def rank_summary(ranks: Tensor | np.ndarray | list) -> dict[str, float]:
    """MRR and hits@k of 1-based ranks.

    Returns:
        ``{"mrr": mean(1 / rank), "hits@1": fraction of ranks <= 1, "hits@10": fraction <= 10}``.
    """
    r = torch.as_tensor(ranks).detach().cpu().double().reshape(-1)
    if r.numel() == 0:
        raise ValueError("rank_summary needs at least one rank")
    if bool((r < 1).any()):
        raise ValueError("ranks are 1-based; got a rank < 1")
    return {
        "mrr": float((1.0 / r).mean()),
        "hits@1": float((r <= 1).double().mean()),
        "hits@10": float((r <= 10).double().mean()),
    }


def pool_partition(n: int, pool_size: int = 64, *, seed: int = 0) -> list[np.ndarray]:
    """Seeded partition of ``range(n)`` into pools for pool-k retrieval.

    The indices are shuffled with ``numpy.random.default_rng(seed)`` and cut into ``max(1, n // pool_size)``
    pools: all pools have ``pool_size`` items except the last, which also takes the ``n % pool_size``
    left-over items (so it has between ``pool_size`` and ``2 * pool_size - 1``). When
    ``n < pool_size`` there is a single pool of all ``n`` items. No pool is ever smaller than
    ``min(n, pool_size)``, so chance level is the same everywhere up to the one enlarged pool.
    """
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    if n <= 0:
        return []
    perm = np.random.default_rng(seed).permutation(n)
    n_pools = max(1, n // pool_size)
    pools = [perm[i * pool_size:(i + 1) * pool_size] for i in range(n_pools - 1)]
    pools.append(perm[(n_pools - 1) * pool_size:])
    return pools


def pool_retrieval(z_x: Tensor, z_t: Tensor, *, pool_size: int = 64, seed: int = 0,
                   groups: Tensor | None = None) -> dict[str, float]:
    """Retrieval within seeded pools of ``pool_size`` pairs, both directions.

    Pools come from :func:`pool_partition` (the last partial pool is merged into the previous one; fewer
    than ``pool_size`` pairs make one pool). Each graph is ranked against the texts of its pool (g2t)
    and each text against the graphs of its pool (t2g), filtered by ``groups`` if given. Metrics are
    averaged over all queries (not over pools).

    Args:
        z_x: ``[N, d]`` normalised graph embeddings.
        z_t: ``[N, d]`` normalised text embeddings, ``z_t[i]`` paired with ``z_x[i]``.
        pool_size: pool size ``k``.
        seed: seed of the shuffle.
        groups: optional ``[N]`` long group id per pair (e.g. the molecule of each caption).

    Returns:
        ``{"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc"}`` (acc = hits@1).
    """
    _check_2d("z_x", z_x)
    _check_2d("z_t", z_t)
    if z_x.shape != z_t.shape:
        raise ValueError(f"z_x {tuple(z_x.shape)} and z_t {tuple(z_t.shape)} must have the same shape")
    n = z_x.size(0)
    if n == 0:
        raise ValueError("pool_retrieval needs at least one pair")
    if groups is not None:
        groups = torch.as_tensor(groups, device=z_x.device).long().reshape(-1)
        if groups.numel() != n:
            raise ValueError(f"groups has {groups.numel()} entries for {n} pairs")
    g2t, t2g = [], []
    for pool in pool_partition(n, pool_size, seed=seed):
        idx = torch.as_tensor(pool, dtype=torch.long, device=z_x.device)
        x, t = z_x[idx], z_t[idx]
        tgt = torch.arange(idx.numel(), device=z_x.device)
        g = None if groups is None else groups[idx]
        g2t.append(retrieval_ranks(x, t, tgt, query_groups=g, candidate_groups=g))
        t2g.append(retrieval_ranks(t, x, tgt, query_groups=g, candidate_groups=g))
    s_g2t, s_t2g = rank_summary(torch.cat(g2t)), rank_summary(torch.cat(t2g))
    return {"g2t_mrr": s_g2t["mrr"], "t2g_mrr": s_t2g["mrr"],
            "g2t_acc": s_g2t["hits@1"], "t2g_acc": s_t2g["hits@1"]}


def split_retrieval(z_x: Tensor, z_t: Tensor, *, groups: Tensor | None = None, pool_size: int = 64,
                    seed: int = 0, chunk_size: int = 4096) -> dict[str, Any]:
    """All retrieval metrics of one split, in the layout stored in ``metrics.json``.

    Returns:
        ``{"g2t": {"mrr", "hits@1", "hits@10"}, "t2g": {...}, f"pool{pool_size}": {"g2t_mrr", "t2g_mrr",
        "g2t_acc", "t2g_acc"}, "n": N}`` where g2t/t2g rank each query among the whole split (filtered by
        ``groups``) and the pool entry is :func:`pool_retrieval`.
    """
    _check_2d("z_x", z_x)
    _check_2d("z_t", z_t)
    if z_x.shape != z_t.shape:
        raise ValueError(f"z_x {tuple(z_x.shape)} and z_t {tuple(z_t.shape)} must have the same shape")
    n = z_x.size(0)
    target = torch.arange(n, device=z_x.device)
    kw = {"query_groups": groups, "candidate_groups": groups, "chunk_size": chunk_size}
    g2t = retrieval_ranks(z_x, z_t, target, **kw)
    t2g = retrieval_ranks(z_t, z_x, target, **kw)
    return {
        "g2t": rank_summary(g2t),
        "t2g": rank_summary(t2g),
        f"pool{pool_size}": pool_retrieval(z_x, z_t, pool_size=pool_size, seed=seed, groups=groups),
        "n": int(n),
    }
