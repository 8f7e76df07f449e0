import math

import pytest
import torch

from graphdel.unlearning import unlearn
from graphdel.unlearning.dtd import DtDConfig, dtd_sigma


def test_sigma_on_hand_computed_cases():
    # beta = 3, m = 1: gamma = (3 - 1) / (3 + 1) = 1/2. delta = 1/e: log(1/delta) = 1; epsilon = 3:
    # sqrt(1 + 3) - sqrt(1) = 1. So sigma = 4 sqrt(2) L gamma^T / (m n (1 - gamma^T) * 1).
    e = dict(smoothness=3.0, strong_convexity=1.0, delta=math.exp(-1.0), epsilon=3.0)
    # T = 1, L = 1, n = 4: 4 sqrt(2) (1/2) / (4 (1/2)) = sqrt(2)
    assert dtd_sigma(4, DtDConfig(steps=1, **e)) == pytest.approx(1.4142135623730951, rel=1e-12)
    # T = 2: gamma^T = 1/4 -> 4 sqrt(2) (1/4) / (4 (3/4)) = sqrt(2) / 3
    assert dtd_sigma(4, DtDConfig(steps=2, **e)) == pytest.approx(0.47140452079103173, rel=1e-12)
    # L = 2 doubles it; n = 1 -> 4 sqrt(2) (1/2) / (1/2) = 4 sqrt(2); an empty Dr counts as n = 1
    assert dtd_sigma(4, DtDConfig(steps=1, lipschitz=2.0, **e)) == pytest.approx(2 * 1.4142135623730951,
                                                                               rel=1e-12)
    assert dtd_sigma(1, DtDConfig(steps=1, **e)) == pytest.approx(5.656854249492381, rel=1e-12)
    assert dtd_sigma(0, DtDConfig(steps=1, **e)) == dtd_sigma(1, DtDConfig(steps=1, **e))
    assert dtd_sigma(10, DtDConfig(sigma=0.25)) == 0.25


def test_sigma_of_the_defaults_matches_the_docstring():
    # gamma = 0.9 / 1.1 = 9/11, gamma^10 = 0.1344306; log(1e5) = 11.512925, gap = sqrt(12.512925) -
    # sqrt(11.512925) = 0.1442912; n = 5000: 5.656854 * 0.1344306 / (0.1 * 5000 * 0.8655694 * 0.1442912)
    assert dtd_sigma(5000, DtDConfig()) == pytest.approx(0.0121776, rel=1e-5)
    assert dtd_sigma(50, DtDConfig()) == pytest.approx(1.21776, rel=1e-5)


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
