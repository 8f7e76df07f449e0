import pytest

from graphdel.errors import ConfigError
from graphdel.unlearning import unlearn

from .toy import ToyModel


def test_retrain_returns_the_retrained_model(original, make_ctx):
    fresh = ToyModel()
    res = unlearn(original, make_ctx(retrain=lambda: fresh), "retrain")
    assert res.model is fresh and res.selected["rule"] == "retrain"
    with pytest.raises(ConfigError, match="original model"):
        unlearn(original, make_ctx(retrain=lambda: original), "retrain")


def test_retrain_records_its_training_epochs_and_the_one_kept(original, make_ctx):
    from graphdel.training.loop import TrainResult

    fresh = ToyModel()
    history = [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0}, {"epoch": 3, "loss": 1.5},
               {"stage": "fusion", "epoch": 1, "matching": 0.6}]
    res = unlearn(original, make_ctx(retrain=lambda: TrainResult(fresh, history, best_epoch=2)), "retrain")
    assert res.model is fresh
    # the fusion stage's epoch is not a training epoch of the main loop
    assert (res.selected["epoch"], res.selected["epochs_run"]) == (2, 3)
    assert res.selected["reason"].endswith("early stopping kept epoch 2 of 3 run")
    assert res.log[1:] == [{"phase": "retrain", **record} for record in history]
    bare = unlearn(original, make_ctx(retrain=lambda: ToyModel()), "retrain")  # a caller's own: the model alone
    assert "epoch" not in bare.selected and len(bare.log) == 1
