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
