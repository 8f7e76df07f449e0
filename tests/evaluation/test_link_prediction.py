import math

import torch

import numpy as np

from graphdel.evaluation.distinguishability import df_vs_dr_auc
from graphdel.evaluation.link_prediction import (auroc, both_directions, filtered_ranks, link_prediction,
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


def test_auroc_and_neighbourhood():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    assert math.isclose(auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])), 0.75)
    deleted = torch.tensor([[0, 0, 1]])
    retained = torch.tensor([[1, 0, 2], [2, 0, 3], [3, 0, 4], [5, 1, 0], [6, 0, 7]])
    assert neighbourhood_triples(deleted, retained, hops=1).tolist() == [[1, 0, 2], [5, 1, 0]]
    assert neighbourhood_triples(deleted, retained, hops=2).tolist() == [[1, 0, 2], [2, 0, 3], [5, 1, 0]]


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
