"""Link-prediction metrics for knowledge-graph models: filtered ranks, MRR and Hits@k, Df-vs-Dr AUROC on
triple scores, and collateral damage around deleted triples.

Filtered ranking (Bordes et al., 2013): for a test triple ``(h, r, t)`` the tail query ``(h, r, ?)``
scores every entity; every *other* known true tail of ``(h, r)`` is removed from the candidates, and the
rank of ``t`` is ``1 + #{e: s_e > s_t} + #{e != t: s_e = s_t} / 2`` (ties count half: a constant model
ranks at the middle, not at 1). The head query ``(?, r, t)`` is asked as the tail query
``(t, r + R, ?)`` of the inverse relation. MRR and Hits@k average over both directions. Scores are
computed in chunks of queries (``[chunk, N]`` at a time).

The model needs ``score_queries(heads [B], relations [B]) -> [B, N]`` and, for AUROC,
``score_triples(triples [T, 3]) -> [T]``. The AUROC is the suite's Df-vs-Dr AUC (Df 0, Dr 1) on triple
scores.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from graphdel.data.kg_pairs import triples_of

KS = (1, 3, 10)


def _known_answers(queries: Tensor, known: Tensor, num_relations: int) -> tuple[Tensor, Tensor]:
    """``(rows, cols)``: for each query ``i`` of ``queries [Q, 3]`` ``(h, r, t)``, the entities ``e != t`` that
    make ``(h, r, e)`` a triple of ``known [K, 3]`` in either direction (``r >= R``: the inverse of a known
    triple). Sorted keys and ``searchsorted`` instead of a dictionary built per call in Python, which took
    most of a KG unlearning run's evaluation time."""
    both = both_directions(known, num_relations)
    width = 2 * num_relations + 1
    keys = both[:, 0] * width + both[:, 1]
    keys, order = torch.sort(keys)
    answers = both[order, 2]
    wanted = queries[:, 0] * width + queries[:, 1]
    lo = torch.searchsorted(keys, wanted, side="left")
    counts = torch.searchsorted(keys, wanted, side="right") - lo
    rows = torch.repeat_interleave(torch.arange(queries.size(0)), counts)
    starts = torch.repeat_interleave(lo - (torch.cumsum(counts, 0) - counts), counts)
    cols = answers[starts + torch.arange(rows.numel())]
    keep = cols != queries[rows, 2]
    return rows[keep], cols[keep]


@torch.no_grad()
def filtered_ranks(score_fn, queries: Tensor, known: Tensor, num_entities: int, num_relations: int, *,
                   chunk: int = 512) -> Tensor:
    """Filtered ranks of the tails of ``queries [Q, 3]`` ``(h, r, t)`` (``r`` may be an inverse relation).

    Args:
        score_fn: ``(heads [B], relations [B]) -> [B, N]``.
        queries: the triples to rank, as tail queries.
        known: ``[K, 3]`` true triples (original relations only) whose tails are filtered out; inverse
            queries are filtered with the inverse of every known triple.

    Returns:
        ``[Q]`` float ranks (see the module docstring).
    """
    # the ranks are bookkeeping on the CPU (scores come back there); score_fn indexes the model's tables
    # with CPU indices, which any device accepts
    queries = queries.reshape(-1, 3).long().cpu()
    filter_rows, filter_cols = _known_answers(queries, known.reshape(-1, 3).long().cpu(), num_relations)
    ranks = []
    for start in range(0, queries.size(0), chunk):
        q = queries[start:start + chunk]
        scores = score_fn(q[:, 0], q[:, 1]).float().cpu()
        target = scores[torch.arange(q.size(0)), q[:, 2]].clone()
        here = (filter_rows >= start) & (filter_rows < start + q.size(0))
        scores[filter_rows[here] - start, filter_cols[here]] = -math.inf
        ranks.append(_ranks_from_scores(scores, target))
    return torch.cat(ranks) if ranks else torch.zeros(0)


