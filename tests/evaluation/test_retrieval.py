import numpy as np
import pytest
import torch

from graphdel.evaluation.retrieval import (PairEmbeddings, Ranks, chance_mrr, draw_distractors,
                                           hardest_of_other_items, pool_candidate_scores, pool_g2t_mrr,
                                           pool_retrieval,
                                           rank_summary, rerank_columns, rerank_ranks, retrieval_ranks,
                                           split_retrieval, usable_pool_size)

# Score matrix S[q, c]; with queries = I and candidates = S.T, queries @ candidates.T == S.
S = torch.tensor([[0.9, 0.5, 0.1],
                  [0.8, 0.3, 0.6],
                  [0.2, 0.7, 0.4]])
I3 = torch.eye(3)


def _unit(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def _pairs(z_x, z_t, items=None, rows=None) -> PairEmbeddings:
    n = z_x.size(0)
    rows = torch.arange(n) if rows is None else torch.as_tensor(rows)
    return PairEmbeddings(z_x, z_t, rows.clone() if items is None else torch.as_tensor(items), rows)


def test_ranks_hand_made():
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.arange(3))
    assert ranks.above.tolist() == [0, 2, 1] and ranks.tied.tolist() == [0, 0, 0]
    s = rank_summary(ranks)
    assert s["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert s["hits@1"] == pytest.approx(1 / 3)
    assert s["hits@10"] == 1.0


def test_ranks_other_targets():
    # q0 -> c2 (0.1: both others above), q1 -> c0 (0.8: best), q2 -> c0 (0.2: both above)
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.tensor([2, 0, 0]))
    assert ranks.expected().tolist() == [3, 1, 3]


def test_ties_are_broken_at_random_in_expectation():
    scores = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.9, 0.9]])
    cands = scores.t().contiguous()  # queries I[:2] @ cands.T == scores
    r = retrieval_ranks(torch.eye(2), cands, torch.tensor([1, 2]))
    assert r.above.tolist() == [0, 0] and r.tied.tolist() == [2, 1]
    # a target tied with 2 others has rank 1, 2 or 3 with equal chance: E[1/rank] = (1 + 1/2 + 1/3) / 3
    assert r.reciprocal().tolist() == pytest.approx([(1 + 1 / 2 + 1 / 3) / 3, (1 + 1 / 2) / 2])
    assert r.hits(1).tolist() == pytest.approx([1 / 3, 1 / 2])
    assert r.expected().tolist() == [2.0, 1.5]
    r = retrieval_ranks(torch.eye(2), cands, torch.tensor([0, 0]))
    assert r.above.tolist() == [0, 2] and r.tied.tolist() == [2, 0]


def test_a_collapsed_model_scores_chance_not_one():
    z = torch.ones(5, 4) / 2.0  # every embedding identical
    s = rank_summary(retrieval_ranks(z, z, torch.arange(5)))
    assert s["mrr"] == pytest.approx(chance_mrr(5))
    assert s["hits@1"] == pytest.approx(1 / 5)


def test_ranks_helpers_exact():
    r = Ranks(torch.tensor([0, 3, 9]), torch.tensor([0, 1, 0]))
    assert r.reciprocal().tolist() == pytest.approx([1.0, (1 / 4 + 1 / 5) / 2, 1 / 10])
    assert r.hits(1).tolist() == [1.0, 0.0, 0.0]
    assert r.hits(4).tolist() == [1.0, 0.5, 0.0]
    assert rank_summary(Ranks.cat([r, r]))["mrr"] == pytest.approx(float(r.reciprocal().mean()))
    assert Ranks.of_scores(torch.tensor([[0.5, 0.9, 0.5, 0.1]])).above.tolist() == [1]
    assert Ranks.of_scores(torch.tensor([[0.5, 0.9, 0.5, 0.1]])).tied.tolist() == [1]


