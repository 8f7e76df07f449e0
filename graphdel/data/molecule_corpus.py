"""From raw molecule rows to a :class:`~graphdel.data.corpus.Corpus`: every molecule source's loader (and a
source of one's own) hands its rows to :func:`molecule_corpus`, which standardises, validates and numbers
them and reports what loading did (the rules are in :mod:`graphdel.data.sources`, which every public name
here is also imported from).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Iterable, NamedTuple, Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.molecules import standardize_smiles
from graphdel.data.reading import MAX_TEXT_CHARS, clean_text
from graphdel.data.scaffold import scaffold_split
from graphdel.errors import InvalidInputError, InvalidMoleculeError, shorten, warn

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "dev": "val", "test": "test", "testing": "test"}


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
    built = _MoleculeRows(skip_invalid, where)
    for raw in rows:
        built.add(raw)
    return built.corpus(source)


class _MoleculeRows:
    """What :func:`molecule_corpus` gathers from the raw rows: the accepted pairs and their items, the rows
    skipped (``skip_invalid``) and the fragments stripped, and what the later rows are checked against (the
    first SMILES, row and split of every item id, the rows of every pair id)."""

    def __init__(self, skip_invalid: bool, where: str | None) -> None:
        self.skip_invalid, self.where = skip_invalid, where
        self.pair_ids: list[str] = []
        self.item_ids: list[str] = []
        self.texts: list[str] = []
        self.splits: list[str | None] = []
        self.items: dict[str, str] = {}
        self.item_row: dict[str, tuple[int, str | None]] = {}
        self.item_split: dict[str, tuple[str, int, str | None]] = {}
        self.stripped: list[dict] = []
        self.removed: dict[str, list[str]] = {}
        self.skipped: list[dict] = []
        self.seen_per_item: Counter = Counter()
        self.pair_rows: dict[str, list[str]] = {}
        self.n_rows = 0

    def add(self, raw: Sequence) -> None:
        """Standardise and check one raw row, then keep it, or skip it (``skip_invalid``) or raise."""
        r = RawPair(*raw)
        self.n_rows += 1
        file = r.file or self.where
        given_item = r.item_id.strip() if isinstance(r.item_id, str) and r.item_id.strip() else None
        given_pair = r.pair_id.strip() if isinstance(r.pair_id, str) and r.pair_id.strip() else None

        # Number the rows of a named item before any validation, so ids do not shift when a row is skipped.
        k = None
        if given_item is not None:
            k = self.seen_per_item[given_item]
            self.seen_per_item[given_item] += 1

        smiles = r.smiles if isinstance(r.smiles, str) else ""
        try:
            std = standardize_smiles(smiles)
        except InvalidMoleculeError as e:
            self._fail(r, file, str(e), given_item or given_pair, molecule=True, smiles=smiles)
            return
        item_id = given_item or default_item_id(std.smiles)
        if given_item is None:
            k = self.seen_per_item[item_id]
            self.seen_per_item[item_id] += 1
        pair_id = given_pair or f"{item_id}#{k}"

        text = clean_text(r.text) if isinstance(r.text, str) else ""
        split, refusal = self._check(r, item_id, pair_id, text, std.smiles)
        if refusal is not None:
            self._fail(r, file, *refusal)
            return
        self._keep(r, item_id, pair_id, text, split, std)

    def _check(self, r: RawPair, item_id: str, pair_id: str, text: str, smiles: str
               ) -> tuple[str | None, tuple[str, str] | None]:
        """``(split, None)`` for a valid row, else ``(None, (reason, id))``: the first of an empty or
        over-long text, an unknown split, and an item id whose SMILES or split differs from an earlier row's."""
        if not text:
            return None, ("empty text", pair_id)
        if len(text) > MAX_TEXT_CHARS:
            return None, (f"text of {len(text)} characters is longer than the limit of {MAX_TEXT_CHARS}", pair_id)
        split = None
        if r.split is not None:
            split = _SPLIT_ALIASES.get(str(r.split).strip().lower())
            if split is None:
                return None, (f"unknown split {shorten(r.split)} (expected train, val or test)", pair_id)
        if item_id in self.items and self.items[item_id] != smiles:
            first_row, first_file = self.item_row[item_id]
            first = (f"{first_file} row {first_row}" if first_file and first_file != r.file
                     else f"row {first_row}")
            return None, (f"molecule id {shorten(item_id)} has SMILES {shorten(smiles)} here but "
                          f"{shorten(self.items[item_id])} at {first}", item_id)
        earlier = self.item_split.get(item_id)
        if split is not None and earlier is not None and earlier[0] != split:
            # one molecule in two splits: its test (or val) score measures memorisation, not retrieval
            first_split, first_row, first_file = earlier
            first = (f"{first_file} row {first_row}" if first_file and first_file != r.file
                     else f"row {first_row}")
            return None, (f"molecule id {shorten(item_id)} is in the {split} split here but in the {first_split} "
                          f"split at {first}: one molecule in two splits leaks training data into evaluation",
                          item_id)
        return split, None

    def _fail(self, r: RawPair, file: str | None, reason: str, ident: str | None, *, molecule: bool = False,
              smiles: str | None = None) -> None:
        """Skip the row, recorded in ``skipped`` (``skip_invalid``), or raise naming the row and id."""
        if self.skip_invalid:
            record = {"row": r.row, "id": ident, "reason": reason}
            if r.file:
                record["file"] = r.file
            self.skipped.append(record)
            return
        if molecule:
            raise InvalidMoleculeError(reason + (f" (in {file})" if file else ""), row=r.row,
                                       item_id=ident, smiles=smiles)
        loc = f"{file}, row {r.row}" if file else f"row {r.row}"
        raise InvalidInputError(f"{loc}" + (f", id {shorten(ident)}" if ident else "") + f": {reason}")

    def _keep(self, r: RawPair, item_id: str, pair_id: str, text: str, split: str | None, std) -> None:
        """Add a valid row: its pair, its item when first seen, and the fragments its SMILES lost."""
        if item_id not in self.items:
            self.items[item_id] = std.smiles
            self.item_row[item_id] = (r.row, r.file)
            if std.removed:
                self.removed[item_id] = list(std.removed)
        if split is not None and item_id not in self.item_split:
            self.item_split[item_id] = (split, r.row, r.file)
        if std.removed:
            record = {"row": r.row, "id": pair_id, "removed": list(std.removed)}
            if r.file:
                record["file"] = r.file
            self.stripped.append(record)
        self.pair_ids.append(pair_id)
        self.pair_rows.setdefault(pair_id, []).append(f"{r.file} row {r.row}" if r.file else f"row {r.row}")
        self.item_ids.append(item_id)
        self.texts.append(text)
        self.splits.append(split)

    def corpus(self, source: str) -> Corpus:
        """The corpus of the rows kept, checked as a whole (no duplicated pair id, at least one row, splits
        given for every row or for none; none: scaffold split), with what loading did reported."""
        label = self.where or source
        dupes = [pid for pid, at in self.pair_rows.items() if len(at) > 1]
        if dupes:
            detail = "; ".join(f"{shorten(pid)} at {', '.join(self.pair_rows[pid])}" for pid in dupes[:10])
            raise InvalidInputError(f"{label}: duplicated pair ids ({len(dupes)}): {detail}")
        if not self.pair_ids:
            what = "no rows" if self.n_rows == 0 else f"no valid rows ({len(self.skipped)} of {self.n_rows} skipped)"
            raise InvalidInputError(f"{label}: {what}")
        splits = self.splits
        given = [s is not None for s in splits]
        if any(given) and not all(given):
            missing = [pid for pid, s in zip(self.pair_ids, splits) if s is None]
            raise InvalidInputError(f"{label}: a split is given for some rows but not for pairs "
                                    f"{_name_ids(missing)}")
        if not any(given):
            by_item = scaffold_split(self.items, seed=0)
            splits = [by_item[iid] for iid in self.item_ids]
        corpus = Corpus(source=source, modality="molecule", pair_ids=self.pair_ids, item_ids=self.item_ids,
                        texts=self.texts, splits=splits, items=self.items, skipped=self.skipped,  # type: ignore[arg-type]
                        removed_fragments=self.removed, stripped=self.stripped)
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
