"""The files of a knowledge-graph folder: their names, and reading them (the triple files, the entity
descriptions, a header line refused), with the fallback text of an entity that has no description.

:func:`graphdel.data.kg.load_kg` builds the corpus from what is read here (the folder layout and the rules
are in :mod:`graphdel.data.kg`'s docstring); every public name is also imported from there.
"""

from __future__ import annotations

from pathlib import Path

from graphdel.data.sources import MAX_TEXT_CHARS, clean_text, read_text_file
from graphdel.errors import InvalidInputError, shorten

__all__ = ["KG_SPLIT_FILES", "TEXT_FILE", "TEXT_HEADER_WORDS", "TEXT_SUFFIXES", "TRIPLE_HEADER_WORDS", "Triple",
           "find_kg_file", "name_text", "read_entity_texts", "read_triples", "refuse_header"]

#: Split name in the corpus -> file stem in a KG folder.
KG_SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
TEXT_FILE = "entity2text"
#: The entity description file may be called ``entity2text.txt`` or, as the TSV it is, ``entity2text.tsv``.
TEXT_SUFFIXES = (".txt", ".txt.gz", ".tsv", ".tsv.gz")

#: Column names a header line would hold, per field (compared lowercased): ``head relation tail`` and the
#: like in a triple file, ``id text`` and the like in ``entity2text``. See :func:`refuse_header`.
TRIPLE_HEADER_WORDS = (
    {"head", "h", "subject", "source", "head_id", "head_label"},
    {"relation", "r", "rel", "predicate", "relation_id", "relation_label"},
    {"tail", "t", "object", "target", "tail_id", "tail_label"},
)
TEXT_HEADER_WORDS = (
    {"id", "entity", "entity_id", "ent", "name"},
    {"text", "description", "desc", "name", "label", "gloss", "definition"},
)

Triple = tuple[str, str, str]


def find_kg_file(folder: Path, stem: str, *, required: bool = True,
                 suffixes: tuple[str, ...] = (".txt", ".txt.gz")) -> Path | None:
    """``folder/stem`` with one of ``suffixes`` (only one of them may exist); ``None`` if absent and not
    ``required``."""
    found = [p for p in (folder / f"{stem}{suffix}" for suffix in suffixes) if p.is_file()]
    if len(found) > 1:
        raise InvalidInputError(f"{folder} holds both {found[0].name} and {found[1].name}: keep one")
    if not found:
        if required:
            raise InvalidInputError(f"{folder} lacks {stem}.txt (or {stem}.txt.gz); a KG folder needs "
                                    f"{', '.join(s + '.txt' for s in KG_SPLIT_FILES.values())} and may hold "
                                    f"{TEXT_FILE}.txt")
        return None
    return found[0]


def _lines(path: Path):
    """``(line number, line without its line break)`` for the non-blank lines of ``path``."""
    for i, line in enumerate(read_text_file(path).split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            yield i, line


def refuse_header(path: Path, lines: list[tuple[int, str]], words: tuple[set[str], ...]) -> None:
    """Refuse a header line at the top of a KG file, which would otherwise load as data.

    The first non-blank line is taken for a header when each of its tab-separated fields is a column name
    of ``words`` (e.g. ``head relation tail``) and none of its fields appears on any other line: a real
    entity or relation named ``head`` would be used again. Refused rather than skipped: these files are
    specified without a header, and a line that is only *probably* a header should not be dropped on a
    guess.

    Raises:
        InvalidInputError: naming the file and the line.
    """
    if not lines:
        return
    number, line = lines[0]
    fields = [f.strip() for f in line.split("\t", len(words) - 1)]
    if len(fields) != len(words) or not all(f.lower() in w for f, w in zip(fields, words)):
        return
    later = {f.strip() for _, other in lines[1:] for f in other.split("\t")}
    if any(f in later for f in fields):
        return
    raise InvalidInputError(f"{path}, line {number}: {shorten(line)} looks like a header (column names, used on "
                            "no other line); KG files have no header line: delete it")


def read_triples(path: str | Path) -> tuple[list[tuple[int, Triple]], list[dict]]:
    """Read a tab-separated triple file.

    Returns:
        ``[(line number, (head, relation, tail)), ...]`` in file order with repeated triples collapsed (the
        first occurrence kept), and one ``{"row", "id", "reason", "file"}`` record per collapsed line.

    Raises:
        InvalidInputError: empty, unreadable or non-UTF-8 file, a header line (:func:`refuse_header`), or a
            line without exactly 3 non-empty tab-separated fields (naming the file and line).
    """
    path = Path(path)
    out: list[tuple[int, Triple]] = []
    first: dict[Triple, int] = {}
    repeated: list[dict] = []
    lines = list(_lines(path))
    refuse_header(path, lines, TRIPLE_HEADER_WORDS)
    for i, line in lines:
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not all(fields):
            what = (f"{len(fields)} tab-separated field{'s' if len(fields) != 1 else ''}" if len(fields) != 3
                    else "an empty field")
            raise InvalidInputError(f"{path}, line {i}: expected 3 tab-separated fields (head, relation, "
                                    f"tail), found {what}: {line[:200]!r}")
        triple = (fields[0], fields[1], fields[2])
        if triple in first:
            repeated.append({"row": i, "id": "\t".join(triple),
                             "reason": f"repeated triple (first at line {first[triple]}), collapsed",
                             "file": path.name})
            continue
        first[triple] = i
        out.append((i, triple))
    return out, repeated


def read_entity_texts(path: str | Path, *, skip_invalid: bool = False) -> tuple[dict[str, str], list[dict]]:
    """Read ``id TAB text`` lines (the text is everything after the first tab, cleaned by
    :func:`~graphdel.data.sources.clean_text`).

    Returns:
        ``{entity id: text}`` and the skipped lines (only under ``skip_invalid``).

    Raises:
        InvalidInputError: a header line (:func:`refuse_header`), a line without a tab or with an empty id
            (always); an empty or over-long text, or an id given twice with different texts (unless
            ``skip_invalid``).
    """
    path = Path(path)
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    skipped: list[dict] = []
    lines = list(_lines(path))
    refuse_header(path, lines, TEXT_HEADER_WORDS)
    for i, line in lines:
        eid, tab, raw = line.partition("\t")
        eid = eid.strip()
        if not tab or not eid:
            raise InvalidInputError(f"{path}, line {i}: expected 'entity id<TAB>text', found "
                                    f"{line[:200]!r}")
        text = clean_text(raw)
        problem = None
        if not text:
            problem = "empty text"
        elif len(text) > MAX_TEXT_CHARS:
            problem = f"text of {len(text)} characters is longer than the limit of {MAX_TEXT_CHARS}"
        elif eid in texts and texts[eid] != text:
            problem = f"entity {eid!r} already has a different text at line {first_line[eid]}"
        if problem is not None:
            if not skip_invalid:
                raise InvalidInputError(f"{path}, line {i}, id {eid!r}: {problem}")
            skipped.append({"row": i, "id": eid, "reason": problem, "file": path.name})
            continue
        if eid not in texts:
            texts[eid] = text
            first_line[eid] = i
    return texts, skipped


def name_text(entity: str) -> str:
    """The fallback text of an entity: its name with underscores turned into spaces."""
    return clean_text(entity.replace("_", " ")) or entity
