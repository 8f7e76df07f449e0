"""Dataset sources: a small registry of named loaders, each returning a :class:`~graphdel.data.corpus.Corpus`.

A source is named by a spec string:

=====================  ==============================================================================
``drugs``              the embedded drug corpus, ``data/drugs/drugs.tsv.gz`` at the repository root
                       (or ``$GRAPHDEL_DATA_DIR/drugs/drugs.tsv.gz``)
``chebi20:PATH``       ChEBI-20 (Edwards et al., 2021): a folder with ``train.txt``, ``validation.txt``
                       and ``test.txt``, or one such file (then scaffold-split)
``csv:PATH``           a CSV file with ``smiles`` and ``text`` columns (see :func:`load_csv`)
=====================  ==============================================================================

Other modules add sources with :func:`register_source` without editing this one; a source module must be
imported before its name can be used (those of the in-tree modalities are imported on the first miss, from
their records in :mod:`graphdel.modalities`). ``corpus.source`` always holds the spec with an absolute path, so a
run can reload its data later.

Every loader follows the same rules: files are decoded as strict UTF-8 (a leading BOM is dropped, ``.gz``
files are decompressed), a file containing a NUL byte is refused as binary, and every problem raises
:class:`~graphdel.errors.InvalidInputError` (or its subclass :class:`~graphdel.errors.InvalidMoleculeError`)
with a message naming the file and the row. Rows are numbered as lines of the file, the header being
line 1. With ``skip_invalid=True`` rows with an unparsable SMILES, an empty or over-long text, an unknown
split value, an id whose SMILES conflicts with an earlier row, or an id whose split differs from an
earlier row's (one molecule in train and test leaks it into evaluation) are left out and listed in
``corpus.skipped`` instead; structural problems (wrong columns, wrong field counts, bad encoding,
duplicated pair ids) always raise.

What loading does to valid rows is reported, one line each (a :class:`~graphdel.errors.GraphdelWarning`),
never done silently: rows whose SMILES lost fragments (salts, solvents; listed in ``corpus.stripped``),
pairs that are exact copies of another (same canonical SMILES and text: a deletion of one removes every
copy, see :meth:`Corpus.copies <graphdel.data.corpus.Corpus.copies>`), and molecule ids that share one
structure (requests by molecule treat them as one molecule), with a second line when such a structure
spans two splits.

The registry and the built-in sources are here; reading files (:mod:`graphdel.data.reading`) and turning
molecule rows into a corpus (:mod:`graphdel.data.molecule_corpus`) are modules of their own, every public
name of both also imported from here.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from graphdel.data.corpus import Corpus
from graphdel.data.molecule_corpus import RawPair, default_item_id, molecule_corpus
from graphdel.data.reading import (MAX_FIELD_BYTES, MAX_TEXT_CHARS, clean_text, csv_table, decode_utf8,
                                   read_text_file, tsv_records)
from graphdel.errors import InvalidInputError, shorten
from graphdel.modalities import load_modalities
from graphdel.registry import Registry, where_defined

__all__ = ["CHEBI20_COLUMNS", "CHEBI20_FILES", "CSV_OPTIONAL", "CSV_REQUIRED", "DRUGS_COLUMNS", "MAX_FIELD_BYTES",
           "MAX_TEXT_CHARS", "RawPair", "SourceInfo", "available_sources", "clean_text", "csv_table", "data_dir",
           "decode_utf8", "default_item_id", "load_chebi20", "load_csv", "load_dataset", "load_drugs",
           "molecule_corpus", "read_text_file", "register_source"]


# --------------------------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class SourceInfo:
    """A registered source.

    Attributes:
        name: the name before ``:`` in a spec.
        loader: ``loader(argument, *, skip_invalid) -> Corpus``.
        argument: ``"none"`` (spec is the bare name; the loader gets ``None``), ``"path"`` (spec must be
            ``name:PATH``; the loader gets the absolute :class:`~pathlib.Path`, checked to exist, and
            ``corpus.source`` is set to ``name:ABSOLUTE_PATH``) or ``"optional"`` (the loader gets the text
            after ``:`` or ``None`` and sets ``corpus.source`` itself).
    """

    name: str
    loader: Callable[..., Corpus]
    argument: str = "none"


def _load_every_modality(_name: str) -> None:
    load_modalities()  # a source of a modality not loaded yet (kg:PATH, wordnet, karpathy:PATH...)?


_SOURCES: Registry[SourceInfo] = Registry("dataset source", unknown_error=InvalidInputError,
                                          on_miss=_load_every_modality)
"""Source name -> :class:`SourceInfo`; a missing name loads every recorded modality first."""


def register_source(name: str, *, argument: str = "none", overwrite: bool = False
                    ) -> Callable[[Callable[..., Corpus]], Callable[..., Corpus]]:
    """Decorator registering ``loader(argument, *, skip_invalid) -> Corpus`` under ``name``.

    Example::

        @register_source("wordnet")
        def load_wordnet(_arg, *, skip_invalid=False) -> Corpus: ...

    Raises:
        ValueError: bad name or ``argument`` kind, or ``name`` already taken (unless ``overwrite``).
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", name):
        raise ValueError(f"invalid source name {name!r}")
    if argument not in ("none", "path", "optional"):
        raise ValueError(f"argument must be 'none', 'path' or 'optional', got {argument!r}")

    def decorate(loader: Callable[..., Corpus]) -> Callable[..., Corpus]:
        # the same loader again (its decorator run twice) replaces its entry, as before; another is refused
        again = name in _SOURCES.keys() and _SOURCES[name].loader is loader
        _SOURCES.register(name, SourceInfo(name, loader, argument), overwrite=overwrite or again,
                          origin=where_defined(loader))
        return loader

    return decorate


