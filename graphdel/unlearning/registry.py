"""The method registry: :func:`register_method`, :func:`get_method`, :func:`available_methods`, and
:func:`unlearn` (look a method up, parse its overrides, run it). The registered classes are
:class:`~graphdel.unlearning.base.UnlearningMethod` subclasses; this module sits below that class (it
never imports it) so that the base module can re-export the registry."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from graphdel.errors import ConfigError, GraphdelError
from graphdel.registry import Registry
from graphdel.unlearning.config import parse_overrides
from graphdel.unlearning.context import UnlearningContext, UnlearningResult

__all__ = ["available_methods", "get_method", "register_method", "unlearn"]


_METHODS: Registry[type] = Registry("unlearning method", unknown_error=ConfigError)
"""Lower-case method name -> class."""
_ALIASES: Registry[str] = Registry("unlearning method alias", unknown_error=ConfigError)
"""Lower-case alias -> the lower-case name of its method."""


def register_method(cls: type) -> type:
    """Class decorator: make ``cls`` available under ``cls.name`` and each of ``cls.aliases``.

    Both must be set on the class itself (a subclass does not inherit its parent's names)."""
    if "name" not in cls.__dict__ or not cls.name:
        raise GraphdelError(f"{cls.__name__} must set its own 'name' to be registered")
    aliases = tuple(cls.__dict__.get("aliases", ()))
    for n in (cls.name, *aliases):
        key = n.lower()
        owner = _METHODS.get(key) or _METHODS.get(_ALIASES.get(key, ""))
        if owner is not None and owner is not cls:  # a name or alias of another method (either registry)
            raise GraphdelError(f"unlearning method name {n!r} already registered by {owner.__name__}")
    _METHODS.register(cls.name.lower(), cls)  # the same class again (a second decoration) is a no-op
    for a in aliases:
        _ALIASES.register(a.lower(), cls.name.lower())
    return cls


def _ensure_builtin_methods() -> None:
    importlib.import_module("graphdel.unlearning")


def get_method(name: str) -> type:
    """The method class registered under ``name`` or one of its aliases (case-insensitive)."""
    _ensure_builtin_methods()
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _METHODS:
        raise ConfigError(f"unknown unlearning method {name!r}; available: "
                          + ", ".join(_METHODS.names() + _ALIASES.names()))
    return _METHODS[key]


def available_methods() -> list[tuple[str, str, str]]:
    """``(name, summary, citation)`` of every registered method, sorted by name (aliases not repeated)."""
    _ensure_builtin_methods()
    return [(c.name, c.summary, c.citation) for _, c in sorted(_METHODS.items())]


def unlearn(original: nn.Module, ctx: UnlearningContext, method: str,
            overrides: dict[str, Any] | list[str] | None = None) -> UnlearningResult:
    """Run the method ``method`` with its default config updated by ``overrides``."""
    cls = get_method(method)
    cfg = parse_overrides(cls.Config, overrides)
    return cls().run(original, ctx, cfg)
