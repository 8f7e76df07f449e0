"""Deletion requests: which training pairs to forget.

A :class:`DeletionRequest` is the set ``Df`` of pair ids to forget (docs/design.md), made

* from ids given in Python or in a file (:meth:`DeletionRequest.from_ids`, :meth:`DeletionRequest.from_file`);
* at random, a count or a fraction, with a seed (:meth:`DeletionRequest.random`);

at one of several *granularities*, each expanding what the user names into training pairs:

============  =====================================================================================
``pair``      the named pairs
``molecule``  every training pair of the named molecules (item ids; pair ids name their molecule). Item
              ids with the same item input (one canonical SMILES under two ids) are one molecule.
``scaffold``  every training pair of every molecule whose Bemis–Murcko scaffold equals that of a named
              molecule ("forget this chemical series"); an acyclic molecule (no scaffold) is a series
              of its own. Molecule corpora only.
============  =====================================================================================

Other modules add granularities (e.g. ``triple``, ``relation``, ``entity`` for knowledge graphs) with
:func:`register_granularity`, without editing this file.

Whatever the granularity, a request also covers every *exact copy* of the pairs it names: a pair with the
same item input and text under another id (:meth:`Corpus.copies <graphdel.data.corpus.Corpus.copies>`: a
duplicated CSV row, one molecule and caption under two ids). Otherwise deleting one copy would leave the
same datum in the retained set; the description says how many copies were added. Copies are matched in
every split, so a val or test pair whose copy was trained on is forgotten through that copy.

A random amount is a count when it is an ``int`` >= 1 and a fraction when it is a ``float`` in (0, 1);
``1.0`` or ``2.5`` are refused rather than guessed at. :func:`parse_amount` reads the command line's text
by the same rule (a count is written without a decimal point).

Only pairs the model was trained on can be forgotten: pairs of the val/test splits are refused, and so
are training pairs outside ``allowed_rows`` (a run holds back a calibration subset of training pairs that
is never trained on). A request covering every forgettable pair is refused unless ``force=True``.

A request is saved as JSON (:meth:`DeletionRequest.save`) with, for every pair, a SHA-256 of its content,
so anyone holding the data can check later what was deleted (:meth:`DeletionRequest.verify_hashes`).
The hash recipe (:func:`pair_hash`) is::

    sha256( utf8(item_input) + b"\\n" + utf8(text) ).hexdigest()

where ``item_input`` is ``corpus.items[item_id]`` (the canonical SMILES for molecules) and ``text`` the
pair's text as stored in the corpus (stripped, line breaks collapsed, so it contains no newline).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import random as _random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.scaffold import cached_murcko_scaffold
from graphdel.errors import GraphdelError, InvalidInputError, RequestError, shorten, warn
from graphdel.io import atomic_write_json

FORMAT = "graphdel-deletion-request"
FORMAT_VERSION = 1
HASH_RECIPE = 'sha256(utf8(item_input) + b"\\n" + utf8(text)); item_input = canonical SMILES for molecules'

#: ``expand(corpus, ids) -> {id: rows}``: for every id it recognises, the corpus rows (of any split) it
#: covers; ids it does not recognise are left out (and reported as unknown).
ExpandFn = Callable[[Corpus, Sequence[str]], "dict[str, list[int]]"]
#: ``units(corpus) -> {unit: rows}``: every unit of the granularity and the corpus rows (any split) it
#: covers; what :meth:`DeletionRequest.random` draws from.
UnitsFn = Callable[[Corpus], "dict[str, list[int]]"]


def pair_hash(item_input: str, text: str) -> str:
    """SHA-256 hex digest of ``utf8(item_input) + b"\\n" + utf8(text)`` (see the module docstring)."""
    return hashlib.sha256(item_input.encode("utf-8") + b"\n" + text.encode("utf-8")).hexdigest()


def _corpus_pair_hash(corpus: Corpus, row: int) -> str:
    return pair_hash(corpus.items[corpus.item_ids[row]], corpus.texts[row])


def _ids_not_found(kind: str, missing: list[str], asked: int, corpus: Corpus, where: str = "") -> RequestError:
    """The error for ids the run's data lacks, saying which data that is (:meth:`Corpus.describe`: a
    quick run's sample is not the dataset) and, when not one id matched, that the request may be for
    another dataset."""
    hint = "; not one of the ids matched: was the request made for another dataset?" if len(missing) == asked else ""
    return RequestError(f"{where}{kind} ids not in this run's data ({corpus.describe()}): "
                        f"{_name_ids(missing)}{hint}")


def _name_ids(ids: Sequence[str], limit: int = 10) -> str:
    """``"3 ids: 'a', 'b', 'c'"``, or the first ``limit`` and the count."""
    ids = list(ids)
    shown = ", ".join(map(shorten, ids[:limit]))
    if len(ids) > limit:
        return f"{len(ids)} ids, first {limit}: {shown}"
    return f"{len(ids)} id{'s' if len(ids) != 1 else ''}: {shown}"


# ------------------------------------------------------------------------------------------ granularities

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


_GRANULARITIES: dict[str, Granularity] = {}


def register_granularity(name: str, expand: ExpandFn, *, units: UnitsFn | None = None,
                         unit_name: str | None = None, modalities: Iterable[str] | None = None,
                         overwrite: bool = False) -> Granularity:
    """Register a granularity usable as ``by=name`` in :class:`DeletionRequest` constructors.

    Raises:
        ValueError: ``name`` already registered (unless ``overwrite``).
    """
    if name in _GRANULARITIES and not overwrite:
        raise ValueError(f"granularity {name!r} is already registered")
    g = Granularity(name, expand, units, unit_name or f"{name}s",
                    tuple(modalities) if modalities is not None else None)
    _GRANULARITIES[name] = g
    return g


def available_granularities() -> list[str]:
    """Names of the registered request granularities (``pair``, ``molecule``, ``scaffold``, ...), sorted."""
    return sorted(_GRANULARITIES)


def get_granularity(name: str, corpus: Corpus) -> Granularity:
    """The granularity ``name``, checked against the corpus modality (:class:`RequestError` otherwise)."""
    g = _GRANULARITIES.get(name)
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
    out: dict[str, list[int]] = {}
    for item, rows in rows_by_structure(corpus).items():
        out.setdefault(series_key(corpus, item), []).extend(rows)
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


# ------------------------------------------------------------------------------------------ the request

def parse_amount(text: str) -> int | float:
    """The amount of a random request as written on the command line (``--forget-random``).

    A count is a whole number >= 1 written without a decimal point (``3``); a fraction is a number strictly
    between 0 and 1 (``0.05``, ``.5``, ``5e-2``). ``1.0`` (one unit, or all of them?), ``2.5``, ``0``,
    negatives, ``nan`` and ``inf`` are refused rather than rounded.

    Raises:
        RequestError: naming the text.
    """
    s = text.strip() if isinstance(text, str) else ""
    if re.fullmatch(r"\+?[0-9]+", s):
        if int(s) >= 1:
            return int(s)
    else:
        try:
            x = float(s)
        except ValueError:
            x = math.nan
        if 0 < x < 1:
            return x
    raise RequestError(f"random amount {shorten(text)}: expected a count, a whole number >= 1 written without "
                       "a decimal point (e.g. 3), or a fraction strictly between 0 and 1 (e.g. 0.05)")


def _forgettable(corpus: Corpus, allowed_rows: Iterable[int] | None) -> set[int]:
    train = set(corpus.rows("train"))
    if allowed_rows is None:
        return train
    allowed = set()
    for r in allowed_rows:
        if isinstance(r, bool) or not isinstance(r, int):
            raise RequestError(f"allowed_rows must hold row indices (int), got {shorten(r)}")
        allowed.add(r)
    outside = sorted(r for r in allowed if r not in train)
    if outside:
        shown = [corpus.pair_ids[r] if 0 <= r < len(corpus) else f"row {r}" for r in outside]
        raise RequestError(f"allowed_rows contains rows that are not training pairs of {corpus.source}: "
                           f"{_name_ids(shown)}")
    return allowed


@dataclass(frozen=True)
class DeletionRequest:
    """The pairs to forget.

    Attributes:
        pair_ids: the pair ids of ``Df``, in corpus row order.
        by: the granularity it was made at (``"pair"``, ``"molecule"``, ``"scaffold"``...).
        seed: the seed of a random request, else ``None``.
        description: a human-readable account of how it was made.
        source_hash: ``corpus.content_hash()`` of the corpus it was validated against.
        selected: what the request was made from: the given ids (after collapsing duplicates) or, for a
            random request, the drawn units (pair ids, item ids or scaffold SMILES / ``acyclic:<id>``).
        pair_hashes: :func:`pair_hash` of each pair, parallel to ``pair_ids``.
        added: pairs added to what was asked for, and why: ``({"pair_id", "reason", ...}, ...)``, each a
            pair of ``pair_ids`` (e.g. the retained mirror triples of a KG request,
            :func:`graphdel.data.kg_facts.close_request`). Saved as ``"added"`` (left out when empty).
    """

    pair_ids: tuple[str, ...]
    by: str
    seed: int | None
    description: str
    source_hash: str
    selected: tuple[str, ...] = ()
    pair_hashes: tuple[str, ...] = field(default=(), repr=False)
    added: tuple[Mapping, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.pair_hashes and len(self.pair_hashes) != len(self.pair_ids):
            raise RequestError("pair_hashes must be parallel to pair_ids")
        ids = set(self.pair_ids)
        for i, record in enumerate(self.added):
            if not isinstance(record, Mapping) or not isinstance(record.get("pair_id"), str) \
                    or not isinstance(record.get("reason"), str):
                raise RequestError(f"added record {i} must hold a string pair_id and reason, got {shorten(record)}")
            if record["pair_id"] not in ids:
                raise RequestError(f"added record {i} names pair {shorten(record['pair_id'])}, which the "
                                   "request does not hold")

    def __len__(self) -> int:
        return len(self.pair_ids)

    # ------------------------------------------------------------------ construction

    @classmethod
    def _build(cls, corpus: Corpus, by: str, coverage: dict[str, list[int]], *, allowed_rows, force: bool,
               seed: int | None, description: str, selected: Sequence[str],
               deleted: Mapping[str, int] | None = None) -> "DeletionRequest":
        """Validate what each id covers, with its exact copies, against the forgettable rows and assemble
        the request.

        ``deleted`` maps the pair ids that earlier requests of a run's history removed to the number of
        that request (1 = the first): an id all of whose pairs are among them is refused as already
        deleted (never deleted twice, never called "held out"), and an id some of whose pairs are is
        narrowed to the rest with a warning naming the request.
        """
        deleted = deleted or {}
        forgettable = _forgettable(corpus, allowed_rows)
        if not forgettable:
            raise RequestError(f"{corpus.source} has no forgettable training pairs")
        train = set(corpus.rows("train"))
        copies = corpus.copies()
        not_train, held_out, rows, named = [], [], set(), set()
        already, narrowed = [], []
        for ident, covered in coverage.items():
            named.update(covered)
            # the same datum under another id is the same datum: forgetting one copy must forget them all
            covered = sorted({c for r in covered for c in copies.get(r, [r])})
            ok = [r for r in covered if r in forgettable]
            gone = sorted({deleted[corpus.pair_ids[r]] for r in covered if corpus.pair_ids[r] in deleted})
            if ok:
                rows.update(ok)
                if gone:
                    narrowed.append(f"{ident} (request {', '.join(map(str, gone))})")
            elif gone:
                already.append(f"{ident} (request {', '.join(map(str, gone))})")
            elif any(r in train for r in covered):
                held_out.append(ident)
            else:
                where = sorted({corpus.splits[r] for r in covered})
                not_train.append(f"{ident} ({'/'.join(where) or 'no pairs'})")
        if not_train:
            raise RequestError(f"not in the training split (only training pairs can be forgotten), by={by}: "
                               f"{_name_ids(not_train)}")
        if already:
            raise RequestError(f"already deleted by an earlier request of this run (`graphdel history RUN` lists "
                               f"them), by={by}: {_name_ids(already)}")
        if narrowed:
            warn(f"some pairs of these ids were already deleted by an earlier request; the rest are requested, "
                 f"by={by}: {_name_ids(narrowed)}")
        if held_out:
            raise RequestError(f"held out for calibration, never trained on, so nothing to forget, by={by}: "
                               f"{_name_ids(held_out)}")
        if not rows:
            raise RequestError("empty request: it selects no training pair")
        added = len(rows - named)
        if added:
            description += (f"; plus {added} exact cop{'ies' if added > 1 else 'y'} of them under other ids "
                            "(same item input and text)")
        if rows >= forgettable and not force:
            raise RequestError(
                f"the request covers all {len(forgettable)} forgettable training pairs of {corpus.source}: "
                "nothing would be left to retain, and unlearning it is the same as training nothing. "
                "Pass force=True (--force) if this is really intended.")
        ordered = sorted(rows)
        return cls(pair_ids=tuple(corpus.pair_ids[r] for r in ordered), by=by, seed=seed,
                   description=description, source_hash=corpus.content_hash(), selected=tuple(selected),
                   pair_hashes=tuple(_corpus_pair_hash(corpus, r) for r in ordered))

    @classmethod
    def from_ids(cls, corpus: Corpus, ids: Iterable[str], by: str = "pair", *,
                 allowed_rows: Iterable[int] | None = None, force: bool = False,
                 description: str | None = None, deleted: Mapping[str, int] | None = None) -> "DeletionRequest":
        """A request for the given ids at granularity ``by``.

        Args:
            corpus: the corpus the ids refer to.
            ids: pair ids for ``by="pair"``; item (molecule) ids or pair ids (standing for their molecule)
                for ``by="molecule"``/``"scaffold"``. Duplicates are collapsed with a warning.
            by: a registered granularity.
            allowed_rows: the corpus rows the model was trained on (default: every training row).
            force: allow a request covering every forgettable pair.
            description: overrides the generated description.
            deleted: pair id -> number of the earlier request that deleted it (a run's history; see
                :meth:`_build`).

        Raises:
            RequestError: empty request, unknown ids, ids outside the training split or held out for
                calibration (each naming up to 10 ids and their count), or a request covering every
                forgettable pair without ``force``.
        """
        g = get_granularity(by, corpus)
        if isinstance(ids, str):
            ids = [ids]
        try:  # None or a number here is a caller's mistake: say so as a request error, not a TypeError
            ids = list(ids)
        except TypeError:
            raise RequestError(f"ids must be an iterable of strings, got {type(ids).__name__}") from None
        clean = []
        for ident in ids:
            if not isinstance(ident, str):
                raise RequestError(f"ids must be strings, got {shorten(ident)}")
            if ident.strip():
                clean.append(ident.strip())
        if not clean:
            raise RequestError("empty request: no ids given")
        counts = Counter(clean)
        dupes = [i for i, c in counts.items() if c > 1]
        if dupes:
            warn(f"duplicate ids collapsed in the deletion request: {_name_ids(dupes)}")
        unique = list(dict.fromkeys(clean))
        coverage = g.expand(corpus, unique)
        unknown = [i for i in unique if i not in coverage]
        if unknown:
            kind = "pair" if by == "pair" else ("molecule or pair" if by in ("molecule", "scaffold") else by)
            raise _ids_not_found(kind, unknown, len(unique), corpus)
        coverage = {i: coverage[i] for i in unique}
        if description is None:
            noun = g.unit_name if by != "scaffold" else "molecules"
            description = f"{len(unique)} {noun} given by id (by={by})"
        return cls._build(corpus, by, coverage, allowed_rows=allowed_rows, force=force, seed=None,
                          description=description, selected=unique, deleted=deleted)

    @classmethod
    def random(cls, corpus: Corpus, n_or_fraction: float | int | None = None, by: str = "molecule", *,
               seed: int = 0, allowed_rows: Iterable[int] | None = None, force: bool = False,
               fraction: float | None = None, n: int | None = None) -> "DeletionRequest":
        """A random request: ``n`` units, or a ``fraction`` of them, drawn with ``seed``.

        Units are those of ``by`` (pairs, molecules, scaffolds...) having at least one forgettable training
        pair; the request holds every forgettable training pair of the drawn units. ``by="molecule"`` with
        ``fraction=0.05`` is the default "5% of training molecules" request.

        ``n_or_fraction`` is a count when it is an integer ``>= 1`` (``int``, not ``1.0``) and a fraction when
        it is a float with ``0 < x < 1``; anything else (``1.0``, ``2.5``, ``0``, negatives, NaN) is refused,
        since ``1.0`` may mean one unit or all of them. ``fraction=`` (``0 < x <= 1``) and ``n=`` (an
        integer) say it explicitly. A fraction gives
        ``max(1, floor(x * U + 0.5))`` of ``U`` units. Units are sorted, then drawn with
        ``random.Random(seed).sample``.

        Raises:
            RequestError: no or several amounts given, a bad amount, more units than exist, a granularity
                without random support, or the errors of :meth:`from_ids`.
        """
        given = [v for v in (n_or_fraction, fraction, n) if v is not None]
        if len(given) != 1:
            raise RequestError("give exactly one of n_or_fraction, fraction= or n=")
        g = get_granularity(by, corpus)
        if g.units is None:
            raise RequestError(f"by={by!r} does not support random requests")
        frac = count = None
        value = given[0]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise RequestError(f"the amount must be a finite number, got {shorten(value)}")
        integral = isinstance(value, numbers.Integral)
        if fraction is not None:
            if not 0 < fraction <= 1:
                raise RequestError(f"fraction must be in (0, 1], got {fraction!r}")
            frac = float(fraction)
        elif n is not None:
            if not integral or value < 1:
                raise RequestError(f"n must be an integer >= 1, got {n!r}")
            count = int(value)
        elif integral and value >= 1:
            count = int(value)
        elif not integral and 0 < value < 1:
            frac = float(value)
        else:
            raise RequestError(f"the amount {value!r} is neither a count (an integer >= 1, e.g. 3) nor a fraction "
                               "(a float strictly between 0 and 1, e.g. 0.05); for every unit pass fraction=1.0")
        forgettable = _forgettable(corpus, allowed_rows)
        eligible = {}
        for unit, covered in g.units(corpus).items():
            ok = [r for r in covered if r in forgettable]
            if ok:
                eligible[unit] = ok
        total = len(eligible)
        if total == 0:
            raise RequestError(f"{corpus.source} has no forgettable training {g.unit_name}")
        k = max(1, int(math.floor(frac * total + 0.5))) if frac is not None else count
        if k > total:
            raise RequestError(f"asked for {k} {g.unit_name} but only {total} have forgettable "
                               "training pairs")
        chosen = sorted(_random.Random(seed).sample(sorted(eligible), k))
        description = (f"random {k} {g.unit_name} ({frac:g} of {total} training {g.unit_name}), seed {seed}"
                       if frac is not None else f"random {k} of {total} training {g.unit_name}, seed {seed}")
        return cls._build(corpus, by, {u: eligible[u] for u in chosen}, allowed_rows=allowed_rows,
                          force=force, seed=seed, description=description, selected=chosen)

    @classmethod
    def from_file(cls, corpus: Corpus, path: str | Path, by: str = "pair", *,
                  allowed_rows: Iterable[int] | None = None, force: bool = False,
                  deleted: Mapping[str, int] | None = None) -> "DeletionRequest":
        """A request read from ``path``: one id per line, or a JSON request saved by :meth:`save`
        (``deleted``: as in :meth:`from_ids`).

        In an id file, blank lines and lines starting with ``#`` are ignored (``#`` elsewhere is part of the
        id, as in ``CID:123#0``); the ids go to :meth:`from_ids` with ``by``. A JSON request keeps its own
        ``by``, seed and description and is re-validated: every pair must exist, still be forgettable and
        still hash to the stored digest. If the corpus as a whole changed, a warning says so and the
        request's ``source_hash`` is updated to the corpus it was re-validated against.

        Raises:
            InvalidInputError: unreadable file, bad encoding, malformed JSON request.
            RequestError: an empty file, and everything :meth:`from_ids` raises; pairs whose content changed.
        """
        path = Path(path)
        text = _read_utf8(path)
        if text.lstrip().startswith("{"):
            saved = cls._parse_json(text, path)
            return cls._revalidate(saved, corpus, path, allowed_rows=allowed_rows, force=force, deleted=deleted)
        ids = [line.strip() for line in text.split("\n")]
        ids = [i for i in ids if i and not i.startswith("#")]
        if not ids:
            raise RequestError(f"empty request: {path} contains no ids")
        req = cls.from_ids(corpus, ids, by, allowed_rows=allowed_rows, force=force, deleted=deleted)
        return cls(pair_ids=req.pair_ids, by=req.by, seed=None,
                   description=f"{req.description}, from {path.name}", source_hash=req.source_hash,
                   selected=req.selected, pair_hashes=req.pair_hashes)

    @classmethod
    def _revalidate(cls, saved: "DeletionRequest", corpus: Corpus, path: Path, *, allowed_rows,
                    force: bool, deleted: Mapping[str, int] | None = None) -> "DeletionRequest":
        # A request file from elsewhere must name a granularity this corpus knows; otherwise an arbitrary
        # string would be copied into the new run's request.json and certificate unchecked.
        get_granularity(saved.by, corpus)
        unknown = [p for p in saved.pair_ids if not corpus.has_pair(p)]
        if unknown:
            raise _ids_not_found("pair", unknown, len(saved.pair_ids), corpus, where=f"{path}: ")
        changed = saved.verify_hashes(corpus)
        if changed:
            raise RequestError(f"{path}: the content of these pairs differs from when the request was made "
                               f"(SMILES or text changed): {_name_ids(changed)}")
        current = corpus.content_hash()
        if saved.source_hash != current:
            warn(f"{path} was made for a different version of the corpus (source hash "
                 f"{shorten(saved.source_hash[:12])}..., now {current[:12]}...); its pairs are unchanged")
        coverage = {p: [corpus.index_of(p)] for p in saved.pair_ids}
        req = cls._build(corpus, saved.by, coverage, allowed_rows=allowed_rows, force=force, seed=saved.seed,
                         deleted=deleted,
                         description=saved.description, selected=saved.selected)
        # what a closure added stays recorded (a pair narrowed away by an earlier request goes with its record)
        kept = set(req.pair_ids)
        return replace(req, added=tuple(a for a in saved.added if a["pair_id"] in kept))

    # ------------------------------------------------------------------ use

    def rows(self, corpus: Corpus) -> list[int]:
        """Corpus row indices of the pairs (:class:`RequestError` naming pairs the corpus lacks)."""
        unknown = [p for p in self.pair_ids if not corpus.has_pair(p)]
        if unknown:
            raise RequestError(f"the request names pairs absent from {corpus.source}: {_name_ids(unknown)}")
        return [corpus.index_of(p) for p in self.pair_ids]

    def verify_hashes(self, corpus: Corpus) -> list[str]:
        """Pair ids whose content in ``corpus`` no longer hashes to the stored digest (or that are gone)."""
        if not self.pair_hashes:
            raise RequestError("this request carries no pair hashes to verify")
        bad = []
        for pid, digest in zip(self.pair_ids, self.pair_hashes):
            if not corpus.has_pair(pid) or _corpus_pair_hash(corpus, corpus.index_of(pid)) != digest:
                bad.append(pid)
        return bad

    def to_json(self, corpus: Corpus) -> dict:
        """The JSON form (no timestamp, so the same request always gives the same file).

        Raises:
            RequestError: ``corpus`` is not the corpus the request was made for (content hash differs).
        """
        if corpus.content_hash() != self.source_hash:
            raise RequestError(f"the request was made for another corpus (source hash "
                               f"{self.source_hash[:12]}...) than {corpus.source} "
                               f"({corpus.content_hash()[:12]}...)")
        rows = self.rows(corpus)
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "by": self.by,
            "seed": self.seed,
            "description": self.description,
            "count": len(self.pair_ids),
            "source": corpus.source,
            "source_hash": self.source_hash,
            "selected": list(self.selected),
            "hash_recipe": HASH_RECIPE,
            "pairs": [{"pair_id": corpus.pair_ids[r], "item_id": corpus.item_ids[r],
                       "sha256": _corpus_pair_hash(corpus, r)} for r in rows],
            **({"added": [dict(a) for a in self.added]} if self.added else {}),
        }

    def save(self, path: str | Path, corpus: Corpus) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        atomic_write_json(self.to_json(corpus), path)

    @classmethod
    def load(cls, path: str | Path) -> "DeletionRequest":
        """Read a request saved by :meth:`save` (use :meth:`from_file` to re-validate it against a corpus).

        Raises:
            InvalidInputError: unreadable file or not a valid request file.
        """
        path = Path(path)
        return cls._parse_json(_read_utf8(path), path)

    @classmethod
    def _parse_json(cls, text: str, path: Path) -> "DeletionRequest":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path} is not valid JSON: line {e.lineno}, column {e.colno}: "
                                    f"{e.msg}") from e
        except RecursionError as e:  # deeply nested brackets exhaust the JSON parser's recursion limit
            raise InvalidInputError(f"{path} is not a graphdel deletion request (JSON nested too deeply)") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InvalidInputError(f"{path} is not a graphdel deletion request (missing format {FORMAT!r})")
        if d.get("version") != FORMAT_VERSION:
            raise InvalidInputError(f"{path}: unsupported request version {shorten(d.get('version'))}")
        pairs = d.get("pairs")
        try:
            if not isinstance(pairs, list) or not pairs:
                raise TypeError("'pairs' must be a non-empty list")
            pair_ids = tuple(_str(p["pair_id"], "pair_id") for p in pairs)
            hashes = tuple(_str(p["sha256"], "sha256") for p in pairs)
            by, description = _str(d["by"], "by"), _str(d["description"], "description")
            source_hash = _str(d["source_hash"], "source_hash")
            seed = d.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TypeError(f"'seed' must be an integer or null, got {shorten(seed)}")
            if not isinstance(d.get("selected", []), list):  # a string would be read char by char
                raise TypeError(f"'selected' must be a list, got {shorten(d.get('selected'))}")
            selected = tuple(_str(s, "selected") for s in d.get("selected", []))
            added = d.get("added", [])
            if not isinstance(added, list) or not all(isinstance(a, dict) for a in added):
                raise TypeError(f"'added' must be a list of objects, got {shorten(added)}")
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"{path}: malformed deletion request: {e}") from e
        if d.get("count") != len(pair_ids):
            raise InvalidInputError(f"{path}: 'count' is {shorten(d.get('count'))} but {len(pair_ids)} pairs "
                                    "are listed")
        dupes = [p for p, c in Counter(pair_ids).items() if c > 1]
        if dupes:
            raise InvalidInputError(f"{path}: duplicated pair ids: {_name_ids(dupes)}")
        try:
            return cls(pair_ids=pair_ids, by=by, seed=seed, description=description, source_hash=source_hash,
                       selected=selected, pair_hashes=hashes, added=tuple(added))
        except RequestError as e:  # a malformed 'added' record: the file is at fault
            raise InvalidInputError(f"{path}: malformed deletion request: {e}") from e


def _str(value, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {shorten(value)}")
    return value


def _read_utf8(path: Path) -> str:
    from graphdel.data.sources import decode_utf8

    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from e
    return decode_utf8(data, path)
