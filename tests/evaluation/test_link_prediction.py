import math

import torch

import numpy as np

from graphdel.evaluation.distinguishability import df_vs_dr_auc
from graphdel.evaluation.link_prediction import (both_directions, filtered_ranks, link_prediction,
                                                 neighbourhood_triples, rank_metrics, triple_auroc)

N, R = 10, 2


def table_scores():
    """A fixed score table: score(h, r, e) = table[h, r][e]; relation r + R (inverse) has its own rows."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, 2 * R, N, generator=g)


class TableModel:
    def __init__(self, table):
        self.table = table

    def score_queries(self, heads, relations):
        return self.table[heads, relations]


def brute_rank(table, h, r, t, known):
    s = table[h, r]
    others = [e for e in range(N) if e != t and (h, r, e) not in known]
    greater = sum(1 for e in others if s[e] > s[t])
    ties = sum(1 for e in others if s[e] == s[t])
    return 1 + greater + 0.5 * ties


def test_filtered_ranks_exact_against_brute_force():
    table = table_scores()
    known_list = [[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 5], [6, 0, 1]]
    queries = torch.tensor([[0, 0, 1], [0, 0, 3], [4, 1, 5], [6, 0, 1], [1, 2, 0]])  # last: inverse query
    known = torch.tensor(known_list)
    known_set = {tuple(k) for k in known_list} | {(t, r + R, h) for h, r, t in known_list}
    ranks = filtered_ranks(TableModel(table).score_queries, queries, known, N, R, chunk=2)
    expect = [brute_rank(table, *q, known_set) for q in queries.tolist()]
    assert ranks.tolist() == expect


def test_hand_made_ranks_with_filter_and_ties():
    table = torch.zeros(N, 2 * R, N)
    table[0, 0] = torch.tensor([0., 5, 9, 3, 3, 3, 0, 0, 0, 0])   # query (0, r0, ?)
    # true tail 3 (score 3): 1 and 2 score higher, but 2 is a known true tail -> filtered
    # ties with 4 and 5 count half each: rank = 1 + 1 + 0.5 * 2 = 3
    ranks = filtered_ranks(TableModel(table).score_queries, torch.tensor([[0, 0, 3]]),
                           torch.tensor([[0, 0, 2], [0, 0, 3]]), N, R)
    assert ranks.tolist() == [3.0]
    # unfiltered: 2 also counts -> 4
    ranks = filtered_ranks(TableModel(table).score_queries, torch.tensor([[0, 0, 3]]),
                           torch.zeros(0, 3, dtype=torch.long), N, R)
    assert ranks.tolist() == [4.0]
    # a constant model ranks in the middle: 1 + 0.5 * (N - 1)
    const = filtered_ranks(TableModel(torch.zeros(N, 2 * R, N)).score_queries, torch.tensor([[1, 1, 2]]),
                           torch.zeros(0, 3, dtype=torch.long), N, R)
    assert const.tolist() == [1 + 0.5 * (N - 1)]


def test_a_nan_score_is_neither_above_nor_tied_with_the_true_answer():
    table = torch.zeros(N, 2 * R, N)
    table[0, 0] = torch.tensor([0., 5, 9, 3, 3, 3, 0, math.nan, 0, 0])
    table[1, 0] = torch.tensor([0., 5, 9, 3, 3, 3, 0, 0, 0, 0])
    ranks = filtered_ranks(TableModel(table).score_queries, torch.tensor([[0, 0, 3], [1, 0, 3]]),
                           torch.tensor([[0, 0, 2], [0, 0, 3], [1, 0, 2]]), N, R)
    assert ranks.tolist() == [3.0, 3.0]  # as in the hand-made case above; the row without a NaN alike


def test_rank_metrics_and_link_prediction_both_directions():
    m = rank_metrics(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert math.isclose(m["mrr"], (1 + 0.5 + 0.25 + 0.05) / 4, rel_tol=1e-6)
    assert (m["hits@1"], m["hits@3"], m["hits@10"], m["n"]) == (0.25, 0.5, 0.75, 4)
    assert both_directions(torch.tensor([[1, 0, 2]]), R).tolist() == [[1, 0, 2], [2, 2, 1]]
    table = torch.zeros(N, 2 * R, N)
    table[1, 0, 2] = 1.0      # tail query ranks 1
    table[2, 2, 1] = -1.0     # head query: 1 is below the 8 zero-score others -> rank 10
    out = link_prediction(TableModel(table), torch.tensor([[1, 0, 2]]), torch.tensor([[1, 0, 2]]), N, R)
    assert math.isclose(out["mrr"], (1.0 + 1 / 10) / 2, rel_tol=1e-6) and out["hits@1"] == 0.5 and out["n"] == 2


def test_neighbourhood_triples():
    deleted = torch.tensor([[0, 0, 1]])
    retained = torch.tensor([[1, 0, 2], [2, 0, 3], [3, 0, 4], [5, 1, 0], [6, 0, 7]])
    assert neighbourhood_triples(deleted, retained, hops=1).tolist() == [[1, 0, 2], [5, 1, 0]]
    assert neighbourhood_triples(deleted, retained, hops=2).tolist() == [[1, 0, 2], [2, 0, 3], [5, 1, 0]]
    # hops are undirected: from 0, the path 4 -> 9 -> 8 -> 0 is walked against its direction
    retained = torch.tensor([[8, 0, 0], [9, 0, 8], [4, 0, 9], [6, 0, 7]])
    assert neighbourhood_triples(deleted, retained, hops=2).tolist() == [[8, 0, 0], [9, 0, 8]]
    assert neighbourhood_triples(deleted, retained, hops=3).tolist() == [[8, 0, 0], [9, 0, 8], [4, 0, 9]]
    assert neighbourhood_triples(torch.zeros(0, 3, dtype=torch.long), retained).numel() == 0


class TripleScores:
    """``score_triples`` from a hand-made table: the score of ``(h, r, t)`` is ``scores[h]``."""

    def __init__(self, scores):
        self.scores = torch.tensor(scores)

    def score_triples(self, triples):
        return self.scores[triples[:, 0]]


def test_triple_auroc_labels_df_0_and_dr_1_like_the_suite():
    # Df scores [0.1, 0.4], Dr scores [0.35, 0.8]: pairs with Dr above Df: (0.35 > 0.1), (0.8 > 0.1),
    # (0.8 > 0.4); not (0.35 > 0.4) -> 3/4
    model = TripleScores([0.1, 0.4, 0.35, 0.8])
    df, dr = torch.tensor([[0, 0, 9], [1, 0, 9]]), torch.tensor([[2, 0, 9], [3, 0, 9]])
    assert triple_auroc(model, df, dr) == 0.75
    assert df_vs_dr_auc(np.array([0.1, 0.4]), np.array([0.35, 0.8]), chunks=1)["mean"] == 0.75  # the same
    # every deleted triple below every retained one: 1.0; all above: 0.0; all tied: 0.5
    assert triple_auroc(TripleScores([0.0, 0.1, 0.5, 0.9]), df, dr) == 1.0
    assert triple_auroc(TripleScores([0.8, 0.9, 0.1, 0.2]), df, dr) == 0.0
    assert triple_auroc(TripleScores([0.3, 0.3, 0.3, 0.3]), df, dr) == 0.5


def test_triple_auroc_is_the_suites_df_vs_dr_auc_over_chunks_of_dr():
    # 2 deleted triples, 6 retained: the suite's AUC is the mean over 3 seeded Dr chunks of 2, which here
    # differs from the AUC against all 6 at once
    scores = [0.1, 0.4, 0.35, 0.35, 0.8, 0.2, 0.9, 0.05]
    df = torch.tensor([[0, 0, 9], [1, 0, 9]])
    dr = torch.tensor([[i, 0, 9] for i in range(2, 8)])
    expected = df_vs_dr_auc(np.array(scores[:2]), np.array(scores[2:]))
    assert expected["n_chunks"] == 3
    assert triple_auroc(TripleScores(scores), df, dr) == expected["mean"]
    assert expected["mean"] != df_vs_dr_auc(np.array(scores[:2]), np.array(scores[2:]), chunks=1)["mean"]


class IndexedTableModel(TableModel):
    """:class:`TableModel` with the entity and relation counts a KG model carries."""

    num_entities, num_relations = N, R


def test_inference_split_ranks_each_class_of_deleted_triples():
    from graphdel.evaluation.link_prediction import inference_split

    model = IndexedTableModel(table_scores())
    # relation 0 is symmetric on (0, 1), (2, 3), (4, 5) (6 triples, the default support); relation 1 chains
    # 6 - 7 - 8 and 9 is in no retained triple
    retained = torch.tensor([[1, 0, 0], [2, 0, 3], [3, 0, 2], [4, 0, 5], [5, 0, 4], [6, 1, 7], [7, 1, 8]])
    deleted = torch.tensor([[0, 0, 1], [6, 1, 8], [9, 1, 5]])   # mirrored, path 6 - 7 - 8, not inferable
    known = torch.cat([retained, deleted])
    out = inference_split(model, deleted, retained, known)
    assert list(out) == ["mirrored", "path", "not_inferable"]
    for kind, row in zip(out, deleted):
        expect = link_prediction(model, row[None], known, N, R)
        assert out[kind] == {**expect, "triples": 1} and out[kind]["n"] == 2
    # a deleted triple kept in the retained graph is left out of it; an empty class has NaN metrics
    only = inference_split(model, deleted[:1], torch.cat([retained, deleted[:1]]), known)
    assert only["mirrored"]["triples"] == 1 and only["path"]["triples"] == only["path"]["n"] == 0
    assert math.isnan(only["not_inferable"]["mrr"])
    # one hop only: 6 - 7 - 8 no longer counts
    assert inference_split(model, deleted, retained, known, max_hops=1)["not_inferable"]["triples"] == 2
