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
imported before its name can be used. ``corpus.source`` always holds the spec with an absolute path, so a
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
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.molecules import standardize_smiles
from graphdel.data.scaffold import scaffold_split
from graphdel.errors import InvalidInputError, InvalidMoleculeError, shorten, warn

#: A text longer than this many characters is refused (a parsing accident, not a caption).
MAX_TEXT_CHARS = 100_000
#: Largest CSV field accepted by the parser (the text limit above is checked afterwards).
MAX_FIELD_BYTES = 10 * 1024 * 1024

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}
# Whitespace runs containing a line break, tab or other vertical separator become one space.
_BREAKS = re.compile(r"\s*[\t\n\r\f\v\x1c\x1d\x1e\x85\u2028\u2029]\s*")


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


_SOURCES: dict[str, SourceInfo] = {}


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
        if name in _SOURCES and not overwrite and _SOURCES[name].loader is not loader:
            raise ValueError(f"a source named {name!r} is already registered")
        _SOURCES[name] = SourceInfo(name, loader, argument)
        return loader

    return decorate


def available_sources() -> list[str]:
    """Registered source names, sorted (those taking a path are shown as ``name:PATH``)."""
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
    info = _SOURCES.get(name)
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


# --------------------------------------------------------------------------------------------- reading

def read_text_file(path: str | Path) -> str:
    """Read a whole file as strict UTF-8 (``.gz`` decompressed, a leading BOM dropped).

    Raises:
        InvalidInputError: unreadable, not a regular file, empty, binary (NUL byte), bad gzip, or not UTF-8
            (naming the line and byte offset).
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        # A device or a pipe (/dev/zero, a FIFO) would be read forever or block: refuse it unread.
        raise InvalidInputError(f"{path} is not a regular file")
    try:
        data = path.read_bytes()
    except IsADirectoryError as e:
        raise InvalidInputError(f"{path} is a folder, expected a file") from e
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from e
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise InvalidInputError(f"{path} is not a valid gzip file: {e}") from e
    if not data.strip():
        raise InvalidInputError(f"{path} is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InvalidInputError(f"{path} looks binary: NUL byte at line {line}, byte offset {nul}")
    return decode_utf8(data, path)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """Strict UTF-8 decoding of a file's bytes (a leading BOM dropped); the error names line and offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InvalidInputError(f"{path} is not valid UTF-8: bad byte at line {line}, "
                                f"byte offset {e.start}") from e
    return text[1:] if text.startswith("\ufeff") else text


def clean_text(text: str) -> str:
    """Strip ``text`` and collapse every whitespace run containing a line break or tab into one space."""
    return _BREAKS.sub(" ", text).strip()


