"""The learning-rate rule (graphdel.unlearning.tuning.tune) on the toy model: it runs every candidate, judges
each on calibration and validation exactly as its docstring says, keeps the smallest criterion, and counts
the whole search as the method's time."""

from __future__ import annotations

import pytest

from graphdel.config import ConfigError
from graphdel.unlearning import unlearn
from graphdel.unlearning.selection import CalibratedSelector
from graphdel.unlearning.tuning import TuneConfig, tune

from .conftest import assert_state_equal, clone_state

SETTINGS = ["epochs=3", "batch_size=8", "pool_size=8", "lr=0.01"]


def test_every_candidate_runs_and_the_smallest_criterion_is_kept(original, make_ctx):
    ctx = make_ctx()
    before = clone_state(original)
    result = tune(original, ctx, "neggrad+", SETTINGS, TuneConfig(lr_factors=[1.0, 0.1, 10.0], val_weight=2.0))
    assert_state_equal(original, before)  # the original is never modified
    table = result.selected["tuning"]
    rows = table["candidates"]
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.001, 0.1])
    assert any(r["val_drop"] > 0 for r in rows)  # the validation term is exercised, not zero throughout
    # each row is what one plain run with that lr gives (same context, same seed: the runs are deterministic)
    judge = CalibratedSelector(ctx, pool_size=8, batch_size=256, seed=ctx.seed)
    assert table["val_before"] == judge.score_of(original, ctx.val)
    for row in rows:
        plain = unlearn(original, ctx, "neggrad+", SETTINGS + [f"lr={row['lr']}"])
        scores = plain.selected["scores"]
        assert row["gap"] == pytest.approx(abs(scores["forget"] - scores["reference"]))
        assert row["val_drop"] == pytest.approx(max(0.0, table["val_before"] - judge.score_of(plain.model, ctx.val)))
        assert row["criterion"] == pytest.approx(row["gap"] + 2.0 * row["val_drop"])
    kept = table["kept"]
    assert kept == min(range(3), key=lambda i: rows[i]["criterion"])
    assert result.config["lr"] == pytest.approx(rows[kept]["lr"])  # the kept run's config: a replay reproduces it
    # the method's time is the whole search
    assert result.wall_time_s >= sum(r["wall_time_s"] for r in rows)


def test_the_configured_rate_wins_a_tie(original, make_ctx):
    result = tune(original, make_ctx(), "neggrad+", SETTINGS, TuneConfig(lr_factors=[1.0, 1.0]))
    assert result.selected["tuning"]["kept"] == 0


def test_tuning_needs_calibration_and_validation(original, make_ctx):
    with pytest.raises(ValueError, match="calibration and val"):
        tune(original, make_ctx(val=None), "neggrad+", SETTINGS)


def test_a_method_without_a_learning_rate_is_refused(original, make_ctx):
    with pytest.raises(ValueError, match="'retrain' has none"):
        tune(original, make_ctx(), "retrain")


def test_bad_factors_are_refused():
    with pytest.raises(ConfigError, match="lr_factors"):
        TuneConfig(lr_factors=[1.0, -0.5])
    with pytest.raises(ConfigError, match="lr_factors"):
        TuneConfig(lr_factors=[])
    assert TuneConfig.from_dict(TuneConfig(lr_factors=[2.0], val_weight=0.5).to_dict()) == TuneConfig([2.0], 0.5)
