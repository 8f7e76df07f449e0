import math

import pytest
import torch

from graphdel.unlearning.selection import CalibratedSelector, reached_reference, sampler_score, select_index

from .toy import ToyModel, ToySampler


def test_sampler_score_is_pool_k_against_the_distractors(original, samplers):
    """The selection score is the pool-k g2t MRR of graphdel.evaluation.retrieval, on the same pairs and
    distractors: equal to the report's number."""
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.retrieval import pool_retrieval

    score = sampler_score(original, samplers["forget"], samplers["calibration"], pool_size=8, seed=2)
    expected = pool_retrieval(embed_pairs(original, samplers["forget"]), embed_pairs(original, samplers["calibration"]),
                              pool_size=8, seed=2)["g2t_mrr"]
    assert score == expected
    # one pair is scored on the same scale: its own reciprocal rank among 8 candidates
    one = ToySampler(samplers["forget"].data, samplers["forget"].indices[:1])
    single = sampler_score(original, one, samplers["calibration"], pool_size=8, seed=2)
    assert single in {1 / r for r in range(1, 9)}


def test_scoring_encodes_the_scored_graphs_and_no_distractor_graph(original, samplers, make_ctx, monkeypatch):
    """Graph->text pools read the distractors' texts: their graphs, the costliest part, are never encoded."""
    encoded = []
    real = original.encode_x
    monkeypatch.setattr(original, "encode_x", lambda x: encoded.append(len(x)) or real(x))
    selector = CalibratedSelector(make_ctx(), pool_size=8)
    selector.evaluate(original, epoch=0, step=0)
    probe = sum(len(b) for b in selector._retain_probe)
    # Df, the calibration reference and the retain probe; nothing of the distractor set
    assert sum(encoded) == len(samplers["forget"]) + len(samplers["calibration"]) + probe
    from graphdel.evaluation.embed import embed_pairs

    with pytest.raises(ValueError, match="with_matching"):
        embed_pairs(original, samplers["forget"], with_matching=True, texts_only=True)


def test_sampler_score_is_nan_without_pairs(original, samplers):
    empty = ToySampler(samplers["forget"].data, [])
    assert math.isnan(sampler_score(original, empty, samplers["calibration"], pool_size=8))


def test_reached_reference_smooths():
    assert not reached_reference([0.9, 0.6], [0.7, 0.7], smooth=2)  # mean 0.75 > 0.7
    assert reached_reference([0.9, 0.6, 0.7], [0.7, 0.7, 0.7], smooth=2)
    assert reached_reference([0.8, 0.75], [0.7, 0.7], smooth=2, margin=0.1)
    assert not reached_reference([], [])


def test_select_index_closest_then_retain():
    recs = [dict(forget=0.95, reference=0.7, retain=0.95),
            dict(forget=0.71, reference=0.7, retain=0.80),
            dict(forget=0.69, reference=0.7, retain=0.90),
            dict(forget=0.40, reference=0.7, retain=0.99)]
    idx, reason = select_index(recs, tolerance=0.02)
    assert idx == 2 and "retain" in reason
    idx, _ = select_index(recs, tolerance=0.0)
    assert idx in (1, 2)
    # over-forgetting is penalised like under-forgetting
    assert select_index([dict(forget=0.3, reference=0.7, retain=1.0), dict(forget=0.8, reference=0.7, retain=0.5)],
                        tolerance=0.0)[0] == 1


