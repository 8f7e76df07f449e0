"""Determinism on CPU: the same seed, config and data give identical weights and metrics, train and forget.

(GPU kernels are not all deterministic; see docs/RELIABILITY.md.)
"""

from __future__ import annotations

import pytest

import graphdel as gd
from graphdel import api
from graphdel.io import sha256_file
from graphdel.resources import MEASURED_KEYS
from graphdel.training.loop import TrainConfig

from tests.reliability.conftest import TINY_RECIPE


def _train_and_forget(source, root, *, seed: int = 0):
    original = gd.train(f"csv:{source}", TrainConfig(epochs=2, batch_size=4, seed=seed, device="cpu"),
                        out=root / "orig", quick=True, progress=False)
    prepared = api.load_run_data(original, progress=False)
    trained = [prepared.corpus.pair_ids[r] for r in prepared.trained_rows()]
    request = api.make_request(original, ids=trained[:3], by="pair", prepared=prepared)
    forgotten = api.forget(original, request, method="multidelete", overrides=["epochs=2", "batch_size=2"],
                           out=root / "md", seed=seed, progress=False, prepared=prepared)
    return original, forgotten


def _without_times(metrics):
    """The metrics less what ``measure`` records (time and memory differ between two identical runs)."""
    if isinstance(metrics, dict):
        return {k: _without_times(v) for k, v in metrics.items() if k not in MEASURED_KEYS}
    return metrics


@pytest.fixture(scope="module")
def first(tiny_source, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return _train_and_forget(tiny_source, tmp_path_factory.mktemp("first"))


def test_same_seed_gives_identical_weights_and_metrics(first, tiny_source, tmp_path):
    again = _train_and_forget(tiny_source, tmp_path)
    for a, b in zip(first, again):
        assert sha256_file(a.path / "model.safetensors") == sha256_file(b.path / "model.safetensors")
        assert _without_times(a.metrics) == _without_times(b.metrics)
        assert [{k: v for k, v in r.items() if "seconds" not in k} for r in a.log] == \
               [{k: v for k, v in r.items() if "seconds" not in k} for r in b.log]
    assert first[1].metrics["selected"]["steps"] > 0  # the unlearning did update the weights


def test_another_seed_gives_other_weights(first, tiny_source, tmp_path):
    """The comparison above is sensitive: a different seed changes the trained weights."""
    other, _ = _train_and_forget(tiny_source, tmp_path, seed=1)
    assert sha256_file(other.path / "model.safetensors") != sha256_file(first[0].path / "model.safetensors")
    assert TINY_RECIPE.seed == 0 != other.config["train"]["seed"]
