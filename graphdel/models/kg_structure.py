"""What a KG model stores of its training data and how a request removes it: the graph of training
triples (:class:`KGGraph`), the description features, and :class:`KGStructure`, the part of
:class:`~graphdel.models.kg.KGTextModel` that builds them from the training pairs, removes a request's facts
and re-draws the embeddings only those facts trained, names a request's retained neighbourhood, and computes
the entity states over the stored graph."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from graphdel.data.kg_pairs import pair_triples, triples_of
from graphdel.encoders.relational import add_inverse_edges
from graphdel.encoders.text import masked_mean


class KGGraph(nn.Module):
    """The model's training triples ``triples [T, 3]`` long (a buffer that may change size: loading a
    state dict resizes it). ``version`` counts changes."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("triples", torch.zeros(0, 3, dtype=torch.long))
        self.version = 0

    def set(self, triples: Tensor) -> None:
        """Replace the stored triples with the distinct rows of ``triples [T, 3]`` long (``version`` += 1)."""
        t = torch.unique(triples.reshape(-1, 3).long().cpu(), dim=0)
        self.triples = t.to(self.triples.device)
        self.version += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "triples"
        if key in state_dict:
            self.triples = torch.zeros_like(state_dict[key], device=self.triples.device)
            self.version += 1
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def entity_texts_of(sampler, described_by: int, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """``(entities [M] long, features [M, H])``: the fixed sentence embeddings (mean of the frozen text
    encoder's states) of the entity-description pairs ``(e, described_by)`` of a pair sampler."""
    ents, feats = [], []
    for b in sampler.batches(batch_size):
        keep = b.x[:, 1] == described_by
        if bool(keep.any()):
            text = b.text.select(keep.nonzero().flatten())
            pooled = text.pooled if text.pooled is not None else masked_mean(text.hidden.float(), text.mask)
            ents.append(b.x[keep, 0])
            feats.append(pooled.float())
    if not ents:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, 0)
    return torch.cat(ents), torch.cat(feats)


