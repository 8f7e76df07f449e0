"""Derangements: for each pair, the position of a pair of *another item*; the engine's unrelated texts
(L_MD's targets, RandomPair) and the evaluation suite's mismatched pairs draw them the same way.

They sit in the scoring layer, below both the engine (:mod:`graphdel.unlearning.negatives` re-exports them)
and the evaluation that reads them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["derangement", "item_derangement", "redraw_same_item"]


def derangement(n: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random permutation of ``range(n)`` with no fixed point (``out[i] != i``), ``n >= 2``.

    Rejection sampling (about e tries on average); after 100 rejections, a random single cycle.
    """
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    ar = torch.arange(n)
    for _ in range(100):
        p = torch.randperm(n, generator=generator)
        if not bool((p == ar).any()):
            return p
    order = torch.randperm(n, generator=generator)  # pragma: no cover - probability ~ e^-100
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


def item_derangement(items: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``[n]`` long (CPU): for each pair ``i`` the position ``j[i]`` of a pair of *another item*,
    ``items[j[i]] != items[i]`` (so also ``j[i] != i``). ``items``: ``[n]`` item index of each pair.

    Why items and not positions: several captions of one molecule/image share an item, and the "unrelated"
    text of a pair must not be another true caption of it (docs/design.md: L_MD's target, RandomPair's
    random texts, the suite's mismatched pairs).

    Draw: a uniform :func:`derangement` of ``range(n)``; each position that landed on another pair of its own
    item is then redrawn uniformly among the pairs of other items. With ``n`` distinct items nothing is
    redrawn, so the result and the generator's use are exactly :func:`derangement`'s (runs on data with one
    text per item are unchanged); with repeated items the result need not be a permutation.

    Raises:
        ValueError: fewer than 2 distinct items: no pair of another item exists. Callers take unrelated
            texts from elsewhere (the unlearning losses: the matched Dr batch, see :func:`negative_texts`).
    """
    items = items.detach().reshape(-1).cpu()
    n = items.numel()
    if n < 2 or items.unique().numel() < 2:
        raise ValueError(f"an item-aware derangement needs at least 2 distinct items, got {n} pair(s) of "
                         f"{items.unique().numel()} item(s)")
    return redraw_same_item(derangement(n, generator), items, items, generator)


def redraw_same_item(index: Tensor, query: Tensor, pool: Tensor, generator: torch.Generator | None) -> Tensor:
    """``index [n]`` (into ``pool``) with every ``i`` where ``pool[index[i]] == query[i]`` redrawn uniformly
    among the positions of ``pool`` holding another item (``query [n]``, ``pool [m]``: items, CPU).

    Raises:
        ValueError: some ``query[i]`` has no other item in ``pool`` to draw from.
    """
    index = index.clone()
    for i in torch.nonzero(pool[index] == query).flatten().tolist():
        others = torch.nonzero(pool != query[i]).flatten()
        if others.numel() == 0:
            raise ValueError(f"every candidate pair is of item {int(query[i])}: no unrelated pair to draw")
        index[i] = others[torch.randint(others.numel(), (1,), generator=generator)]
    return index
