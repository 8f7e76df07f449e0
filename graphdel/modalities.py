"""The modalities graphdel knows, each declared once: :data:`MODALITIES`, one :class:`Modality` record per name.

A record names everything that wires a modality in, so that a reader finds it all by the modality's name:

* ``model``: its joint model class (``"module:Class"``), what
  :data:`graphdel.models.registry.MODEL_TYPES` gives for the name;
* ``data_modules``: the data modules that register its pieces when imported: its sources
  (:func:`~graphdel.data.sources.register_source`), featuriser, probe targets and training view
  (:mod:`graphdel.data.pairs`) and request granularities (:mod:`graphdel.data.granularities`);
* ``item_word``: what the item side is called in a report's retrieval line ("graph→text", "query→text");
* ``label``: the short name of the modality in ``graphdel compare``'s column headers.

Nothing is imported here: :func:`load_modality` imports what a record names on first use (the registries
ask for it when they miss a name: :func:`graphdel.data.sources.load_dataset`, the featuriser, view and probe
look-ups of :mod:`graphdel.data.pairs`, :func:`graphdel.data.granularities.get_granularity` and
``MODEL_TYPES``), so this module sits at the bottom of the import layers (standard library and
:mod:`graphdel.errors` only) and no module imports another only for what it registers. A modality of one's
own may still register its pieces directly (docs/extending.md); a record is how an in-tree one is wired.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from graphdel.errors import InvalidInputError

__all__ = ["MODALITIES", "Modality", "UnknownModalityError", "get_modality", "item_word", "label",
           "load_modalities", "load_modality", "model_class", "require_loaded"]


@dataclass(frozen=True)
class Modality:
    """How one modality is wired in (see the module docstring).

    Attributes:
        name: ``corpus.modality`` and ``ModelConfig.modality`` of its data and models.
        model: its joint model class, ``"dotted.module:ClassName"``.
        data_modules: modules imported for the sources, featuriser, view, probe targets and granularities
            they register.
        item_word: the item side in a report's retrieval line ("graph", "image", "query").
        label: the modality's short name in comparison tables ("graph", "image", "KG").
    """

    name: str
    model: str
    data_modules: tuple[str, ...]
    item_word: str
    label: str


MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("molecule", model="graphdel.models.molecule:MoleculeTextModel",
             data_modules=("graphdel.data.sources", "graphdel.data.pairs", "graphdel.data.granularities"),
             item_word="graph", label="graph"),
    Modality("kg", model="graphdel.models.kg:KGTextModel",
             data_modules=("graphdel.data.kg",),  # kg:PATH, wordnet; featuriser, triple view, granularities
             item_word="query", label="KG"),
    Modality("image", model="graphdel.models.image:ImageTextModel",
             data_modules=("graphdel.data.images",),  # depictions, karpathy, imagefolder; featuriser, probes
             item_word="image", label="image"),
)}
"""Modality name -> its :class:`Modality` record: the one place an in-tree modality is declared."""

class UnknownModalityError(InvalidInputError):
    """A modality name with no :class:`Modality` record."""


def get_modality(name: str) -> Modality:
    """The record of ``name``.

    Raises:
        UnknownModalityError: no such modality (one line naming it and the known ones).
    """
    record = MODALITIES.get(name) if isinstance(name, str) else None
    if record is None:
        raise UnknownModalityError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}")
    return record


def load_modality(name: str) -> Modality:
    """Import what the record of ``name`` names (its data modules, then its model class's module), so that
    every registration of the modality has happened; idempotent (a module is imported once). Returns the
    record.

    Raises:
        UnknownModalityError: no such modality.
    """
    record = get_modality(name)
    for module in record.data_modules:
        importlib.import_module(module)
    importlib.import_module(record.model.partition(":")[0])
    return record


def load_modalities() -> list[Modality]:
    """:func:`load_modality` of every record (for listings: every source, every granularity)."""
    return [load_modality(name) for name in sorted(MODALITIES)]


def require_loaded(name: object) -> None:
    """Load ``name`` if it is a recorded modality; a name without a record (a modality registered directly,
    or none) is left to the registry that looks it up, which refuses it in its own words."""
    if isinstance(name, str) and name in MODALITIES:
        load_modality(name)


def model_class(name: str) -> type:
    """The joint model class of ``name`` (its modality loaded first).

    Raises:
        UnknownModalityError: no such modality.
    """
    record = load_modality(name)
    module, _, attribute = record.model.partition(":")
    return getattr(importlib.import_module(module), attribute)


def item_word(name: object, default: str = "graph") -> str:
    """The report word of ``name``'s items (``default`` for a modality without a record)."""
    record = MODALITIES.get(name) if isinstance(name, str) else None
    return record.item_word if record is not None else default


def label(name: object) -> str:
    """The short label of ``name`` in comparison tables (the name itself without a record)."""
    record = MODALITIES.get(name) if isinstance(name, str) else None
    return record.label if record is not None else str(name)
