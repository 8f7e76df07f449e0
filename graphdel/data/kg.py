"""Knowledge-graph sources: a folder of triples (plus entity descriptions) as a :class:`Corpus`.

Two sources are registered here (the module must be imported for them to exist):

=====================  ==============================================================================
``kg:PATH``            a folder with ``train.txt``, ``valid.txt`` and ``test.txt`` (tab-separated
                       ``head  relation  tail``, one triple a line, no header: the WN18RR / FB15k-237 /
                       PyKEEN layout; ids are kept as written, ``00260881`` or ``/m/0abc``) and an
                       optional ``entity2text.txt`` or ``entity2text.tsv`` (``id  text``, the entity
                       descriptions). Each file may instead be gzip-compressed (``NAME.txt.gz``).
``wordnet``            the embedded WordNet 3.0 subgraph with WN18RR relations and synset glosses,
                       ``data/wordnet/`` (see ``data/wordnet/README.md``; ``$GRAPHDEL_DATA_DIR`` moves it)
=====================  ==============================================================================

The corpus (``modality="kg"``):

* **pairs** are entity–text pairs, one per entity that has a text, sorted by entity id: pair id
  ``ent:<entity id>``, item id the entity id, ``items[eid] = eid`` (for every entity, paired or not). Without
  ``entity2text.txt`` every entity has a text: its name with underscores turned into spaces. With it, only
  the entities it lists have one (the others stay in the graph, counted in
  ``extra["entities_without_text"]``). Every pair is in split ``"train"``: an entity's description is
  known at training time whatever split its triples are in, and a deletion acts on it like on any
  training pair. The link-prediction split lives in the triples.
* ``extra["triples"] = {"train": [[h, r, t], ...], "val": [...], "test": [...]}`` (``val`` is
  ``valid.txt``), in file order; ``extra["relations"]``: sorted relation names (those of train);
  ``extra["entities"]``: sorted ids of every entity in a train triple or with a text;
  ``extra["entities_without_text"]``: how many entities have no text. All plain JSON lists and numbers, since
  :meth:`Corpus.content_hash` hashes ``extra``.

Rules, as is standard for link prediction: a valid/test triple whose head or tail appears in no train
triple, or whose relation appears in no train triple, is dropped; so is a valid/test triple already in
train (and a test triple already in valid). Each drop is listed in ``corpus.skipped`` as
``{"row", "id", "reason", "file"}`` (``row`` the line, ``id`` the triple written ``h<TAB>r<TAB>t``).
Repeated lines within one file are collapsed, each listed there too (reason ``repeated triple (first
at line N), collapsed``); neither kind of record enters the content hash. A line with other than 3
tab-separated non-empty fields, an ``entity2text`` line without a tab, a header line (``head relation
tail``, ``id text`` and the like, see :func:`refuse_header`), and an empty or non-UTF-8 file always raise
:class:`~graphdel.errors.InvalidInputError` naming the file and line. An entity text that
is empty, too long, or given twice with different values raises too, unless ``skip_invalid`` (then the
first good text is kept and the line is listed in ``corpus.skipped``).
"""

from __future__ import annotations

from pathlib import Path

from graphdel.data.corpus import Corpus
from graphdel.data.sources import MAX_TEXT_CHARS, clean_text, data_dir, read_text_file, register_source
from graphdel.errors import InvalidInputError, shorten

#: Split name in the corpus -> file stem in a KG folder.
KG_SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
TEXT_FILE = "entity2text"
#: The entity description file may be called ``entity2text.txt`` or, as the TSV it is, ``entity2text.tsv``.
TEXT_SUFFIXES = (".txt", ".txt.gz", ".tsv", ".tsv.gz")
#: The 11 relations of WN18RR (Dettmers et al., AAAI 2018), which the ``wordnet`` source uses.
WN18RR_RELATIONS = (
    "_also_see", "_derivationally_related_form", "_has_part", "_hypernym", "_instance_hypernym",
    "_member_meronym", "_member_of_domain_region", "_member_of_domain_usage", "_similar_to",
    "_synset_domain_topic_of", "_verb_group",
)
#: Prefix of KG pair ids: ``ent:<entity id>``.
PAIR_PREFIX = "ent:"
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


