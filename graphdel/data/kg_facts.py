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

The mirror relations are learned in :mod:`graphdel.data.kg_mirrors`, the deleted triples classified in
:mod:`graphdel.data.kg_paths`; this module audits (and closes) a request on a corpus, and every public name
of the two is also imported from here.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Sequence

from graphdel.data.corpus import Corpus
# Mirror relations are learned in kg_mirrors, deleted triples classified in kg_paths; their public names
# are imported here, where they have always been found.
from graphdel.data.kg_mirrors import (DEFAULT_MIN_SHARE, DEFAULT_MIN_SUPPORT, Fact, MirrorPair,  # noqa: F401
                                      MirrorRelations, learn_mirror_relations, mirror_closure)
from graphdel.data.kg_paths import (DEFAULT_MAX_HOPS, KINDS, MIRRORED, NOT_INFERABLE, PATH,  # noqa: F401
                                    InferableFact, InferenceAudit, find_inferable, retained_graph,
                                    shortest_path_within)
from graphdel.data.kg_view import triple_of_row, triple_pair_id
from graphdel.data.requests import DeletionRequest


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


def mirror_rows(corpus: Corpus, rows: Sequence[int], retained_rows: Sequence[int],
                relations: MirrorRelations | None = None) -> list[int]:
    """The rows of ``retained_rows`` whose triples state the triples at ``rows`` backwards, mirrors of
    mirrors included (:func:`mirror_closure`), sorted: what a closed request would delete with ``rows``.

    Args:
        corpus: the KG view.
        rows: the rows whose mirrors are looked for (e.g. the calibration hold-out).
        retained_rows: where they are looked for (what the model trains on).
        relations: the mirror relations; default learned from the triples of ``rows`` and ``retained_rows``.
    """
    facts, kept = _triples_at(corpus, rows), _triples_at(corpus, retained_rows)
    if relations is None:
        relations = learn_mirror_relations(facts + kept)
    found = mirror_closure(facts, kept, relations)
    return sorted(r for r in retained_rows if triple_of_row(corpus, r) in found)


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
