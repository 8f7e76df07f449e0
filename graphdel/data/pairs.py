"""Featurised pairs: the corpus turned into tensors, and samplers over subsets of it (Df, Dr, val...).

:class:`PairData` holds, for a :class:`~graphdel.data.corpus.Corpus`, the featurised items (molecule
graphs, entity ids or images, through a modality's *item store*) and the cached frozen text features, and
builds :class:`~graphdel.models.protocol.PairBatch` objects from corpus rows. :class:`PairSet` is the
:class:`~graphdel.models.protocol.PairSampler` the training loop and the unlearning engine draw from.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from graphdel.data.corpus import Corpus
from graphdel.encoders.text import TextEncoderConfig, encode_frozen
from graphdel.errors import InvalidInputError
from graphdel.modalities import require_loaded
from graphdel.models.protocol import ItemRows, PairBatch
from graphdel.registry import Registry


class ItemStore(Protocol):
    """Featurised items of one modality: ``batch(item_indices [B]) -> x`` as the model expects it."""

    def __len__(self) -> int: ...

    def batch(self, indices: Tensor):
        """The items at store positions ``indices [B]`` (long), as the model's ``x`` input."""


def _load_modality(name: str) -> None:
    require_loaded(name)  # a recorded modality's data modules register its pieces


ITEM_FEATURIZERS: Registry[Callable[..., ItemStore]] = Registry(
    "item featuriser", unknown_error=InvalidInputError, on_miss=_load_modality)
"""Modality name -> function ``(corpus, item_ids, progress) -> ItemStore``; modalities register here (an
in-tree modality's data module, named by its record in :mod:`graphdel.modalities`, is loaded on first use). A
featuriser registered with ``uses_model_config=True`` is also given ``model_config=`` (the run's
:class:`~graphdel.models.joint.ModelConfig`, or ``None``): images are featurised by the encoder it names."""

_USES_MODEL_CONFIG: set[str] = set()


def register_featurizer(modality: str, *, uses_model_config: bool = False, overwrite: bool = False):
    """Decorator registering the item featuriser of a modality (see :data:`ITEM_FEATURIZERS`); another
    featuriser for a modality that has one is refused (``ValueError``) unless ``overwrite``."""
    def wrap(fn):
        ITEM_FEATURIZERS.register(modality, fn, overwrite=overwrite)
        if uses_model_config:
            _USES_MODEL_CONFIG.add(modality)
        else:
            _USES_MODEL_CONFIG.discard(modality)
        return fn
    return wrap


ItemProperties = Callable[[Corpus, Sequence[str]], "dict[str, tuple[object, str]]"]

ITEM_PROPERTIES: Registry[ItemProperties] = Registry("item properties", on_miss=_load_modality)
"""Modality name -> ``(corpus, item_ids) -> {name: (values [n] numpy array, kind)}``, ``kind`` being
``"regression"`` or ``"classification"`` (binary): known properties of each item (a molecule's logP, an
image's brightness...) that the unimodal probes of the evaluation suite predict from item embeddings."""


def register_item_properties(modality: str, *, overwrite: bool = False):
    """Decorator registering the probe targets of a modality's items (see :data:`ITEM_PROPERTIES`); a second
    function for one modality is refused (``ValueError``) unless ``overwrite``."""
    def wrap(fn):
        ITEM_PROPERTIES.register(modality, fn, overwrite=overwrite)
        return fn
    return wrap


# corpus id -> item id -> {property: (value, kind)}; an entry leaves with its corpus (weakref.finalize)
_PROPERTY_MEMO: dict[int, dict[str, dict[str, tuple[object, str]]]] = {}


def item_properties(corpus: Corpus, item_ids: Sequence[str]) -> "dict[str, tuple[np.ndarray, str]] | None":
    """The registered probe targets (:data:`ITEM_PROPERTIES`) of ``item_ids`` of ``corpus``, in that order, or
    ``None`` when its modality has none. Each item's values are computed once per corpus object and process:
    the evaluation suite asks for the same molecules' RDKit properties for every model it scores, and they do
    not depend on the model (a registered function computes each item's values from that item alone)."""
    fn = ITEM_PROPERTIES.get(corpus.modality)
    if fn is None:
        return None
    if len(item_ids) == 0:
        return fn(corpus, [])
    memo = _PROPERTY_MEMO.get(id(corpus))
    if memo is None:
        memo = _PROPERTY_MEMO[id(corpus)] = {}
        weakref.finalize(corpus, _PROPERTY_MEMO.pop, id(corpus), None)
    missing = [i for i in dict.fromkeys(item_ids) if i not in memo]
    if missing:
        fresh = fn(corpus, missing)
        for k, item in enumerate(missing):
            memo[item] = {name: (values[k], kind) for name, (values, kind) in fresh.items()}
    first = memo[item_ids[0]]
    return {name: (np.asarray([memo[i][name][0] for i in item_ids]), kind)
            for name, (_, kind) in first.items()}


