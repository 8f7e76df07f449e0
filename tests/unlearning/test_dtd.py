import math

import pytest
import torch

from graphdel.unlearning import unlearn
from graphdel.unlearning.dtd import DtDConfig, dtd_sigma


def test_sigma_formula():
    cfg = DtDConfig()
    gamma_t = (0.9 / 1.1) ** 10
    gap = math.sqrt(math.log(1e5) + 1) - math.sqrt(math.log(1e5))
    expected = 4 * math.sqrt(2) * gamma_t / (0.1 * 5000 * (1 - gamma_t) * gap)
    assert dtd_sigma(5000, cfg) == pytest.approx(expected)
    assert 0.005 < dtd_sigma(5000, cfg) < 0.02
    assert dtd_sigma(5000, DtDConfig(epsilon=10.0)) < dtd_sigma(5000, cfg)
    assert dtd_sigma(10, DtDConfig(sigma=0.25)) == 0.25


def test_noise_and_projection(original, make_ctx):
    no_noise = unlearn(original, make_ctx(), "dtd", ["steps=3", "batch_size=8", "sigma=0", "radius=1e-3",
                                                     "pool_size=8", "lr=0.1"])
    total = 0.0
    for (k, p), q in zip(no_noise.model.named_parameters(), original.parameters()):
        total += float(((p - q) ** 2).sum().detach())
    assert 0 < math.sqrt(total) <= 1e-3 + 1e-6
    noisy = unlearn(original, make_ctx(), "dtd", ["steps=3", "batch_size=8", "sigma=0.5", "pool_size=8"])
    noise_log = [r for r in noisy.log if r.get("phase") == "noise"]
    assert noise_log and noise_log[0]["sigma"] == 0.5
    assert "final_scores" in noisy.selected
    diff = noisy.model.x_encoder[0].weight - original.x_encoder[0].weight
    assert 0.3 < diff.std().item() < 0.7
    assert torch.equal(noisy.model.logit_scale, original.logit_scale)
