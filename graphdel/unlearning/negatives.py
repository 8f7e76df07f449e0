"""The *unrelated* texts the forgetting terms decouple towards, and the global batch they are drawn from:
uniform derangements, the item-aware derangement (never another caption of a pair's own item; also used by
the evaluation suite), the negatives of a Df batch (its own texts, or a Dr batch's for a batch too small
to hold them), and under torchrun the rows of every process's shard (:func:`all_rows`)."""

from __future__ import annotations

import torch
from torch import Tensor

from graphdel.errors import ConfigError
# the item-aware partners are scoring too (the suite's mismatched pairs): defined below the engine
from graphdel.evaluation.derangements import derangement, item_derangement, redraw_same_item
from graphdel.models.protocol import PairBatch, TextFeatures


def _deranged(items: Tensor | None, n: int, generator: torch.Generator | None) -> Tensor:
    """``[n]`` positions of other pairs: :func:`item_derangement` of ``items``, or a plain
    :func:`derangement` when the pairs carry no items (each pair is then its own item)."""
    return derangement(n, generator) if items is None else item_derangement(items, generator)


def distinct_items(batch: PairBatch, *, whole: bool = True) -> int:
    """Number of distinct items among the pairs of ``batch`` (its pairs when ``items`` is ``None``).

    Under ``torchrun`` with ``whole=True``: of the *global* batch, the items of every process's shard
    gathered (a collective: every process must call it at the same point, as the methods do), so that a
    decision taken on it (e.g. :meth:`~graphdel.unlearning.base.Trainer.lacks_negatives`) is the same on
    every process; ``whole=False``: of this process's shard only."""
    if batch.items is None:
        return batch.shard.global_size if (whole and _sharded(batch)) else len(batch)
    items = all_rows(batch.items, batch) if whole else batch.items
    return int(items.unique().numel())


def negative_texts(df: PairBatch, *, source: str = "df", dr: PairBatch | None = None,
                   generator: torch.Generator | None = None) -> tuple[TextFeatures, Tensor]:
    """Texts of *unrelated* pairs for each pair of ``df``: ``(texts, index)``, never a text of the pair's
    own item.

    ``source="df"``: ``index`` is an item-aware derangement of the Df batch (:func:`item_derangement`:
    ``df.items[index[i]] != df.items[i]``; a plain derangement when ``items`` is ``None``) and the texts are
    ``df.text.select(index)``. A Df batch of fewer than 2 distinct items (one pair; or the captions of a
    single molecule) holds no unrelated text, so the texts are then taken from ``dr`` as with
    ``source="dr"`` and ``index`` indexes ``dr``; without ``dr`` that is a :class:`ConfigError`.

    ``source="dr"``: texts of ``dr`` (without replacement when ``dr`` has at least ``len(df)`` pairs),
    ``index`` indexing ``dr``; a Dr pair of the Df pair's own item (a request that deletes one caption of a
    molecule leaves its other captions in Dr) is redrawn among the Dr pairs of other items.

    Under ``torchrun`` (shards with ``fetch``) the draws are made over the global batches, with the global
    batches' items, as one process would; this process keeps its shard's rows.
    """
    n = len(df)
    if source == "df":
        whole = _global(df)  # a process's shard (torchrun): derange the global batch, as one process would
        size = df.shard.global_size if whole else n
        items = all_rows(df.items, df) if whole and df.items is not None else df.items  # [size] or None
        if (size if items is None else int(items.unique().numel())) >= 2:
            idx = _deranged(items, size, generator)
            if whole:
                idx = idx[df.shard.start:df.shard.start + n]
                return df.shard.fetch(idx).text.to(df.text.hidden.device), idx
            return df.text.select(idx.to(df.text.hidden.device)), idx
        if dr is None or len(dr) == 0:
            raise ConfigError("negatives='df': the Df batch has fewer than 2 distinct items, so it holds no "
                              "unrelated text, and no Dr batch was given to take one from")
        source = "dr"  # a lone pair (or one item's captions): unrelated texts from the Dr batch
    if source == "dr":
        if dr is None or len(dr) == 0:
            raise ConfigError("negatives='dr' needs a Dr batch")
        try:
            if _global(df) and _global(dr):  # shards: draw over the global batches, keep this shard's rows
                m, total = dr.shard.global_size, df.shard.global_size
                idx = (torch.randperm(m, generator=generator)[:total] if m >= total
                       else torch.randint(m, (total,), generator=generator))
                if df.items is not None and dr.items is not None:
                    idx = redraw_same_item(idx, all_rows(df.items, df).cpu(), all_rows(dr.items, dr).cpu(),
                                            generator)
                idx = idx[df.shard.start:df.shard.start + n]
                return dr.shard.fetch(idx).text.to(dr.text.hidden.device), idx
            m = len(dr)
            idx = (torch.randperm(m, generator=generator)[:n] if m >= n
                   else torch.randint(m, (n,), generator=generator))
            if df.items is not None and dr.items is not None:
                idx = redraw_same_item(idx, df.items.cpu(), dr.items.cpu(), generator)
        except ValueError as e:
            raise ConfigError(f"no unrelated Dr text for a Df pair: {e}") from None
        return dr.text.select(idx.to(dr.text.hidden.device)), idx
    raise ConfigError(f"unknown negatives source {source!r}; valid: df, dr")


def _global(batch: PairBatch) -> bool:
    """True for a process's shard of a global batch that can fetch the other shards' pairs."""
    return _sharded(batch) and batch.shard.fetch is not None


def all_rows(z: Tensor, batch: PairBatch, *, grad: bool = False) -> Tensor:
    """``[B, d]``: ``z [b, d]`` (per-pair rows of ``batch``) of every process's shard of the global batch,
    in rank order, so that a similarity matrix is this shard's rows against the *global* batch's columns;
    ``z`` itself outside torchrun. ``grad``: gradients flow back to each process's own rows.

    Why: a similarity-matrix term (L_MD / L_MKR with ``representation="similarity"``) written on a shard's
    own ``b x b`` block would leave out the other shards' columns, so two processes would optimise a
    different loss than one process with the same global batch. A distance averaged over rows of
    ``[b, B]`` blocks, averaged again over processes (gradient averaging), is the global batch's term."""
    if not _sharded(batch):
        return z
    from graphdel import distributed

    return distributed.gather_with_grad(z) if grad else distributed.gather(z)


def own_positions(batch: PairBatch, b: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Index ``(rows, columns)`` of the true pairs of this shard's ``b`` rows in a ``[b, B]`` block whose
    columns are the global batch (:func:`all_rows`): row ``r`` pairs with column ``start + r``."""
    start = batch.shard.start if _sharded(batch) else 0
    rows = torch.arange(b, device=device)
    return rows, rows + start


def _sharded(batch: PairBatch) -> bool:
    return getattr(batch, "shard", None) is not None and batch.shard.world_size > 1
