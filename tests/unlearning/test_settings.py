"""graphdel.unlearning.settings: every --set key of every method is listed with its default and meaning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from graphdel.unlearning import available_methods, config_keys, get_method
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
