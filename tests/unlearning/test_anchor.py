"""A request applied to an already unlearned model may retain against, and stop at the calibration score
of, the model the chain of deletions started from (UnlearningContext.anchor)."""

from __future__ import annotations

import copy

import pytest
import torch

from graphdel.unlearning import unlearn
from graphdel.unlearning.selection import CalibratedSelector


SETTINGS = ["epochs=1", "batch_size=8", "pool_size=8", "selection=last"]


@pytest.fixture
def drifted(original, samplers):
    """The original after some steps on Dr only: another model of the same chain (an 'unlearned' parent)."""
    model = copy.deepcopy(original)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return model


def _first_update(result) -> dict:
    return next(r for r in result.log if r.get("phase") == "update")


def test_the_teacher_is_the_model_being_unlearned_unless_anchor_teacher(drifted, original, make_ctx):
    ctx = make_ctx(anchor=lambda: original)
    # at f' = f (no dropout in MultiDelete) the retention terms of the first step are exactly zero ...
    plain = _first_update(unlearn(drifted, ctx, "multidelete", SETTINGS + ["anchor_teacher=false"]))
    assert plain["mkr"] == pytest.approx(0, abs=1e-7) and plain["ukr"] == pytest.approx(0, abs=1e-7)
    # ... and not with the chain's original as the teacher: they measure the drift from it
    anchored = _first_update(unlearn(drifted, ctx, "multidelete", SETTINGS))  # MultiDelete's default
    assert anchored["mkr"] > 1e-4 and anchored["ukr"] > 1e-4
    # without an anchor in the context the setting changes nothing
    alone = _first_update(unlearn(drifted, make_ctx(), "multidelete", SETTINGS))
    assert alone["mkr"] == pytest.approx(0, abs=1e-7)


def test_anchor_reference_takes_the_target_from_the_chains_original(drifted, original, make_ctx):
    ctx = make_ctx(anchor=lambda: original)
    own = CalibratedSelector(ctx, pool_size=8).evaluate(drifted, epoch=0, step=0)["reference"]
    of_original = CalibratedSelector(ctx, pool_size=8).evaluate(original, epoch=0, step=0)["reference"]
    anchored = CalibratedSelector(ctx, pool_size=8, reference_model=original)
    first = anchored.evaluate(drifted, epoch=0, step=0)
    assert first["reference"] == of_original != own
    assert anchored.evaluate(drifted, epoch=1, step=1)["reference"] == of_original  # fixed, not rescored
    res = unlearn(drifted, ctx, "multidelete", SETTINGS + ["anchor_reference=true"])
    assert [r["reference"] for r in res.log if r.get("eval")][0] == pytest.approx(of_original)


def _own_similarity(model, sampler) -> float:
    """Mean cosine similarity of the pairs of ``sampler`` with their own texts."""
    batch = next(sampler.batches(len(sampler)))
    with torch.no_grad():
        return float(model.sim(model.encode_x(batch.x), model.encode_text(batch.text)).diagonal().mean())


def test_replay_decouples_the_earlier_requests_pairs_again(original, samplers, make_ctx, toy_setup):
    from .toy import ToySampler

    data, items = toy_setup[0], samplers["forget"].indices.tolist()
    now, earlier = ToySampler(data, items[:4]), ToySampler(data, items[4:])
    ctx = make_ctx(forget=now, earlier_forget=earlier, anchor=lambda: original)
    settings = SETTINGS + ["epochs=3", "batch_size=4", "lr=0.01"]
    off = unlearn(original, ctx, "multidelete", settings + ["replay=0"])
    on = unlearn(original, ctx, "multidelete", settings + ["replay=4"])
    updates = lambda res: [r for r in res.log if r.get("phase") == "update"]  # noqa: E731
    assert updates(off) and not any("md_replay" in r for r in updates(off))
    assert updates(on) and all(r["md_replay"] > 0 for r in updates(on))
    # the earlier pairs are pushed away again; without replay nothing acts on them
    assert _own_similarity(on.model, earlier) < _own_similarity(off.model, earlier) - 0.2  # 0.36 vs 0.80
    # a first request has no earlier pairs: replay draws nothing and changes no weight
    first = make_ctx(forget=now, anchor=lambda: original)
    plain = unlearn(original, first, "multidelete", settings + ["replay=0"]).model.state_dict()
    replayed = unlearn(original, first, "multidelete", settings + ["replay=4"]).model.state_dict()
    assert all(torch.equal(plain[k], replayed[k]) for k in plain)


def test_stop_on_union_scores_this_requests_and_the_earlier_pairs_as_one_set(samplers, make_ctx, toy_setup):
    from .toy import ToySampler, train_toy

    drifted = train_toy(samplers["retain"], steps=100)  # Df never seen: its pairs score unevenly

    data, items = toy_setup[0], samplers["forget"].indices.tolist()
    now, earlier = ToySampler(data, items[:3]), ToySampler(data, items[3:])

    def first(ctx, **kw):
        return CalibratedSelector(ctx, pool_size=8, **kw).evaluate(drifted, epoch=0, step=0)

    alone, before = first(make_ctx(forget=now)), first(make_ctx(forget=earlier))
    union = first(make_ctx(forget=now), earlier=earlier)
    assert (union["forget_request"], union["forget_earlier"]) == (alone["forget"], before["forget"])
    assert union["forget"] == pytest.approx((3 * alone["forget"] + 5 * before["forget"]) / 8)
    # the same number as the union scored as one set: the score is a mean over pairs
    assert union["forget"] == pytest.approx(first(make_ctx(forget=samplers["forget"]))["forget"])
    assert alone["forget"] != pytest.approx(union["forget"])
    # the setting reaches the selector through the method's config
    ctx = make_ctx(forget=now, earlier_forget=earlier)
    evals = [r for r in unlearn(drifted, ctx, "multidelete", SETTINGS + ["stop_on=union"]).log if r.get("eval")]
    assert evals[0]["forget"] == pytest.approx(union["forget"]) and "forget_earlier" in evals[0]
    plain = [r for r in unlearn(drifted, ctx, "multidelete", SETTINGS).log if r.get("eval")]
    assert plain[0]["forget"] == alone["forget"] and "forget_earlier" not in plain[0]
