"""Fixtures shared by the evaluation tests."""

import pytest

import graphdel as gd
from graphdel import api
from graphdel.training.loop import TrainConfig


@pytest.fixture
def tiny_runs(tiny_csv, tmp_path):
    """An original run, a Retrain run and a MultiDelete run of one request on the 12-molecule corpus."""
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig", quick=True,
                        progress=False)
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, ids=["aspirin#0", "ethanol#0"], by="pair", prepared=prepared)
    runs = [api.forget(original, request, method=m, out=tmp_path / m, progress=False, prepared=prepared,
                       overrides=["epochs=1"] if m != "retrain" else None)
            for m in ("retrain", "multidelete")]
    return original, prepared, request, runs
