"""graphdel.unlearning.settings: every --set key of every method is listed with its default and meaning."""

from __future__ import annotations

import dataclasses

import pytest
from dataclasses import dataclass, field

from graphdel.unlearning import available_methods, config_keys, get_method
from graphdel.unlearning.config import record_overrides
from graphdel.unlearning.settings import Setting, documented_attributes, method_settings, plain


def test_every_key_of_every_method_is_listed_once_and_documented():
    for name, _, _ in available_methods():
        config = get_method(name).Config
        settings = method_settings(config)
        keys = config_keys(config) if dataclasses.is_dataclass(config) else []  # Retrain has no settings
        assert [s.key for s in settings] == keys, name
        undocumented = [s.key for s in settings if not s.help]
        assert not undocumented, f"{name}: document {undocumented} in the config's Attributes section"


@dataclass
class _Inner:
    """Switches.

    Attributes:
        on: whether it is on. Second sentence.
    """

    on: bool = True


@dataclass
class _Base:
    """Base.

    Attributes:
        a, b: two numbers, see :func:`~pkg.mod.fn` and ``x``.
        c: a long
            description on two lines. More.

    Returns:
        nothing: not an attribute.
    """

    a: int = 1
    b: int = 2
    c: str = ""


@dataclass
class _Child(_Base):
    """Child.

    Attributes:
        c: redefined here.
        d: new.
    """

    b: int = 3
    d: float | None = None
    inner: _Inner = field(default_factory=_Inner)


def test_settings_read_the_nearest_docstring_and_mark_what_the_method_changes():
    assert documented_attributes(_Child)["c"] == "redefined here."
    assert documented_attributes(_Base)["c"] == "a long description on two lines. More."
    assert "nothing" not in documented_attributes(_Base)
    assert method_settings(_Child) == [
        Setting("a", 1, False, "two numbers, see fn and x."),
        Setting("b", 3, True, "two numbers, see fn and x."),
        Setting("c", "", False, "redefined here."),
        Setting("d", None, True, "new."),
        Setting("inner.on", True, True, "whether it is on."),
    ]
    assert method_settings(int) == []
    assert plain(":mod:`graphdel.unlearning.selection`, :meth:`Trainer.step`") == (
        "graphdel.unlearning.selection, Trainer.step")



@pytest.mark.parametrize("name", [name for name, _, _ in available_methods()])
def test_a_recorded_method_config_rebuilds_the_config(name):
    """What a run records (``{"method": name, **config_to_dict(cfg)}``) parses back to the same config, for
    every registered method, nested settings and a non-default value included."""
    from graphdel.unlearning import parse_overrides
    from graphdel.unlearning.config import config_to_dict

    cls = get_method(name)
    cfg = cls.Config()
    numbers = [f.name for f in dataclasses.fields(cfg) if isinstance(getattr(cfg, f.name), float)]
    if numbers:  # Retrain has no settings
        cfg = dataclasses.replace(cfg, **{numbers[0]: getattr(cfg, numbers[0]) * 2})
    record = {"method": name, **config_to_dict(cfg)}
    assert parse_overrides(cls.Config, record_overrides(record)) == cfg
    assert "method" not in record_overrides(record)


def test_record_overrides_flattens_nested_settings():
    assert record_overrides({"method": "multidelete", "alpha": 2.0, "terms": {"md": True, "ukr": False}}) == {
        "alpha": 2.0, "terms.md": True, "terms.ukr": False}