def _ranks_from_scores(scores: Tensor, target: Tensor) -> Tensor:
    """``[B]`` ranks ``1 + #{e: s_e > s_t} + #{e != t: s_e = s_t} / 2`` of the targets ``target [B]`` among
    ``scores [B, N]`` (overwritten; the target's own score among them, filtered answers at -inf).

    With ``G`` greater, ``L`` lower and ``E`` equal scores (the target's own included), ``G + L + E = N`` and
    ``sum_e sign(s_e - s_t) = G - L``, so the rank is ``(N + 1 + sum_e sign(s_e - s_t)) / 2``: one pass
    over the scores in place, instead of counting the greater and the equal ones apart (several times
    faster on a CPU; the same value, since the sum of signs is exact below 2^24 entities and the sign of a
    float difference is that of the comparison). ``sign`` maps NaN to 0, a tie, so a row holding a NaN
    (its sum is NaN) is counted the comparing way instead, where a NaN is neither greater nor equal."""
    diff = scores.sub_(target[:, None])
    broken = diff.sum(1).isnan()
    slow = None
    if bool(broken.any()):
        rows = diff[broken]
        slow = 1.0 + (rows > 0).float().sum(1) + 0.5 * ((rows == 0).float().sum(1) - 1.0)
    ranks = (diff.size(1) + 1.0 + diff.sign_().sum(1)) * 0.5
    if slow is not None:
        ranks[broken] = slow
    return ranks


def rank_metrics(ranks: Tensor) -> dict[str, float]:
    """``{"mrr", "hits@1", "hits@3", "hits@10", "n"}`` of ``ranks``; NaN metrics when empty."""
    if ranks.numel() == 0:
        return {"mrr": float("nan"), **{f"hits@{k}": float("nan") for k in KS}, "n": 0}
    ranks = ranks.float()
    return {"mrr": float((1.0 / ranks).mean()), **{f"hits@{k}": float((ranks <= k).float().mean()) for k in KS},
            "n": int(ranks.numel())}


def both_directions(triples: Tensor, num_relations: int) -> Tensor:
    """``[2T, 3]``: the tail queries ``(h, r, t)`` then the head queries ``(t, r + R, h)``."""
    triples = triples.reshape(-1, 3).long()
    inverse = torch.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1)
    return torch.cat([triples, inverse])


@torch.no_grad()
def link_prediction(model, triples: Tensor, known: Tensor, num_entities: int, num_relations: int, *,
                    chunk: int = 512) -> dict[str, float]:
    """Filtered MRR and Hits@1/3/10 of ``model`` on ``triples [T, 3]``, both directions (see the module
    docstring); ``known`` are the true triples filtered out (usually train + val + test)."""
    ranks = filtered_ranks(model.score_queries, both_directions(triples, num_relations), known, num_entities,
                           num_relations, chunk=chunk)
    return rank_metrics(ranks)


@torch.no_grad()
def triple_auroc(model, df: Tensor, dr: Tensor) -> float:
    """Df-vs-Dr AUROC of the model's triple scores, deleted (``df [T, 3]``) vs retained (``dr [T', 3]``):
    the suite's Df-vs-Dr AUC (:func:`graphdel.evaluation.distinguishability.df_vs_dr_auc`, its mean over
    Dr chunks of ``|Df|``, default chunks and seed) on the scores ``model.score_triples`` gives.

    One definition, one convention: Df is labelled 0 and Dr 1, so this is the chance that a retained
    triple scores above a deleted one (ties half): 0.5 means deleted triples score like retained ones, 1.0
    that every deleted triple scores below every retained one. Retrain gives the value to aim at.
    """
    from graphdel.evaluation.distinguishability import df_vs_dr_auc

    df_scores = model.score_triples(df.reshape(-1, 3)).float().cpu().numpy()
    dr_scores = model.score_triples(dr.reshape(-1, 3)).float().cpu().numpy()
    return df_vs_dr_auc(df_scores, dr_scores)["mean"]


def neighbourhood_triples(deleted: Tensor, retained: Tensor, hops: int = 2) -> Tensor:
    """Retained triples within ``hops`` of the deleted ones: those with an endpoint at distance
    ``< hops`` (in the retained graph, undirected) from an endpoint of a deleted triple. ``hops=1``: the
    retained triples sharing an entity with a deleted one; ``hops=2``: also those one edge further."""
    from torch_geometric.utils import k_hop_subgraph

    deleted, retained = deleted.reshape(-1, 3).long(), retained.reshape(-1, 3).long()
    n = int(max(deleted.max().item() if deleted.numel() else 0, retained.max().item() if retained.numel() else 0)) + 1
    near = torch.zeros(n, dtype=torch.bool)
    seeds = torch.cat([deleted[:, 0], deleted[:, 2]]).unique()
    if seeds.numel():
        # the entities within hops - 1 of a deleted triple's endpoint, both directions of every edge
        undirected = torch.cat([retained[:, [0, 2]], retained[:, [2, 0]]]).t()
        near[k_hop_subgraph(seeds, max(hops - 1, 0), undirected, num_nodes=n)[0]] = True
    keep = near[retained[:, 0]] | near[retained[:, 2]]
    return retained[keep]


