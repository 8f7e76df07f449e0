"""Reading a source's files: strict UTF-8 text (``.gz`` decompressed), tab- and comma-separated tables with
a header, and the cleaning every text of a corpus goes through.

The rules (every problem an :class:`~graphdel.errors.InvalidInputError` naming the file and the line) are
those of :mod:`graphdel.data.sources`, whose loaders and those of other modalities read through these
functions; every public name is also imported from :mod:`graphdel.data.sources`.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

from graphdel.errors import InvalidInputError

#: A text longer than this many characters is refused (a parsing accident, not a caption).
MAX_TEXT_CHARS = 100_000
#: Largest CSV field accepted by the parser (the text limit above is checked afterwards).
MAX_FIELD_BYTES = 10 * 1024 * 1024

# Whitespace runs containing a line break, tab or other vertical separator become one space.
_BREAKS = re.compile(r"\s*[\t\n\r\f\v\x1c\x1d\x1e\x85\u2028\u2029]\s*")


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


def tsv_records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
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
