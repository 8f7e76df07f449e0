"""Item embeddings of a model whose whole item side is frozen, served per item from a table, and kept on disk
as an index of that item side.

Why a table: when an unlearning run updates only the text side of a molecule model (the molecule
recommendation updates the text projection alone), every molecule's item embedding is the same each time it
is computed, and the student and its frozen teacher compute the same one. The graph encoder's node-state
cache (:class:`graphdel.encoders.graph.FrozenTrunkCache`) spares the message passing, but each call still
gathered, pooled and projected the cached states: 1.0 ms of a 1.5-ms call for 32 cached molecules on one
thread (docs/experiments/2026-12-08-molecule-item-table.md). A table row is read instead.

Why an index on disk: each molecule is still computed once per run, about 1.8 ms on one thread, the same
embeddings the run before it on the same model computed: a 5% request's run took 18.5 s computing them and
6.6 s reading them from a table kept from an earlier run
(docs/experiments/2026-12-08-molecule-item-index.md). A table is saved under
``$GRAPHDEL_CACHE/item_embeddings/`` keyed by the exact item side (its architecture and every weight) and
the exact item store (:meth:`graphdel.data.molecule_graphs.MoleculeGraphs.fingerprint`), as the frozen text
encoder's states are kept under ``text/``; a later table of the same key starts from it, after recomputing a
few of its rows to check them. The index is off unless ``GRAPHDEL_ITEM_INDEX=on``: a row read from it was
computed in the batch where an earlier run first met the molecule, and may differ in its last bits from
the row this run would compute, so a run reading it is not byte-identical to one computing (equal bit for
bit on the two requests measured, within 1e-6 in the tests), and a replay of a run made without it, with
it on, may not be either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from graphdel.data.molecule_graphs import cache_dir
from graphdel.errors import GraphdelError, warn
from graphdel.io import atomic_torch_save
from graphdel.models.protocol import ItemRows

#: The largest table kept, in bytes: one row per item of the item store (300,000 molecules of width 256 in
#: float32 are 307 MB); a larger store is served without a table.
MAX_TABLE_BYTES = 256 * 2**20
#: The cache kind (folder under ``$GRAPHDEL_CACHE``) of the indexes.
INDEX_KIND = "item_embeddings"
#: Rows of an index recomputed when it is opened, and how far they may lie from what it holds: a row computed
#: in another batch differs in its last bits (1e-7), a row of another model or store by far more.
SPOT_CHECK_ROWS = 8
SPOT_CHECK_ATOL = 1e-5


def index_enabled() -> bool:
    """Whether item-embedding indexes are read and written (``GRAPHDEL_ITEM_INDEX=on``; default off)."""
    return os.environ.get("GRAPHDEL_ITEM_INDEX", "off").strip().lower() in ("1", "on", "true", "yes")


@dataclass
class _Table:
    """One item store's table: ``embeddings [N, width]``, ``known [N]`` bool, and where it is kept on disk
    (``None``: nowhere) with whether rows were added since it was read."""

    store: object  # kept so that its id is not reused while the table lives
    embeddings: Tensor
    known: Tensor
    path: Path | None
    changed: bool = False


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
        index_key: the item side's digest (architecture and weights); with it, a table for a store with a
            ``fingerprint()`` starts from the index kept on disk under both keys, if there is one and its
            spot check passes, and :meth:`save` keeps it there. ``None``: no index.
    """

    def __init__(self, watched: list[Tensor], max_bytes: int = MAX_TABLE_BYTES,
                 index_key: str | None = None) -> None:
        self.max_bytes = max_bytes
        self.index_key = index_key
        self._watched = watched
        self._versions = [t._version for t in watched]
        self._tables: dict[int, _Table] = {}  # id(store) -> its table
        self.hits = self.misses = 0
        #: rows of each store read from its index when the table was opened (``{id(store): rows}``)
        self.read_from_index: dict[int, int] = {}

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
        device = batch.device if isinstance(batch, ItemRows) else batch.x.device
        entry = self._tables.get(id(store))
        if entry is None:
            entry = self._open_index(store, compute, device)
        items = items.to(device)
        known = entry.known[items] if entry is not None else torch.zeros(len(items), dtype=torch.bool,
                                                                           device=device)
        self.hits += int(known.sum())
        self.misses += int((~known).sum())
        if bool(known.all()) and entry is not None:
            return entry.embeddings[items]
        whole = not bool(known.any())
        part = batch if whole else store.batch(items[~known].unique().cpu()).to(device)
        with torch.no_grad():
            computed = compute(part)
        if entry is None:  # nothing of this store held yet, so ``part`` is the whole batch
            if len(store) * computed[0].numel() * computed.element_size() > self.max_bytes:
                return computed
            entry = _Table(store, computed.new_empty(len(store), computed.size(1)),
                           torch.zeros(len(store), dtype=torch.bool, device=device), self._index_path(store))
            self._tables[id(store)] = entry
        rows = part.item_index.to(device)
        entry.embeddings[rows] = computed
        entry.known[rows] = True
        entry.changed = True
        return computed if whole else entry.embeddings[items]

    def _index_path(self, store) -> Path | None:
        fingerprint = getattr(store, "fingerprint", None)
        if self.index_key is None or fingerprint is None:
            return None
        return cache_dir() / INDEX_KIND / f"{self.index_key[:24]}-{fingerprint()[:24]}.pt"

    def _open_index(self, store, compute: Callable[[object], Tensor], device: torch.device) -> _Table | None:
        """The table of ``store`` read from its index, or ``None`` (no index, unreadable, of another shape or
        larger than ``max_bytes``, or failing its spot check: then it is rebuilt and written again)."""
        path = self._index_path(store)
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(path, weights_only=True)
            embeddings, known = saved["embeddings"], saved["known"].bool()
        except Exception:  # a damaged index is rebuilt, never trusted
            warn(f"the item-embedding index {path} could not be read; its embeddings are computed again")
            return None
        if (embeddings.dim() != 2 or known.shape != (len(store),) or embeddings.size(0) != len(store)
                or embeddings.numel() * embeddings.element_size() > self.max_bytes or not bool(known.any())):
            return None
        embeddings, known = embeddings.to(device), known.to(device)
        held = known.nonzero().squeeze(1)
        check = held[torch.linspace(0, held.numel() - 1, min(SPOT_CHECK_ROWS, held.numel())).long()]
        with torch.no_grad():
            fresh = compute(store.batch(check.cpu()).to(device))
        if fresh.shape != (check.numel(), embeddings.size(1)) or not torch.allclose(
                fresh.to(embeddings.dtype), embeddings[check], atol=SPOT_CHECK_ATOL, rtol=0):
            warn(f"the item-embedding index {path} does not match the model's item side; its embeddings are "
                 "computed again")
            return None
        table = _Table(store, embeddings, known, path)
        self._tables[id(store)] = table
        self.read_from_index[id(store)] = int(known.sum())
        return table

    def save(self) -> list[Path]:
        """Write every table with rows added since it was read to its index (atomically, on the CPU);
        returns the paths written. A cache that cannot be written is warned about, not raised."""
        written = []
        for table in self._tables.values():
            if table.path is None or not table.changed:
                continue
            try:
                atomic_torch_save({"embeddings": table.embeddings.cpu(), "known": table.known.cpu()},
                                  table.path)
            except (OSError, GraphdelError) as e:
                warn(f"the item-embedding index {table.path} was not written: {e}")
                continue
            table.changed = False
            written.append(table.path)
        return written
