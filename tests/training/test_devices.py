"""Devices of the training loop: --device resolution, bf16 autocast only on CUDA, pinned batches."""

import pytest
import torch

from graphdel.data.loading import use_prefetch
from graphdel.errors import ConfigError, GraphdelError
from graphdel.models.protocol import PairBatch, TextFeatures
from graphdel.training.loop import TrainConfig, autocast, resolve_device

cuda = pytest.mark.cuda  # skipped without a CUDA device (tests/conftest.py); bench/gpu.sh runs them


def test_cpu_and_auto_resolve_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_is_refused_by_name_without_a_gpu():
    with pytest.raises(GraphdelError, match="no CUDA device"):
        resolve_device("cuda")


def test_cpu_runs_stay_float32_and_without_prefetch():
    with autocast(torch.device("cpu"), True):
        out = torch.ones(2, 3) @ torch.ones(3, 2)
    assert out.dtype == torch.float32
    assert not use_prefetch(torch.device("cpu")) and use_prefetch(torch.device("cuda"))


def test_bf16_flag_is_checked():
    assert TrainConfig().bf16 is True
    with pytest.raises(ConfigError, match="bf16"):
        TrainConfig(bf16="yes")


@cuda
def test_cuda_forward_runs_in_bf16_and_pinned_batches_copy_asynchronously():
    device = resolve_device("cuda")
    with autocast(device, True):
        out = torch.ones(2, 3, device=device) @ torch.ones(3, 2, device=device)
    assert out.dtype == torch.bfloat16
    with autocast(device, False):
        assert (torch.ones(2, 3, device=device) @ torch.ones(3, 2, device=device)).dtype == torch.float32
    batch = PairBatch(x=torch.arange(4), text=TextFeatures(torch.zeros(4, 2, 3), torch.ones(4, 2, dtype=torch.bool)),
                      rows=torch.arange(4)).pin_memory()
    assert batch.text.hidden.is_pinned() and batch.rows.is_pinned()
    assert batch.to(device).text.hidden.device.type == "cuda"
