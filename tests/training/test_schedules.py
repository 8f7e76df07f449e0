import math

import pytest
import torch

from graphdel.errors import ConfigError
from graphdel.training.loop import TrainConfig
from graphdel.training.schedules import lr_factor, lr_schedule


def _rates(kind: str, total: int, warmup: int, steps: int) -> list[float]:
    optimiser = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule, out = lr_schedule(optimiser, kind, total, warmup), []
    for _ in range(steps):
        out.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    return out


def test_cosine_schedule_decays_the_learning_rate_to_zero_per_step():
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]  # 0.1, 0.0854, 0.05, 0.0146
    assert _rates("cosine", 4, 0, 6) == pytest.approx(expected + [0.0, 0.0], abs=1e-12)  # held at 0 past the end
    assert _rates("constant", 4, 0, 6) == [0.1] * 6  # exactly the configured rate: earlier runs replay unchanged


def test_warmup_rises_linearly_then_the_cosine_runs_over_the_remaining_steps():
    # 2 warm-up steps (1/3, 2/3 of the rate), then a half cosine over the 4 steps left, then 0
    cosine = [0.1 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]
    assert _rates("cosine", 6, 2, 8) == pytest.approx([0.1 / 3, 0.2 / 3] + cosine + [0.0, 0.0], abs=1e-12)


def test_warmup_then_constant_holds_the_configured_rate_exactly():
    assert _rates("constant", 5, 1, 4) == pytest.approx([0.05, 0.1, 0.1, 0.1], abs=1e-15)


def test_unknown_schedule_is_refused_when_the_scheduler_is_built():
    with pytest.raises(ValueError, match="'linear'"):
        lr_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "linear", 4)
    assert lr_factor("cosine", 10, 4) == 0.0


def test_fusion_warmup_longer_than_the_stage_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="'fusion_warmup_epochs'"):
        TrainConfig(fusion_epochs=2, fusion_warmup_epochs=3)
    with pytest.raises(ConfigError, match="'fusion_lr_schedule'"):
        TrainConfig(fusion_lr_schedule="step")
