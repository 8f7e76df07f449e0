"""The request granularities of a knowledge graph, over its triple-pair view
(:func:`graphdel.data.kg_view.with_triple_pairs`): a deletion request names triples (granularity ``triple``:
``tri:h|r|t``, ``h|r|t``...), relations (``relation``: every triple of the relation) or entities (``entity``:
the entity's own pair and every triple it is the head or tail of).

:func:`register_kg_granularities` adds them to :mod:`graphdel.data.granularities`; :mod:`graphdel.data.kg`
calls it when imported.
"""

from __future__ import annotations

from graphdel.data.corpus import Corpus
from graphdel.data.kg_files import Triple
from graphdel.data.kg_view import PAIR_PREFIX, TRIPLE_PREFIX, parse_triple_id, triple_of_row, triple_pair_id
from graphdel.errors import InvalidInputError

__all__ = ["register_kg_granularities"]


def _triple_rows(corpus: Corpus) -> dict[Triple, int]:
    cached = getattr(corpus, "_triple_rows_cache", None)
    if cached is None:
        if corpus.extra.get("view") != "triples":
            raise InvalidInputError(f"{corpus.source}: triple/relation/entity requests need the KG training "
                                    "view (graphdel.data.kg.with_triple_pairs; api.load_corpus applies it)")
        cached = {}
        for row, pid in enumerate(corpus.pair_ids):
            if pid.startswith(TRIPLE_PREFIX):
                cached[triple_of_row(corpus, row)] = row
        corpus._triple_rows_cache = cached  # type: ignore[attr-defined]
    return cached


def _expand_triples(corpus: Corpus, ids) -> dict[str, list[int]]:
    rows = _triple_rows(corpus)
    out = {}
    for ident in ids:
        triple = parse_triple_id(ident)
        if triple is not None and triple in rows:
            out[ident] = [rows[triple]]
    return out


def _units_triples(corpus: Corpus) -> dict[str, list[int]]:
    return {triple_pair_id(*t): [row] for t, row in _triple_rows(corpus).items()}


def _units_relations(corpus: Corpus) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for (h, r, t), row in _triple_rows(corpus).items():
        out.setdefault(r, []).append(row)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _expand_relations(corpus: Corpus, ids) -> dict[str, list[int]]:
    units = _units_relations(corpus)
    return {i: units[i] for i in ids if i in units}


def _units_entities(corpus: Corpus) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row, pid in enumerate(corpus.pair_ids):
        if pid.startswith(PAIR_PREFIX):
            out.setdefault(corpus.item_ids[row], []).append(row)
    for (h, r, t), row in _triple_rows(corpus).items():
        for e in {h, t}:
            out.setdefault(e, []).append(row)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _expand_entities(corpus: Corpus, ids) -> dict[str, list[int]]:
    units = _units_entities(corpus)
    out = {}
    for ident in ids:
        e = ident[len(PAIR_PREFIX):] if ident.startswith(PAIR_PREFIX) and ident not in units else ident
        if e in units:
            out[ident] = units[e]
    return out


def register_kg_granularities() -> None:
    """Register the ``triple``, ``relation`` and ``entity`` granularities (modality ``kg``), each unless a
    granularity of that name is registered already."""
    from graphdel.data.granularities import _GRANULARITIES, register_granularity

    for name, expand, units, noun in (("triple", _expand_triples, _units_triples, "triples"),
                                      ("relation", _expand_relations, _units_relations, "relations"),
                                      ("entity", _expand_entities, _units_entities, "entities")):
        if name not in _GRANULARITIES.names():  # names(): no loading while this module imports
            register_granularity(name, expand, units=units, unit_name=noun, modalities=("kg",))