def _tsv_records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, {column: value})`` for a tab-separated file with a header (no quoting)."""
    lines = read_text_file(path).split("\n")
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise InvalidInputError(f"{path} is empty")
    header = [h.strip() for h in lines[header_at].rstrip("\r").split("\t")]
    by_lower = {h.lower(): i for i, h in enumerate(header)}
    missing = [c for c in required if c.lower() not in by_lower]
    if missing:
        raise InvalidInputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(map(repr, missing))} in the tab-separated header; "
                                f"found columns {header}")
    index = {c: by_lower[c.lower()] for c in required}
    for i in range(header_at + 1, len(lines)):
        line = lines[i].rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise InvalidInputError(f"{path}, line {i + 1}: expected {len(header)} tab-separated fields "
                                    f"({', '.join(header)}), found {len(fields)}")
        yield i + 1, {c: fields[j] for c, j in index.items()}


# --------------------------------------------------------------------------------------------- corpus

class RawPair(NamedTuple):
    """One raw row for :func:`molecule_corpus`.

    ``pair_id`` ``None``: ``f"{item_id}#{k}"`` with ``k`` counting (from 0) the rows of that item in input
    order. ``item_id`` ``None``: ``"m:" + sha1(canonical SMILES)[:12]``. ``split`` ``None``: scaffold split.
    ``file``: the file of the row when a source reads several (it is then named in errors and skips).
    """

    row: int
    pair_id: str | None
    item_id: str | None
    smiles: str
    text: str
    split: str | None
    file: str | None = None


def default_item_id(canonical_smiles: str) -> str:
    """``m:`` + the first 12 hex digits of the SHA-1 of the canonical SMILES."""
    return "m:" + hashlib.sha1(canonical_smiles.encode("utf-8")).hexdigest()[:12]


def _name_ids(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(map(shorten, list(ids)[:limit]))
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{len(ids)}: {shown}{more}"


def molecule_corpus(rows: Iterable[Sequence], *, source: str, skip_invalid: bool = False,
                    where: str | None = None) -> Corpus:
    """A molecule :class:`Corpus` from raw rows ``(row, pair_id, item_id, smiles, text, split[, file])``.

    Each SMILES goes through :func:`~graphdel.data.molecules.standardize_smiles` (canonical, salts reduced to
    the largest organic fragment; removed fragments are recorded per item in ``corpus.removed_fragments``
    and per row in ``corpus.stripped``, and their count is warned about). Texts
    are stripped and their line breaks and tabs collapsed to one space. When no row gives a split, items
    are scaffold-split (:func:`~graphdel.data.scaffold.scaffold_split`, seed 0) and every pair takes the
    split of its molecule.

    Args:
        rows: raw rows (see :class:`RawPair` for the ``None`` conventions).
        source: the spec stored in ``corpus.source``.
        skip_invalid: leave invalid rows out and record them in ``corpus.skipped`` as
            ``{"row", "id", "reason"}`` (plus ``"file"`` when the row says which file), instead of raising.
        where: the file name used in messages for rows that do not carry one.

    Raises:
        InvalidMoleculeError: an unparsable SMILES (naming row and id).
        InvalidInputError: empty or over-long text, unknown split, an item id with two different
            SMILES or in two splits, splits given for some rows only, duplicated pair ids, or no valid row
            at all.
    """
    pair_ids: list[str] = []
    item_ids: list[str] = []
    texts: list[str] = []
    splits: list[str | None] = []
    items: dict[str, str] = {}
    item_row: dict[str, tuple[int, str | None]] = {}
    item_split: dict[str, tuple[str, int, str | None]] = {}
    stripped: list[dict] = []
    removed: dict[str, list[str]] = {}
    skipped: list[dict] = []
    seen_per_item: Counter = Counter()
    pair_rows: dict[str, list[str]] = {}
    n_rows = 0

    for raw in rows:
        r = RawPair(*raw)
        n_rows += 1
        file = r.file or where
        loc = f"{file}, row {r.row}" if file else f"row {r.row}"
        given_item = r.item_id.strip() if isinstance(r.item_id, str) and r.item_id.strip() else None
        given_pair = r.pair_id.strip() if isinstance(r.pair_id, str) and r.pair_id.strip() else None

        def fail(reason: str, ident: str | None, *, molecule: bool = False,
                 smiles: str | None = None) -> None:
            if skip_invalid:
                record = {"row": r.row, "id": ident, "reason": reason}
                if r.file:
                    record["file"] = r.file
                skipped.append(record)
                return
            if molecule:
                raise InvalidMoleculeError(reason + (f" (in {file})" if file else ""), row=r.row,
                                           item_id=ident, smiles=smiles)
            raise InvalidInputError(f"{loc}" + (f", id {shorten(ident)}" if ident else "") + f": {reason}")

        # Number the rows of a named item before any validation, so ids do not shift when a row is skipped.
        k = None
        if given_item is not None:
            k = seen_per_item[given_item]
            seen_per_item[given_item] += 1

        smiles = r.smiles if isinstance(r.smiles, str) else ""
        try:
            std = standardize_smiles(smiles)
        except InvalidMoleculeError as e:
            fail(str(e), given_item or given_pair, molecule=True, smiles=smiles)
            continue
        item_id = given_item or default_item_id(std.smiles)
        if given_item is None:
            k = seen_per_item[item_id]
            seen_per_item[item_id] += 1
        pair_id = given_pair or f"{item_id}#{k}"

        text = clean_text(r.text) if isinstance(r.text, str) else ""
        if not text:
            fail("empty text", pair_id)
            continue
        if len(text) > MAX_TEXT_CHARS:
            fail(f"text of {len(text)} characters is longer than the limit of {MAX_TEXT_CHARS}", pair_id)
            continue
        split = None
        if r.split is not None:
            split = _SPLIT_ALIASES.get(str(r.split).strip().lower())
            if split is None:
                fail(f"unknown split {shorten(r.split)} (expected train, val or test)", pair_id)
                continue
        if item_id in items and items[item_id] != std.smiles:
            first_row, first_file = item_row[item_id]
            first = (f"{first_file} row {first_row}" if first_file and first_file != r.file
                     else f"row {first_row}")
            fail(f"molecule id {shorten(item_id)} has SMILES {shorten(std.smiles)} here but "
                 f"{shorten(items[item_id])} at {first}", item_id)
            continue
        earlier = item_split.get(item_id)
        if split is not None and earlier is not None and earlier[0] != split:
            # one molecule in two splits: its test (or val) score measures memorisation, not retrieval
            first_split, first_row, first_file = earlier
            first = (f"{first_file} row {first_row}" if first_file and first_file != r.file
                     else f"row {first_row}")
            fail(f"molecule id {shorten(item_id)} is in the {split} split here but in the {first_split} split "
                 f"at {first}: one molecule in two splits leaks training data into evaluation", item_id)
            continue

        if item_id not in items:
            items[item_id] = std.smiles
            item_row[item_id] = (r.row, r.file)
            if std.removed:
                removed[item_id] = list(std.removed)
        if split is not None and item_id not in item_split:
            item_split[item_id] = (split, r.row, r.file)
        if std.removed:
            record = {"row": r.row, "id": pair_id, "removed": list(std.removed)}
            if r.file:
                record["file"] = r.file
            stripped.append(record)
        pair_ids.append(pair_id)
        pair_rows.setdefault(pair_id, []).append(f"{r.file} row {r.row}" if r.file else f"row {r.row}")
        item_ids.append(item_id)
        texts.append(text)
        splits.append(split)

    label = where or source
    dupes = [pid for pid, at in pair_rows.items() if len(at) > 1]
    if dupes:
        detail = "; ".join(f"{shorten(pid)} at {', '.join(pair_rows[pid])}" for pid in dupes[:10])
        raise InvalidInputError(f"{label}: duplicated pair ids ({len(dupes)}): {detail}")
    if not pair_ids:
        what = "no rows" if n_rows == 0 else f"no valid rows ({len(skipped)} of {n_rows} skipped)"
        raise InvalidInputError(f"{label}: {what}")
    given = [s is not None for s in splits]
    if any(given) and not all(given):
        missing = [pid for pid, s in zip(pair_ids, splits) if s is None]
        raise InvalidInputError(f"{label}: a split is given for some rows but not for pairs "
                                f"{_name_ids(missing)}")
    if not any(given):
        by_item = scaffold_split(items, seed=0)
        splits = [by_item[iid] for iid in item_ids]
    corpus = Corpus(source=source, modality="molecule", pair_ids=pair_ids, item_ids=item_ids, texts=texts,
                    splits=splits, items=items, skipped=skipped,  # type: ignore[arg-type]
                    removed_fragments=removed, stripped=stripped)
    _report_reductions(corpus, label)
    return corpus


def _report_reductions(corpus: Corpus, label: str) -> None:
    """Warn (one line each) about what loading did to the rows: stripped salts, exact copies, and molecule
    ids sharing one structure, so that none of it happens silently."""
    if corpus.stripped:
        first = corpus.stripped[0]
        where = f"{first['file']} " if first.get("file") else ""
        warn(f"{label}: {len(corpus.stripped)} of {len(corpus)} rows had fragments (salts, solvents) removed "
             f"from their SMILES, keeping the largest organic fragment (first: {where}row {first['row']}, id "
             f"{shorten(first['id'])}: removed {shorten('.'.join(first['removed']))}); listed in corpus.stripped")
    groups = list({tuple(g): g for g in corpus.copies().values()}.values())  # each group once, in row order
    if groups:
        extra = sum(len(g) - 1 for g in groups)
        a, b = groups[0][0], groups[0][1]
        warn(f"{label}: {extra} pair{'s are exact copies' if extra > 1 else ' is an exact copy'} of another "
             f"(same structure and text; first: {shorten(corpus.pair_ids[b])} of {shorten(corpus.pair_ids[a])}); "
             "deleting one deletes every copy")
    ids_of: dict[str, list[str]] = {}
    for iid, smiles in corpus.items.items():
        ids_of.setdefault(smiles, []).append(iid)
    shared = [ids for ids in ids_of.values() if len(ids) > 1]
    if shared:
        extra = sum(len(ids) - 1 for ids in shared)
        warn(f"{label}: {extra} molecule id{'s share their' if extra > 1 else ' shares its'} structure with "
             f"another id (first: {shorten(shared[0][1])} and {shorten(shared[0][0])}); by=molecule and "
             "by=scaffold requests treat them as one molecule")
        split_of = dict(zip(corpus.item_ids, corpus.splits))
        mixed = [ids for ids in shared if len({split_of[i] for i in ids}) > 1]
        if mixed:
            shown = ", ".join(f"{shorten(i)} ({split_of[i]})" for i in mixed[0])
            warn(f"{label}: {len(mixed)} structure{'s are' if len(mixed) > 1 else ' is'} in more than one split "
                 f"under different ids (first: {shown}): the same molecule is trained on and evaluated")


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
            for line, rec in _tsv_records(path, DRUGS_COLUMNS))
    return molecule_corpus(rows, source="drugs", skip_invalid=skip_invalid, where=str(path))


CHEBI20_COLUMNS = ("CID", "SMILES", "description")
CHEBI20_FILES = {"train.txt": "train", "validation.txt": "val", "test.txt": "test"}


def _chebi_rows(path: Path, split: str | None, file_label: str | None) -> Iterator[RawPair]:
    for line, rec in _tsv_records(path, CHEBI20_COLUMNS):
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


def csv_table(path: Path, text: str, *, required: Sequence[str], optional: Sequence[str] = (),
              alternatives: dict[str, Sequence[str]] | None = None, delimiter: str = ","
              ) -> Iterator[tuple[int, dict[str, str | None]]]:
    """The rows of a CSV file with a header, as ``(line, {column: value or None})``; blank rows skipped.

    ``required`` columns must be in the header; ``alternatives`` maps a column name to the header names
    accepted for it (the first present wins, e.g. ``{"caption": ("caption", "text")}``), also required.
    Column names are matched case-insensitively.

    Raises:
        InvalidInputError: an empty file, duplicated or missing columns, a row with the wrong number of
            fields, or malformed CSV, naming the file and the line.
    """
    alternatives = dict(alternatives or {})
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    header: list[str] | None = None
    index: dict[str, int] = {}
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                dupes = sorted(c for c, n in Counter(header).items() if n > 1)
                if dupes:
                    raise InvalidInputError(f"{path}: duplicated column names {dupes} in the header")
                chosen = {name: next((c for c in names if c in header), None) for name, names in alternatives.items()}
                missing = [c for c in required if c not in header] + [n for n, c in chosen.items() if c is None]
                if missing:
                    raise InvalidInputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                                            f"{', '.join(map(repr, missing))}; found columns {fields}")
                index = {c: header.index(c) for c in (*required, *optional) if c in header}
                index.update({name: header.index(c) for name, c in chosen.items() if c is not None})
                continue
            if len(fields) != len(header):
                raise InvalidInputError(f"{path}, line {line}: expected {len(header)} fields "
                                        f"({', '.join(header)}), found {len(fields)}")
            yield line, {c: (fields[index[c]] if c in index else None)
                         for c in (*required, *optional, *alternatives)}
    except csv.Error as e:
        raise InvalidInputError(f"{path}, line {reader.line_num}: malformed CSV: {e}") from e
    if header is None:
        raise InvalidInputError(f"{path} is empty")


def _csv_records(path: Path, text: str, delimiter: str) -> list[RawPair]:
    return [RawPair(line, row["pair_id"], row["id"], row["smiles"], row["text"], row["split"])
            for line, row in csv_table(path, text, required=CSV_REQUIRED, optional=CSV_OPTIONAL,
                                       delimiter=delimiter)]
