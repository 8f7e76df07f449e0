
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
