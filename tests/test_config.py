"""The one config kernel (:mod:`graphdel.config`): every config of the package -- training, model, data,
evaluation suite, audit, and every registered unlearning method's -- parses ``key=value`` overrides, checks
its types and round-trips through the dict a run's ``config.json`` stores, by the same functions."""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Literal

import pytest

import graphdel.config as kernel
from graphdel.audit import AuditConfig
from graphdel.config import (ConfigMixin, check_types, config_from_dict, config_keys, config_to_dict,
                             parse_overrides, type_name)
from graphdel.demo import DemoConfig
from graphdel.errors import ConfigError
from graphdel.evaluation.run_data import DataConfig
from graphdel.evaluation.suite_model import SuiteConfig
from graphdel.models.config import ModelConfig
from graphdel.training.loop import TrainConfig
from graphdel.unlearning import available_methods, get_method

#: The configs with ``from_dict``/``to_dict``/``with_overrides`` (:class:`ConfigMixin`), each with a
#: non-default instance's overrides (one per field where the config allows it).
OWN_CONFIGS = {
    TrainConfig: ["epochs=3", "batch_size=8", "lr=0.01", "weight_decay=1e-5", "seed=7", "patience=0",
                  "eval_pool=16", "grad_clip=0", "device=cpu", "bf16=false", "lr_schedule=cosine",
                  "fusion_epochs=2", "fusion_lr=0.002", "fusion_lr_schedule=cosine", "fusion_warmup_epochs=1",
                  "fusion_hard_fraction=0.25", "fusion_hard_pool=3"],
    ModelConfig: ["modality=kg", "graph.name=gat", "graph.layers=3", "graph.dropout=0.2", "text.model=/tmp/m",
                  "text.trainable_layers=1", "embed_dim=64", "fusion_heads=2", "init_temperature=0.1",
                  "fusion_product=true", "fusion_readout=mean", "fusion_sink=true",
                  "extra={\"dim\": 64, \"image\": {\"name\": \"cnn\"}}"],
    DataConfig: ["source=csv:/tmp/x.csv", "max_items=800", "sample_seed=3", "skip_invalid=yes",
                 "calibration_fraction=0", "calibration_seed=2"],
    SuiteConfig: ["pool_size=16", "seed=1", "chunks=2", "probes=off", "membership=false", "lira_shadows=4",
                  "lira_epochs=3", "batch_size=32", "device=cpu"],
    DemoConfig: ["out=/tmp/demo", "quick=true", "data=wordnet", "fraction=0.02", "forget=[\"a\", \"b\"]",
                 "close=true", "by=triple", "seed=3", "requests=1", "methods=[\"multidelete\"]", "lira_shadows=4",
                 "lira_epochs=2", "device=cpu", "progress=false", "overrides={\"ft\": [\"epochs=1\"]}", "overwrite=true",
                 "accept_modified=true"],
    AuditConfig: ["method=neggrad", "overrides=[\"epochs=1\", \"lr=0.5\"]", "models=4", "originals=true",
                  "seed=2", "device=cpu", "progress=false"],
}
METHOD_CONFIGS = {name: get_method(name).Config for name, *_ in available_methods()}
ALL_CONFIGS = list(OWN_CONFIGS) + list(METHOD_CONFIGS.values())
IDS = [c.__name__ for c in ALL_CONFIGS]


