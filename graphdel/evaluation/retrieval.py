"""Cross-modal retrieval scores: one definition of a rank, and the pool-k score every part of graphdel uses.

All functions take *normalised* embeddings (``z_x`` from ``encode_x``, ``z_t`` from ``encode_text``) and
score a pair by the dot product (= cosine similarity). Pair ``i`` is ``(z_x[i], z_t[i])``.

**Ranks and ties.** A query's rank among its candidates is ``1 + above + U`` where ``above`` counts the
candidates scored strictly higher than the target and ``U`` is uniform on ``0..tied`` for the ``tied``
candidates scored exactly as high: ties are broken at random, so they neither help nor hurt the target on
average (:class:`Ranks`). MRR is the *expected* reciprocal rank under that tie-break, so a collapsed model
(every candidate tied) scores chance level, never 1.0.

**Filtered setting.** Candidates from the query's own group (several captions of one molecule; the group is
the item) other than the target are other correct answers: they never count against the query.

**Pool-k** (:func:`pool_retrieval`, ``k = 64`` by default; ``pool64`` in ``metrics.json``) is *the*
retrieval score of graphdel: training's early stopping, unlearning's stopping and checkpoint selection,
``metrics.json``, the report, the membership attack's rank/loss features and ``graphdel verify`` all use it.
Each query pair is ranked against exactly ``k`` candidates: its own partner and ``k - 1`` distractors drawn
from a fixed **distractor set** of pairs the model never trained on (a run's calibration and validation
pairs, :meth:`graphdel.evaluation.run_data.Prepared.distractor_rows`). The draw is seeded by ``(seed, corpus
row of the query)`` (:func:`draw_distractors`), so a pair meets the same distractors whatever split or
request it is scored in and whichever model scores it; distractors of the query's own item are never drawn.
``g2t`` ranks ``x_i`` among ``t_i`` and the distractors' texts, ``t2g`` ranks ``t_i`` among ``x_i`` and the
distractors' items. Chance level is therefore the same for every split and every request size, ``|Df| = 1``
included: MRR ``H_k / k`` (0.0741 for ``k = 64``; :func:`chance_mrr`), hits@1 ``1 / k``.

The **full-split** scores (:func:`split_retrieval`'s ``g2t`` / ``t2g``: every query against every candidate
of its split) are kept for the record; they depend on the split's size, so splits of different sizes are
not comparable by them.

:class:`Ranks` and their summary are in :mod:`graphdel.evaluation.ranks`, the hardest candidates of other
items and re-ranking in :mod:`graphdel.evaluation.rerank`; every name of both is imported from here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphdel.evaluation.ranks import Ranks, chance_mrr, check_2d, rank_summary, weighted_mean_error
from graphdel.evaluation.rerank import hardest_of_other_items, rerank_columns, rerank_ranks

__all__ = ["Ranks", "PairEmbeddings", "retrieval_ranks", "rank_summary", "chance_mrr", "draw_distractors",
           "pool_g2t_reciprocal",
           "usable_pool_size", "pool_candidate_scores", "pool_g2t_mrr", "pool_retrieval", "split_retrieval",
           "rerank_columns", "rerank_ranks", "hardest_of_other_items"]

#: Upper bound on one block of scores, in bytes (float32). See :func:`retrieval_ranks`.
DEFAULT_MAX_BLOCK_BYTES = 512 * 2**20
#: Column slices a score block is counted in (bounds the temporaries of the comparison; see
#: :func:`retrieval_ranks`).
COUNT_CHUNKS = 8


@dataclass
class PairEmbeddings:
    """Embeddings of ``N`` pairs.

    Attributes:
        z_x: ``[N, d]`` normalised item embeddings; ``None`` for texts embedded alone, which serve only as
            graph->text distractors (:func:`pool_g2t_mrr`).
        z_t: ``[N, d]`` normalised text embeddings.
        items: ``[N]`` long item index of each pair (pairs of one item are each other's positives).
        rows: ``[N]`` corpus rows (they seed each pair's distractors).
        match_prob: ``[N]`` matching-head probability of each true pair (``None`` unless asked for).
    """

    z_x: Tensor | None
    z_t: Tensor
    items: Tensor
    rows: Tensor
    match_prob: Tensor | None = None

    def __len__(self) -> int:
        return int(self.z_t.size(0))


def retrieval_ranks(queries: Tensor, candidates: Tensor, target: Tensor, *,
                    query_groups: Tensor | None = None, candidate_groups: Tensor | None = None,
                    chunk_size: int = 4096, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> Ranks:
    """:class:`Ranks` of candidate ``target[q]`` for every query ``q`` among all candidates, by dot product.

    ``above[q] = #{c : s(q, c) > s(q, target[q]), c not another answer of q's group}`` and ``tied[q]`` the
    same with ``=`` and the target itself left out, with ``s(q, c) = <queries[q], candidates[c]>``. The
    target's own score is read from the same matrix product as its competitors', so an exact duplicate of
    the target candidate ties with it.

    The scores are computed block by block: ``rows`` queries at a time against all ``C`` candidates, with
    ``rows = min(chunk_size, max(1, max_block_bytes // (4 * C)))``; each block's counts are then taken
    over :data:`COUNT_CHUNKS` column slices. The only Python loops are over blocks and slices, never over
    pairs. Results do not depend on the block size (up to float rounding of the matrix product).

    Memory: working memory ≤ ``rows × C × 4 bytes × 1.6`` on top of the inputs: the float32 score block,
    plus, for one column slice at a time, two bool masks (above, tied), a group mask in the filtered
    setting and the int64 copies that ``sum`` makes. ``max_block_bytes`` (default 512 MiB) caps the score
    block whatever ``chunk_size`` says. ``python bench/memory.py`` measures it at 100,000 x 100,000.

    Args:
        queries: ``[Q, d]`` float, normalised query embeddings.
        candidates: ``[C, d]`` float, normalised candidate embeddings (same device as ``queries``).
        target: ``[Q]`` long, index into ``candidates`` of each query's correct answer.
        query_groups: ``[Q]`` long group id of each query (filtered setting), or ``None``.
        candidate_groups: ``[C]`` long group id of each candidate; given together with ``query_groups``.
        chunk_size: maximum number of queries per block (>= 1).
        max_block_bytes: maximum size of one float32 score block, in bytes.

    Returns:
        :class:`Ranks` of ``Q`` queries, on the device of ``queries``.
    """
    target = _checked_target(queries, candidates, target)
    n_q, n_c = queries.size(0), candidates.size(0)
    if n_q == 0:
        empty = torch.zeros(0, dtype=torch.long, device=queries.device)
        return Ranks(empty, empty.clone())
    query_groups, candidate_groups = _checked_groups(query_groups, candidate_groups, n_q, n_c, queries.device)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = max(1, min(chunk_size, max_block_bytes // (4 * n_c)))

    cand = candidates.to(device=queries.device, dtype=torch.float32)
    cand_t = cand.t()
    cols = max(1, -(-n_c // COUNT_CHUNKS))
    above = torch.empty(n_q, dtype=torch.long, device=queries.device)
    tied = torch.empty(n_q, dtype=torch.long, device=queries.device)
    for start in range(0, n_q, rows):
        stop = min(start + rows, n_q)
        scores = queries[start:stop].to(torch.float32) @ cand_t  # [r, C]
        groups = None if query_groups is None else query_groups[start:stop]
        above[start:stop], tied[start:stop] = _block_counts(scores, target[start:stop], groups, candidate_groups,
                                                            cols)
        del scores
    return Ranks(above, tied)


def _checked_target(queries: Tensor, candidates: Tensor, target) -> Tensor:
    """``target`` as ``[Q]`` long on the device of ``queries`` [Q, d], after checking the shapes of the
    embeddings and, when there are queries, that each target indexes ``candidates [C, d]``."""
    check_2d("queries", queries)
    check_2d("candidates", candidates)
    if queries.size(1) != candidates.size(1):
        raise ValueError(f"queries have dimension {queries.size(1)} but candidates {candidates.size(1)}")
    n_q, n_c = queries.size(0), candidates.size(0)
    target = torch.as_tensor(target, device=queries.device).long().reshape(-1)
    if target.numel() != n_q:
        raise ValueError(f"target has {target.numel()} entries for {n_q} queries")
    if n_q and n_c == 0:
        raise ValueError("no candidates to rank against")
    if n_q and (int(target.min()) < 0 or int(target.max()) >= n_c):
        raise ValueError(f"target indices must lie in [0, {n_c}), got "
                         f"[{int(target.min())}, {int(target.max())}]")
    return target


def _checked_groups(query_groups, candidate_groups, n_q: int, n_c: int, device: torch.device
                    ) -> tuple[Tensor | None, Tensor | None]:
    """``(query_groups [Q], candidate_groups [C])`` as long tensors on ``device``, or ``(None, None)``
    (both or neither must be given)."""
    if (query_groups is None) != (candidate_groups is None):
        raise ValueError("give both query_groups and candidate_groups, or neither")
    if query_groups is not None:
        query_groups = torch.as_tensor(query_groups, device=device).long().reshape(-1)
        candidate_groups = torch.as_tensor(candidate_groups, device=device).long().reshape(-1)
        if query_groups.numel() != n_q or candidate_groups.numel() != n_c:
            raise ValueError(f"groups must have {n_q} (queries) and {n_c} (candidates) entries, got "
                             f"{query_groups.numel()} and {candidate_groups.numel()}")
    return query_groups, candidate_groups


def _block_counts(scores: Tensor, tgt: Tensor, query_groups: Tensor | None, candidate_groups: Tensor | None,
                  cols: int) -> tuple[Tensor, Tensor]:
    """``(above [r], tied [r])`` long of a block of ``r`` queries: ``scores [r, C]`` against all candidates,
    ``tgt [r]`` the target of each, ``query_groups [r]`` and ``candidate_groups [C]`` (or None) the groups;
    counted ``cols`` columns at a time."""
    tgt_score = scores.gather(1, tgt.unsqueeze(1))  # [r, 1], from the same product
    n_above = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    n_tied = torch.zeros_like(n_above)
    for c0 in range(0, scores.size(1), cols):  # column slices: the comparison's temporaries stay small
        block = scores[:, c0:c0 + cols]
        gt, eq = block > tgt_score, block == tgt_score  # [r, cols] bool
        if query_groups is not None:
            # Same-group candidates are other correct answers (the target among them): never counted.
            other = candidate_groups[c0:c0 + cols].unsqueeze(0) != query_groups.unsqueeze(1)
            gt &= other
            eq &= other
        n_above += gt.sum(dim=1)
        n_tied += eq.sum(dim=1)
        del gt, eq
    if query_groups is None:
        n_tied -= 1  # the target ties with itself
    else:  # a target outside the query's group (unusual) was counted as tied with itself
        n_tied -= (candidate_groups[tgt] != query_groups).long()
    return n_above, n_tied.clamp(min=0)  # a NaN target score equals nothing, itself included


#: Bytes of drawn indices :func:`draw_distractors` remembers (least recently used dropped first): 8 MiB
#: hold a 1,000-pair request's draws under 8 seeds twice over; a draw larger than this is not remembered.
DRAW_MEMO_BYTES = 8 * 2**20
_draw_memo: OrderedDict[tuple[bytes, int, int], np.ndarray] = OrderedDict()


def draw_distractors(query_items: Tensor, query_rows: Tensor, distractor_items: Tensor, *, pool_size: int = 64,
                     seed: int = 0) -> Tensor:
    """``[Q, pool_size - 1]`` indices into the distractor set: each query's distractors.

    Query ``q``'s distractors are the first ``pool_size - 1`` entries of a permutation of the distractor
    set drawn with ``numpy.random.default_rng((seed, query_rows[q]))`` that are not of the query's own
    item: the same pair gets the same distractors under every model and in every split.

    The draw depends on its arguments' values alone, and an unlearning run scores the same pairs against
    the same distractors at every evaluation, so recent draws are remembered (:data:`DRAW_MEMO_BYTES`)
    and a copy returned: drawing them anew took 5.3 s of a 20% request's run
    (docs/experiments/2026-12-07-molecule-partial-cache.md).

    Raises:
        ValueError: a query has fewer than ``pool_size - 1`` distractors of other items (the error names
            its corpus row).
    """
    q_items = torch.as_tensor(query_items).long().reshape(-1).cpu().numpy()
    q_rows = torch.as_tensor(query_rows).long().reshape(-1).cpu().numpy()
    d_items = torch.as_tensor(distractor_items).long().reshape(-1).cpu().numpy()
    if q_items.size != q_rows.size:
        raise ValueError(f"{q_items.size} query items but {q_rows.size} query rows")
    if pool_size < 2:
        raise ValueError(f"pool_size must be >= 2, got {pool_size}")
    digest = hashlib.blake2b(digest_size=32)
    for part in (q_items, q_rows, np.int64(q_items.size), d_items):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = (digest.digest(), pool_size, seed)
    if key in _draw_memo:
        _draw_memo.move_to_end(key)
        return torch.from_numpy(_draw_memo[key].copy())
    out = _draw(q_items, q_rows, d_items, pool_size - 1, seed)
    if out.nbytes <= DRAW_MEMO_BYTES:
        _draw_memo[key] = out
        while sum(a.nbytes for a in _draw_memo.values()) > DRAW_MEMO_BYTES:
            _draw_memo.popitem(last=False)
    return torch.from_numpy(out.copy())


def _draw(q_items: np.ndarray, q_rows: np.ndarray, d_items: np.ndarray, need: int, seed: int) -> np.ndarray:
    """``[Q, need]`` int64: the draw of :func:`draw_distractors`, one seeded permutation per query."""
    out = np.empty((q_items.size, need), dtype=np.int64)
    for q, (item, row) in enumerate(zip(q_items.tolist(), q_rows.tolist())):
        if row < 0:
            raise ValueError(f"query {q} has a negative corpus row {row}")
        perm = np.random.default_rng((seed, row)).permutation(d_items.size)
        allowed = perm[d_items[perm] != item]
        if allowed.size < need:
            raise ValueError(f"pool-{need + 1} needs {need} distractors of other items for the pair at "
                             f"corpus row {row}; the distractor set has {allowed.size}")
        out[q] = allowed[:need]
    return out


def usable_pool_size(distractor_items: Tensor, pool_size: int) -> int:
    """``pool_size``, or less when the distractor set cannot give every possible query ``pool_size - 1``
    distractors of other items: ``min(pool_size, 1 + M - (most pairs of one item))`` for ``M`` distractors.
    It depends on the distractor set alone, so every split and request of a run is scored with the same
    ``k``; only corpora of a few dozen pairs get less than 64 (a run's distractor set holds up to 512)."""
    items = torch.as_tensor(distractor_items).reshape(-1)
    if items.numel() == 0:
        return 1
    most = int(torch.unique(items, return_counts=True)[1].max())
    return min(pool_size, 1 + items.numel() - most)


#: Queries scored at a time by :func:`pool_candidate_scores`, one matrix product of the block with the
#: distinct distractor rows each: on the CPU 1,024 took 0.57-0.59x the time of 64 on a run's sets
#: (bench/pool_product.py; docs/experiments/2026-12-07-pool-matrix-product.md).
POOL_BLOCK = 1024
#: A pool candidate whose product with the query lies within this share of ``|query| * |true candidate|``
#: of the true candidate's score is compared with the true candidate element by element (see
#: :func:`pool_candidate_scores`). The rounding of a width-d product is about ``d * 6e-8`` of that.
TIE_CHECK_SHARE = 1e-3


def pool_candidate_scores(queries: PairEmbeddings, distractors: PairEmbeddings, *, pool_size: int = 64,
                          seed: int = 0, block: int = POOL_BLOCK) -> tuple[Tensor, Tensor | None]:
    """The scores of each query's pool: ``(g2t [Q, k], t2g [Q, k])`` float32, the true pair in column 0.

    ``g2t[q] = <z_x[q], (z_t[q], distractor texts...)>``, ``t2g[q] = <z_t[q], (z_x[q], distractor items...)>``
    with the distractors of :func:`draw_distractors` and ``k`` = ``pool_size`` (less only when the
    distractor set is too small; see :func:`pool_retrieval`). Computed ``block`` queries at a time
    (default :data:`POOL_BLOCK`).
    ``t2g`` is ``None`` for distractor texts embedded alone (``distractors.z_x is None``).

    A block is scored by one matrix product with the *distinct* distractor rows, each pool then gathering
    its columns; the true pair's score is a row-wise sum. Ties stay exact: identical distractors share
    one column, and a candidate equal to the true one (element by element; checked wherever the two scores
    are near, :data:`TIE_CHECK_SHARE`) is given the true score itself. A product's rounding depends on
    the block's row count, so another ``block`` may change a score in its last bits (never a tie).
    Why a product: gathering each pool's ``k - 1`` embeddings and summing row-wise products took 47-70 ms
    per 1,000 queries where the product takes 2-3 ms (docs/experiments/2026-12-07-pool-matrix-product.md).
    """
    check_2d("z_x", queries.z_x)
    check_2d("z_t", queries.z_t)
    if queries.z_x.shape != queries.z_t.shape:
        raise ValueError(f"z_x {tuple(queries.z_x.shape)} and z_t {tuple(queries.z_t.shape)} must have the "
                         "same shape")
    k = usable_pool_size(distractors.items, pool_size)
    if k < 2:
        raise ValueError(f"the distractor set ({len(distractors)} pairs) has no pairs of two different items: "
                         "pool retrieval has nothing to rank against")
    idx = draw_distractors(queries.items, queries.rows, distractors.items, pool_size=k, seed=seed)
    device = queries.z_x.device
    # identical distractors share one column of the product (so they tie exactly); [U, d] and [D] each
    texts = torch.unique(distractors.z_t.float().to(device), dim=0, return_inverse=True)
    items = (None if distractors.z_x is None
             else torch.unique(distractors.z_x.float().to(device), dim=0, return_inverse=True))
    g2t, t2g = [], []
    for s in range(0, len(queries), block):
        zx, zt = queries.z_x[s:s + block].float(), queries.z_t[s:s + block].float()
        pick = idx[s:s + block].to(device)
        g2t.append(_pool_scores(zx, zt, texts, pick))
        if items is not None:
            t2g.append(_pool_scores(zt, zx, items, pick))
    return torch.cat(g2t), (torch.cat(t2g) if items is not None else None)


def _pool_scores(query: Tensor, own: Tensor, candidates: tuple[Tensor, Tensor], pick: Tensor) -> Tensor:
    """``[B, 1 + P]``: ``<query[b], own[b]>`` then ``<query[b], candidate pick[b, j]>``. ``query``, ``own``
    ``[B, d]``; ``candidates`` ``(distinct [U, d], column [D])``, the distinct rows of the ``[D, d]``
    candidate set and each candidate's row among them; ``pick`` ``[B, P]`` long indices into the set."""
    distinct, column = candidates
    true = (query * own).sum(-1)  # [B]
    cols = column[pick]  # [B, P]
    scores = (query @ distinct.T).gather(1, cols)  # [B, P]
    bound = TIE_CHECK_SHARE * query.norm(dim=-1) * own.norm(dim=-1)
    near = (scores - true[:, None]).abs() <= bound[:, None]
    if bool(near.any()):
        rows, slots = near.nonzero(as_tuple=True)
        equal = (distinct[cols[rows, slots]] == own[rows]).all(-1)
        rows, slots = rows[equal], slots[equal]
        scores[rows, slots] = true[rows]
    return torch.cat([true[:, None], scores], 1)


def pool_g2t_mrr(queries: PairEmbeddings, distractors: PairEmbeddings, *, pool_size: int = 64,
                 seed: int = 0) -> float:
    """The ``g2t_mrr`` of :func:`pool_retrieval`, alone: the distractors' texts are all it reads, so they may
    be embedded without their items (``distractors.z_x`` ``None``), which is what selection and early
    stopping score with."""
    if len(queries) == 0:
        raise ValueError("pool_g2t_mrr needs at least one pair")
    return float(pool_g2t_reciprocal(queries, distractors, pool_size=pool_size, seed=seed).mean())


def pool_g2t_reciprocal(queries: PairEmbeddings, distractors: PairEmbeddings, *, pool_size: int = 64,
                        seed: int = 0) -> Tensor:
    """``[Q]`` float64: each query's expected graph->text reciprocal rank in its pool (the terms whose mean
    is :func:`pool_g2t_mrr`), in the order of ``queries``; for scores that weigh pairs unequally."""
    g2t, _ = pool_candidate_scores(queries, distractors, pool_size=pool_size, seed=seed)
    return Ranks.of_scores(g2t).reciprocal()


def pool_retrieval(queries: PairEmbeddings, distractors: PairEmbeddings, *, pool_size: int = 64,
                   seed: int = 0) -> dict[str, float]:
    """Pool-k retrieval of ``queries`` in both directions (the module docstring defines it).

    Args:
        queries: the pairs scored (``z_x``, ``z_t``, ``items``, ``rows``); at least one.
        distractors: the run's distractor set, embedded by the same model.
        pool_size: ``k``. A distractor set too small to give every query ``k - 1`` distractors of other
            items (only on corpora of a few dozen pairs) lowers ``k`` to what it can give; the result's
            ``k`` says which was used.
        seed: seed of the distractor draw.

    Returns:
        ``{"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc", "k", "chance_mrr"}`` (acc = hits@1), averaged over
        queries, and with two queries or more ``g2t_mrr_se``, the standard error of ``g2t_mrr`` over the
        queries (``sd / sqrt(Q)`` of their reciprocal ranks; :func:`weighted_mean_error`). Why: a split's MRR
        is a mean over a few hundred pairs whose reciprocal ranks spread widely (sd ~0.3), so two splits'
        MRRs, e.g. the deleted pairs' against the never-trained calibration pairs', differ by a few hundredths
        by sampling alone.
    """
    if len(queries) == 0:
        raise ValueError("pool_retrieval needs at least one pair")
    if distractors.z_x is None:
        raise ValueError("pool_retrieval ranks in both directions: its distractors need their item "
                         "embeddings (texts embedded alone serve pool_g2t_mrr)")
    g2t, t2g = pool_candidate_scores(queries, distractors, pool_size=pool_size, seed=seed)
    g2t_ranks = Ranks.of_scores(g2t)
    s_g2t, s_t2g = rank_summary(g2t_ranks), rank_summary(Ranks.of_scores(t2g))
    k = int(g2t.size(1))
    out = {"g2t_mrr": s_g2t["mrr"], "t2g_mrr": s_t2g["mrr"], "g2t_acc": s_g2t["hits@1"],
           "t2g_acc": s_t2g["hits@1"], "k": k, "chance_mrr": chance_mrr(k)}
    if len(queries) >= 2:
        rr = g2t_ranks.reciprocal()
        out["g2t_mrr_se"] = weighted_mean_error(rr, torch.ones_like(rr))
    return out


def split_retrieval(queries: PairEmbeddings, distractors: PairEmbeddings | None = None, *, pool_size: int = 64,
                    seed: int = 0, chunk_size: int = 4096) -> dict[str, Any]:
    """All retrieval metrics of one split, in the layout stored in ``metrics.json``.

    Returns:
        ``{"g2t": {"mrr", "hits@1", "hits@10"}, "t2g": {...}, "n": N}`` where g2t/t2g rank each query among
        the whole split (filtered by item), plus ``f"pool{pool_size}"``: :func:`pool_retrieval` when a
        distractor set is given that can rank anything (pairs of two items at least).
    """
    check_2d("z_x", queries.z_x)
    check_2d("z_t", queries.z_t)
    if queries.z_x.shape != queries.z_t.shape:
        raise ValueError(f"z_x {tuple(queries.z_x.shape)} and z_t {tuple(queries.z_t.shape)} must have the "
                         "same shape")
    n = len(queries)
    target = torch.arange(n, device=queries.z_x.device)
    kw = {"query_groups": queries.items, "candidate_groups": queries.items, "chunk_size": chunk_size}
    out: dict[str, Any] = {
        "g2t": rank_summary(retrieval_ranks(queries.z_x, queries.z_t, target, **kw)),
        "t2g": rank_summary(retrieval_ranks(queries.z_t, queries.z_x, target, **kw)),
    }
    if distractors is not None and usable_pool_size(distractors.items, pool_size) >= 2:
        out[f"pool{pool_size}"] = pool_retrieval(queries, distractors, pool_size=pool_size, seed=seed)
    out["n"] = int(n)
    return out
