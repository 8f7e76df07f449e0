import itertools

import pytest
import torch

from graphdel.evaluation.retrieval import (pool_partition, pool_retrieval, rank_summary, retrieval_ranks,
                                           split_retrieval)

# Score matrix S[q, c]; with queries = I and candidates = S.T, queries @ candidates.T == S.
S = torch.tensor([[0.9, 0.5, 0.1],
                  [0.8, 0.3, 0.6],
                  [0.2, 0.7, 0.4]])
I3 = torch.eye(3)


def test_ranks_hand_made():
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.arange(3))
    assert ranks.tolist() == [1, 3, 2]
    s = rank_summary(ranks)
    assert s["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert s["hits@1"] == pytest.approx(1 / 3)
    assert s["hits@10"] == 1.0


def test_ranks_other_targets():
    # q0 -> c2 (0.1: both others above), q1 -> c0 (0.8: best), q2 -> c0 (0.2: both above)
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.tensor([2, 0, 0]))
    assert ranks.tolist() == [3, 1, 3]


def test_ties_count_only_strictly_greater():
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.9, 0.9]])
    cands = scores.t().contiguous()  # queries I[:2] @ cands.T == scores
    assert retrieval_ranks(torch.eye(2), cands, torch.tensor([1, 2])).tolist() == [1, 1]
    assert retrieval_ranks(torch.eye(2), cands, torch.tensor([0, 0])).tolist() == [1, 3]


def test_filtered_groups():
    g = torch.tensor([0, 0, 1])
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.arange(3), query_groups=g, candidate_groups=g)
    # q1 (group 0): c0 (0.8) is the same group -> not counted; only c2 (0.6) outranks -> 2.
    assert ranks.tolist() == [1, 2, 2]


def test_groups_must_come_in_pairs():
    with pytest.raises(ValueError):
        retrieval_ranks(I3, S.t().contiguous(), torch.arange(3),
                        query_groups=torch.zeros(3, dtype=torch.long))


def test_bad_target_rejected():
    with pytest.raises(ValueError):
        retrieval_ranks(I3, S.t().contiguous(), torch.tensor([0, 1, 3]))


@pytest.mark.parametrize("grouped", [False, True])
def test_chunking_does_not_change_ranks(grouped):
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    c = torch.nn.functional.normalize(torch.randn(70, 8, generator=g), dim=1)
    tgt = torch.randint(0, 70, (50,), generator=g)
    kw = {}
    if grouped:
        kw = {"query_groups": torch.randint(0, 5, (50,), generator=g),
              "candidate_groups": torch.randint(0, 5, (70,), generator=g)}
    results = [retrieval_ranks(q, c, tgt, chunk_size=cs, **kw) for cs in (1, 2, 1000)]
    results.append(retrieval_ranks(q, c, tgt, max_block_bytes=1, **kw))  # one row per block
    for r in results[1:]:
        assert torch.equal(r, results[0])
    # brute force reference
    scores = q @ c.t()
    for i in range(50):
        above = scores[i] > scores[i, tgt[i]]
        if grouped:
            above &= kw["candidate_groups"] != kw["query_groups"][i]
        assert results[0][i] == int(above.sum()) + 1


def test_rank_summary_rejects_empty_and_zero():
    with pytest.raises(ValueError):
        rank_summary([])
    with pytest.raises(ValueError):
        rank_summary([0, 1])
    assert rank_summary([1, 2, 10, 11]) == {"mrr": pytest.approx((1 + .5 + .1 + 1 / 11) / 4),
                                            "hits@1": 0.25, "hits@10": 0.75}


def test_pool_partition_merges_last_partial_pool():
    pools = pool_partition(5, 2, seed=0)
    assert [len(p) for p in pools] == [2, 3]
    assert sorted(itertools.chain.from_iterable(p.tolist() for p in pools)) == list(range(5))
    assert [len(p) for p in pool_partition(3, 64)] == [3]
    assert [len(p) for p in pool_partition(128, 64)] == [64, 64]
    again = [p.tolist() for p in pool_partition(10, 3, seed=1)]
    assert [p.tolist() for p in pool_partition(10, 3, seed=1)] == again


def test_pool_retrieval_single_pool_exact():
    out = pool_retrieval(I3, S.t().contiguous(), pool_size=64)
    # g2t ranks [1, 3, 2]; t2g: t_j vs x_i scores S[i, j] -> ranks [1, 3, 2]
    assert out["g2t_mrr"] == pytest.approx(11 / 18)
    assert out["t2g_mrr"] == pytest.approx(11 / 18)
    assert out["g2t_acc"] == pytest.approx(1 / 3)
    assert out["t2g_acc"] == pytest.approx(1 / 3)


def test_pool_retrieval_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    zx = torch.nn.functional.normalize(torch.randn(11, 4, generator=g), dim=1)
    zt = torch.nn.functional.normalize(zx + 0.8 * torch.randn(11, 4, generator=g), dim=1)
    out = pool_retrieval(zx, zt, pool_size=4, seed=3)
    g2t, t2g = [], []
    for pool in pool_partition(11, 4, seed=3):
        for i in pool:
            g2t.append(1 + sum(float(zx[i] @ zt[j]) > float(zx[i] @ zt[i]) for j in pool))
            t2g.append(1 + sum(float(zt[i] @ zx[j]) > float(zt[i] @ zx[i]) for j in pool))
    assert out["g2t_mrr"] == pytest.approx(sum(1 / r for r in g2t) / 11)
    assert out["t2g_mrr"] == pytest.approx(sum(1 / r for r in t2g) / 11)
    assert out["g2t_acc"] == pytest.approx(sum(r == 1 for r in g2t) / 11)


def test_split_retrieval_layout():
    out = split_retrieval(I3, S.t().contiguous(), pool_size=2)
    assert set(out) == {"g2t", "t2g", "pool2", "n"}
    assert out["n"] == 3
    assert set(out["g2t"]) == {"mrr", "hits@1", "hits@10"}
    assert set(out["pool2"]) == {"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc"}
    assert out["g2t"]["mrr"] == pytest.approx(11 / 18)
    assert "pool64" in split_retrieval(I3, S.t().contiguous())
