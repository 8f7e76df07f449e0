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
