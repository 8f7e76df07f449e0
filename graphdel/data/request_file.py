"""The deletion request file: its JSON form, the content hash of each pair it records, and its reading.

:class:`~graphdel.data.requests.DeletionRequest` (``to_json``, ``save``, ``load``, ``from_file``) reads and
writes through these functions; the format is described in :mod:`graphdel.data.requests`. Also here: how a
request's errors name ids (:func:`name_ids`), shared by the modules that build requests.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.reading import decode_utf8
from graphdel.errors import InvalidInputError, RequestError, shorten

FORMAT = "graphdel-deletion-request"
FORMAT_VERSION = 1
HASH_RECIPE = 'sha256(utf8(item_input) + b"\\n" + utf8(text)); item_input = canonical SMILES for molecules'


def pair_hash(item_input: str, text: str) -> str:
    """SHA-256 hex digest of ``utf8(item_input) + b"\\n" + utf8(text)`` (see :mod:`graphdel.data.requests`)."""
    return hashlib.sha256(item_input.encode("utf-8") + b"\n" + text.encode("utf-8")).hexdigest()


def corpus_pair_hash(corpus: Corpus, row: int) -> str:
    """:func:`pair_hash` of the pair in row ``row`` of ``corpus``."""
    return pair_hash(corpus.items[corpus.item_ids[row]], corpus.texts[row])


def name_ids(ids: Sequence[str], limit: int = 10) -> str:
    """``"3 ids: 'a', 'b', 'c'"``, or the first ``limit`` and the count."""
    ids = list(ids)
    shown = ", ".join(map(shorten, ids[:limit]))
    if len(ids) > limit:
        return f"{len(ids)} ids, first {limit}: {shown}"
    return f"{len(ids)} id{'s' if len(ids) != 1 else ''}: {shown}"


def request_json(request, corpus: Corpus) -> dict:
    """The JSON form of a :class:`~graphdel.data.requests.DeletionRequest` (no timestamp, so the same
    request always gives the same file).

    Raises:
        RequestError: ``corpus`` is not the corpus the request was made for (content hash differs).
    """
    if corpus.content_hash() != request.source_hash:
        raise RequestError(f"the request was made for another corpus (source hash "
                           f"{request.source_hash[:12]}...) than {corpus.source} "
                           f"({corpus.content_hash()[:12]}...)")
    rows = request.rows(corpus)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "by": request.by,
        "seed": request.seed,
        "description": request.description,
        "count": len(request.pair_ids),
        "source": corpus.source,
        "source_hash": request.source_hash,
        "selected": list(request.selected),
        "hash_recipe": HASH_RECIPE,
        "pairs": [{"pair_id": corpus.pair_ids[r], "item_id": corpus.item_ids[r],
                   "sha256": corpus_pair_hash(corpus, r)} for r in rows],
        **({"added": [dict(a) for a in request.added]} if request.added else {}),
    }


def request_fields(text: str, path: Path) -> dict:
    """The fields of a :class:`~graphdel.data.requests.DeletionRequest` read from the JSON ``text`` of the
    request file ``path``, checked for form (types, count, no duplicated pair).

    Raises:
        InvalidInputError: not valid JSON, not a request file, an unsupported version, a malformed field.
    """
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
        raise InvalidInputError(f"{path}: duplicated pair ids: {name_ids(dupes)}")
    return {"pair_ids": pair_ids, "by": by, "seed": seed, "description": description, "source_hash": source_hash,
            "selected": selected, "pair_hashes": hashes, "added": tuple(added)}


def _str(value, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {shorten(value)}")
    return value


def read_utf8(path: Path) -> str:
    """The text of ``path`` (a request or id file), decoded as UTF-8.

    Raises:
        InvalidInputError: unreadable file or bad encoding.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from e
    return decode_utf8(data, path)
