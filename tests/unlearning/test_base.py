import copy
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from graphdel.errors import ConfigError, GraphdelError
from graphdel.unlearning import (FROZEN_PARAMETER_NAMES, UnlearningDivergedError, available_methods, get_method,
                                 parse_overrides, unlearn)
from graphdel.unlearning.multidelete import MultiDeleteConfig

from .conftest import assert_state_equal, clone_state

#: methods that need an optional model hook the toy lacks (GNNDelete: deletion_parameters); run on the KG
#: model in tests/models/test_kg_model.py
HOOKED = {"gnndelete"}

FAST = {  # small budgets so every method runs in well under a second on the toy
    "multidelete": ["epochs=2", "batch_size=8", "pool_size=8"],
    "ft": ["epochs=1", "batch_size=8", "pool_size=8"],
    "neggrad": ["epochs=2", "batch_size=8", "pool_size=8"],
    "neggrad+": ["epochs=2", "batch_size=8", "pool_size=8"],
    "randompair": ["epochs=2", "batch_size=8", "pool_size=8"],
    "salun": ["epochs=2", "batch_size=8", "pool_size=8"],
    "scrub": ["epochs=2", "batch_size=8", "retain_steps=2", "pool_size=8"],
    "dtd": ["steps=3", "batch_size=8", "pool_size=8"],
    "retrain": None,
}


@dataclass
class Inner:
    flag: bool = True


@dataclass
class Cfg:
    n: int = 1
    x: float = 0.5
    name: str = "a"
    mode: Literal["mse", "cosine"] = "mse"
    maybe: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_parse_overrides_coercion():
    c = parse_overrides(Cfg, ["n=3", "x=1e-4", "name=zz", "mode=cosine", "maybe=2", "inner.flag=false"])
    assert (c.n, c.x, c.name, c.mode, c.maybe, c.inner.flag) == (3, 1e-4, "zz", "cosine", 2.0, False)
    assert isinstance(c.x, float) and isinstance(c.maybe, float)
    c = parse_overrides(Cfg, {"n": 4, "x": 2, "maybe": "none", "inner.flag": "yes"})
    assert (c.n, c.x, c.maybe, c.inner.flag) == (4, 2.0, None, True)
    assert parse_overrides(Cfg, None) == Cfg()
    assert parse_overrides(Cfg, ["name=a=b"]).name == "a=b"


@pytest.mark.parametrize("override,match", [
    (["nn=3"], r"unknown config key 'nn'.*valid keys: n, x, name, mode, maybe, inner\.flag"),
    (["inner.nope=1"], r"unknown config key 'inner\.nope'"),
    (["n=3.5"], r"'n': expected int"),
    (["x=abc"], r"'x': expected float"),
    (["mode=huber"], r"'mode': expected one of 'mse', 'cosine'"),
    (["inner.flag=maybe"], r"'inner\.flag': expected bool"),
    ({"n": True}, r"'n': expected int"),
    ({"name": 3}, r"'name': expected str"),
    (["n"], r"not of the form key=value"),
])
def test_parse_overrides_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        parse_overrides(Cfg, override)


def test_parse_overrides_on_real_config_and_validation():
    c = parse_overrides(MultiDeleteConfig, ["alpha=0.5", "distance=cosine", "terms.md=false"])
    assert c.alpha == 0.5 and c.distance == "cosine" and c.terms.md is False and c.terms.mkr is True
    with pytest.raises(ConfigError, match="lr must be"):
        parse_overrides(MultiDeleteConfig, ["lr=-1"])
    with pytest.raises(ConfigError, match="batch_size"):
        parse_overrides(MultiDeleteConfig, ["batch_size=1"])
    with pytest.raises(ConfigError, match="at least one"):
        parse_overrides(MultiDeleteConfig, ["terms.md=0", "terms.mkr=0", "terms.ukr=0"])


def test_registry():
    names = [n for n, _, _ in available_methods()]
    assert set(FAST) | HOOKED == set(names)
    for n, summary, citation in available_methods():
        assert summary and citation and "\n" not in summary
        cls = get_method(n)
        assert cls.__doc__ and len(cls.__doc__) > 100
    assert get_method("graddiff") is get_method("neggrad+")
    assert get_method("MultiDelete") is get_method("multidelete")
    with pytest.raises(ConfigError, match="unknown unlearning method 'nope'"):
        get_method("nope")


