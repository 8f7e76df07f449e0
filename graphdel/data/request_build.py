"""Building a deletion request: reading the amount of a random one, cleaning the ids given, and checking
what the ids cover against the pairs a run may forget.

:class:`~graphdel.data.requests.DeletionRequest`'s constructors (``from_ids``, ``random``, ``from_file``) do
their checks here and assemble the request from the rows these functions return; the rules are described
in :mod:`graphdel.data.requests`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from typing import Iterable, Mapping

from graphdel.data.corpus import Corpus
from graphdel.data.request_file import name_ids
from graphdel.errors import RequestError, shorten, warn


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


def random_amount(value, fraction: float | None, n: int | None) -> tuple[float | None, int | None]:
    """``(fraction, count)``, one of them ``None``: the amount ``value`` of a random request, given as
    ``fraction=``, ``n=`` or the positional ``n_or_fraction`` (see
    :meth:`~graphdel.data.requests.DeletionRequest.random`).

    Raises:
        RequestError: a bad amount.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise RequestError(f"the amount must be a finite number, got {shorten(value)}")
    integral = isinstance(value, numbers.Integral)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise RequestError(f"fraction must be in (0, 1], got {fraction!r}")
        return float(fraction), None
    if n is not None:
        if not integral or value < 1:
            raise RequestError(f"n must be an integer >= 1, got {n!r}")
        return None, int(value)
    if integral and value >= 1:
        return None, int(value)
    if not integral and 0 < value < 1:
        return float(value), None
    raise RequestError(f"the amount {value!r} is neither a count (an integer >= 1, e.g. 3) nor a fraction "
                       "(a float strictly between 0 and 1, e.g. 0.05); for every unit pass fraction=1.0")


def unique_ids(ids) -> list[str]:
    """The ids of a request given by id, stripped, blank ones left out and duplicates collapsed (with a
    warning), in the order given.

    Raises:
        RequestError: ``ids`` is not an iterable of strings, or holds no id.
    """
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
        warn(f"duplicate ids collapsed in the deletion request: {name_ids(dupes)}")
    return list(dict.fromkeys(clean))


def ids_not_found(kind: str, missing: list[str], asked: int, corpus: Corpus, where: str = "") -> RequestError:
    """The error for ids the run's data lacks, saying which data that is (:meth:`Corpus.describe`: a
    quick run's sample is not the dataset) and, when not one id matched, that the request may be for
    another dataset."""
    hint = "; not one of the ids matched: was the request made for another dataset?" if len(missing) == asked else ""
    return RequestError(f"{where}{kind} ids not in this run's data ({corpus.describe()}): "
                        f"{name_ids(missing)}{hint}")


def forgettable_rows(corpus: Corpus, allowed_rows: Iterable[int] | None) -> set[int]:
    """The rows a request may forget: the training rows, or ``allowed_rows`` (checked to be training rows).

    Raises:
        RequestError: ``allowed_rows`` holds a non-integer or a row outside the training split.
    """
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
                           f"{name_ids(shown)}")
    return allowed


def covered_rows(corpus: Corpus, by: str, coverage: dict[str, list[int]], *, allowed_rows, force: bool,
                 description: str, deleted: Mapping[str, int] | None = None) -> tuple[list[int], str]:
    """``(rows, description)``: the sorted rows a request forgets, what each id covers with its exact
    copies, checked against the forgettable rows; the description notes the copies added.

    ``deleted`` maps the pair ids that earlier requests of a run's history removed to the number of that
    request (1 = the first): an id all of whose pairs are among them is refused as already deleted (never
    deleted twice, never called "held out"), and an id some of whose pairs are is narrowed to the rest with
    a warning naming the request.

    Raises:
        RequestError: no forgettable pair, ids outside the training split, already deleted or held out for
            calibration, an empty request, or one covering every forgettable pair without ``force``.
    """
    deleted = deleted or {}
    forgettable = forgettable_rows(corpus, allowed_rows)
    if not forgettable:
        raise RequestError(f"{corpus.source} has no forgettable training pairs")
    rows, named, refused = _sort_ids(corpus, coverage, forgettable, deleted)
    _refuse(by, **refused)
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
    return sorted(rows), description


def _sort_ids(corpus: Corpus, coverage: dict[str, list[int]], forgettable: set[int], deleted: Mapping[str, int]
              ) -> tuple[set[int], set[int], dict[str, list[str]]]:
    """``(rows, named, refused)``: the forgettable rows the ids cover with their copies, the rows they name
    themselves, and the ids refused or narrowed, by reason (each named with its splits or requests)."""
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
    return rows, named, {"not_train": not_train, "already": already, "narrowed": narrowed, "held_out": held_out}


def _refuse(by: str, *, not_train: list[str], already: list[str], narrowed: list[str], held_out: list[str]
            ) -> None:
    """Raise for the ids that cannot be forgotten, in this order of precedence, after warning about those
    narrowed to the pairs not deleted yet."""
    if not_train:
        raise RequestError(f"not in the training split (only training pairs can be forgotten), by={by}: "
                           f"{name_ids(not_train)}")
    if already:
        raise RequestError(f"already deleted by an earlier request of this run (`graphdel history RUN` lists "
                           f"them), by={by}: {name_ids(already)}")
    if narrowed:
        warn(f"some pairs of these ids were already deleted by an earlier request; the rest are requested, "
             f"by={by}: {name_ids(narrowed)}")
    if held_out:
        raise RequestError(f"held out for calibration, never trained on, so nothing to forget, by={by}: "
                           f"{name_ids(held_out)}")
