"""Facts a knowledge-graph deletion leaves behind: mirrored triples and short paths in the retained graph.

Deleting the triple ``(a, r, b)`` does not remove the fact it states when the retained graph still holds

* a **mirror**: ``(b, r', a)`` where ``r'`` mirrors ``r`` (``r' == r``: ``r`` is *symmetric*, such as
  WN18RR's ``_derivationally_related_form``, kept in both directions; ``r' != r``: an *inverse* pair such as
  hypernym/hyponym or part-of/has-part). Anyone who reads the retained graph reads the fact, and a model
  retrained on it learns it again;
* a **path**: ``a`` and ``b`` linked by at most ``max_hops`` retained triples (any relations, either
  direction), from which a link predictor can infer the fact (the incomplete forgetting of inferable
  triples that KG-unlearning work warns about).

Mirror relations are *learned from the graph*, not declared: for relations ``r`` and ``r'`` the share of
``r``'s triples ``(h, r, t)`` for which ``(t, r', h)`` is in the graph. A pair is a mirror pair when the
share is at least ``min_share`` (default :data:`DEFAULT_MIN_SHARE`, 0.5: most of ``r``'s facts are stated
back by ``r'``) and at least ``min_support`` triples (default :data:`DEFAULT_MIN_SUPPORT`, 5) are mirrored,
so that a relation seen twice is not called symmetric by chance. A triple is never its own mirror (a
self-loop ``(a, r, a)`` of a symmetric ``r``).

Each deleted triple gets one class (:data:`KINDS`), the first that applies:

==================  ===================================================================================
``mirrored``        a mirror triple of it is retained
``path``            its endpoints are linked by a path of at most ``max_hops`` retained triples
                    (undirected, over the retained graph with every deleted triple removed; a retained
                    triple between the same entities under another relation is a path of length 1)
``not_inferable``   neither (a self-loop ``(a, r, a)`` is never ``path``)
==================  ===================================================================================

The graph functions work on triples of any hashable ids (entity and relation names, or the indices a
model uses), so the same audit runs on a corpus (:func:`audit_request`, :func:`close_request`) and on a
model's graph (:func:`graphdel.evaluation.link_prediction.kg_split_metrics`). Paths are found with
:mod:`networkx` breadth-first searches bounded at ``max_hops``: a ball of radius ``ceil(L / 2)`` around
``a`` meets one of radius ``floor(L / 2)`` around ``b`` exactly when ``a`` and ``b`` are within ``L`` hops,
which keeps each query to the neighbourhoods of the two endpoints.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import networkx as nx

from graphdel.data.corpus import Corpus
from graphdel.data.kg import triple_of_row, triple_pair_id
from graphdel.data.requests import DeletionRequest
from graphdel.errors import InvalidInputError, shorten

MIRRORED, PATH, NOT_INFERABLE = "mirrored", "path", "not_inferable"
#: The classes of a deleted triple, in the order they are tried.
KINDS = (MIRRORED, PATH, NOT_INFERABLE)
#: A relation pair is a mirror pair when at least this share of the first relation's triples is mirrored.
#: On the embedded WordNet the mirror pairs are far from it on both sides: the 4 symmetric relations have
#: shares 0.75-1.0 (training triples), every other pair of relations at most 0.017.
DEFAULT_MIN_SHARE = 0.5
#: ... and at least this many of its triples are (a relation seen twice is not symmetric by chance).
DEFAULT_MIN_SUPPORT = 5
#: Paths of at most this many retained triples count as implying a deleted fact.
DEFAULT_MAX_HOPS = 2

#: ``(head, relation, tail)``: names (a corpus) or indices (a model's graph).
Fact = tuple[Hashable, Hashable, Hashable]


def _facts(triples: Iterable[Sequence[Hashable]], what: str) -> list[Fact]:
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


# ------------------------------------------------------------------------------------ mirror relations

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
    graph = dict.fromkeys(_facts(triples, "triples"))  # distinct, in first-seen order
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


# ------------------------------------------------------------------------------------ the audit

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
    gone = list(dict.fromkeys(_facts(deleted, "deleted")))
    gone_set = set(gone)
    kept = {t for t in _facts(retained, "retained") if t not in gone_set}
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


def mirror_closure(deleted: Iterable[Sequence[Hashable]], retained: Iterable[Sequence[Hashable]],
                   relations: MirrorRelations) -> dict[Fact, tuple[Fact, MirrorPair]]:
    """The retained triples that mirror a deleted triple, and so on until none is left: ``{added triple:
    (the triple it mirrors, the mirror pair)}``, in the order found.

    Repeated because a mirror has mirrors of its own: with ``r`` mirrored by ``r'`` and ``r'`` by ``r''``,
    deleting ``(a, r, b)`` and its mirror ``(b, r', a)`` still leaves ``(a, r'', b)``.
    """
    gone = list(dict.fromkeys(_facts(deleted, "deleted")))
    kept = set(_facts(retained, "retained")) - set(gone)
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


# ------------------------------------------------------------------------------------ requests on a corpus

def _triples_at(corpus: Corpus, rows: Iterable[int]) -> list[Fact]:
    """The triples of the triple rows among ``rows`` of a KG training view (entity rows left out)."""
    out = []
    for row in rows:
        t = triple_of_row(corpus, row)
        if t is not None:
            out.append(t)
    return out


def audit_request(corpus: Corpus, df_rows: Sequence[int], retained_rows: Sequence[int], *,
                  relations: MirrorRelations | None = None,
                  max_hops: int = DEFAULT_MAX_HOPS) -> InferenceAudit:
    """:func:`find_inferable` for a request on a KG training view (:func:`graphdel.data.kg.with_triple_pairs`).

    Args:
        corpus: the KG view.
        df_rows: the request's rows (its entity rows, if any, are left out).
        retained_rows: what the model still trains on after the request (``Prepared.retained_rows``).
        relations: the mirror relations; default learned from the triples of ``df_rows`` + ``retained_rows``
            (the graph the model was trained on).
        max_hops: the longest path counted.
    """
    deleted, kept = _triples_at(corpus, df_rows), _triples_at(corpus, retained_rows)
    if relations is None:
        relations = learn_mirror_relations(deleted + kept)
    return find_inferable(deleted, kept, relations, max_hops=max_hops)


def close_request(corpus: Corpus, request: DeletionRequest, retained_rows: Sequence[int],
                  relations: MirrorRelations, *, allowed_rows: Sequence[int],
                  force: bool = False) -> DeletionRequest:
    """``request`` extended with the retained triples that mirror its triples (:func:`mirror_closure`).

    Each added pair is recorded in ``request.added`` (so in ``request.json`` and the certificate) as
    ``{"pair_id", "reason", "of", "relation", "mirror_relation", "share"}``: the mirror's pair id, a
    sentence saying why, the pair id of the triple it mirrors and the mirror pair with its share. The
    request keeps its granularity, seed and selection, and the records of an earlier closure; when
    nothing is retained that mirrors it, ``request`` itself is returned.

    Args:
        corpus: the KG view the request was made on.
        request: the request to close.
        retained_rows: the rows the model still trains on besides the request (where mirrors are looked for).
        relations: the mirror relations (:func:`learn_mirror_relations`).
        allowed_rows: the rows the model was trained on (the extended request is validated against them).
        force: as in :meth:`DeletionRequest.from_ids`.

    Raises:
        RequestError: the extended request covers every forgettable pair and ``force`` is false.
    """
    deleted = _triples_at(corpus, request.rows(corpus))
    added = mirror_closure(deleted, _triples_at(corpus, retained_rows), relations)
    if not added:
        return request
    records = []
    for (h, r, t), ((a, q, b), pair) in added.items():
        of = triple_pair_id(a, q, b)
        records.append({"pair_id": triple_pair_id(h, r, t),
                        "reason": (f"mirror of {of}: {pair.share:.1%} of the {pair.relation!s} triples are "
                                   f"stated back by {pair.mirror!s}"),
                        "of": of, "relation": pair.relation, "mirror_relation": pair.mirror,
                        "share": round(pair.share, 4)})
    n = len(records)
    description = (f"{request.description}; plus {n} retained mirror triple{'s' if n != 1 else ''} stating "
                   f"the same fact{'s' if n != 1 else ''} backwards (closure)")
    closed = DeletionRequest.from_ids(corpus, [*request.pair_ids, *(rec["pair_id"] for rec in records)],
                                      by="pair", allowed_rows=allowed_rows, force=force, description=description)
    return dataclasses.replace(closed, by=request.by, seed=request.seed, selected=request.selected,
                               added=(*request.added, *records))


def audit_and_close(corpus: Corpus, request: DeletionRequest, trained_rows: Sequence[int], *,
                    close: bool = False, max_hops: int = DEFAULT_MAX_HOPS) -> tuple[DeletionRequest, dict | None]:
    """What a KG deletion records about the facts it leaves (``graphdel forget``), and the closed request.

    The request's triples are audited (:func:`audit_request`) against the rest of ``trained_rows``, with
    mirror relations learned on all of ``trained_rows``; with ``close`` the request is extended with the
    retained mirrors (:func:`close_request`) and audited again.

    Args:
        corpus: the KG view.
        request: the request (validated against ``trained_rows``).
        trained_rows: the rows the model trains on (``Prepared.trained_rows``).
        close: extend the request with its retained mirror triples.
        max_hops: the longest path counted.

    Returns:
        ``(request, record)``: the request (closed when ``close``) and :meth:`InferenceAudit.summary` of
        the request as given, plus ``seconds`` (the audit's time) and, when ``close``, ``closure``:
        ``{"added", "counts", "inferable_share"}`` (pairs added, and the audit of the closed request).
        ``record`` is ``None`` when the request holds no triple (an entity's description only).
    """
    start = time.perf_counter()
    trained = list(trained_rows)
    df = set(request.rows(corpus))
    before = audit_request(corpus, sorted(df), [r for r in trained if r not in df], max_hops=max_hops)
    if not before.facts:
        return request, None
    record = before.summary()
    if close:
        closed = close_request(corpus, request, [r for r in trained if r not in df], before.relations,
                               allowed_rows=trained)
        df_closed = set(closed.rows(corpus))
        after = audit_request(corpus, sorted(df_closed), [r for r in trained if r not in df_closed],
                              relations=before.relations, max_hops=max_hops)
        record["closure"] = {"added": len(closed) - len(request), "counts": after.counts(),
                             "inferable_share": round(after.inferable_share(), 4)}
        request = closed
    record["seconds"] = round(time.perf_counter() - start, 3)
    return request, record


def describe_record(record: dict) -> str:
    """One line for a person: ``"inferable: 527 of 856 deleted triples (mirrored 449, path <= 2 hops 78,
    not inferable 329)"``, and what a closure added and left."""
    c = record["counts"]
    line = (f"inferable: {c[MIRRORED] + c[PATH]} of {record['triples']} deleted triples still stated or implied "
            f"by the retained graph (mirrored {c[MIRRORED]}, path <= {record['max_hops']} hops {c[PATH]}, "
            f"not inferable {c[NOT_INFERABLE]})")
    closure = record.get("closure")
    if closure is not None:
        after = closure["counts"]
        line += (f"; --close added {closure['added']} mirror triple{'s' if closure['added'] != 1 else ''}, leaving {after[MIRRORED] + after[PATH]} of "
                 f"{sum(after.values())} inferable (mirrored {after[MIRRORED]}, path {after[PATH]})")
    return line
