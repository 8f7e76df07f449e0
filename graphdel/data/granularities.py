"""Request granularities: the ways of naming what to forget (``by=pair``, ``molecule``, ``scaffold``...).

A :class:`Granularity` expands the ids a user names into the corpus rows they cover and lists the units a
random request draws from (the table in :mod:`graphdel.data.requests`). This module holds the registry and
the built-in molecule granularities; other modules add theirs with :func:`register_granularity` (the
knowledge graph's in :mod:`graphdel.data.kg`, the image one in :mod:`graphdel.data.images`). Every public
name is also imported from :mod:`graphdel.data.requests`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.scaffold import cached_murcko_scaffold, corpus_scaffolds
from graphdel.errors import GraphdelError, RequestError, shorten
from graphdel.modalities import load_modalities
from graphdel.registry import Registry, where_defined

#: ``expand(corpus, ids) -> {id: rows}``: for every id it recognises, the corpus rows (of any split) it
#: covers; ids it does not recognise are left out (and reported as unknown).
ExpandFn = Callable[[Corpus, Sequence[str]], "dict[str, list[int]]"]
#: ``units(corpus) -> {unit: rows}``: every unit of the granularity and the corpus rows (any split) it
#: covers; what :meth:`~graphdel.data.requests.DeletionRequest.random` draws from.
UnitsFn = Callable[[Corpus], "dict[str, list[int]]"]


@dataclass(frozen=True)
class Granularity:
    """A way of naming what to forget.

    Attributes:
        name: the ``by=`` value.
        expand: see :data:`ExpandFn`.
        units: see :data:`UnitsFn`; ``None`` if random requests are not supported.
        unit_name: plural noun used in descriptions (``"pairs"``, ``"molecules"``...).
        modalities: corpus modalities it applies to (``None``: all).
    """

    name: str
    expand: ExpandFn
    units: UnitsFn | None = None
    unit_name: str = "units"
    modalities: tuple[str, ...] | None = None


def _load_every_modality(_name: str) -> None:
    load_modalities()  # a granularity of a modality not loaded yet (triple, entity, image...)?


_GRANULARITIES: Registry[Granularity] = Registry("request granularity", unknown_error=RequestError,
                                                 on_miss=_load_every_modality)
"""``by=`` name -> :class:`Granularity`; a missing name loads every recorded modality first (a module that
registers one only if it is not there yet asks :meth:`~graphdel.registry.Registry.names`, which loads
nothing)."""


def register_granularity(name: str, expand: ExpandFn, *, units: UnitsFn | None = None,
                         unit_name: str | None = None, modalities: Iterable[str] | None = None,
                         overwrite: bool = False) -> Granularity:
    """Register a granularity usable as ``by=name`` in :class:`~graphdel.data.requests.DeletionRequest`
    constructors.

    Raises:
        ValueError: ``name`` already registered (unless ``overwrite``).
    """
    g = Granularity(name, expand, units, unit_name or f"{name}s",
                    tuple(modalities) if modalities is not None else None)
    return _GRANULARITIES.register(name, g, overwrite=overwrite, origin=where_defined(expand))


def available_granularities() -> list[str]:
    """Names of the registered request granularities (``pair``, ``molecule``, ``scaffold``, ...), sorted;
    every recorded modality (:mod:`graphdel.modalities`) is loaded first, so its granularities are listed."""
    load_modalities()
    return sorted(_GRANULARITIES)


def get_granularity(name: str, corpus: Corpus) -> Granularity:
    """The granularity ``name``, checked against the corpus modality (:class:`RequestError` otherwise)."""
    g = _GRANULARITIES.get(name)  # a miss loads every recorded modality first
    if g is None:
        raise RequestError(f"unknown request granularity by={shorten(name)}; "
                           f"known: {', '.join(available_granularities())}")
    if g.modalities is not None and corpus.modality not in g.modalities:
        raise RequestError(f"by={shorten(name)} applies to {'/'.join(g.modalities)} corpora, not to a "
                           f"{corpus.modality!r} corpus ({corpus.source})")
    return g


def rows_by_item(corpus: Corpus) -> dict[str, list[int]]:
    """Item id -> its rows (all splits), items in first-appearance order."""
    out: dict[str, list[int]] = {}
    for i, iid in enumerate(corpus.item_ids):
        out.setdefault(iid, []).append(i)
    return out


def same_structure(corpus: Corpus) -> dict[str, str]:
    """Item id -> the first item id (in row order) with the same item input: for molecules, the first id of
    the same canonical SMILES. One structure under two ids is one molecule to a deletion."""
    first: dict[str, str] = {}
    return {iid: first.setdefault(corpus.items[iid], iid) for iid in corpus.item_list()}


def rows_by_structure(corpus: Corpus) -> dict[str, list[int]]:
    """Molecule -> its rows (all splits), a molecule being every item id with the same item input (see
    :func:`same_structure`), named by its first id; molecules in first-appearance order."""
    first = same_structure(corpus)
    out: dict[str, list[int]] = {}
    for i, iid in enumerate(corpus.item_ids):
        out.setdefault(first[iid], []).append(i)
    return out


def _item_of(corpus: Corpus, ident: str) -> str | None:
    """An item id, or the item of a pair id (item ids win), or ``None``."""
    if ident in corpus.items:
        return ident
    if corpus.has_pair(ident):
        return corpus.item_ids[corpus.index_of(ident)]
    return None


def _expand_pairs(corpus: Corpus, ids: Sequence[str]) -> dict[str, list[int]]:
    return {pid: [corpus.index_of(pid)] for pid in ids if corpus.has_pair(pid)}


def _units_pairs(corpus: Corpus) -> dict[str, list[int]]:
    return {pid: [i] for i, pid in enumerate(corpus.pair_ids)}


def _expand_molecules(corpus: Corpus, ids: Sequence[str]) -> dict[str, list[int]]:
    first = same_structure(corpus)
    groups = rows_by_structure(corpus)
    out = {}
    for ident in ids:
        item = _item_of(corpus, ident)
        if item in first:  # an item without pairs (a KG entity without text) covers nothing: unknown
            out[ident] = groups[first[item]]
    return out


def series_key(corpus: Corpus, item_id: str) -> str:
    """The chemical series of a molecule: its Murcko scaffold, or ``acyclic:<item id>`` without rings
    (``item_id`` being the first id of its structure, :func:`same_structure`)."""
    try:
        scaffold = cached_murcko_scaffold(corpus.items[item_id])
    except GraphdelError as e:
        raise RequestError(f"cannot compute the scaffold of molecule {item_id!r}: {e}") from e
    return scaffold if scaffold else f"acyclic:{item_id}"


def _series(corpus: Corpus) -> dict[str, list[int]]:
    molecules = rows_by_structure(corpus)
    try:  # the whole corpus's scaffolds at once, from the disk cache after the first time
        scaffolds = corpus_scaffolds({item: corpus.items[item] for item in molecules})
    except GraphdelError as e:
        raise RequestError(f"cannot compute the scaffolds of {corpus.source}: {e}") from e
    out: dict[str, list[int]] = {}
    for item, rows in molecules.items():
        out.setdefault(scaffolds[item] or f"acyclic:{item}", []).extend(rows)
    return {k: sorted(v) for k, v in out.items()}


def _expand_scaffolds(corpus: Corpus, ids: Sequence[str]) -> dict[str, list[int]]:
    first = same_structure(corpus)
    items = {ident: _item_of(corpus, ident) for ident in ids}
    known = {ident: first[item] for ident, item in items.items() if item in first}
    if not known:
        return {}
    series = _series(corpus)
    return {ident: series[series_key(corpus, item)] for ident, item in known.items()}


register_granularity("pair", _expand_pairs, units=_units_pairs, unit_name="pairs")
register_granularity("molecule", _expand_molecules, units=rows_by_structure, unit_name="molecules")
register_granularity("scaffold", _expand_scaffolds, units=_series, unit_name="scaffolds",
                     modalities=("molecule",))
