
import pytest
import torch

from graphdel.unlearning import UnlearningContext

from .toy import make_setup, train_toy



@pytest.fixture(scope="session")
def toy_setup():
    return make_setup(seed=0)


@pytest.fixture
def original(toy_setup):
    return toy_setup[1]


@pytest.fixture
def samplers(toy_setup):
    return toy_setup[2]


@pytest.fixture
def make_ctx(samplers):
    def make(**kw):
        args = dict(samplers, retrain=lambda: train_toy(samplers["retain"], steps=100), progress=False)
        args.update(kw)
        return UnlearningContext(**args)
    return make


def clone_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_equal(model, state):
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(now[k], v), k


def assert_moved_only_inside(model, original, mask):
    """Every weight of ``model`` that differs from ``original``'s lies inside the 0/1 ``mask`` (the learnt
    temperature aside), and at least one did move."""
    orig = dict(original.named_parameters())
    moved_in = 0
    for n, p in model.named_parameters():
        if n == "logit_scale":
            continue
        moved = p.detach() != orig[n].detach()
        assert not (moved & (mask[n] == 0)).any(), n      # nothing outside the mask moved
        moved_in += int(moved.sum())
    assert moved_in > 0