def test_select_rule_sum_never_gives_up_more_gap_than_it_gains_in_retain():
    from graphdel.unlearning.selection import selection_candidates

    # a closed WordNet request's three evaluations: the untouched copy, then 0.043 above and 0.026 below
    # the reference, the first with 0.0015 more retain score
    recs = [dict(epoch=0, forget=0.378, reference=0.267, retain=0.6960),
            dict(epoch=1, forget=0.310, reference=0.267, retain=0.6950),
            dict(epoch=2, forget=0.241, reference=0.267, retain=0.6935)]
    assert select_index(recs, tolerance=0.02)[0] == 1                  # the retain gain wins under tolerance
    idx, reason = select_index(recs, tolerance=0.02, rule="sum")
    assert idx == 2 and "gap + retain drop" in reason                  # 0.026 + 0.0015 < 0.043 + 0
    # a retain gain larger than the gap given up is taken
    recs[1]["retain"] = 0.7300
    assert select_index(recs, rule="sum")[0] == 1                      # 0.043 + 0 < 0.026 + 0.0365
    # candidates: no record beaten on both gap and retain (epoch 0 is never handed back)
    more = recs + [dict(epoch=3, forget=0.230, reference=0.267, retain=0.6900)]     # beaten by epoch 2
    assert selection_candidates(more, rule="sum")[0] == [1, 2]
    with pytest.raises(ValueError, match="selection rule 'best'"):
        select_index(recs, rule="best")


def test_selector_falls_back_to_val(make_ctx, original):
    sel = CalibratedSelector(make_ctx(calibration=None), pool_size=8)
    assert sel.reference_name == "val" and sel.notes
    rec = sel.evaluate(original, epoch=0, step=0)
    assert set(rec) >= {"forget", "reference", "retain"}
    _, info = sel.select()
    assert info["reference"] == "val"


def test_the_retain_probe_reads_validation_pairs_when_asked(make_ctx, samplers):
    def probe_rows(selector):
        return sorted(torch.cat([b.rows for b in selector._retain_probe]).tolist())

    # as many pairs as Df has (8), drawn from the 8 validation pairs: all of them
    on_val = CalibratedSelector(make_ctx(), pool_size=8, probe="val")
    assert probe_rows(on_val) == sorted(samplers["val"].indices.tolist())
    assert "the retain score is read on 8 validation pairs (select_probe 'val')" in on_val.notes
    on_dr = CalibratedSelector(make_ctx(), pool_size=8)
    assert len(probe_rows(on_dr)) == 8 and set(probe_rows(on_dr)) <= set(samplers["retain"].indices.tolist())
    without_val = CalibratedSelector(make_ctx(val=None), pool_size=8, probe="val")
    assert set(probe_rows(without_val)) <= set(samplers["retain"].indices.tolist())
    assert any("no validation pairs" in n for n in without_val.notes)


def test_scoring_restores_training_flags(samplers):
    model = ToyModel().train()
    sampler_score(model, samplers["forget"], samplers["calibration"], pool_size=8)
    assert all(m.training for m in model.modules())


def test_the_untouched_copy_is_never_selected_when_an_update_exists():
    from graphdel.unlearning.selection import select_index

    records = [{"epoch": 0, "forget": 0.80, "reference": 0.70, "retain": 0.90},
               {"epoch": 1, "forget": 0.79, "reference": 0.70, "retain": 0.85}]
    index, _ = select_index(records, tolerance=0.05)
    assert index == 1
    assert select_index(records[:1])[0] == 0  # nothing else to choose from


def test_pruning_keeps_the_state_the_rule_picks(make_ctx, original):
    """Epoch 0 has the smallest gap; the rule then picks the best *updated* checkpoint (epoch 1), so the
    selector must not have pruned it against epoch 0's gap (it once did, and handed back epoch 2)."""
    sel = CalibratedSelector(make_ctx(), pool_size=8, tolerance=0.02)
    # scores in the order evaluate asks for them: epoch 0 reference, forget, retain; then forget, retain
    scores = iter([0.5, 0.5, 0.5, 0.55, 0.5, 0.60, 0.5])
    def scorer(model):
        return lambda batches, weights=None: (next(scores), float("nan"), 0)

    sel._scorer = scorer
    model = ToyModel()
    for epoch in range(3):
        with torch.no_grad():
            model.logit_scale.fill_(float(epoch))  # a state that names its epoch
        sel.evaluate(model, epoch=epoch, step=epoch)
    state, info = sel.select()
    assert [round(r["forget"] - r["reference"], 2) for r in sel.records] == [0.0, 0.05, 0.1]
    assert info["epoch"] == 1
    assert float(state["logit_scale"]) == 1.0