def test_filtered_groups():
    g = torch.tensor([0, 0, 1])
    ranks = retrieval_ranks(I3, S.t().contiguous(), torch.arange(3), query_groups=g, candidate_groups=g)
    # q1 (group 0): c0 (0.8) is the same group -> not counted; only c2 (0.6) outranks -> 2.
    assert ranks.expected().tolist() == [1, 2, 2]


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
        assert torch.equal(r.above, results[0].above) and torch.equal(r.tied, results[0].tied)
    # brute force reference
    scores = q @ c.t()
    for i in range(50):
        above = scores[i] > scores[i, tgt[i]]
        if grouped:
            above &= kw["candidate_groups"] != kw["query_groups"][i]
        assert results[0].above[i] == int(above.sum())


def test_rank_summary_rejects_empty_and_plain_lists():
    with pytest.raises(ValueError):
        rank_summary(Ranks(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(TypeError):
        rank_summary([1, 2])


def test_chance_mrr_is_the_harmonic_mean_over_k():
    assert chance_mrr(1) == pytest.approx(1.0)
    assert chance_mrr(2) == pytest.approx(0.75)
    assert chance_mrr(64) == pytest.approx(sum(1 / i for i in range(1, 65)) / 64)
    assert round(chance_mrr(64), 4) == 0.0741


# ------------------------------------------------------------------------------------------- pool-k

def test_distractors_are_seeded_by_row_and_never_of_the_query_item():
    d_items = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    idx = draw_distractors(torch.tensor([0, 5]), torch.tensor([100, 7]), d_items, pool_size=6, seed=3)
    assert idx.shape == (2, 5)
    assert not bool((d_items[idx[0]] == 0).any()) and not bool((d_items[idx[1]] == 5).any())
    assert len(set(idx[0].tolist())) == 5  # drawn without replacement
    # the same (seed, row) draws the same distractors whatever else is queried with it
    again = draw_distractors(torch.tensor([5]), torch.tensor([7]), d_items, pool_size=6, seed=3)
    assert again[0].tolist() == idx[1].tolist()
    expected = np.random.default_rng((3, 7)).permutation(10)
    assert idx[1].tolist() == [int(j) for j in expected if int(d_items[j]) != 5][:5]
    with pytest.raises(ValueError, match="corpus row 100"):
        draw_distractors(torch.tensor([0]), torch.tensor([100]), d_items, pool_size=10, seed=0)


def test_a_repeated_distractor_draw_is_remembered_not_drawn_again(monkeypatch):
    from graphdel.evaluation import retrieval

    retrieval._draw_memo.clear()
    drawn = []
    draw = retrieval._draw
    monkeypatch.setattr(retrieval, "_draw", lambda *a: drawn.append(a[-1]) or draw(*a))
    d_items = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    args = (torch.tensor([0, 5]), torch.tensor([100, 7]), d_items)
    first = draw_distractors(*args, pool_size=6, seed=3)
    first[0, 0] = -1                                    # a caller's change does not reach the memory
    again = draw_distractors(*args, pool_size=6, seed=3)
    assert drawn == [3] and again.tolist() == draw_distractors(*args, pool_size=6, seed=3).tolist()
    assert again[0, 0] >= 0 and again.tolist() == retrieval._draw(*[a.numpy() for a in args], 5, 3).tolist()
    drawn.clear()
    draw_distractors(*args, pool_size=6, seed=4)                                         # another seed
    draw_distractors(*args, pool_size=5, seed=3)                                         # another pool size
    draw_distractors(torch.tensor([0, 5]), torch.tensor([100, 8]), d_items, pool_size=6, seed=3)  # a row
    draw_distractors(torch.tensor([1, 5]), torch.tensor([100, 7]), d_items, pool_size=6, seed=3)  # an item
    draw_distractors(*args[:2], torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 9]), pool_size=6, seed=3)
    assert len(drawn) == 5
    monkeypatch.setattr(retrieval, "DRAW_MEMO_BYTES", 0)                                # nothing fits
    retrieval._draw_memo.clear()
    draw_distractors(*args, pool_size=6, seed=3)
    draw_distractors(*args, pool_size=6, seed=3)
    assert len(drawn) == 7 and not retrieval._draw_memo