class KGStructure:
    """Structure hooks of the KG model (mixed into :class:`~graphdel.models.kg.KGTextModel`, which provides
    ``graph``, ``entity_text``, ``encoder``, ``num_entities``, ``num_relations``, ``described_by`` and
    ``text_init``)."""

    def fit_structure(self, sampler) -> None:
        """Build the graph from the triple pairs of ``sampler`` (the training pairs), and the entity text
        features from its entity-description pairs."""
        self.graph.set(triples_of(sampler, self.num_relations))
        if self.text_init:
            ents, feats = entity_texts_of(sampler, self.described_by)
            table = torch.zeros_like(self.entity_text)
            if ents.numel():
                table[ents.to(table.device)] = feats.to(table.device, table.dtype)
            self.entity_text = table
            self.graph.version += 1  # invalidates the cached entity states

    def forget_structure(self, sampler) -> int:
        """Remove the triples of ``sampler``'s pairs from the graph and the descriptions of its entity
        pairs from the entity text features, then re-draw the embeddings of the relations and entities that
        no stored fact mentions any more (:meth:`_redraw_orphans`); returns how many stored facts were
        removed (graph triples plus descriptions that were still there)."""
        before = self._stored_units()
        removed = self._remove_facts(sampler)
        if not self.text_init:  # descriptions are not stored: an entity keeps its embedding while its pair stays
            described, _ = entity_texts_of(sampler, self.described_by)
            pair_deleted = torch.zeros(self.num_entities, dtype=torch.bool)
            pair_deleted[described] = True
            before = (before[0], before[1] & pair_deleted)
        self._redraw_orphans(before)
        return removed

    def _stored_units(self) -> tuple[Tensor, Tensor]:
        """``(relations [R] bool, entities [N] bool)``: which relations and entities a stored fact (a graph
        triple, a description) mentions."""
        relations = torch.zeros(self.num_relations, dtype=torch.bool)
        entities = torch.zeros(self.num_entities, dtype=torch.bool)
        t = self.graph.triples.cpu()
        relations[t[:, 1]] = True
        entities[t[:, 0]] = True
        entities[t[:, 2]] = True
        if self.text_init:
            entities |= self.entity_text.detach().cpu().flatten(1).abs().sum(1).gt(0)
        return relations, entities

    def _redraw_orphans(self, before: tuple[Tensor, Tensor]) -> int:
        """Re-draw, from the encoder's initial distribution, the embeddings of the relations (both
        directions) and entities that ``before`` (:meth:`_stored_units`) had and the stored facts no longer
        mention: parameters only the deleted facts trained, which Retrain never trains. A deleted relation
        or entity then scores like one Retrain never saw (its triples at chance) before any update, and no
        update can carry its original embedding back. Each row is drawn with a generator seeded by its index,
        so a model and its copies forget the same way. Returns how many rows were re-drawn."""
        now = self._stored_units()
        gone_r = (before[0] & ~now[0]).nonzero().flatten().tolist()
        gone_e = (before[1] & ~now[1]).nonzero().flatten().tolist()
        table_r, table_e = self.encoder.relation.weight, self.encoder.entity.weight
        with torch.no_grad():
            for table, rows in ((table_r, [x for r in gone_r for x in (r, r + self.num_relations)]),
                                (table_e, gone_e)):
                std = (2.0 / (table.shape[0] + table.shape[1])) ** 0.5  # xavier_normal_ of the whole table
                for row in rows:
                    g = torch.Generator().manual_seed(row)
                    table[row] = (torch.randn(table.shape[1], generator=g) * std).to(table.device, table.dtype)
        if gone_r or gone_e:
            self.graph.version += 1  # invalidates the cached entity states
        return len(gone_r) + len(gone_e)

    @contextlib.contextmanager
    def facts_hidden(self, sampler) -> Iterator[None]:
        """While active, the triples of ``sampler``'s pairs are out of the message-passing graph (their
        descriptions stay); the graph is restored after, even on an error. ``None`` hides nothing."""
        hidden = triples_of(sampler, self.num_relations) if sampler is not None else None
        if hidden is None or hidden.numel() == 0 or self.graph.triples.numel() == 0:
            yield
            return
        stored = self.graph.triples
        keep = ~torch.isin(self._fact_key(stored), self._fact_key(hidden.to(stored.device)))
        self.graph.set(stored[keep])
        try:
            yield
        finally:
            self.graph.set(stored)

    def _fact_key(self, triples: Tensor) -> Tensor:
        """``[T]`` long: one number per ``(head, relation, tail)`` row of ``triples [T, 3]``."""
        return (triples[:, 0] * (2 * self.num_relations + 1) + triples[:, 1]) * self.num_entities + triples[:, 2]

    def _remove_facts(self, sampler) -> int:
        """Remove the triples and descriptions of ``sampler``'s pairs; how many were still stored."""
        described = 0
        if self.text_init:
            ents, _ = entity_texts_of(sampler, self.described_by)
            if ents.numel():
                rows = self.entity_text[ents.to(self.entity_text.device)]
                described = int(rows.flatten(1).abs().sum(1).gt(0).sum())
                self.entity_text[ents.to(self.entity_text.device)] = 0
                self.graph.version += 1
        gone = triples_of(sampler, self.num_relations)
        if gone.numel() == 0 or self.graph.triples.numel() == 0:
            return described
        keep = ~torch.isin(self._fact_key(self.graph.triples), self._fact_key(gone.to(self.graph.triples.device)))
        removed = int((~keep).sum())
        if removed:
            self.graph.set(self.graph.triples[keep])
        return removed + described

    def request_entities(self, sampler) -> Tensor:
        """``[M]`` long, sorted: the entities a request's pairs are about, the endpoints of its triples and
        the entities whose descriptions it deletes (GNNDelete's seeds, the centre of the retained
        neighbourhood)."""
        deleted = triples_of(sampler, self.num_relations)
        described, _ = entity_texts_of(sampler, self.described_by)
        return torch.cat([deleted[:, 0], deleted[:, 2], described]).unique()

    def retain_neighbourhood(self, forget, retain):
        """The triple pairs of ``retain`` whose head or tail is an entity of ``forget`` (an endpoint of a
        deleted triple, or an entity whose description is deleted): the 1-hop collateral of the request, as
        a pair set of the same data; ``None`` when there is none, or when ``retain`` is not a pair set over
        this data's item store (a data-parallel shard: no process holds the whole retained set)."""
        columns = pair_triples(retain)  # read from the item store: no batch of the retained set is built
        if columns is None:
            return None
        seeds = self.request_entities(forget)
        near = (columns[:, 1] < self.num_relations) & (torch.isin(columns[:, 0], seeds)
                                                      | torch.isin(columns[:, 2], seeds))
        rows = retain.rows[near]
        return retain.data.subset(rows.tolist(), "retain_near") if rows.numel() else None

    def edges(self) -> tuple[Tensor, Tensor]:
        """The message-passing graph: ``(edge_index [2, 2T], edge_type [2T])``, every stored triple and
        its inverse."""
        return add_inverse_edges(self.graph.triples, self.num_relations)

    def entity_states(self) -> tuple[Tensor, Tensor]:
        """``(S [N, d], Z [2R + 1, d])``; cached while parameters and graph are unchanged in no-grad eval,
        and with gradients within :meth:`step_states`."""
        in_step = self._step_memo is not None and torch.is_grad_enabled()
        cacheable = in_step or (not torch.is_grad_enabled() and not self.training)
        key = None
        if cacheable:
            key = (self.training, self.graph.version, self.graph.triples.data_ptr(), len(self.deletion),
                   tuple((b.data_ptr(), b._version) for b in self.deletion.buffers()),
                   tuple((p.data_ptr(), p._version) for p in self.parameters()))
            if in_step and key in self._step_memo:
                return self._step_memo[key]
            if not in_step and self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        ei, et = self.edges()
        s, z = self.encoder(ei, et, self.entity_text if self.text_init else None, self.deletion)
        if in_step:
            self._step_memo[key] = (s, z)
        elif cacheable:
            self._cache = (key, (s, z))
        return s, z

    @contextlib.contextmanager
    def step_states(self) -> Iterator[None]:
        """While active, the entity states with gradients are computed once per parameter state and graph
        and shared by every term of the step (:meth:`~graphdel.models.protocol.ModalityModule.step_states`):
        a MultiDelete step asked for them in L_MD, L_MKR, the neighbourhood term and the link term, each a
        full-graph GNN pass with its own backward."""
        self._step_memo = {}
        try:
            yield
        finally:
            self._step_memo = None