def test_draws_average_the_score_over_that_many_distractor_draws(original, samplers):
    from graphdel.evaluation.embed import pool_score

    # calibration pairs (never trained) ranked among the retained pairs' texts: they move with the draw
    args = (original, samplers["calibration"], samplers["retain"])
    single = [pool_score(*args, pool_size=8, seed=s) for s in (2, 3, 4)]
    assert len(set(single)) > 1  # the draws differ, so the mean is not any one of them
    assert pool_score(*args, pool_size=8, seed=2, draws=3) == pytest.approx(sum(single) / 3, abs=1e-12)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        pool_score(*args, pool_size=8, draws=0)


def test_weights_weigh_each_pair_of_the_mean(original, samplers):
    from graphdel.evaluation.embed import pool_score

    cal, distractors = samplers["calibration"], samplers["retain"]
    first, second = (ToySampler(cal.data, cal.indices[i:i + 1]) for i in (0, 1))
    one = pool_score(original, first, distractors, pool_size=8, seed=2)
    two = pool_score(original, second, distractors, pool_size=8, seed=2)
    assert one != two
    rows = cal.indices.tolist()
    weighted = pool_score(original, cal, distractors, pool_size=8, seed=2,
                          weights={rows[0]: 3.0, rows[1]: 1.0})
    assert weighted == pytest.approx((3 * one + two) / 4, abs=1e-12)
    with pytest.raises(ValueError, match="no pair of the set a positive weight"):
        pool_score(original, cal, distractors, pool_size=8, weights={-1: 1.0})


def test_match_reference_scores_the_calibration_with_the_request_weights(original, samplers, make_ctx):
    from graphdel.evaluation.embed import pool_score
    from graphdel.evaluation.reference_weights import ReferenceWeights

    cal = samplers["calibration"]
    row = cal.indices[0].item()
    ctx = make_ctx(calibration_weights=ReferenceWeights({row: 1.0}, 1.0, 0.5))
    alone = pool_score(original, ToySampler(cal.data, cal.indices[:1]), ctx.distractors or cal, pool_size=8,
                       seed=ctx.seed)
    matched = CalibratedSelector(ctx, pool_size=8, match_reference=True)
    assert matched.evaluate(original, epoch=0, step=0)["reference"] == pytest.approx(alone, abs=1e-12)
    assert "weighted to the request's series" in matched.notes[-1]
    plain = CalibratedSelector(ctx, pool_size=8).evaluate(original, epoch=0, step=0)["reference"]
    assert plain == pool_score(original, cal, ctx.distractors or cal, pool_size=8, seed=ctx.seed) != alone
    unmatched = CalibratedSelector(make_ctx(), pool_size=8, match_reference=True)
    assert "every calibration pair alike" in unmatched.notes[-1]


def test_a_method_scores_with_its_configured_draws(original, samplers, make_ctx):
    from graphdel.evaluation.embed import pool_score
    from graphdel.unlearning import unlearn

    ctx = make_ctx(distractors=samplers["retain"])  # 40 distractors: each draw of 7 differs
    result = unlearn(original, ctx, "multidelete", {"epochs": 1, "eval_draws": 3, "pool_size": 8})
    first = next(r for r in result.log if r.get("eval"))
    score = lambda draws: pool_score(original, samplers["calibration"], samplers["retain"],  # noqa: E731
                                     pool_size=8, seed=ctx.seed, draws=draws)
    assert first["reference"] == pytest.approx(score(3), abs=1e-12) and score(3) != score(1)