@pytest.mark.parametrize("n", [1, 5, 64, 65, 250])
def test_chance_level_is_the_same_for_every_split_size(n):
    """A model whose embeddings carry no information (all equal) scores exactly H_k / k at every size."""
    z = torch.ones(n, 8) / 8 ** 0.5
    d = torch.ones(300, 8) / 8 ** 0.5
    out = pool_retrieval(_pairs(z, z, rows=torch.arange(1000, 1000 + n)), _pairs(d, d), pool_size=64)
    assert out["k"] == 64
    assert out["g2t_mrr"] == pytest.approx(chance_mrr(64)) and out["t2g_mrr"] == pytest.approx(chance_mrr(64))
    assert out["g2t_acc"] == pytest.approx(1 / 64)
    assert out["chance_mrr"] == pytest.approx(0.0741, abs=5e-5)


@pytest.mark.parametrize("n", [1, 7, 300])
def test_a_distractor_equal_to_the_true_candidate_ties_with_it_exactly(n):
    """Every text is one vector: each pool is a 64-way tie in both directions at every query count, whatever
    the width (a matrix product against a row-wise sum broke these ties at d=256)."""
    zx, v = _unit(n, d=256, seed=1), _unit(1, d=256, seed=2)
    q = _pairs(zx, v.expand(n, -1).clone(), rows=torch.arange(1000, 1000 + n))
    d = _pairs(_unit(200, d=256, seed=3), v.expand(200, -1).clone())
    out = pool_retrieval(q, d, pool_size=64)
    assert out["g2t_mrr"] == pytest.approx(chance_mrr(64), abs=1e-12)


def test_random_embeddings_score_near_chance_at_every_size():
    d = _pairs(_unit(512, seed=1), _unit(512, seed=2))
    means = []
    for n in (1, 5, 64, 65, 250):
        scores = [pool_retrieval(_pairs(_unit(n, seed=10 + s), _unit(n, seed=20 + s), rows=torch.arange(n) + 600),
                                 d, seed=s)["g2t_mrr"] for s in range(40)]
        means.append(float(np.mean(scores)))
    # the average over 40 seeds of random embeddings: within 0.02 of chance for every size
    assert max(abs(m - chance_mrr(64)) for m in means) < 0.02


def test_a_pairs_score_does_not_depend_on_its_split():
    """Pool-k ranks each pair against its own distractors: scoring pair 3 alone or among 20 gives the
    same reciprocal rank (the old partition-based pools mixed the split's own pairs in)."""
    zx, zt = _unit(20, seed=4), _unit(20, seed=5)
    d = _pairs(_unit(200, seed=6), _unit(200, seed=7))
    rows = torch.arange(20) + 1000
    whole, _ = pool_candidate_scores(_pairs(zx, zt, rows=rows), d, pool_size=16, seed=1)
    alone, _ = pool_candidate_scores(_pairs(zx[3:4], zt[3:4], rows=rows[3:4]), d, pool_size=16, seed=1)
    assert torch.allclose(whole[3], alone[0], atol=1e-6)  # equal up to the rounding of batched products
    assert Ranks.of_scores(whole[3:4]).above.tolist() == Ranks.of_scores(alone).above.tolist()


def test_pool_scores_match_brute_force():
    zx, zt = _unit(6, seed=1), _unit(6, seed=2)
    dx, dt = _unit(30, seed=3), _unit(30, seed=4)
    q, d = _pairs(zx, zt, rows=torch.arange(6) + 50), _pairs(dx, dt)
    out = pool_retrieval(q, d, pool_size=8, seed=2)
    idx = draw_distractors(q.items, q.rows, d.items, pool_size=8, seed=2)
    g2t, t2g = [], []
    for i in range(6):
        g2t.append(1 + sum(float(zx[i] @ dt[j]) > float(zx[i] @ zt[i]) for j in idx[i].tolist()))
        t2g.append(1 + sum(float(zt[i] @ dx[j]) > float(zt[i] @ zx[i]) for j in idx[i].tolist()))
    assert out["k"] == 8
    assert out["g2t_mrr"] == pytest.approx(sum(1 / r for r in g2t) / 6)
    assert out["t2g_mrr"] == pytest.approx(sum(1 / r for r in t2g) / 6)
    assert out["g2t_acc"] == pytest.approx(sum(r == 1 for r in g2t) / 6)
    # the standard error of g2t_mrr over the six queries: sd (n - 1) of their reciprocal ranks / sqrt(6)
    rr = [1 / r for r in g2t]
    mean = sum(rr) / 6
    assert out["g2t_mrr_se"] == pytest.approx((sum((x - mean) ** 2 for x in rr) / 5 / 6) ** 0.5, abs=1e-12)
    one = _pairs(zx[:1], zt[:1], rows=torch.tensor([50]))
    assert "g2t_mrr_se" not in pool_retrieval(one, d, pool_size=8)  # one query: no spread to read


