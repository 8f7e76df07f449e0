"""The pair ids of a knowledge-graph corpus and its triple-pair view, the corpus the KG joint model trains and
unlearns on (see :mod:`graphdel.models.kg` for the rationale).

The corpus :func:`graphdel.data.kg.load_kg` loads has one pair per entity (``ent:<id>``);
:func:`with_triple_pairs` adds one per triple (``tri:h|r|t``). The loaded corpus is left as it is;
``api.load_corpus`` applies the view, registered by :mod:`graphdel.data.kg`
(:func:`graphdel.data.pairs.register_corpus_view`). Every public name is also imported from
:mod:`graphdel.data.kg`.
"""

from __future__ import annotations

from graphdel.data.corpus import Corpus
from graphdel.data.kg_files import KG_SPLIT_FILES, Triple, name_text
from graphdel.errors import InvalidInputError

__all__ = ["DESCRIBED_BY", "PAIR_PREFIX", "TRIPLE_PREFIX", "kg_triples", "parse_triple_id", "triple_of_row",
           "triple_pair_id", "with_triple_pairs"]

#: Prefix of KG pair ids: ``ent:<entity id>``.
PAIR_PREFIX = "ent:"
#: Prefix of triple pair ids: ``tri:<head>|<relation>|<tail>``.
TRIPLE_PREFIX = "tri:"
#: Name of the pseudo-relation that pairs an entity with its own description (``ent:<id>`` rows).
DESCRIBED_BY = "_described_by"


def kg_triples(corpus: Corpus, split: str = "train") -> list[Triple]:
    """The triples of ``split`` (``train``, ``val`` or ``test``) of a KG corpus, as tuples."""
    if corpus.modality != "kg" or "triples" not in corpus.extra:
        raise InvalidInputError(f"corpus {corpus.source!r} is not a knowledge graph (modality "
                                f"{corpus.modality!r})")
    if split not in KG_SPLIT_FILES:
        raise InvalidInputError(f"unknown split {split!r} (expected one of {tuple(KG_SPLIT_FILES)})")
    return [(h, r, t) for h, r, t in corpus.extra["triples"][split]]


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