def test_gnndelete_refuses_a_model_without_deletion_operator(original, make_ctx):
    with pytest.raises(ConfigError, match="deletion operator"):
        unlearn(original, make_ctx(), "gnndelete", ["epochs=1", "batch_size=8", "pool_size=8"])


@pytest.mark.parametrize("method", sorted(FAST))
def test_every_method_runs_and_leaves_original_untouched(method, original, make_ctx):
    before = clone_state(original)
    flags = [p.requires_grad for p in original.parameters()]
    training = original.training
    result = unlearn(original, make_ctx(), method, FAST[method])
    assert_state_equal(original, before)
    assert [p.requires_grad for p in original.parameters()] == flags
    assert original.training == training
    assert result.model is not original
    assert result.model.state_dict().keys() == original.state_dict().keys()
    assert not result.model.training
    assert result.config["method"] == get_method(method).name
    assert result.wall_time_s > 0
    assert isinstance(result.log, list) and result.log
    if method != "retrain":
        assert any(r.get("eval") for r in result.log)
        assert result.selected["reason"]
        # temperature and BatchNorm statistics frozen
        for k, v in result.model.state_dict().items():
            if any(s in k for s in FROZEN_PARAMETER_NAMES) or "running_" in k or "num_batches" in k:
                assert torch.equal(v, before[k]), k


def test_retrain_needs_a_retrain_function(original, make_ctx):
    with pytest.raises(ConfigError, match="ctx.retrain"):
        unlearn(original, make_ctx(retrain=None), "retrain")


def _nan_model(original):
    bad = copy.deepcopy(original)
    with torch.no_grad():
        bad.x_encoder[0].weight[0, 0] = float("nan")
    return bad


@pytest.mark.parametrize("method", ["multidelete", "randompair", "scrub", "ft"])
def test_nan_loss_raises_with_step(method, original, make_ctx):
    with pytest.raises(UnlearningDivergedError, match=r"non-finite loss .* epoch 1, step 0") as e:
        unlearn(_nan_model(original), make_ctx(), method, FAST[method])
    assert isinstance(e.value, GraphdelError) and e.value.epoch == 1 and e.value.step == 0


def test_run_is_reproducible(original, make_ctx):
    a = unlearn(original, make_ctx(), "multidelete", FAST["multidelete"] + ["lr=1e-2"])
    b = unlearn(original, make_ctx(), "multidelete", FAST["multidelete"] + ["lr=1e-2"])
    assert_state_equal(a.model, clone_state(b.model))
    c = unlearn(original, make_ctx(seed=1), "multidelete", FAST["multidelete"] + ["lr=1e-2"])
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_trainable_updates_only_the_named_parameters(original, make_ctx):
    before = clone_state(original)
    res = unlearn(original, make_ctx(), "multidelete", ["epochs=2", "selection=last", "lr=1e-2",
                                                        "trainable=x_encoder.3,text_proj"])
    assert_state_equal(original, before)
    changed = {k for k, v in res.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("x_encoder.3.", "text_proj.")) for k in changed), changed
    assert {k for k in changed if k.startswith("text_proj.")}        # both prefixes were updated
    assert all(p.requires_grad for p in res.model.parameters())       # the original's flags come back


def test_trainable_names_an_unknown_prefix(original, make_ctx):
    with pytest.raises(ConfigError, match="'x_encodr'.*top-level modules are .*x_encoder"):
        unlearn(original, make_ctx(), "multidelete", ["epochs=1", "trainable=x_encodr"])


def test_eval_every_evaluates_every_kth_epoch_and_the_last(original, make_ctx):
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=5", "eval_every=2", "early_stop=false", "batch_size=8",
                                                    "pool_size=8"])
    assert [r["epoch"] for r in res.log if r.get("eval")] == [0, 2, 4, 5]
    assert res.selected["epoch"] in (2, 4, 5) and res.selected["epochs_run"] == 5
    with pytest.raises(ConfigError, match="eval_every must be >= 1"):
        unlearn(original, make_ctx(), "neggrad", ["eval_every=0"])