def test_graph_to_text_pools_read_the_distractors_texts_alone():
    zx, zt = _unit(6, seed=1), _unit(6, seed=2)
    dx, dt = _unit(30, seed=3), _unit(30, seed=4)
    q = _pairs(zx, zt, rows=torch.arange(6) + 50)
    texts_alone = PairEmbeddings(None, dt, torch.arange(30), torch.arange(30))
    idx = draw_distractors(q.items, q.rows, texts_alone.items, pool_size=8, seed=2)
    ranks = [1 + sum(float(zx[i] @ dt[j]) > float(zx[i] @ zt[i]) for j in idx[i].tolist()) for i in range(6)]
    assert pool_g2t_mrr(q, texts_alone, pool_size=8, seed=2) == pytest.approx(sum(1 / r for r in ranks) / 6)
    assert pool_g2t_mrr(q, texts_alone, pool_size=8, seed=2) == pool_retrieval(q, _pairs(dx, dt), pool_size=8,
                                                                               seed=2)["g2t_mrr"]
    g2t, t2g = pool_candidate_scores(q, texts_alone, pool_size=8, seed=2)
    assert t2g is None and len(texts_alone) == 30
    assert torch.equal(g2t, pool_candidate_scores(q, _pairs(dx, dt), pool_size=8, seed=2)[0])
    with pytest.raises(ValueError, match="both directions"):
        pool_retrieval(q, texts_alone, pool_size=8, seed=2)


def test_other_captions_of_the_query_item_never_count_against_it():
    """Distractor pairs of the query's own item (another caption of the same molecule) are never drawn."""
    zx = torch.tensor([[1.0, 0.0]])
    zt = torch.tensor([[0.8, 0.6]])
    # distractors: two captions of item 7 that match x better than its own caption, and 4 of other items
    dx = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    dt = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    out = pool_retrieval(_pairs(zx, zt, items=[7], rows=[9]), _pairs(dx, dt, items=[7, 7, 1, 2, 3, 4]),
                         pool_size=5)
    assert out["g2t_mrr"] == 1.0 and out["t2g_mrr"] == 1.0


def test_small_distractor_sets_lower_k_for_every_split_alike():
    assert usable_pool_size(torch.tensor([0, 0, 1, 2, 3]), 64) == 4  # 5 pairs, 2 of item 0
    assert usable_pool_size(torch.arange(600), 64) == 64
    assert usable_pool_size(torch.tensor([5]), 64) == 1 and usable_pool_size(torch.tensor([], dtype=torch.long), 64) == 1
    out = pool_retrieval(_pairs(_unit(3), _unit(3, seed=1), rows=[40, 41, 42]),
                         _pairs(_unit(5, seed=2), _unit(5, seed=3), items=[0, 0, 1, 2, 3]))
    assert out["k"] == 4 and out["chance_mrr"] == pytest.approx(chance_mrr(4))


def test_split_retrieval_layout():
    q = _pairs(I3, S.t().contiguous())
    out = split_retrieval(q, _pairs(_unit(10, d=3), _unit(10, d=3, seed=1)), pool_size=4)
    assert set(out) == {"g2t", "t2g", "pool4", "n"}
    assert out["n"] == 3
    assert set(out["g2t"]) == {"mrr", "hits@1", "hits@10"}
    assert set(out["pool4"]) == {"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc", "k", "chance_mrr", "g2t_mrr_se"}
    assert out["g2t"]["mrr"] == pytest.approx(11 / 18)
    assert set(split_retrieval(q)) == {"g2t", "t2g", "n"}  # no distractor set: full-split scores only


