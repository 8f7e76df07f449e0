"""Which deleted triples a retained knowledge graph still states or implies: each is ``mirrored``, ``path``
(its endpoints linked by a short path of retained triples) or ``not_inferable`` (see
:mod:`graphdel.data.kg_facts` for the classes and the bounded path search). Every public name is also
imported from :mod:`graphdel.data.kg_facts`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence

import networkx as nx

from graphdel.data.kg_mirrors import Fact, MirrorRelations, as_facts
from graphdel.errors import InvalidInputError

__all__ = ["DEFAULT_MAX_HOPS", "KINDS", "MIRRORED", "NOT_INFERABLE", "PATH", "InferableFact", "InferenceAudit",
           "find_inferable", "retained_graph", "shortest_path_within"]

MIRRORED, PATH, NOT_INFERABLE = "mirrored", "path", "not_inferable"
#: The classes of a deleted triple, in the order they are tried.
KINDS = (MIRRORED, PATH, NOT_INFERABLE)
#: Paths of at most this many retained triples count as implying a deleted fact.
DEFAULT_MAX_HOPS = 2


@dataclass(frozen=True)
class InferableFact:
    """One deleted triple and what in the retained graph still states or implies it.

    Attributes:
        triple: the deleted ``(a, r, b)``.
        kind: one of :data:`KINDS`.
        mirrors: the retained mirror triples ``(b, r', a)`` (kind ``mirrored``), sorted.
        path: for kind ``path``, the retained triples of one shortest path from ``a`` to ``b``, in order
            along the path (each as stored, so its direction may point either way).
    """

    triple: Fact
    kind: str
    mirrors: tuple[Fact, ...] = ()
    path: tuple[Fact, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"triple", "kind", "mirrors", "path"}`` with triples as lists."""
        return {"triple": list(self.triple), "kind": self.kind, "mirrors": [list(m) for m in self.mirrors],
                "path": [list(p) for p in self.path]}


@dataclass(frozen=True)
class InferenceAudit:
    """Which deleted triples the retained graph still states or implies (:func:`find_inferable`).

    Attributes:
        facts: one entry per distinct deleted triple, in request order.
        relations: the mirror relations used.
        max_hops: the longest path counted.
    """

    facts: tuple[InferableFact, ...]
    relations: MirrorRelations
    max_hops: int

    def kinds(self) -> list[str]:
        """The class of each entry of :attr:`facts`, in order."""
        return [f.kind for f in self.facts]

    def counts(self) -> dict[str, int]:
        """``{kind: number of deleted triples}`` for every kind of :data:`KINDS` (zeros included)."""
        seen = Counter(self.kinds())
        return {k: seen.get(k, 0) for k in KINDS}

    def inferable_share(self) -> float:
        """The share of deleted triples that is ``mirrored`` or ``path`` (0.0 for no triples)."""
        return (len(self.facts) - self.counts()[NOT_INFERABLE]) / len(self.facts) if self.facts else 0.0

    def summary(self, examples: int = 5) -> dict[str, Any]:
        """What a run records (JSON): ``triples``, ``counts``, ``inferable_share``, ``max_hops``, the mirror
        relations with their thresholds, and the first ``examples`` entries of each inferable kind."""
        shown = {k: [f.to_json() for f in self.facts if f.kind == k][:examples] for k in (MIRRORED, PATH)}
        return {"triples": len(self.facts), "counts": self.counts(),
                "inferable_share": round(self.inferable_share(), 4), "max_hops": self.max_hops,
                "mirror_relations": {"min_share": self.relations.min_share,
                                     "min_support": self.relations.min_support,
                                     "pairs": self.relations.to_json()},
                "examples": shown}


def retained_graph(retained: Iterable[Fact]) -> nx.Graph:
    """The undirected entity graph of ``retained`` triples: an edge ``u - v`` per pair of distinct linked
    entities (self-loops left out: they link nothing), carrying ``triple``, the first triple in sorted
    order that links them (so witness paths do not depend on input order)."""
    graph = nx.Graph()
    for h, r, t in sorted(set(retained), key=lambda x: tuple(map(str, x))):
        if h != t and not graph.has_edge(h, t):
            graph.add_edge(h, t, triple=(h, r, t))
    return graph


def shortest_path_within(graph: nx.Graph, a: Hashable, b: Hashable, max_hops: int) -> list[Hashable] | None:
    """A shortest path ``[a, ..., b]`` of at most ``max_hops`` edges in ``graph``, or ``None``.

    Two bounded breadth-first searches (:func:`networkx.single_source_shortest_path` with ``cutoff``),
    radius ``ceil(max_hops / 2)`` from ``a`` and ``floor(max_hops / 2)`` from ``b``, meet exactly when
    ``a`` and ``b`` are within ``max_hops`` (a shortest path of length ``d <= L`` has a vertex at distance
    ``min(d, ceil(L / 2))`` from ``a``, and so at most ``floor(L / 2)`` from ``b``); the shortest
    concatenation through a meeting vertex is a shortest path.
    """
    if a == b or a not in graph or b not in graph or max_hops < 1:
        return None
    from_a = nx.single_source_shortest_path(graph, a, cutoff=(max_hops + 1) // 2)
    from_b = nx.single_source_shortest_path(graph, b, cutoff=max_hops // 2)
    best: list[Hashable] | None = None
    for x, left in from_a.items():
        right = from_b.get(x)
        if right is not None and (best is None or len(left) + len(right) - 1 < len(best)):
            best = left + right[-2::-1]  # a .. x, then x's predecessors back to b
    return best


def find_inferable(deleted: Iterable[Sequence[Hashable]], retained: Iterable[Sequence[Hashable]],
                   relations: MirrorRelations, *, max_hops: int = DEFAULT_MAX_HOPS) -> InferenceAudit:
    """Classify each deleted triple as ``mirrored``, ``path`` or ``not_inferable`` (module docstring).

    Args:
        deleted: the deleted ``(a, r, b)`` triples (repeats collapsed, request order kept).
        retained: the retained graph; any deleted triple in it is left out (the graph the request leaves).
        relations: the mirror relations (:func:`learn_mirror_relations`, usually on deleted + retained).
        max_hops: the longest path counted (>= 1).

    Raises:
        InvalidInputError: a row that is not a triple, or ``max_hops < 1``.
    """
    if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 1:
        raise InvalidInputError(f"max_hops must be an integer >= 1, got {max_hops!r}")
    gone = list(dict.fromkeys(as_facts(deleted, "deleted")))
    gone_set = set(gone)
    kept = {t for t in as_facts(retained, "retained") if t not in gone_set}
    graph = retained_graph(kept)
    facts = []
    for a, r, b in gone:
        mirrors = sorted({m for m in ((b, p.mirror, a) for p in relations.mirrors_of(r)) if m in kept},
                         key=lambda x: tuple(map(str, x)))  # never (a, r, b) itself: deleted, so not kept
        if mirrors:
            facts.append(InferableFact((a, r, b), MIRRORED, mirrors=tuple(mirrors)))
            continue
        walk = shortest_path_within(graph, a, b, max_hops)
        if walk is not None:
            path = tuple(graph.edges[u, v]["triple"] for u, v in zip(walk, walk[1:]))
            facts.append(InferableFact((a, r, b), PATH, path=path))
        else:
            facts.append(InferableFact((a, r, b), NOT_INFERABLE))
    return InferenceAudit(tuple(facts), relations, max_hops)