@torch.no_grad()
def inference_split(model, deleted: Tensor, retained: Tensor, known: Tensor, *,
                    max_hops: int | None = None) -> dict[str, dict[str, float]]:
    """Link prediction on the deleted triples split by what the retained graph still says of them.

    Each deleted triple is classed ``mirrored``, ``path`` or ``not_inferable``
    (:func:`graphdel.data.kg_facts.find_inferable`, mirror relations learned on ``deleted`` + ``retained``,
    the graph the original was trained on). A fact the retained graph states backwards or implies is
    expected to stay predictable, even for Retrain; only the ``not_inferable`` part measures forgetting
    that the data allows.

    Args:
        model: a KG model (``score_queries``, ``num_entities``, ``num_relations``).
        deleted: ``[T, 3]`` the deleted triples (indices).
        retained: ``[T', 3]`` the retained graph (any deleted triple in it is ignored).
        known: ``[K, 3]`` the true triples filtered out of the ranks.
        max_hops: the longest path counted (default :data:`graphdel.data.kg_facts.DEFAULT_MAX_HOPS`).

    Returns:
        ``{kind: {mrr, hits@1, hits@3, hits@10, n, triples}}`` for every kind: ``n`` queries (both
        directions, as in :func:`link_prediction`) of ``triples`` deleted triples; NaN metrics for an
        empty kind.
    """
    from graphdel.data.kg_facts import DEFAULT_MAX_HOPS, KINDS, find_inferable, learn_mirror_relations

    gone = [tuple(t) for t in deleted.reshape(-1, 3).tolist()]
    kept = [tuple(t) for t in retained.reshape(-1, 3).tolist()]
    audit = find_inferable(gone, kept, learn_mirror_relations(gone + kept),
                           max_hops=DEFAULT_MAX_HOPS if max_hops is None else max_hops)
    kind_of = {f.triple: f.kind for f in audit.facts}
    ranks = filtered_ranks(model.score_queries, both_directions(deleted, model.num_relations), known,
                           model.num_entities, model.num_relations)
    kinds = [kind_of[t] for t in gone] * 2  # both_directions: the tail queries, then the head queries
    out = {}
    for kind in KINDS:
        mask = torch.tensor([k == kind for k in kinds], dtype=torch.bool)
        out[kind] = {**rank_metrics(ranks[mask]), "triples": int(mask.sum()) // 2}
    return out


def _store_triples(sampler) -> tuple[Tensor, int, int]:
    """All triples of the corpus behind a KG pair set, and the entity and relation counts."""
    store = sampler.data.items
    is_triple = store.relation < 2 * len(store.relations)
    is_triple &= store.relation < len(store.relations)
    t = torch.stack([store.head, store.relation, store.tail], dim=1)[is_triple]
    return t, len(store.entities), len(store.relations)


def kg_split_metrics(model, sets: dict, *, max_queries: int | None = None,
                     collateral_queries: int = 2000) -> dict[str, dict]:
    """``{split: {"lp": {mrr, hits@1, hits@3, hits@10, n}, "entity_text": {...}}}`` for named KG pair sets.

    ``lp`` ranks the triple pairs of the split (filtered against every triple of the corpus, both
    directions); ``entity_text`` is entity->description and description->entity retrieval over the
    entity–text pairs of the split (only where it has some).

    When ``sets`` has a ``forget`` split with triples (a deletion request), three more results:

    * ``forget.lp.auroc_vs_retain``: :func:`triple_auroc` of the deleted triples against the triples of
      the ``retain`` split (a sample of Dr), labelled as in the suite's Df-vs-Dr AUC (Df 0, Dr 1:
      higher = deleted triples scored lower than retained ones);
    * pseudo-splits ``collateral@1`` and ``collateral@2``: link prediction on the retained training
      triples within 1 and 2 hops of a deleted one (:func:`neighbourhood_triples` over the model's graph
      minus the deleted triples, which is the same set for the original, an unlearned model and Retrain),
      at most ``collateral_queries`` of them drawn with seed 0;
    * ``forget.lp.by_inference``: :func:`inference_split`, the deleted triples' link prediction split by
      whether the retained graph (the model's graph minus the deleted triples) mirrors them, links their
      entities by a short path, or neither.
    """
    out: dict[str, dict] = {}
    known = None
    for name, pairs in sets.items():
        if pairs is None or len(pairs) == 0 or not hasattr(pairs, "data"):
            continue
        if known is None:
            known, _, _ = _store_triples(pairs)
        res = _split_result(model, pairs, known, max_queries)
        if res:
            out[name] = res
    forget = sets.get("forget")
    deleted = triples_of(forget, model.num_relations) if forget is not None and len(forget) else None
    if deleted is not None and deleted.numel() and known is not None:
        _add_deletion_results(out, model, deleted, sets.get("retain"), known, collateral_queries)
    return out


def _split_result(model, pairs, known: Tensor, max_queries: int | None) -> dict:
    """One split's results (see :func:`kg_split_metrics`): ``lp``, the filtered link prediction of its triple
    pairs (at most ``max_queries`` of them, drawn with seed 0; filtered against ``known [K, 3]``), when it has
    some, and ``entity_text``, the retrieval over its entity–text pairs, when it has two or more."""
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.retrieval import split_retrieval

    res: dict = {}
    triples = triples_of(pairs, model.num_relations)
    if triples.numel():
        res["lp"] = link_prediction(model, _sample_rows(triples, max_queries), known, model.num_entities,
                                    model.num_relations)
    ent_rows = [r for r in pairs.rows.tolist() if pairs.data.corpus.pair_ids[r].startswith("ent:")]
    if len(ent_rows) >= 2:
        # full-split retrieval only: entity descriptions are not the deletable unit of a KG request
        res["entity_text"] = split_retrieval(embed_pairs(model, pairs.data.subset(ent_rows), batch_size=1024))
    return res


def _add_deletion_results(out: dict[str, dict], model, deleted: Tensor, retain, known: Tensor,
                          collateral_queries: int) -> None:
    """Add to ``out`` what :func:`kg_split_metrics` reports of a deletion request's ``deleted [T, 3]``
    triples: ``forget.lp.auroc_vs_retain`` against the triples of the ``retain`` pair set (scored in eval
    mode, the model's mode restored after) and ``forget.lp.by_inference`` (both only when ``out`` has
    ``forget.lp``), and the ``collateral@1`` / ``collateral@2`` pseudo-splits (at most
    ``collateral_queries`` triples each, drawn with seed 0; ranks filtered against ``known [K, 3]``)."""
    if retain is not None and len(retain) and "lp" in out.get("forget", {}):
        sample = triples_of(retain, model.num_relations)
        if sample.numel():
            was = model.training
            model.eval()
            out["forget"]["lp"]["auroc_vs_retain"] = triple_auroc(model, deleted, sample)
            model.train(was)
    retained = _retained_graph(model, deleted)
    if "lp" in out.get("forget", {}):
        out["forget"]["lp"]["by_inference"] = inference_split(model, deleted, retained, known)
    for hops in (1, 2):
        near = neighbourhood_triples(deleted, retained, hops=hops)
        if near.numel():
            near = _sample_rows(near, collateral_queries)
            out[f"collateral@{hops}"] = {"lp": link_prediction(model, near, known, model.num_entities,
                                                               model.num_relations)}


def _retained_graph(model, deleted: Tensor) -> Tensor:
    """``[G', 3]``: the triples of the model's graph (``model.graph.triples [G, 3]``, on the CPU) that are not
    among ``deleted [T, 3]`` -- the same set for the original, an unlearned model and Retrain."""
    graph = model.graph.triples.cpu()
    key = lambda t: (t[:, 0] * (2 * model.num_relations + 1) + t[:, 1]) * model.num_entities + t[:, 2]
    return graph[~torch.isin(key(graph), key(deleted))]


def _sample_rows(triples: Tensor, limit: int | None) -> Tensor:
    """At most ``limit`` rows of ``triples``, drawn with seed 0 (all of them when ``limit`` is None)."""
    if limit is None or triples.size(0) <= limit:
        return triples
    g = torch.Generator().manual_seed(0)
    return triples[torch.randperm(triples.size(0), generator=g)[:limit]]