def test_rerank_reorders_only_the_top_k_hand_made():
    scores = torch.tensor([[0.5, 0.9, 0.4, 0.1],    # target 2nd by similarity
                           [0.2, 0.9, 0.8, 0.7],    # target 4th: beyond the top 3
                           [0.6, 0.7, 0.1, 0.0],    # target 2nd; the matching head puts it 1st
                           [0.5, 0.5, 0.5, 0.1],    # target tied with two others at the top
                           [0.6, 0.1, 0.9, 0.5]])   # the top 3 are columns 0, 2, 3 (not the first three)
    rerank = torch.tensor([[2.0, 1.0, 3.0, 9.0],     # 9.0 is outside the top 3: never read
                           [5.0, 0.0, 0.0, 0.0],
                           [4.0, 1.0, 0.5, 99.0],
                           [9.0, 0.0, 0.0, 0.0],
                           [1.0, 9.0, 0.0, 0.5]])    # 9.0 is column 1's, outside the top 3
    assert rerank_columns(scores, 3).tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 2, 3]]
    ranks = rerank_ranks(scores, rerank, 3)
    assert ranks.above.tolist() == [1, 3, 0, 0, 0] and ranks.tied.tolist() == [0, 0, 0, 0, 0]
    assert ranks.hits(1).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    # top 2: the tied row is no longer surely inside (0 above + 2 tied >= 2), so it keeps its similarity rank
    ranks = rerank_ranks(scores, rerank, 2)
    assert ranks.above.tolist() == [0, 3, 0, 0, 0] and ranks.tied.tolist() == [0, 0, 0, 2, 0]
    # top 1 re-ranks nothing: the similarity ranks
    plain = Ranks.of_scores(scores)
    ranks = rerank_ranks(scores, rerank, 1)
    assert torch.equal(ranks.above, plain.above) and torch.equal(ranks.tied, plain.tied)
    with pytest.raises(ValueError, match="shape"):
        rerank_ranks(scores, rerank[:, :3], 3)


def test_hardest_of_other_items_hand_made():
    candidates = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    candidate_items = torch.tensor([0, 0, 1, 2])
    queries = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    query_items = torch.tensor([0, 1, 2])
    # query 0 (item 0) never gets candidates 0, 1 (its own item) however similar they are
    expected = [[2, 3], [1, 0], [2, 1]]
    assert hardest_of_other_items(queries, candidates, query_items, candidate_items, 2).tolist() == expected
    assert hardest_of_other_items(queries, candidates, query_items, candidate_items, 2, block=1).tolist() == expected
    with pytest.raises(ValueError, match="k must be in 1..2"):
        hardest_of_other_items(queries, candidates, query_items, candidate_items, 3)


def test_hardest_of_other_items_breaks_ties_by_index_like_a_stable_sort():
    # one query, five candidates of other items scoring 0.5, 0.9, 0.5, 0.5, 0.9: the two 0.9s first in index
    # order, then the first of the 0.5s; a tie crossing the k-th place keeps the lower indices
    candidates = torch.tensor([[0.5], [0.9], [0.5], [0.5], [0.9], [5.0]])
    candidate_items = torch.tensor([1, 2, 3, 4, 5, 0])
    pick = lambda k: hardest_of_other_items(torch.ones(1, 1), candidates, torch.tensor([0]), candidate_items, k)  # noqa: E731
    assert pick(1).tolist() == [[1]]
    assert pick(3).tolist() == [[1, 4, 0]]
    assert pick(4).tolist() == [[1, 4, 0, 2]]
    assert pick(5).tolist() == [[1, 4, 0, 2, 3]]


def test_hardest_of_other_items_equals_a_full_stable_sort_with_many_ties():
    # coarse embeddings make many equal scores, ties crossing the k-th place in most rows
    g = torch.Generator().manual_seed(0)
    queries = torch.randint(-2, 3, (60, 4), generator=g).float()
    candidates = torch.randint(-2, 3, (200, 4), generator=g).float()
    query_items, candidate_items = torch.randint(0, 30, (60,), generator=g), torch.randint(0, 30, (200,), generator=g)
    scores = (queries @ candidates.t()).masked_fill(query_items[:, None] == candidate_items[None, :], float("-inf"))
    for k in (1, 4, 17):
        expected = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(hardest_of_other_items(queries, candidates, query_items, candidate_items, k), expected)
        assert torch.equal(hardest_of_other_items(queries, candidates, query_items, candidate_items, k, block=7),
                           expected)


