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
# The files of a KG folder are read in kg_files, the pair ids and the triple-pair view are in kg_view, the
# request granularities in kg_granularities; their public names are imported here, where they have always
# been found.
from graphdel.data.kg_files import (KG_SPLIT_FILES, TEXT_FILE, TEXT_HEADER_WORDS, TEXT_SUFFIXES,  # noqa: F401
                                    TRIPLE_HEADER_WORDS, Triple, find_kg_file, name_text, read_entity_texts,
                                    read_triples, refuse_header)
from graphdel.data.kg_granularities import register_kg_granularities
from graphdel.data.kg_view import (DESCRIBED_BY, PAIR_PREFIX, TRIPLE_PREFIX, kg_triples,  # noqa: F401
                                   parse_triple_id, triple_of_row, triple_pair_id, with_triple_pairs)
from graphdel.data.sources import data_dir, register_source
from graphdel.errors import InvalidInputError

#: The 11 relations of WN18RR (Dettmers et al., AAAI 2018), which the ``wordnet`` source uses.
WN18RR_RELATIONS = (
    "_also_see", "_derivationally_related_form", "_has_part", "_hypernym", "_instance_hypernym",
    "_member_meronym", "_member_of_domain_region", "_member_of_domain_usage", "_similar_to",
    "_synset_domain_topic_of", "_verb_group",
)


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
    train_entities = {e for h, _, t in train for e in (h, t)}
    train_relations = {r for _, r, _ in train}
    triples, skipped = _held_out_triples(read, files, train, train_entities, train_relations)
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


def _held_out_triples(read: dict, files: dict, train: list[Triple], train_entities: set[str],
                      train_relations: set[str]) -> tuple[dict[str, list[list[str]]], list[dict]]:
    """``(triples, skipped)``: the triples of each split (``{"train": [[h, r, t], ...], "val": ..., "test":
    ...}``) with the val/test triples the module docstring's rules drop left out, and the records of the
    dropped and collapsed lines (train's collapsed lines, then each split's in line order).

    ``read`` holds :func:`read_triples`'s result per split, ``files`` the path per split."""
    train_set = set(train)
    skipped: list[dict] = list(read["train"][1])
    triples: dict[str, list[list[str]]] = {"train": [list(t) for t in train]}
    earlier: set[Triple] = set(train_set)
    train_name = files["train"].name
    for split in ("val", "test"):
        name = files[split].name
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
                reason = f"triple also in {files['val'].name}"
            else:
                kept.append((h, r, t))
                continue
            records.append({"row": line, "id": f"{h}\t{r}\t{t}", "reason": reason, "file": name})
        skipped.extend(sorted(records, key=lambda rec: rec["row"]))
        earlier.update(kept)
        triples[split] = [list(t) for t in kept]
    return triples, skipped


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


def _register_kg_plugins() -> None:
    from graphdel.data.pairs import register_corpus_view, register_featurizer

    register_corpus_view("kg", with_triple_pairs)
    register_featurizer("kg")(KGItemStore.from_corpus)
    register_kg_granularities()


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

    def triples(self, indices):
        """``[B, 3]`` long ``(head, relation, tail)`` of the store items ``indices [B]``: a triple item's
        triple, ``(e, described_by, e)`` for an entity item (what its batch carries as ``x`` and entity)."""
        import torch

        return torch.stack([self.head.index_select(0, indices), self.relation.index_select(0, indices),
                            self.tail.index_select(0, indices)], dim=1)

    def wrap_text(self, text, indices):
        """``text`` (``B`` texts) as :class:`~graphdel.data.kg_pairs.KGText` carrying ``entity [B]``, the
        entity each text describes (the tail of store items ``indices [B]``)."""
        from graphdel.data.kg_pairs import KGText  # here: this module stays free of torch

        return KGText(text.hidden, text.mask, text.pooled, entity=self.tail[indices])

    def model_extra(self) -> dict:
        """What the model must know of the data to be built: entity and relation counts."""
        return {"num_entities": len(self.entities), "num_relations": len(self.relations)}


_register_kg_plugins()
