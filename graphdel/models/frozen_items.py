"""Item embeddings of a model whose whole item side is frozen, served per item from a table.

Why: when an unlearning run updates only the text side of a molecule model (the molecule recommendation
updates the text projection alone), every molecule's item embedding is the same each time it is computed,
and the student and its frozen teacher compute the same one. The graph encoder's node-state cache
(:class:`graphdel.encoders.graph.FrozenTrunkCache`) spares the message passing, but each call still
gathered, pooled and projected the cached states: 1.0 ms of a 1.5-ms call for 32 molecules on one thread
(docs/experiments/2026-12-08-molecule-item-table.md). A table row is read instead.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

#: The largest table kept, in bytes: one row per item of the item store (300,000 molecules of width 256 in
#: float32 are 307 MB); a larger store is served without a table.
MAX_TABLE_BYTES = 256 * 2**20


class FrozenItemEmbeddings:
    """Each item's embedding ``[width]``, computed once per item store row and shared by the models whose
    item sides are equal (an unlearning run's student with a frozen item side and its teacher).

    An item is identified by its row in the item store that built the batch (``batch.item_index`` and
    ``batch.item_store``, set by :meth:`graphdel.data.molecules.MoleculeGraphs.batch`); batches without them
    are computed in full. The table checks on every use that no watched parameter or buffer was changed in
    place (tensor versions).

    Args:
        watched: the parameters and buffers of the item side of every model sharing the table.
        max_bytes: the largest table, one row per item of a store.
    """

    def __init__(self, watched: list[Tensor], max_bytes: int = MAX_TABLE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._watched = watched
        self._versions = [t._version for t in watched]
        self._tables: dict[int, tuple[object, Tensor, Tensor]] = {}  # id(store) -> (store, rows, known)
        self.hits = self.misses = 0

    def embeddings(self, batch, compute: Callable[[object], Tensor]) -> Tensor | None:
        """``[B, width]`` embeddings of ``batch``'s ``B`` items, ``None`` when the batch does not say which
        items it holds, holds none, or its store is too large to table.

        The items the table holds are read from it; ``compute(part)`` (a batch -> its embeddings) runs on a
        batch of the others alone, built by the item store, and their rows are stored. A batch of which no
        item is held is computed as it is (the first call returns exactly the uncached result)."""
        items, store = getattr(batch, "item_index", None), getattr(batch, "item_store", None)
        if items is None or store is None or len(items) == 0:
            return None
        if [t._version for t in self._watched] != self._versions:
            raise RuntimeError("a frozen parameter of the item side was modified while its embeddings were "
                               "tabled; the table must be dropped before the item side changes")
        entry = self._tables.get(id(store))
        device = batch.x.device
        items = items.to(device)
        known = entry[2][items] if entry is not None else torch.zeros(len(items), dtype=torch.bool,
                                                                        device=device)
        self.hits += int(known.sum())
        self.misses += int((~known).sum())
        if bool(known.all()) and entry is not None:
            return entry[1][items]
        whole = not bool(known.any())
        part = batch if whole else store.batch(items[~known].unique().cpu()).to(device)
        with torch.no_grad():
            computed = compute(part)
        if entry is None:  # nothing of this store held yet, so ``part`` is the whole batch
            if len(store) * computed[0].numel() * computed.element_size() > self.max_bytes:
                return computed
            # the store is kept with its table so that its id is not reused while the table lives
            entry = (store, computed.new_empty(len(store), computed.size(1)),
                     torch.zeros(len(store), dtype=torch.bool, device=device))
            self._tables[id(store)] = entry
        rows = part.item_index.to(device)
        entry[1][rows] = computed
        entry[2][rows] = True
        return computed if whole else entry[1][items]