def test_pool_scores_give_the_same_ranks_in_any_block_size():
    # a block is one matrix product, whose rounding may depend on its row count: the same ranks, scores
    # equal but for the last bits
    q = _pairs(_unit(150, d=32, seed=8), _unit(150, d=32, seed=9), rows=torch.arange(150) + 300)
    d = _pairs(_unit(100, d=32, seed=10), _unit(100, d=32, seed=11))
    one_block = pool_candidate_scores(q, d, pool_size=16, seed=3, block=1024)
    for block in (1, 7, 64):
        g2t, t2g = pool_candidate_scores(q, d, pool_size=16, seed=3, block=block)
        for scores, reference in ((g2t, one_block[0]), (t2g, one_block[1])):
            assert torch.allclose(scores, reference, rtol=0, atol=1e-6)
            ranks, expected = Ranks.of_scores(scores), Ranks.of_scores(reference)
            assert torch.equal(ranks.above, expected.above) and torch.equal(ranks.tied, expected.tied)


def test_candidates_equal_to_the_true_one_or_to_each_other_tie_exactly():
    """Width 256, where a product's rounding and a row-wise sum's differ: queries whose own text is also a
    distractor's, and a distractor set holding each of its texts twice. The ties are exactly those of a
    brute-force count: the candidates whose text is the true one, element by element."""
    texts = _unit(40, d=256, seed=21)
    d_texts = torch.cat([texts, texts])  # every distractor text twice
    d = _pairs(_unit(80, d=256, seed=22), d_texts, items=torch.arange(80), rows=torch.arange(80))
    own = torch.cat([texts[:20], _unit(10, d=256, seed=23)])  # 20 queries whose text is a distractor's
    zx = _unit(30, d=256, seed=24)
    q = _pairs(zx, own, items=torch.arange(100, 130), rows=torch.arange(100, 130))
    for block in (1024, 1, 7):
        g2t, _ = pool_candidate_scores(q, d, pool_size=64, seed=5, block=block)
        ranks = Ranks.of_scores(g2t)
        idx = draw_distractors(q.items, q.rows, d.items, pool_size=64, seed=5)
        for i in range(30):
            pool = d_texts[idx[i]]
            same = (pool == own[i]).all(-1)
            exact = (pool.double() @ zx[i].double()) > float(zx[i].double() @ own[i].double())
            assert ranks.tied[i] == int(same.sum()) and ranks.above[i] == int((exact & ~same).sum())
            # identical distractor texts, wherever they sit in the pool, have one score
            for text in torch.unique(idx[i] % 40):
                assert g2t[i, 1:][idx[i] % 40 == text].unique().numel() == 1
        assert int(ranks.tied[:20].sum()) > 20  # the true text is drawn (twice, mostly) into most pools


def test_identical_distractors_share_one_column_of_the_product(monkeypatch):
    """Equal products of equal columns are what BLAS libraries do, not what they promise: the scorer
    multiplies by each distinct distractor once and maps the copies to it."""
    from graphdel.evaluation import retrieval

    seen = []
    scores = retrieval._pool_scores

    def spy(query, own, candidates, pick):
        seen.append(candidates)
        return scores(query, own, candidates, pick)

    monkeypatch.setattr(retrieval, "_pool_scores", spy)
    texts = _unit(40, d=16, seed=31)
    d = _pairs(_unit(80, d=16, seed=32), torch.cat([texts, texts]))
    pool_candidate_scores(_pairs(_unit(5, d=16, seed=33), _unit(5, d=16, seed=34), rows=torch.arange(5) + 90),
                          d, pool_size=16)
    distinct, column = seen[0]  # the texts (g2t)
    assert distinct.shape == (40, 16) and torch.equal(column[:40], column[40:])
    assert torch.equal(distinct[column], d.z_t)
