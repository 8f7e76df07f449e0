"""The modality protocol: what the unlearning engine and the evaluation suite may call on a model.

The engine knows nothing about molecules, knowledge graphs or images. It sees a model implementing
:class:`ModalityModel` and batches implementing :class:`PairBatch`: the non-text side ``x`` is opaque
(a PyG ``Batch`` of molecules, a tensor of entity ids, a tensor of images) and only ever passed back to
the model; the text side is a :class:`TextFeatures` that the engine may reorder (to build unrelated
pairs) but never looks inside.

Conventions (docs/design.md):

* ``encode_x`` / ``encode_text`` return projected, L2-normalised embeddings ``[B, d]``;
* ``sim(z_x, z_t)`` is the cosine similarity matrix ``[B_x, B_t]`` (no temperature);
* ``logits(z_x, z_t)`` is ``sim`` times the learnt inverse temperature (the InfoNCE logits);
* ``fuse(x, text)`` returns the fused joint representation ``[B, d_f]`` of x_i with text_i;
* ``match_logits(fused)`` returns the matching head's logit ``[B]`` that (x_i, text_i) is a true pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@dataclass
class TextFeatures:
    """Inputs of the trainable part of a text encoder, for ``B`` texts.

    The frozen bottom layers of the text encoder are run once per dataset and cached; what is stored here
    is their output.

    Attributes:
        hidden: ``[B, T, H]`` token states from the last frozen layer (float16 or float32).
        mask: ``[B, T]`` bool, True at real tokens.
        pooled: ``[B, H]`` mean of the whole text's final states, when the whole encoder is frozen (then
            ``hidden`` may hold only the first tokens, for the fusion module); ``None`` otherwise.
    """

    hidden: Tensor
    mask: Tensor
    pooled: Tensor | None = None

    def __len__(self) -> int:
        return self.hidden.size(0)

    def select(self, index: Tensor, tokens: bool = True) -> "TextFeatures":
        """Texts ``index`` (``[B']`` long), in that order. ``tokens=False``: where the pooled state is
        cached, no token states are gathered (``hidden [B', 0, H]``, ``mask [B', 0]``): for texts that are
        only encoded, never fused (a texts-only sample; gathering 64 token states per text to read the
        pooled one took a third of a molecule MultiDelete run's updates on a large request,
        docs/experiments/2026-12-07-molecule-partial-cache.md)."""
        # index_select, not hidden[index]: a few times faster on a CPU for the same rows
        index = index.to(self.hidden.device)
        pooled = None if self.pooled is None else self.pooled.index_select(0, index)
        hidden, mask = self.hidden, self.mask
        if not tokens and pooled is not None:
            hidden, mask = hidden[:, :0], mask[:, :0]
        return TextFeatures(hidden.index_select(0, index), mask.index_select(0, index), pooled)

    def to(self, device: torch.device | str) -> "TextFeatures":
        """The same features on ``device``."""
        pooled = None if self.pooled is None else self.pooled.to(device, non_blocking=True)
        return TextFeatures(self.hidden.to(device, non_blocking=True), self.mask.to(device, non_blocking=True),
                            pooled)


@dataclass
class BatchShard:
    """Marks a :class:`PairBatch` as one process's part of a *global* batch (data-parallel runs).

    Under ``torchrun`` every process draws the same global batch of ``global_size`` pairs (same seed, same
    generator) and keeps positions ``start : start + len(batch)`` of it (:mod:`graphdel.distributed`).
    Batch-level losses read this to stay equal to the single-process loss of the global batch: the
    contrastive loss ranks each local pair against the gathered embeddings of all shards, and random
    "other pair" negatives are drawn over the global batch (:meth:`fetch` gives their texts).

    Attributes:
        rank: this process's rank.
        world_size: number of processes; every shard of a global batch has the same length.
        start: position of this shard's first pair in the global batch.
        global_size: ``world_size * len(shard)``.
        fetch: ``positions [k] long -> PairBatch`` of those global-batch positions (built locally from the
            data every process holds), or ``None``.
    """

    rank: int
    world_size: int
    start: int
    global_size: int
    fetch: Callable[[Tensor], "PairBatch"] | None = None


@dataclass
class ItemRows:
    """The items of a batch named by their rows in the item store that holds them, their inputs not built.

    For update batches whose items a model reads from a table of results per item (the molecule model's item
    embeddings while its item side is frozen): building 32 molecules' graphs took 0.56 ms (timed alone, one
    thread), two of them in each 10-16 ms step, and with every molecule in the table nothing read them
    (docs/experiments/2026-12-08-molecule-step-inputs.md). A model that accepts them
    (:attr:`ModalityModule.reads_item_rows`) builds the inputs it still needs with :meth:`build`.

    Attributes:
        item_index: ``[B]`` long, the items' rows in ``item_store``.
        item_store: what built the batch's items (``item_store.batch(rows)`` builds them).
        device: where the built inputs go.
    """

    item_index: Tensor
    item_store: Any
    device: torch.device = torch.device("cpu")

    def __len__(self) -> int:
        return self.item_index.numel()

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ItemRows":
        """The same items, to be built on ``device``."""
        return ItemRows(self.item_index, self.item_store, torch.device(device))

    def build(self) -> Any:
        """The items' inputs, as ``item_store.batch`` builds them, on :attr:`device`."""
        return self.item_store.batch(self.item_index.cpu()).to(self.device)


@dataclass
class PairBatch:
    """A batch of ``B`` (x, text) pairs.

    Attributes:
        x: the non-text side; opaque to the engine, understood by the model that made it.
        text: the text side, aligned with ``x``.
        rows: ``[B]`` long, the corpus rows of the pairs (for logging and exclusion checks).
        items: ``[B]`` long item index of each pair, or ``None``; pairs sharing an item (several texts of
            one molecule) are treated as positives of each other by contrastive losses.
        shard: set when the batch is this process's shard of a global batch (data-parallel runs, see
            :class:`BatchShard`); ``None`` in a single process.
    """

    x: Any
    text: TextFeatures
    rows: Tensor
    items: Tensor | None = None
    shard: BatchShard | None = None

    def __len__(self) -> int:
        return self.rows.numel()

    def to(self, device: torch.device | str) -> "PairBatch":
        """The same batch on ``device`` (items, texts, rows and item indices)."""
        x = self.x.to(device) if hasattr(self.x, "to") else self.x
        items = None if self.items is None else self.items.to(device)
        return PairBatch(x, self.text.to(device), self.rows.to(device), items, self.shard)

    def pin_memory(self) -> "PairBatch":
        """The same batch in page-locked host memory (faster, asynchronous copies to a GPU)."""
        x = self.x.pin_memory() if hasattr(self.x, "pin_memory") else self.x
        # every tensor field of the text features, whatever TextFeatures subclass they are (the KG's adds one)
        text = dataclasses.replace(self.text, **{
            f.name: getattr(self.text, f.name).pin_memory() for f in dataclasses.fields(self.text)
            if isinstance(getattr(self.text, f.name), Tensor)})
        items = None if self.items is None else self.items.pin_memory()
        return PairBatch(x, text, self.rows.pin_memory(), items, self.shard)


@runtime_checkable
class ModalityModel(Protocol):
    """What the unlearning engine needs from a joint model (see the module docstring)."""

    def encode_x(self, x: Any) -> Tensor:
        """``[B, d]`` normalised embeddings of the non-text side."""

    def encode_text(self, text: TextFeatures) -> Tensor:
        """``[B, d]`` normalised text embeddings."""

    def fuse(self, x: Any, text: TextFeatures, pairs: Tensor | None = None) -> Tensor:
        """``[B, d_f]`` fused representation of (x_i, text_i); with ``pairs [P, 2]`` long, ``[P, d_f]`` of
        (x of ``pairs[k, 0]``, text of ``pairs[k, 1]``)."""

    def sim(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        """``[B_x, B_t]`` cosine similarities."""

    def logits(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        """``[B_x, B_t]`` temperature-scaled similarities: the logits of the contrastive objective."""

    def match_logits(self, fused: Tensor) -> Tensor:
        """``[B]`` logit that each fused pair is a true pair."""

    def training_loss(self, batch: PairBatch) -> Tensor:
        """Scalar training objective of the original recipe on a batch of true pairs."""

    def pair_losses(self, batch: PairBatch) -> Tensor:
        """``[B]`` per-pair contrastive loss of the original recipe (used by ascent methods and attacks)."""


@runtime_checkable
class PairSampler(Protocol):
    """A fixed set of pairs (Df, Dr, calibration, val...) that yields :class:`PairBatch` objects.

    The engine draws batches only through this interface, so it never touches modality-specific data.
    """

    def __len__(self) -> int:
        """Number of pairs."""

    def sample(self, batch_size: int, generator: torch.Generator) -> PairBatch:
        """``batch_size`` pairs drawn uniformly without replacement (with replacement if fewer exist)."""

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None, drop_last: bool = False):
        """Iterate over all pairs in batches of ``batch_size``."""


def has_matching_head(model: Any) -> bool:
    """Whether ``model`` can score a pair with a matching head: it has ``fuse`` and ``match_logits`` and
    does not declare ``has_fusion`` false (a two-tower model)."""
    return bool(getattr(model, "has_fusion", True)) and hasattr(model, "fuse") and hasattr(model, "match_logits")


class ModalityModule(nn.Module):
    """Base class of graphdel's joint models: the optional hooks the engine, the trainer and the suite
    call, each with a default that does nothing (as PyTorch Geometric's ``MessagePassing`` declares
    ``message``/``aggregate``/``update``). A model overrides the hooks it needs; a wrapped user model
    subclasses this and implements :class:`ModalityModel` (docs/extending.md).
    """

    #: Whether every method taking a batch's items also accepts them as :class:`ItemRows` (building their
    #: inputs where it needs them); the engine then may hand it update batches whose items are not built.
    reads_item_rows: ClassVar[bool] = False

    @classmethod
    def default_configs(cls, quick: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model class's training recipe: ``(model config fields, train config fields)`` that
        :func:`graphdel.api.train` applies to the fields a caller left at the generic defaults. Default:
        the generic recipe, ``({}, {})``."""
        return {}, {}

    @property
    def unlearning_defaults(self) -> dict[str, dict[str, Any]]:
        """Recommended settings per method name, ``{"multidelete": {"lr": 3e-4, ...}}``, applied before the
        caller's overrides (:func:`graphdel.api.with_model_defaults`). Default: none."""
        return {}

    @property
    def has_fusion(self) -> bool:
        """Whether ``fuse`` and ``match_logits`` work: the model has a fusion module and matching head.
        Default: True (a model without them overrides this, and its evaluation skips the head)."""
        return True

    def selection_score(self, batches: Iterable[PairBatch]) -> float | None:
        """How well the model remembers the pairs of ``batches`` in its own terms (higher = better
        remembered), for stopping and checkpoint selection; ``None`` (default): pool-k retrieval MRR
        (:mod:`graphdel.unlearning.selection`)."""
        return None

    def split_metrics(self, sets: dict[str, Any]) -> dict[str, dict]:
        """Extra metrics per split name (``{"test": {"lp": {...}}}``) on ``sets`` (split name -> sampler),
        merged into each split's retrieval metrics. Default: none."""
        return {}

    def fused_parts(self) -> tuple[int, ...]:
        """Widths of the consecutive parts of :meth:`fuse`'s output that carry different things (they sum to
        its width), for distances that weigh each part alike (``distance="part_mse"``). Default: ``()``,
        one part."""
        return ()

    def retain_neighbourhood(self, forget: PairSampler, retain: PairSampler) -> PairSampler | None:
        """The pairs of ``retain`` nearest the data of ``forget`` (a KG: the retained triples that share an
        entity with a deleted one), which a retention term may hold more tightly; ``None`` (default): the
        model has no notion of nearness."""
        return None

    def link_scores(self, batch: PairBatch, negatives: int,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor] | None:
        """The model's own decoder logits of the facts the pairs of ``batch`` state, for a forgetting term on
        the score a link predictor ranks by: ``(rows [F] long, scores [F], corrupted [F, negatives])``, where
        ``rows`` are the positions in ``batch`` of the ``F`` scored facts (a pair may state one in each
        direction), ``scores`` their logits and ``corrupted`` the logits of the same queries with
        ``negatives`` random answers (drawn with ``generator``), with gradients. ``None`` (default): the model
        has no link decoder, and no such term applies."""
        return None

    def forget_structure(self, sampler: PairSampler) -> int:
        """Drop the pairs of ``sampler`` from the training data the model stores and reads as input (a KG
        model's message-passing graph); the number of stored facts removed. Default: stores none, 0."""
        return 0

    @contextlib.contextmanager
    def facts_hidden(self, sampler: PairSampler | None) -> Iterator[None]:
        """While active, the pairs of ``sampler`` are left out of the training data the model stores and
        reads as input (a KG model's message-passing graph), as if they had been deleted; restored after,
        even on an error. ``None`` hides nothing. Default: the model stores none, nothing to hide."""
        yield

    @contextlib.contextmanager
    def step_states(self) -> Iterator[None]:
        """While active, what the model computes from its parameters alone, whatever the batch (a KG
        model's entity states over the whole graph), may be computed once and reused by every term of one
        optimisation step, with gradients; the parameters must not change meanwhile, and the terms must go
        into one backward pass. Default: nothing is reused."""
        yield

    @contextlib.contextmanager
    def share_frozen_states(self, *others: nn.Module, reads: PairSampler | None = None,
                            save_index: bool = False) -> Iterator[None]:
        """While active, what this model's frozen parts compute may be cached and shared with ``others``
        (the molecule model's frozen bottom graph layers); results must not depend on it. ``reads``, when
        given, is the pairs the block will read over and over (a training set): a model may size its cache
        to them. ``save_index``: what was computed may be kept on disk for later blocks on the same frozen
        weights (the molecule model's item-embedding index), when the block ends without an error. Default:
        nothing is shared."""
        yield

    def deletion_parameters(self, sampler: PairSampler, kind: str = "per_layer") -> list[nn.Parameter] | None:
        """Install a GNNDelete deletion operator for the pairs of ``sampler`` and return its parameters;
        ``None`` (default): the model has no deletion operator."""
        return None

    def deletion_neighbourhood(self) -> Tensor | None:
        """``[M, d]`` states of the newest deletion operator's neighbourhood (GNNDelete's NI term), with
        gradients to the operators; ``None`` (default): not available."""
        return None