CORPUS_VIEWS: Registry[Callable[[Corpus], Corpus]] = Registry("training view", on_miss=_load_modality)
"""Modality name -> function ``corpus -> corpus`` giving the rows a model of that modality trains on (the
knowledge graph adds one pair per triple); applied by :func:`graphdel.evaluation.run_data.load_corpus`."""


def register_corpus_view(modality: str, fn: Callable[[Corpus], Corpus], *, overwrite: bool = False) -> None:
    """Register the training view of a modality's corpora (must be idempotent); a second view for one
    modality is refused (``ValueError``) unless ``overwrite``."""
    CORPUS_VIEWS.register(modality, fn, overwrite=overwrite)


def training_view(corpus: Corpus) -> Corpus:
    """``corpus`` as its modality trains on it (itself when no view is registered)."""
    require_loaded(corpus.modality)
    fn = CORPUS_VIEWS.get(corpus.modality)
    return fn(corpus) if fn is not None else corpus


@register_featurizer("molecule")
def _featurize_molecules(corpus: Corpus, item_ids: list[str], progress: bool) -> ItemStore:
    from graphdel.data.molecules import featurize_smiles

    return featurize_smiles([corpus.items[i] for i in item_ids], progress=progress)


@register_item_properties("molecule")
def _molecule_item_properties(corpus: Corpus, item_ids: Sequence[str]) -> dict[str, tuple[object, str]]:
    from graphdel.data.molecules import molecule_item_properties

    return molecule_item_properties(corpus, item_ids)