def available_sources() -> list[str]:
    """Registered source names, sorted (those taking a path are shown as ``name:PATH``); every recorded
    modality is loaded first, so its sources are listed."""
    load_modalities()
    return sorted(f"{s.name}:PATH" if s.argument == "path" else s.name for s in _SOURCES.values())


def load_dataset(spec: str, *, skip_invalid: bool = False) -> Corpus:
    """Load the corpus named by ``spec`` (``"drugs"``, ``"chebi20:PATH"``, ``"csv:PATH"``, ...).

    Raises:
        InvalidInputError: unknown source name (the message lists the known ones), a missing or extra
            argument, a missing path, or anything wrong in the data.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(f"empty dataset spec; known sources: {', '.join(available_sources())}")
    name, sep, arg = spec.strip().partition(":")
    info = _SOURCES.get(name)  # a miss loads every recorded modality first
    if info is None:
        raise InvalidInputError(f"unknown dataset source {shorten(name)} in {shorten(spec)}; known sources: "
                                f"{', '.join(available_sources())}")
    if info.argument == "none":
        if sep:
            raise InvalidInputError(f"dataset source {name!r} takes no argument, got {shorten(spec)}")
        return info.loader(None, skip_invalid=skip_invalid)
    if info.argument == "optional":
        return info.loader(arg if sep else None, skip_invalid=skip_invalid)
    if not arg.strip():
        raise InvalidInputError(f"dataset source {name!r} needs a path: {name}:PATH")
    path = Path(arg.strip()).expanduser().resolve()
    if not path.exists():
        raise InvalidInputError(f"{shorten(spec)}: no such file or folder {path}")
    corpus = info.loader(path, skip_invalid=skip_invalid)
    corpus.source = f"{name}:{path}"
    return corpus


# --------------------------------------------------------------------------------------------- sources

def data_dir() -> Path:
    """The folder of the shipped datasets: ``$GRAPHDEL_DATA_DIR`` or ``data/`` at the repository root."""
    env = os.environ.get("GRAPHDEL_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent.parent / "data"


DRUGS_COLUMNS = ("pair_id", "mol_id", "smiles", "split", "text")


@register_source("drugs")
def load_drugs(_arg: None = None, *, skip_invalid: bool = False) -> Corpus:
    """The embedded drug corpus: ``drugs/drugs.tsv.gz`` under :func:`data_dir`.

    Tab-separated, header ``pair_id  mol_id  smiles  split  text``; the split is part of the file.
    """
    path = data_dir() / "drugs" / "drugs.tsv.gz"
    if not path.is_file():
        raise InvalidInputError(f"the embedded 'drugs' dataset is missing: {path} does not exist "
                                "(set GRAPHDEL_DATA_DIR to the folder holding drugs/drugs.tsv.gz)")
    rows = ((line, rec["pair_id"], rec["mol_id"], rec["smiles"], rec["text"], rec["split"])
            for line, rec in tsv_records(path, DRUGS_COLUMNS))
    return molecule_corpus(rows, source="drugs", skip_invalid=skip_invalid, where=str(path))


CHEBI20_COLUMNS = ("CID", "SMILES", "description")
CHEBI20_FILES = {"train.txt": "train", "validation.txt": "val", "test.txt": "test"}


def _chebi_rows(path: Path, split: str | None, file_label: str | None) -> Iterator[RawPair]:
    for line, rec in tsv_records(path, CHEBI20_COLUMNS):
        cid = rec["CID"].strip()
        if not cid:
            raise InvalidInputError(f"{path}, line {line}: empty CID")
        yield RawPair(line, None, f"CID:{cid}", rec["SMILES"], rec["description"], split, file_label)


@register_source("chebi20", argument="path")
def load_chebi20(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """ChEBI-20 (Edwards et al., "Text2Mol", EMNLP 2021): tab-separated ``CID  SMILES  description``.

    ``path`` is a folder with ``train.txt``, ``validation.txt`` and ``test.txt`` (splits taken from the
    files, ``validation`` -> ``val``) or one such file (scaffold-split, seed 0). Item id ``CID:<cid>``; pair
    id ``CID:<cid>#<k>``, ``k`` counting from 0 the texts of that CID in file order (train, validation,
    test). Fields are split on tabs with no quoting, so descriptions may contain quotes.
    """
    path = Path(path).resolve()
    if path.is_dir():
        missing = [name for name in CHEBI20_FILES if not (path / name).is_file()]
        if missing:
            raise InvalidInputError(f"ChEBI-20 folder {path} lacks {', '.join(missing)} "
                                    f"(expected {', '.join(CHEBI20_FILES)})")

        def rows() -> Iterator[RawPair]:
            for name, split in CHEBI20_FILES.items():
                yield from _chebi_rows(path / name, split, name)

        return molecule_corpus(rows(), source=f"chebi20:{path}", skip_invalid=skip_invalid, where=str(path))
    return molecule_corpus(_chebi_rows(path, None, None), source=f"chebi20:{path}", skip_invalid=skip_invalid,
                           where=str(path))


CSV_REQUIRED = ("smiles", "text")
CSV_OPTIONAL = ("id", "pair_id", "split")


@register_source("csv", argument="path")
def load_csv(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """A comma-separated file (tab-separated when named ``*.tsv``/``*.tsv.gz``) with a header.

    Columns (names case-insensitive; others ignored): ``smiles`` and ``text`` (required); ``id`` (the
    molecule id, default ``m:`` + sha1 of the canonical SMILES, so rows of one molecule share it);
    ``pair_id`` (default ``<id>#<k>``, ``k`` counting from 0 the rows of that molecule); ``split``
    (``train``/``val``/``test``; without it the molecules are scaffold-split with seed 0).
    """
    path = Path(path).resolve()
    text = read_text_file(path)
    suffixes = [s.lower() for s in path.suffixes]
    delimiter = "\t" if suffixes[-2:] == [".tsv", ".gz"] or suffixes[-1:] == [".tsv"] else ","
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        records = _csv_records(path, text, delimiter)
    finally:
        csv.field_size_limit(old_limit)
    return molecule_corpus(records, source=f"csv:{path}", skip_invalid=skip_invalid, where=str(path))


def _csv_records(path: Path, text: str, delimiter: str) -> list[RawPair]:
    return [RawPair(line, row["pair_id"], row["id"], row["smiles"], row["text"], row["split"])
            for line, row in csv_table(path, text, required=CSV_REQUIRED, optional=CSV_OPTIONAL,
                                       delimiter=delimiter)]
