"""Mirror relations learned from a knowledge graph, and the mirror closure of a deletion: the retained
triples that state deleted facts backwards (see :mod:`graphdel.data.kg_facts` for what a mirror is and how
the relations are learned). Every public name is also imported from :mod:`graphdel.data.kg_facts`.

The functions work on triples of any hashable ids (entity and relation names, or a model's indices).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

from graphdel.errors import InvalidInputError, shorten

__all__ = ["DEFAULT_MIN_SHARE", "DEFAULT_MIN_SUPPORT", "Fact", "MirrorPair", "MirrorRelations", "as_facts",
           "learn_mirror_relations", "mirror_closure"]

#: A relation pair is a mirror pair when at least this share of the first relation's triples is mirrored.
#: On the embedded WordNet the mirror pairs are far from it on both sides: the 4 symmetric relations have
#: shares 0.75-1.0 (training triples), every other pair of relations at most 0.017.
DEFAULT_MIN_SHARE = 0.5
#: ... and at least this many of its triples are (a relation seen twice is not symmetric by chance).
DEFAULT_MIN_SUPPORT = 5

#: ``(head, relation, tail)``: names (a corpus) or indices (a model's graph).
Fact = tuple[Hashable, Hashable, Hashable]


def as_facts(triples: Iterable[Sequence[Hashable]], what: str) -> list[Fact]:
    """``triples`` as a list of 3-tuples, in order (repeats kept).

    Raises:
        InvalidInputError: a row that is not 3 values, naming its position.
    """
    out = []
    for i, t in enumerate(triples):
        if isinstance(t, (str, bytes)) or not hasattr(t, "__len__") or len(t) != 3:
            raise InvalidInputError(f"{what} row {i}: expected a (head, relation, tail) triple, got {shorten(t)}")
        out.append((t[0], t[1], t[2]))
    return out


@dataclass(frozen=True)
class MirrorPair:
    """``mirror`` states ``relation``'s facts backwards: ``(h, relation, t)`` -> ``(t, mirror, h)``.

    Attributes:
        relation: the relation ``r``.
        mirror: the mirror relation ``r'`` (equal to ``relation`` for a symmetric relation).
        share: ``mirrored / triples``.
        mirrored: how many of ``r``'s triples have their mirror in the graph.
        triples: how many triples ``r`` has.
    """

    relation: Hashable
    mirror: Hashable
    share: float
    mirrored: int
    triples: int

    @property
    def symmetric(self) -> bool:
        """Whether the relation mirrors itself."""
        return self.relation == self.mirror

    def to_json(self) -> dict[str, Any]:
        """``{"relation", "mirror", "share", "mirrored", "triples"}`` (share rounded to 4 decimals)."""
        return {"relation": self.relation, "mirror": self.mirror, "share": round(self.share, 4),
                "mirrored": self.mirrored, "triples": self.triples}


@dataclass(frozen=True)
class MirrorRelations:
    """The mirror pairs learned from a graph (:func:`learn_mirror_relations`) and the thresholds used.

    Attributes:
        pairs: every pair at or above the thresholds, sorted by relation, then by decreasing share.
        min_share, min_support: the thresholds.
    """

    pairs: tuple[MirrorPair, ...]
    min_share: float = DEFAULT_MIN_SHARE
    min_support: int = DEFAULT_MIN_SUPPORT
    _by_relation: dict[Hashable, tuple[MirrorPair, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_relation: dict[Hashable, list[MirrorPair]] = defaultdict(list)
        for p in self.pairs:
            by_relation[p.relation].append(p)
        object.__setattr__(self, "_by_relation", {r: tuple(ps) for r, ps in by_relation.items()})

    def mirrors_of(self, relation: Hashable) -> tuple[MirrorPair, ...]:
        """The pairs whose ``relation`` is ``relation`` (empty when it has no mirror)."""
        return self._by_relation.get(relation, ())

    def to_json(self) -> list[dict[str, Any]]:
        """One :meth:`MirrorPair.to_json` per pair."""
        return [p.to_json() for p in self.pairs]


def learn_mirror_relations(triples: Iterable[Sequence[Hashable]], *, min_share: float = DEFAULT_MIN_SHARE,
                           min_support: int = DEFAULT_MIN_SUPPORT) -> MirrorRelations:
    """The relation pairs ``(r, r')`` of a graph whose triples mirror each other (see the module docstring).

    Args:
        triples: the graph's ``(head, relation, tail)`` triples (repeats count once).
        min_share: the least share of ``r``'s triples ``(h, r, t)`` with ``(t, r', h)`` in the graph.
        min_support: the least number of such mirrored triples.

    Raises:
        InvalidInputError: a row that is not a triple, ``min_share`` outside ``(0, 1]`` or ``min_support``
            below 1.
    """
    if not 0 < min_share <= 1:
        raise InvalidInputError(f"min_share must be in (0, 1], got {min_share!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, int) or min_support < 1:
        raise InvalidInputError(f"min_support must be an integer >= 1, got {min_support!r}")
    graph = dict.fromkeys(as_facts(triples, "triples"))  # distinct, in first-seen order
    between: dict[tuple[Hashable, Hashable], list[Hashable]] = defaultdict(list)
    for h, r, t in graph:
        between[(h, t)].append(r)
    total = Counter(r for _, r, _ in graph)
    mirrored: Counter = Counter()
    for h, r, t in graph:
        for back in between.get((t, h), ()):
            if h == t and back == r:  # a self-loop read backwards is itself, not a second statement
                continue
            mirrored[(r, back)] += 1
    pairs = [MirrorPair(r, back, n / total[r], n, total[r]) for (r, back), n in mirrored.items()
             if n >= min_support and n / total[r] >= min_share]
    pairs.sort(key=lambda p: (str(p.relation), -p.share, str(p.mirror)))
    return MirrorRelations(tuple(pairs), min_share, min_support)


def mirror_closure(deleted: Iterable[Sequence[Hashable]], retained: Iterable[Sequence[Hashable]],
                   relations: MirrorRelations) -> dict[Fact, tuple[Fact, MirrorPair]]:
    """The retained triples that mirror a deleted triple, and so on until none is left: ``{added triple:
    (the triple it mirrors, the mirror pair)}``, in the order found.

    Repeated because a mirror has mirrors of its own: with ``r`` mirrored by ``r'`` and ``r'`` by ``r''``,
    deleting ``(a, r, b)`` and its mirror ``(b, r', a)`` still leaves ``(a, r'', b)``.
    """
    gone = list(dict.fromkeys(as_facts(deleted, "deleted")))
    kept = set(as_facts(retained, "retained")) - set(gone)
    added: dict[Fact, tuple[Fact, MirrorPair]] = {}
    frontier = gone
    while frontier:
        found = []
        for a, r, b in frontier:
            for p in relations.mirrors_of(r):
                m = (b, p.mirror, a)
                if m in kept and m not in added:
                    added[m] = ((a, r, b), p)
                    found.append(m)
        kept -= set(found)
        frontier = found
    return added
