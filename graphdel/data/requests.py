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
:func:`register_granularity`, without editing :mod:`graphdel.data.granularities` (where the registry and
the built-in granularities are).

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

The request is built (:mod:`graphdel.data.request_build`) and written and read
(:mod:`graphdel.data.request_file`) in modules of their own; every public name of both, and of
:mod:`graphdel.data.granularities`, is also imported from here.
"""


from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.granularities import (ExpandFn, Granularity, UnitsFn, available_granularities, get_granularity,
                                         register_granularity, rows_by_item, rows_by_structure, same_structure,
                                         series_key)
from graphdel.data.request_build import (covered_rows, forgettable_rows, ids_not_found, parse_amount,
                                         random_amount, unique_ids)
from graphdel.data.request_file import (FORMAT, FORMAT_VERSION, HASH_RECIPE, corpus_pair_hash, name_ids, pair_hash,
                                        read_utf8, request_fields, request_json)
from graphdel.errors import InvalidInputError, RequestError, shorten, warn
from graphdel.io import atomic_write_json

__all__ = ["FORMAT", "FORMAT_VERSION", "HASH_RECIPE", "DeletionRequest", "ExpandFn", "Granularity", "UnitsFn",
           "available_granularities", "get_granularity", "pair_hash", "parse_amount", "register_granularity",
           "rows_by_item", "rows_by_structure", "same_structure", "series_key"]


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
        narrowed to the rest with a warning naming the request (:func:`~graphdel.data.request_build.
        covered_rows`).
        """
        ordered, description = covered_rows(corpus, by, coverage, allowed_rows=allowed_rows, force=force,
                                            description=description, deleted=deleted)
        return cls(pair_ids=tuple(corpus.pair_ids[r] for r in ordered), by=by, seed=seed,
                   description=description, source_hash=corpus.content_hash(), selected=tuple(selected),
                   pair_hashes=tuple(corpus_pair_hash(corpus, r) for r in ordered))

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
        unique = unique_ids(ids)
        coverage = g.expand(corpus, unique)
        unknown = [i for i in unique if i not in coverage]
        if unknown:
            kind = "pair" if by == "pair" else ("molecule or pair" if by in ("molecule", "scaffold") else by)
            raise ids_not_found(kind, unknown, len(unique), corpus)
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
        frac, count = random_amount(given[0], fraction, n)
        forgettable = forgettable_rows(corpus, allowed_rows)
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
        text = read_utf8(path)
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
            raise ids_not_found("pair", unknown, len(saved.pair_ids), corpus, where=f"{path}: ")
        changed = saved.verify_hashes(corpus)
        if changed:
            raise RequestError(f"{path}: the content of these pairs differs from when the request was made "
                               f"(SMILES or text changed): {name_ids(changed)}")
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
            raise RequestError(f"the request names pairs absent from {corpus.source}: {name_ids(unknown)}")
        return [corpus.index_of(p) for p in self.pair_ids]

    def verify_hashes(self, corpus: Corpus) -> list[str]:
        """Pair ids whose content in ``corpus`` no longer hashes to the stored digest (or that are gone)."""
        if not self.pair_hashes:
            raise RequestError("this request carries no pair hashes to verify")
        bad = []
        for pid, digest in zip(self.pair_ids, self.pair_hashes):
            if not corpus.has_pair(pid) or corpus_pair_hash(corpus, corpus.index_of(pid)) != digest:
                bad.append(pid)
        return bad

    def to_json(self, corpus: Corpus) -> dict:
        """The JSON form (no timestamp, so the same request always gives the same file;
        :func:`~graphdel.data.request_file.request_json`).

        Raises:
            RequestError: ``corpus`` is not the corpus the request was made for (content hash differs).
        """
        return request_json(self, corpus)

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
        return cls._parse_json(read_utf8(path), path)

    @classmethod
    def _parse_json(cls, text: str, path: Path) -> "DeletionRequest":
        fields = request_fields(text, path)
        try:
            return cls(**fields)
        except RequestError as e:  # a malformed 'added' record: the file is at fault
            raise InvalidInputError(f"{path}: malformed deletion request: {e}") from e