def load_kg(path: str | Path, *, skip_invalid: bool = False, source: str | None = None) -> Corpus:
    """Load a KG folder (see the module docstring) as a ``modality="kg"`` corpus.

    Args:
        path: the folder holding ``train.txt``, ``valid.txt``, ``test.txt`` and optionally
            ``entity2text.txt`` or ``entity2text.tsv`` (each possibly ``.gz``).
        skip_invalid: skip bad ``entity2text`` lines instead of raising (see :func:`read_entity_texts`).
        source: the spec stored in ``corpus.source`` (default ``kg:<absolute path>``).

    Raises:
        InvalidInputError: not a folder, a missing or empty file, a malformed line, or no text at all.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder; a KG source is a folder with "
                                f"{', '.join(s + '.txt' for s in KG_SPLIT_FILES.values())}")
    files = {split: find_kg_file(folder, stem) for split, stem in KG_SPLIT_FILES.items()}
    text_file = find_kg_file(folder, TEXT_FILE, required=False, suffixes=TEXT_SUFFIXES)

    read = {split: read_triples(p) for split, p in files.items()}  # type: ignore[arg-type]
    train = [t for _, t in read["train"][0]]
    train_set = set(train)
    train_entities = {e for h, _, t in train for e in (h, t)}
    train_relations = {r for _, r, _ in train}

    skipped: list[dict] = list(read["train"][1])
    triples: dict[str, list[list[str]]] = {"train": [list(t) for t in train]}
    earlier: set[Triple] = set(train_set)
    train_name = files["train"].name  # type: ignore[union-attr]
    for split in ("val", "test"):
        name = files[split].name  # type: ignore[union-attr]
        records = list(read[split][1])
        kept: list[Triple] = []
        for line, (h, r, t) in read[split][0]:
            unknown = [e for e in dict.fromkeys((h, t)) if e not in train_entities]
            if unknown:
                reason = (f"entit{'ies' if len(unknown) > 1 else 'y'} "
                          f"{', '.join(map(repr, unknown))} not in {train_name}")
            elif r not in train_relations:
                reason = f"relation {r!r} not in {train_name}"
            elif (h, r, t) in train_set:
                reason = f"triple also in {train_name}"
            elif (h, r, t) in earlier:
                reason = f"triple also in {files['val'].name}"  # type: ignore[union-attr]
            else:
                kept.append((h, r, t))
                continue
            records.append({"row": line, "id": f"{h}\t{r}\t{t}", "reason": reason, "file": name})
        skipped.extend(sorted(records, key=lambda rec: rec["row"]))
        earlier.update(kept)
        triples[split] = [list(t) for t in kept]

    if text_file is not None:
        texts, bad = read_entity_texts(text_file, skip_invalid=skip_invalid)
        skipped.extend(bad)
    else:
        texts = {e: name_text(e) for e in train_entities}
    entities = sorted(train_entities | set(texts))
    paired = [e for e in entities if e in texts]
    if not paired:
        raise InvalidInputError(f"{folder}: no entity has a text")
    return Corpus(
        source=source if source is not None else f"kg:{folder}",
        modality="kg",
        pair_ids=[PAIR_PREFIX + e for e in paired],
        item_ids=paired,
        texts=[texts[e] for e in paired],
        splits=["train"] * len(paired),
        items={e: e for e in entities},
        skipped=skipped,
        extra={
            "triples": triples,
            "relations": sorted(train_relations),
            "entities": entities,
            "entities_without_text": len(entities) - len(paired),
        },
    )


def kg_triples(corpus: Corpus, split: str = "train") -> list[Triple]:
    """The triples of ``split`` (``train``, ``val`` or ``test``) of a KG corpus, as tuples."""
    if corpus.modality != "kg" or "triples" not in corpus.extra:
        raise InvalidInputError(f"corpus {corpus.source!r} is not a knowledge graph (modality "
                                f"{corpus.modality!r})")
    if split not in KG_SPLIT_FILES:
        raise InvalidInputError(f"unknown split {split!r} (expected one of {tuple(KG_SPLIT_FILES)})")
    return [(h, r, t) for h, r, t in corpus.extra["triples"][split]]


def kg_stats(corpus: Corpus) -> dict:
    """What ``graphdel data stats`` adds for a KG corpus (key ``graph``).

    Returns:
        ``{"entities": {"total", "with_text", "without_text"}, "relations": R, "triples": {"train", "val",
        "test", "total"}, "relation_frequencies": [{"relation", "train", "val", "test", "total"}, ...]}``,
        relations most frequent in train first (ties by name). ``entities.total`` counts every entity of a
        train triple or with a text (val/test triples only use those, see the module docstring).

    Raises:
        InvalidInputError: ``corpus`` is not a knowledge graph.
    """
    triples = {split: kg_triples(corpus, split) for split in KG_SPLIT_FILES}
    entities = [e for e in corpus.extra["entities"] if e in corpus.items]
    with_text = len(set(corpus.item_ids) & set(entities))
    counts: dict[str, dict[str, int]] = {r: dict.fromkeys(KG_SPLIT_FILES, 0)
                                         for r in corpus.extra["relations"]}
    for split, rows in triples.items():
        for _, r, _ in rows:
            counts[r][split] += 1
    order = sorted(counts, key=lambda r: (-counts[r]["train"], r))
    return {
        "entities": {"total": len(entities), "with_text": with_text,
                     "without_text": len(entities) - with_text},
        "relations": len(counts),
        "triples": {**{split: len(rows) for split, rows in triples.items()},
                    "total": sum(len(rows) for rows in triples.values())},
        "relation_frequencies": [{"relation": r, **counts[r], "total": sum(counts[r].values())}
                                 for r in order],
    }


@register_source("kg", argument="path")
def load_kg_source(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """``kg:PATH``: a KG folder (see :func:`load_kg`)."""
    return load_kg(path, skip_invalid=skip_invalid)


def wordnet_dir() -> Path:
    """The folder of the embedded WordNet KG: ``wordnet/`` under :func:`~graphdel.data.sources.data_dir`."""
    return data_dir() / "wordnet"


@register_source("wordnet")
def load_wordnet(_arg: None = None, *, skip_invalid: bool = False) -> Corpus:
    """The embedded WordNet 3.0 KG–text corpus (WN18RR relations; ``data/wordnet/README.md``)."""
    folder = wordnet_dir()
    if not (folder / "train.txt.gz").is_file():
        raise InvalidInputError(f"the embedded 'wordnet' dataset is missing: {folder / 'train.txt.gz'} "
                                "does not exist (set GRAPHDEL_DATA_DIR to the folder holding wordnet/, or "
                                "rebuild it with `python data/wordnet/build.py`)")
    return load_kg(folder, skip_invalid=skip_invalid, source="wordnet")


# ------------------------------------------------------------------------------ the training view
# What follows turns the KG corpus into what the joint model trains and unlearns on (see
# graphdel/models/kg.py for the rationale). The corpus loaded above is left as it is; api.load_corpus
# applies the view registered here (graphdel.data.pairs.register_corpus_view).

#: Prefix of triple pair ids: ``tri:<head>|<relation>|<tail>``.
TRIPLE_PREFIX = "tri:"
#: Name of the pseudo-relation that pairs an entity with its own description (``ent:<id>`` rows).
DESCRIBED_BY = "_described_by"


def triple_pair_id(h: str, r: str, t: str) -> str:
    """``tri:h|r|t``."""
    return f"{TRIPLE_PREFIX}{h}|{r}|{t}"


def parse_triple_id(ident: str) -> Triple | None:
    """A triple from ``tri:h|r|t``, ``h|r|t``, ``h<TAB>r<TAB>t`` or ``h r t`` (whitespace); else ``None``."""
    s = ident.strip()
    if s.startswith(TRIPLE_PREFIX):
        s = s[len(TRIPLE_PREFIX):]
    for parts in (s.split("|"), s.split("\t"), s.split()):
        parts = [p.strip() for p in parts]
        if len(parts) == 3 and all(parts):
            return parts[0], parts[1], parts[2]
    return None


def with_triple_pairs(corpus: Corpus) -> Corpus:
    """The KG corpus with one pair per triple added: the view the KG joint model trains on.

    Rows: the entity–text pairs of ``corpus`` (``ent:<id>``, split ``train``) first, unchanged, then one
    pair per triple of every split, in split then file order: pair id and item id ``tri:h|r|t``,
    ``items[item] = "h<TAB>r<TAB>t"``, text the *tail's* description (its name when it has none), split
    the triple's split. Triples whose entities are not in ``corpus.items`` (a ``--quick`` sample) are left
    out. Idempotent: a corpus that already has the view is returned as it is.

    Raises:
        InvalidInputError: an entity or relation name containing ``|`` (the pair id separator).
    """
    if corpus.extra.get("view") == "triples":
        return corpus
    kg_triples(corpus, "train")  # raises for a non-KG corpus
    text_of = {iid: text for iid, text in zip(corpus.item_ids, corpus.texts)}
    pair_ids, item_ids = list(corpus.pair_ids), list(corpus.item_ids)
    texts, splits, items = list(corpus.texts), list(corpus.splits), dict(corpus.items)
    for split in KG_SPLIT_FILES:
        for h, r, t in corpus.extra["triples"][split]:
            if h not in corpus.items or t not in corpus.items:
                continue
            if "|" in h or "|" in r or "|" in t:
                raise InvalidInputError(f"{corpus.source}: triple {h!r} {r!r} {t!r} contains '|', which "
                                        "triple pair ids use as their separator")
            pid = triple_pair_id(h, r, t)
            pair_ids.append(pid)
            item_ids.append(pid)
            items[pid] = f"{h}\t{r}\t{t}"
            texts.append(text_of.get(t) or name_text(t))
            splits.append(split)
    entities = [e for e in corpus.extra["entities"] if e in corpus.items]
    return Corpus(source=corpus.source, modality=corpus.modality, pair_ids=pair_ids, item_ids=item_ids,
                  texts=texts, splits=splits, items=items, skipped=list(corpus.skipped),
                  removed_fragments=dict(corpus.removed_fragments), stripped=list(corpus.stripped),
                  extra={**corpus.extra, "entities": entities, "view": "triples"}, sampled_from=corpus.sampled_from)


def triple_of_row(corpus: Corpus, row: int) -> Triple | None:
    """The ``(h, r, t)`` of a triple row of the view, ``None`` for an entity–text row."""
    pid = corpus.pair_ids[row]
    if not pid.startswith(TRIPLE_PREFIX):
        return None
    h, r, t = corpus.items[corpus.item_ids[row]].split("\t")
    return h, r, t


def _triple_rows(corpus: Corpus) -> dict[Triple, int]:
    cached = getattr(corpus, "_triple_rows_cache", None)
    if cached is None:
        if corpus.extra.get("view") != "triples":
            raise InvalidInputError(f"{corpus.source}: triple/relation/entity requests need the KG training "
                                    "view (graphdel.data.kg.with_triple_pairs; api.load_corpus applies it)")
        cached = {}
        for row, pid in enumerate(corpus.pair_ids):
            if pid.startswith(TRIPLE_PREFIX):
                cached[triple_of_row(corpus, row)] = row
        corpus._triple_rows_cache = cached  # type: ignore[attr-defined]
    return cached


def _expand_triples(corpus: Corpus, ids) -> dict[str, list[int]]:
    rows = _triple_rows(corpus)
    out = {}
    for ident in ids:
        triple = parse_triple_id(ident)
        if triple is not None and triple in rows:
            out[ident] = [rows[triple]]
    return out


def _units_triples(corpus: Corpus) -> dict[str, list[int]]:
    return {triple_pair_id(*t): [row] for t, row in _triple_rows(corpus).items()}


def _units_relations(corpus: Corpus) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for (h, r, t), row in _triple_rows(corpus).items():
        out.setdefault(r, []).append(row)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _expand_relations(corpus: Corpus, ids) -> dict[str, list[int]]:
    units = _units_relations(corpus)
    return {i: units[i] for i in ids if i in units}


def _units_entities(corpus: Corpus) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row, pid in enumerate(corpus.pair_ids):
        if pid.startswith(PAIR_PREFIX):
            out.setdefault(corpus.item_ids[row], []).append(row)
    for (h, r, t), row in _triple_rows(corpus).items():
        for e in {h, t}:
            out.setdefault(e, []).append(row)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _expand_entities(corpus: Corpus, ids) -> dict[str, list[int]]:
    units = _units_entities(corpus)
    out = {}
    for ident in ids:
        e = ident[len(PAIR_PREFIX):] if ident.startswith(PAIR_PREFIX) and ident not in units else ident
        if e in units:
            out[ident] = units[e]
    return out


def _register_kg_plugins() -> None:
    from graphdel.data.pairs import register_corpus_view, register_featurizer
    from graphdel.data.granularities import _GRANULARITIES, register_granularity

    register_corpus_view("kg", with_triple_pairs)
    register_featurizer("kg")(KGItemStore.from_corpus)
    for name, expand, units, noun in (("triple", _expand_triples, _units_triples, "triples"),
                                      ("relation", _expand_relations, _units_relations, "relations"),
                                      ("entity", _expand_entities, _units_entities, "entities")):
        if name not in _GRANULARITIES:
            register_granularity(name, expand, units=units, unit_name=noun, modalities=("kg",))


class KGItemStore:
    """Featurised items of the KG view: entity and relation indices.

    ``batch(item indices)`` gives ``x = [B, 2]`` long ``(head, relation)``: ``(h, r)`` for a triple item,
    ``(e, described_by)`` for an entity item. :meth:`wrap_text` attaches to each text the entity it
    describes (the triple's tail, or the entity itself), giving :class:`~graphdel.data.kg_pairs.KGText`.

    Attributes:
        entities: entity ids in index order (``corpus.extra["entities"]``).
        relations: relation names in index order (``corpus.extra["relations"]``).
        head, relation, tail: ``[I]`` long per store item.
    """

    def __init__(self, entities: list[str], relations: list[str], item_triples: list[tuple[int, int, int]]):
        import torch

        self.entities, self.relations = list(entities), list(relations)
        t = torch.tensor(item_triples, dtype=torch.long).reshape(-1, 3)
        self.head, self.relation, self.tail = t[:, 0].clone(), t[:, 1].clone(), t[:, 2].clone()

    @property
    def described_by(self) -> int:
        """Index of the "is described by" pseudo-relation: ``2R`` (after relations and inverses)."""
        return 2 * len(self.relations)

    @classmethod
    def from_corpus(cls, corpus: Corpus, item_ids: list[str], progress: bool = False) -> "KGItemStore":
        """The store of ``item_ids`` (triple items and entity items) of a KG corpus (its triple view is
        built when the corpus is the entity view); the :data:`~graphdel.data.pairs.ITEM_FEATURIZERS`
        entry of ``kg``."""
        corpus = with_triple_pairs(corpus) if corpus.extra.get("view") != "triples" else corpus
        entities, relations = corpus.extra["entities"], corpus.extra["relations"]
        e_index = {e: i for i, e in enumerate(entities)}
        r_index = {r: i for i, r in enumerate(relations)}
        desc = 2 * len(relations)
        rows = []
        for iid in item_ids:
            if iid.startswith(TRIPLE_PREFIX):
                h, r, t = corpus.items[iid].split("\t")
                rows.append((e_index[h], r_index[r], e_index[t]))
            else:
                rows.append((e_index[iid], desc, e_index[iid]))
        return cls(entities, relations, rows)

    def __len__(self) -> int:
        return self.head.numel()

    def batch(self, indices):
        """``x [B, 2]`` long ``(head, relation)`` of the store items ``indices [B]``."""
        import torch

        return torch.stack([self.head[indices], self.relation[indices]], dim=1)

    def wrap_text(self, text, indices):
        """``text`` (``B`` texts) as :class:`~graphdel.data.kg_pairs.KGText` carrying ``entity [B]``, the
        entity each text describes (the tail of store items ``indices [B]``)."""
        from graphdel.data.kg_pairs import KGText  # here: this module stays free of torch

        return KGText(text.hidden, text.mask, text.pooled, entity=self.tail[indices])

    def model_extra(self) -> dict:
        """What the model must know of the data to be built: entity and relation counts."""
        return {"num_entities": len(self.entities), "num_relations": len(self.relations)}


_register_kg_plugins()
