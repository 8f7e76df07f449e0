import copy

import pytest
import torch

from graphdel.unlearning import unlearn


def df_loss(model, sampler):
    model.eval()
    with torch.no_grad():
        return torch.stack([model.training_loss(b) for b in sampler.batches(8)]).mean().item()


@pytest.mark.parametrize("method", ["neggrad", "neggrad+", "graddiff"])
def test_ascent_raises_df_loss(original, make_ctx, samplers, method):
    before = df_loss(original, samplers["forget"])
    res = unlearn(original, make_ctx(), method,
                  ["lr=1e-2", "epochs=3", "batch_size=8", "selection=last", "loss_bound=inf", "pool_size=8"])
    assert df_loss(res.model, samplers["forget"]) > before
    assert res.selected["epochs_run"] == 3


def test_divergence_guard_stops(original, make_ctx):
    res = unlearn(original, make_ctx(), "neggrad", ["lr=1e-2", "epochs=50", "batch_size=8", "selection=last",
                                                    "loss_bound=2.5", "pool_size=8"])
    assert "divergence guard" in res.selected["stop_reason"]
    assert res.selected["epochs_run"] < 50


def test_nonfinite_stops_and_keeps_last_good(original, make_ctx):
    bad = copy.deepcopy(original)
    with torch.no_grad():
        bad.x_encoder[0].weight[0, 0] = float("nan")
    res = unlearn(bad, make_ctx(), "neggrad", ["epochs=2", "batch_size=8", "pool_size=8"])
    assert "non-finite" in res.selected["stop_reason"]
    assert res.selected["epoch"] == 0  # only the untouched copy was evaluated


def test_default_bound_is_twice_chance():
    from graphdel.unlearning.neggrad import NegGradConfig, resolved_bound
    import math
    assert resolved_bound(NegGradConfig(batch_size=32)) == pytest.approx(2 * math.log(32))
    assert resolved_bound(NegGradConfig(loss_bound=7.0)) == 7.0