def test_the_run_records_where_its_time_went(original, make_ctx, monkeypatch):
    """``selected["seconds"]`` splits the loop into setup, evaluations and updates: with every evaluation
    made 0.3 s slower, the evaluations hold 0.3 s per evaluation more and the updates do not."""
    import time

    from graphdel.unlearning.selection import CalibratedSelector

    settings = ["epochs=3", "early_stop=false", "batch_size=8", "pool_size=8"]
    fast = unlearn(original, make_ctx(), "neggrad", settings).selected["seconds"]
    real = CalibratedSelector.evaluate
    monkeypatch.setattr(CalibratedSelector, "evaluate", lambda *a, **k: time.sleep(0.3) or real(*a, **k))
    res = unlearn(original, make_ctx(), "neggrad", settings)
    slow, evaluations = res.selected["seconds"], sum(1 for r in res.log if r.get("eval"))
    assert sorted(slow) == ["evaluations", "setup", "updates"] and evaluations == 4
    assert slow["evaluations"] >= 0.3 * evaluations
    assert slow["updates"] < fast["updates"] + 0.6 and sum(slow.values()) <= res.wall_time_s


def test_eval_steps_evaluates_every_kth_step_within_epochs_and_the_last(original, make_ctx):
    small = ["batch_size=3", "pool_size=8"]  # 8 Df pairs: 3 steps an epoch
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=2", "eval_steps=2", "early_stop=false", *small])
    steps = [r["step"] for r in res.log if r.get("phase") == "ascent"]
    per_epoch = len([r for r in res.log if r.get("phase") == "ascent" and r["epoch"] == 1])
    assert per_epoch == 3 and steps == list(range(1, 7))
    evals = [(r["epoch"], r["step"]) for r in res.log if r.get("eval")]
    assert evals == [(0, 0), (1, 2), (2, 4), (2, 6)]  # step 2 falls inside epoch 1, step 4 inside epoch 2
    # a margin of 1 puts every Df score at the reference: with min_epochs=0 no update is made at all ...
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=2", "eval_steps=1", "stop_margin=1", "min_epochs=0",
                                                    *small])
    assert res.selected["steps"] == 0 and "before any update" in res.selected["stop_reason"]
    # ... and with min_epochs=1 the run stops as soon as epoch 1 is complete, not after epoch 2
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=2", "eval_steps=1", "stop_margin=1", *small])
    assert res.selected["steps"] == 3 and "after step 3, epoch 1" in res.selected["stop_reason"]
    assert [r["step"] for r in res.log if r.get("eval")] == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="eval_steps must be >= 0"):
        unlearn(original, make_ctx(), "neggrad", ["eval_steps=-1"])


def test_min_steps_adds_epochs_until_the_step_budget_is_used(original, make_ctx):
    small = ["early_stop=false", "batch_size=3", "pool_size=8"]  # 8 Df pairs: 3 steps an epoch
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=1", "min_steps=7", *small])
    assert res.selected["epochs_run"] == 3 and res.selected["steps"] == 9  # 3 epochs are the first to reach 7
    assert [r["epoch"] for r in res.log if r.get("eval")] == [0, 1, 2, 3]
    # it never shortens the epoch budget
    res = unlearn(original, make_ctx(), "neggrad", ["epochs=2", "min_steps=1", *small])
    assert res.selected["epochs_run"] == 2 and res.selected["steps"] == 6


def test_min_epochs_0_stops_before_any_update_when_df_is_already_at_the_reference(original, make_ctx):
    # a margin of 1 puts every Df score "at the reference": the untouched copy already meets the rule
    res = unlearn(original, make_ctx(), "neggrad", ["min_epochs=0", "stop_margin=1", "batch_size=8", "pool_size=8"])
    assert [r["epoch"] for r in res.log if r.get("eval")] == [0]
    assert not [r for r in res.log if r.get("phase") == "update"]
    assert res.selected["steps"] == 0 and "before any update" in res.selected["stop_reason"]
    # with the default min_epochs=1 the same rule fires only after one epoch of updates
    res = unlearn(original, make_ctx(), "neggrad", ["stop_margin=1", "batch_size=8", "pool_size=8"])
    assert [r["epoch"] for r in res.log if r.get("eval")] == [0, 1] and res.selected["steps"] > 0