def test_weighted_mean_error_is_the_standard_error_of_a_weighted_mean():
    from graphdel.evaluation.embed import weighted_mean_error

    x = torch.tensor([0.0, 1.0, 0.5, 0.5])
    # equal weights: sd / sqrt(n), sample variance 1/6
    assert weighted_mean_error(x, torch.ones(4)) == pytest.approx((1 / 6 / 4) ** 0.5, abs=1e-12)
    # a pair of weight 0 takes no part, whatever its value
    assert weighted_mean_error(torch.tensor([0.0, 1.0, 0.5, 0.5, 9.0]), torch.tensor([1.0, 1, 1, 1, 0])) \
        == pytest.approx((1 / 6 / 4) ** 0.5, abs=1e-12)
    # weights 3:1:1:1 (normalised 1/2, 1/6, 1/6, 1/6): mean 1/3, n / (n - 1) * sum(w^2 (x - mean)^2)
    w = torch.tensor([3.0, 1.0, 1.0, 1.0])
    expected = (4 / 3 * (0.25 * (1 / 3) ** 2 + (1 / 36) * ((2 / 3) ** 2 + 2 * (1 / 6) ** 2))) ** 0.5  # 1/18
    assert weighted_mean_error(x, w) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(weighted_mean_error(x, torch.tensor([1.0, 0, 0, 0])))


def test_pool_score_error_gives_pool_scores_number_and_the_error_of_its_pairs(original, samplers):
    from graphdel.evaluation.embed import embed_pairs, pool_score, pool_score_error, weighted_mean_error
    from graphdel.evaluation.retrieval import pool_g2t_reciprocal

    cal, distractors = samplers["calibration"], samplers["retain"]
    rows = cal.indices.tolist()
    weights = {rows[0]: 3.0, rows[1]: 1.0, rows[2]: 1.0}
    for kw in ({}, {"draws": 3}, {"weights": weights}, {"draws": 2, "weights": weights}):
        value, se, pairs = pool_score_error(original, cal, distractors, pool_size=8, seed=2, **kw)
        assert value == pool_score(original, cal, distractors, pool_size=8, seed=2, **kw)
        queries, texts = embed_pairs(original, cal), embed_pairs(original, distractors, texts_only=True)
        draws = kw.get("draws", 1)
        rr = sum(pool_g2t_reciprocal(queries, texts, pool_size=8, seed=2 + d) for d in range(draws)) / draws
        w = torch.tensor([float(kw["weights"].get(r, 0.0)) if "weights" in kw else 1.0 for r in rows])
        assert se == pytest.approx(weighted_mean_error(rr, w), abs=1e-12) and se > 0
        assert pairs == (3 if "weights" in kw else len(rows))
    empty = ToySampler(cal.data, [])
    nan, nan_se, none = pool_score_error(original, empty, distractors, pool_size=8)
    assert math.isnan(nan) and math.isnan(nan_se) and none == 0


def test_the_selection_records_the_references_standard_error(original, samplers, make_ctx):
    from graphdel.evaluation.embed import pool_score_error

    ctx = make_ctx()
    selector = CalibratedSelector(ctx, pool_size=8, draws=2)
    selector.evaluate(original, epoch=0, step=0)
    _, info = selector.select()
    value, se, pairs = pool_score_error(original, samplers["calibration"], ctx.distractors or samplers["calibration"],
                                        pool_size=8, seed=ctx.seed, draws=2)
    assert info["scores"]["reference"] == value
    assert (info["reference_se"], info["reference_pairs"]) == (se, pairs) and pairs == len(samplers["calibration"])
    # a model scored by its own selection score (a KG's link prediction) has no such error to record
    own = CalibratedSelector(ctx, pool_size=8)
    own._scorer = lambda model: (lambda batches, weights=None: (0.5, float("nan"), 0))
    own.evaluate(original, epoch=0, step=0)
    assert "reference_se" not in own.select()[1]


def test_a_run_passes_its_select_probe_to_the_selector(original, make_ctx):
    from graphdel.unlearning import unlearn

    res = unlearn(original, make_ctx(), "multidelete", ["epochs=1", "batch_size=8", "pool_size=8",
                                                         "select_probe=val"])
    assert "the retain score is read on 8 validation pairs (select_probe 'val')" in res.selected["notes"]
