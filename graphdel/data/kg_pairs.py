"""What a knowledge graph's pair batches carry beyond the protocol: the text features with the entity each
text describes (:class:`KGText`), and the triples of a pair set (:func:`triples_of`).

Both are read by the KG item store (:mod:`graphdel.data.kg`), the KG model (:mod:`graphdel.models.kg`) and
link prediction (:mod:`graphdel.evaluation.link_prediction`), so they live below all three (the model
module importing link prediction while link prediction and the data imported the model was an import
cycle). Unlike :mod:`graphdel.data.kg`, this module imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphdel.data.pairs import PairSet
from graphdel.models.protocol import TextFeatures


@dataclass
class KGText(TextFeatures):
    """Text features of entity descriptions plus ``entity [B]`` long, the entity each text describes."""

    entity: Tensor | None = None

    def select(self, index: Tensor, tokens: bool = True) -> "KGText":
        """Texts ``index`` (``[B']`` long), in that order, with their entities (``tokens`` as in
        :meth:`TextFeatures.select`)."""
        base = TextFeatures.select(self, index, tokens)
        entity = None if self.entity is None else self.entity.index_select(0, index.to(self.entity.device))
        return KGText(base.hidden, base.mask, base.pooled, entity)

    def to(self, device) -> "KGText":
        """The same features and entities on ``device``."""
        base = TextFeatures.to(self, device)
        entity = None if self.entity is None else self.entity.to(device)
        return KGText(base.hidden, base.mask, base.pooled, entity)


def pair_triples(sampler) -> Tensor | None:
    """``[P, 3]`` long ``(head, relation, tail)`` of every pair of ``sampler``, in its row order (the order
    of its unshuffled batches), read from the KG item store's columns: no batch is built, so no text feature
    is copied. An entity pair reads ``(e, described_by, e)``, as its batch does (``x``, then the entity its
    text describes; :meth:`~graphdel.data.kg.KGItemStore.triples`). ``None`` when ``sampler`` is not a
    :class:`~graphdel.data.pairs.PairSet` over a knowledge graph's pairs: the caller then reads built batches.

    Why: finding the retained triples around a request built every batch of the retained set, 4,096 rows of
    caption states at a time, to read these three numbers per pair (0.21 s of a 3-s MultiDelete run on HPO).
    """
    if not isinstance(sampler, PairSet) or sampler.data.corpus.modality != "kg":
        return None
    return sampler.data.items.triples(sampler.data.item_index.index_select(0, sampler.rows))


def triples_of(sampler, num_relations: int, batch_size: int = 8192) -> Tensor:
    """``[T, 3]`` (h, r, t) of the triple pairs of a pair sampler (entity pairs left out), on the CPU
    whatever device the sampler's batches are on (the engine's scoring moves them to the model's): triples
    are index bookkeeping, filtered and looked up on the CPU. A pair set over a KG item store is read from
    the store (:func:`pair_triples`), any other sampler from its batches."""
    columns = pair_triples(sampler)
    if columns is not None:
        return columns[columns[:, 1] < num_relations]
    out = []
    for b in sampler.batches(batch_size):
        x, ent = b.x.cpu(), b.text.entity.cpu()
        keep = x[:, 1] < num_relations
        out.append(torch.stack([x[keep, 0], x[keep, 1], ent[keep]], dim=1))
    return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.long)