class PairData:
    """A featurised corpus.

    Args:
        corpus: the pairs.
        text_config: which text encoder's frozen part to cache.
        progress: show progress bars.
        model_config: the model the data is for, passed to featurisers registered with
            ``uses_model_config=True`` (those of images cache the frozen part of the encoder it names).

    Attributes:
        item_ids: items in store order; ``item_index[p]`` is the store position of pair ``p``'s item.
        item_index: ``[P]`` long.
        items: the modality's item store.
        text: :class:`TextFeatures` of the distinct texts (frozen part, cached on disk); pair ``p`` has
            text ``text_index[p]`` (a text shared by several pairs is encoded and stored once).
        text_index: ``[P]`` long.

    An item store may define ``wrap_text(text, item_indices) -> TextFeatures`` to attach what it knows of
    each text's subject (the knowledge graph attaches the described entity); batches then carry that.
    """

    def __init__(self, corpus: Corpus, text_config: TextEncoderConfig, *, progress: bool = True,
                 model_config=None) -> None:
        require_loaded(corpus.modality)
        if corpus.modality not in ITEM_FEATURIZERS:
            raise InvalidInputError(f"no featuriser for modality {corpus.modality!r}; known: {sorted(ITEM_FEATURIZERS)}")
        self.corpus = corpus
        self.item_ids = corpus.item_list()
        item_position = {iid: k for k, iid in enumerate(self.item_ids)}
        self.item_index = torch.tensor([item_position[i] for i in corpus.item_ids], dtype=torch.long)
        featurize = ITEM_FEATURIZERS[corpus.modality]
        if corpus.modality in _USES_MODEL_CONFIG:
            self.items = featurize(corpus, self.item_ids, progress, model_config=model_config)
        else:
            self.items = featurize(corpus, self.item_ids, progress)
        unique = list(dict.fromkeys(corpus.texts))
        text_position = {t: k for k, t in enumerate(unique)}
        self.text_index = torch.tensor([text_position[t] for t in corpus.texts], dtype=torch.long)
        self.text = encode_frozen(unique, text_config, progress=progress)

    def __len__(self) -> int:
        return len(self.corpus)

    def batch(self, rows: Tensor, tokens: bool = True, item_rows: bool = False) -> PairBatch:
        """The pairs at corpus rows ``rows`` (``[B]`` long) as one batch. ``tokens=False``: without the
        token states where the pooled state is cached (:meth:`text_batch`); ``item_rows``: the items named
        by their rows in the item store, their inputs not built
        (:class:`~graphdel.models.protocol.ItemRows`)."""
        texts = self.text_batch(rows, tokens)
        x = ItemRows(texts.items, self.items) if item_rows else self.items.batch(texts.items)
        return PairBatch(x=x, text=texts.text, rows=texts.rows, items=texts.items)

    def text_batch(self, rows: Tensor, tokens: bool = True) -> PairBatch:
        """The batch of :meth:`batch` without its items' inputs (``x`` is ``None``): the texts, rows and item
        indices alone, for a caller that encodes only the texts (building a batch of molecule graphs or image
        features costs more than the text side). ``tokens=False``: without the token states where the
        pooled state is cached (:meth:`~graphdel.models.protocol.TextFeatures.select`)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        items = self.item_index[rows]
        text = self.text.select(self.text_index[rows], tokens)
        wrap = getattr(self.items, "wrap_text", None)
        if wrap is not None:
            text = wrap(text, items)
        return PairBatch(x=None, text=text, rows=rows, items=items)

    def rows_of(self, pair_ids: Sequence[str]) -> list[int]:
        """Corpus rows of ``pair_ids``."""
        return [self.corpus.index_of(p) for p in pair_ids]

    def subset(self, rows: Sequence[int], name: str = "") -> "PairSet":
        """A sampler over the given corpus rows."""
        return PairSet(self, rows, name)


@dataclass
class PairSet:
    """A :class:`~graphdel.models.protocol.PairSampler` over fixed corpus rows of a :class:`PairData`.

    ``tokens=False`` (:meth:`without_tokens`): its batches carry no token states where the pooled state is
    cached, for a caller that only encodes their texts, never fuses them; ``item_rows``: their items are
    named by their rows, their inputs not built (:class:`~graphdel.models.protocol.ItemRows`)."""

    data: PairData
    rows: Sequence[int]
    name: str = ""
    tokens: bool = True
    item_rows: bool = False

    def __post_init__(self) -> None:
        self.rows = torch.as_tensor(list(self.rows), dtype=torch.long)

    def __len__(self) -> int:
        return self.rows.numel()

    # The row-level methods below let a wrapper (a data-parallel shard, a prefetching loader) draw the
    # same rows as `sample`/`batches` with the same generator, and build the batches itself.
    def sample_rows(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """``[batch_size]`` corpus rows drawn as :meth:`sample` draws them (same generator use)."""
        n = len(self)
        if n == 0:
            raise InvalidInputError(f"cannot sample from the empty pair set {self.name!r}")
        if batch_size <= n:
            pick = torch.randperm(n, generator=generator)[:batch_size]
        else:
            pick = torch.randint(n, (batch_size,), generator=generator)
        return self.rows[pick]

    def iter_rows(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                  drop_last: bool = False) -> Iterator[Tensor]:
        """The corpus rows (``[<= batch_size]`` long each) of the batches :meth:`batches` yields. The
        generator is used once, when the first batch is asked for (one permutation per pass)."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            if drop_last and idx.numel() < batch_size:
                break
            yield self.rows[idx]

    def make_batch(self, rows: Tensor) -> PairBatch:
        """The pairs at corpus rows ``rows`` (``[B]`` long) as a batch."""
        if self.tokens and not self.item_rows:
            return self.data.batch(rows)
        return self.data.batch(rows, tokens=self.tokens, item_rows=self.item_rows)

    def without_tokens(self, item_rows: bool = False) -> "PairSet":
        """The same pairs, batched without the token states where the pooled state is cached
        (:meth:`PairData.text_batch`), and with ``item_rows`` their items not built: for a caller whose
        batches are encoded, never fused, by a model that accepts :class:`~graphdel.models.protocol.ItemRows`.
        Why: gathering 64 token states per caption was 1.3 ms of a molecule MultiDelete step's 16 on one
        thread, building the molecules' graphs 0.6 ms
        (docs/experiments/2026-12-08-molecule-step-inputs.md)."""
        return PairSet(self.data, self.rows, self.name, tokens=False, item_rows=item_rows)

    def sample(self, batch_size: int, generator: torch.Generator) -> PairBatch:
        """A random batch of ``batch_size`` pairs (without replacement when the set is large enough)."""
        return self.make_batch(self.sample_rows(batch_size, generator))

    def sample_texts(self, batch_size: int, generator: torch.Generator) -> PairBatch:
        """The pairs :meth:`sample` draws (the same rows, the same generator use) as a texts-only batch
        (:meth:`PairData.text_batch`, ``x`` is ``None``; no token states where the pooled state is cached:
        texts without items are encoded, never fused)."""
        return self.data.text_batch(self.sample_rows(batch_size, generator), tokens=False)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[PairBatch]:
        """The set in batches of at most ``batch_size`` pairs: in row order, or one seeded permutation per
        pass when ``shuffle``; ``drop_last`` drops a final short batch."""
        for rows in self.iter_rows(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            yield self.make_batch(rows)