def leaves(cls: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """``(dotted key, annotation)`` of every settable leaf field of a config dataclass."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += leaves(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, tp))
    return out


def nested(key: str, value) -> dict:
    """``"graph.layers", 3`` -> ``{"graph": {"layers": 3}}``."""
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


def get(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def changed(cls: type):
    """A non-default instance of a method config: each leaf changed in turn (a bool flipped, another choice,
    a number moved), every change the config accepts kept."""
    cfg = cls()
    for key, tp in leaves(cls):
        value, origin = get(cfg, key), typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if tp is bool:
            new = not value
        elif origin is Literal:
            new = next(c for c in typing.get_args(tp) if c != value)
        elif value is None and args:
            new = args[0](1)
        elif tp is int:
            new = value + 1
        elif tp is float:
            new = value * 2 if value and abs(value) != float("inf") else 0.5
        elif tp is str:
            new = value + "x" if value else "x"
        else:
            continue
        try:
            cfg = parse_overrides(cls, {key: new}, base=cfg)
        except ConfigError:  # a combination the config refuses (a range, "at least one term")
            pass
    return cfg


def non_default(cls: type):
    return cls().with_overrides(OWN_CONFIGS[cls]) if cls in OWN_CONFIGS else changed(cls)


# ------------------------------------------------------------------------------------------ round trips

def test_every_config_is_covered():
    assert len(METHOD_CONFIGS) >= 10 and "multidelete" in METHOD_CONFIGS
    # the configs of this package's own (non-method) settings all go through the kernel's mixin
    assert all(issubclass(c, ConfigMixin) for c in OWN_CONFIGS)
    assert {"graph", "extra"} <= {f.name for f in dataclasses.fields(ModelConfig)}


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=IDS)
def test_default_and_non_default_round_trip(cls):
    default, other = cls(), non_default(cls)
    if leaves(cls):
        differing = [k for k, _ in leaves(cls) if get(other, k) != get(default, k)]
        assert len(differing) >= len(leaves(cls)) // 2, differing  # the non-default instance is one indeed
    for cfg in (default, other):
        d = config_to_dict(cfg)
        assert config_from_dict(cls, d) == cfg
        # ... and through JSON, as config.json stores it
        assert config_from_dict(cls, json.loads(json.dumps(d))) == cfg
        if cls in METHOD_CONFIGS.values():  # a run's method record, as overrides, rebuilds it (--replay)
            assert parse_overrides(cls, kernel.record_overrides({"method": "m", **d})) == cfg
        if issubclass(cls, ConfigMixin):
            assert cls.from_dict(cfg.to_dict()) == cfg and cfg.to_dict() == d


def test_a_method_config_has_the_mixin_too():
    cfg = non_default(METHOD_CONFIGS["multidelete"])
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    assert cfg.with_overrides(["alpha=0.25"]).alpha == 0.25


def test_with_overrides_returns_a_new_instance():
    cfg = ModelConfig()
    new = cfg.with_overrides({"graph.layers": "2", "extra": {"dim": 8}})
    assert (new.graph.layers, new.extra) == (2, {"dim": 8})
    assert cfg == ModelConfig() and cfg.graph is not new.graph  # the original is left alone
    assert TrainConfig(seed=3).with_overrides(["epochs=2"]) == TrainConfig(seed=3, epochs=2)
    assert TrainConfig(seed=3).with_overrides(None) == TrainConfig(seed=3)


def test_a_partial_saved_config_keeps_the_other_defaults():
    cfg = ModelConfig.from_dict({"embed_dim": 64, "graph": {"layers": 2}})
    assert cfg == ModelConfig(embed_dim=64, graph=dataclasses.replace(ModelConfig().graph, layers=2))
    assert ModelConfig.from_dict({}) == ModelConfig()
    # a nested config may also be given as the instance itself
    assert ModelConfig.from_dict({"graph": cfg.graph}).graph is cfg.graph


# ------------------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=IDS)
def test_an_unknown_key_is_named(cls):
    name = kernel.config_name(cls)
    with pytest.raises(ConfigError, match=rf"^unknown {name} key 'bogus_key'; valid keys: ") as e:
        config_from_dict(cls, {**config_to_dict(cls()), "bogus_key": 1})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=rf"^unknown {name} key 'bogus_key' for {cls.__name__}; valid keys: "
                                          + re.escape(", ".join(config_keys(cls)))):
        parse_overrides(cls, ["bogus_key=1"])
    for key in {k.split(".")[0] for k, _ in leaves(cls) if "." in k}:  # a nested config's unknown key too
        with pytest.raises(ConfigError, match=rf"unknown {name} key '{key}\.nope'; valid keys: {key}\."):
            config_from_dict(cls, {key: {"nope": 1}})
        with pytest.raises(ConfigError, match=rf"unknown {name} key '{key}\.nope'"):
            parse_overrides(cls, [f"{key}.nope=1"])


def wrong_value(tp):
    """A typed value no field of annotation ``tp`` takes."""
    return 3 if tp is dict or typing.get_origin(tp) in (list, tuple, collections.abc.Sequence) else [1]


def wrong_text(tp):
    """A command-line string no field of annotation ``tp`` takes (``None`` for ``str``, which takes any)."""
    origin = typing.get_origin(tp)
    if tp is str:
        return None
    if tp is dict:
        return "[1, 2]"
    if origin is Literal:
        return "no-such-choice"
    if tp is int:
        return "2.5"
    if tp is bool:
        return "perhaps"
    if origin is not None and typing.get_args(tp) and typing.get_args(tp)[0] is str:  # a list of str
        return "not json"
    return "high"  # float, int | None, float | None


WITH_FIELDS = [c for c in ALL_CONFIGS if dataclasses.fields(c)]


@pytest.mark.parametrize("cls", WITH_FIELDS, ids=[c.__name__ for c in WITH_FIELDS])
def test_a_bad_type_names_the_key_and_the_type(cls):
    name = kernel.config_name(cls)
    for key, tp in leaves(cls):
        expected = re.escape(f"{name} key '{key}': expected {type_name(tp)}, got ")
        with pytest.raises(ConfigError, match="^" + expected):
            config_from_dict(cls, nested(key, wrong_value(tp)))
        text = wrong_text(tp)
        if text is not None:
            with pytest.raises(ConfigError, match="^" + expected + re.escape(repr(text))):
                parse_overrides(cls, [f"{key}={text}"])


def test_a_saved_config_is_read_strictly_but_overrides_are_parsed():
    # config.json holds typed JSON values: a string for an int is a mistake there, not something to parse
    with pytest.raises(ConfigError, match=r"^training config key 'epochs': expected int, got '3'$"):
        TrainConfig.from_dict({"epochs": "3"})
    with pytest.raises(ConfigError, match=r"^data config key 'max_items': expected int or None, got 'none'$"):
        DataConfig.from_dict({"max_items": "none"})
    with pytest.raises(ConfigError, match=r"^model config key 'extra': expected dict \(a JSON object\)"):
        ModelConfig.from_dict({"extra": "{}"})
    with pytest.raises(ConfigError, match=r"^a model config must be a dict, got list$"):
        ModelConfig.from_dict([1])
    with pytest.raises(ConfigError, match=r"^model config key 'graph': expected GraphEncoderConfig \("):
        ModelConfig.from_dict({"graph": "gin"})
    # the same strings as overrides are parsed by the field's type
    assert TrainConfig().with_overrides(["epochs=3"]).epochs == 3
    assert DataConfig(max_items=5).with_overrides(["max_items=none"]).max_items is None
    # an int stands for a float, and comes back as one
    lr = TrainConfig.from_dict({"lr": 1}).lr
    assert lr == 1.0 and isinstance(lr, float)
    # NaN is refused either way; inf where a config allows it
    with pytest.raises(ConfigError, match=r"'fusion_lr': expected float, got nan"):
        TrainConfig.from_dict({"fusion_lr": float("nan")})
    with pytest.raises(ConfigError, match=r"'lr': expected float, got 10000"):  # too large for a float
        TrainConfig.from_dict({"lr": 10 ** 400})
    assert parse_overrides(METHOD_CONFIGS["neggrad"], ["loss_bound=inf"]).loss_bound == float("inf")


def test_a_value_the_config_rejects_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^suite config key 'lira_shadows': LiRA needs >= 4 shadow models"):
        SuiteConfig().with_overrides(["lira_shadows=2"])
    with pytest.raises(ConfigError, match=r"^suite config: LiRA needs >= 4 shadow models"):
        SuiteConfig.from_dict({"lira_shadows": 2})
    with pytest.raises(ConfigError, match=r"'epochs': value 0 is out of range"):
        TrainConfig.from_dict({"epochs": 0})
    with pytest.raises(ConfigError, match=r"override 'epochs' is not of the form key=value"):
        TrainConfig().with_overrides(["epochs"])
    with pytest.raises(ConfigError, match=r"overrides must be a dict or a list"):
        TrainConfig().with_overrides("epochs=3")


def test_a_config_built_by_hand_is_type_checked():
    with pytest.raises(ConfigError, match=r"^training config key 'seed': expected int, got True$"):
        TrainConfig(seed=True)
    check_types(AuditConfig(overrides=("a=1",)))  # a tuple is a sequence too
    with pytest.raises(ConfigError, match=r"^audit config key 'overrides': expected list of str"):
        check_types(AuditConfig(overrides=[1]))


# ------------------------------------------------------------------------------------------ typed values

#: One override per field type, the string as given on the command line and the typed value expected.
TYPED = [
    (TrainConfig, "epochs", "12", 12),                                             # int
    (TrainConfig, "lr", "1e-4", 1e-4),                                             # float
    (TrainConfig, "bf16", "off", False),                                           # bool
    (TrainConfig, "device", "cuda:1", "cuda:1"),                                   # str
    (METHOD_CONFIGS["multidelete"], "distance", "cosine", "cosine"),               # Literal
    (DataConfig, "max_items", "800", 800),                                         # int | None
    (DataConfig, "max_items", "none", None),
    (METHOD_CONFIGS["dtd"], "sigma", "0.5", 0.5),                                  # float | None
    (METHOD_CONFIGS["dtd"], "sigma", "null", None),
    (ModelConfig, "graph.layers", "2", 2),                                         # nested dataclass
    (METHOD_CONFIGS["multidelete"], "terms.md", "false", False),
    (ModelConfig, "extra", '{"dim": 64, "gnn_layers": 1}', {"dim": 64, "gnn_layers": 1}),  # dict
    (AuditConfig, "overrides", '["alpha=0.5", "epochs=2"]', ["alpha=0.5", "epochs=2"]),     # list of str
]


@pytest.mark.parametrize("cls,key,text,value", TYPED, ids=[f"{c.__name__}.{k}={t}" for c, k, t, _ in TYPED])
def test_one_override_per_field_type(cls, key, text, value):
    parsed = get(parse_overrides(cls, [f"{key}={text}"]), key)
    assert parsed == value and type(parsed) is type(value)
    if isinstance(value, (dict, list)):  # an already typed value is taken as is
        assert get(parse_overrides(cls, {key: value}), key) == value


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=IDS)
def test_every_field_parses_its_own_value_back_typed(cls):
    """Every leaf of every config, given as the string a user would type for its current value, parses to
    that value with the field's type."""
    cfg = non_default(cls)
    for key, tp in leaves(cls):
        value = get(cfg, key)
        text = ("none" if value is None else json.dumps(value) if isinstance(value, (dict, list, tuple))
                else str(value).lower() if isinstance(value, bool) else str(value))
        parsed = get(parse_overrides(cls, [f"{key}={text}"], base=cfg), key)
        assert parsed == value or (isinstance(value, tuple) and list(value) == parsed), key
        if isinstance(value, float):
            assert isinstance(parsed, float), key


# -------------------------------------------------------------------------------------- the kernel's place

def test_the_kernel_imports_only_the_standard_library_and_errors():
    tree = ast.parse(Path(kernel.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    outside = {m for m in imported
               if m.split(".")[0] not in sys.stdlib_module_names and m != "graphdel.errors"}
    assert not outside, outside
    loaded = subprocess.run([sys.executable, "-c", "import sys, graphdel.config; "
                             "print(sorted(m for m in sys.modules if m.startswith(('torch', 'numpy'))))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_method_config_module_re_exports_the_kernel():
    import graphdel.unlearning.config as method_config

    assert method_config.__all__ == ["GradientConfig", "MethodConfig", "check", "config_keys",
                                     "config_to_dict", "parse_overrides", "record_overrides"]
    for name in ("check", "config_keys", "config_to_dict", "parse_overrides", "record_overrides"):
        assert getattr(method_config, name) is getattr(kernel, name)


def test_a_demo_of_several_requests_draws_them_at_random():
    with pytest.raises(ConfigError, match="cannot be combined with forget"):
        DemoConfig(out="x", forget=["a"], requests=2)
    with pytest.raises(ConfigError, match="requests must be >= 1"):
        DemoConfig(out="x", requests=0)
    assert DemoConfig(out="x", seed=5, requests=2).request_seeds() == [5, 6]
    assert DemoConfig(out="x", forget=["a"]).request_seeds() == [0]  # named units: one request
