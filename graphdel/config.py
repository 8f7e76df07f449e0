"""The config kernel: one mechanism by which every settings dataclass of graphdel (training recipe, model,
data, unlearning method, evaluation suite, audit) parses ``--set key=value`` overrides, checks its field
types, and round-trips through the plain dict a run folder's ``config.json`` stores.

* :func:`parse_overrides`: ``["alpha=0.5", "terms.md=false"]`` (or a dict) -> a config instance; values may
  be strings (from the command line, parsed by the field's annotation) or already typed;
* :func:`config_from_dict` / :func:`config_to_dict`: the strict reading of a saved config (typed JSON
  values, nested dicts for nested dataclasses) and its inverse;
* :func:`check_types`: the field types of an instance built by hand, checked (for ``__post_init__``);
* :func:`record_overrides`: a recorded method config back as overrides;
* :func:`check`: a ``__post_init__`` condition that raises :class:`~graphdel.errors.ConfigError`;
* :class:`ConfigMixin`: ``from_dict``, ``to_dict`` and ``with_overrides`` for a config dataclass.

Field types understood: ``int``, ``float`` (NaN refused, inf allowed), ``bool``, ``str``, ``Literal[...]``,
``X | None``, nested dataclasses (dotted keys ``outer.inner`` in overrides, nested dicts in
:func:`config_from_dict`), plain ``dict`` (a dict as is; from a string, a JSON object) and
``list``/``tuple``/``Sequence`` of one of the scalar types (a list or tuple; from a string, a JSON array).

Every refusal is a one-line :class:`~graphdel.errors.ConfigError` naming the key: an unknown key (with the
valid keys), a value of the wrong type (with the expected type), or a value the config's own
``__post_init__`` rejects. Messages say ``config key 'lr'``; a class with a ``config_name`` attribute (e.g.
``"training config"``) is named by it instead.

This module sits at the bottom of the package (``tests/test_layering.py``): it imports only the standard
library and :mod:`graphdel.errors`.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import json
import math
import types
import typing
from typing import Any, ClassVar, Literal

from graphdel.errors import ConfigError, shorten

__all__ = ["ConfigMixin", "check", "check_types", "coerce", "config_from_dict", "config_keys", "config_name",
           "config_to_dict", "parse_overrides", "record_overrides", "type_name"]


_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}
_SEQUENCES = (list, tuple, collections.abc.Sequence)


def config_name(config_cls: type) -> str:
    """How messages name a config class: its ``config_name`` (``"training config"``), else ``"config"``."""
    return getattr(config_cls, "config_name", None) or "config"


def type_name(tp: Any) -> str:
    """A field annotation as messages say it: ``float``, ``one of 'mse', 'cosine'``, ``int or None``..."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if tp is dict or origin is dict:
        return "dict (a JSON object)"
    if tp in _SEQUENCES or origin in _SEQUENCES:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return "list" + (f" of {type_name(args[0])}" if args else "") + " (a JSON array)"
    if _is_nested(tp):
        return f"{tp.__name__} (a dict)"
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any, *, strict: bool = False, name: str = "config") -> Any:
    """``value`` as the field type ``tp`` of the config key ``key``.

    Args:
        strict: ``False`` (overrides): a string is parsed by the type (``"3"`` -> 3, ``"none"`` -> None,
            ``"off"`` -> False, JSON for dicts and lists). ``True`` (a saved config): the value must already
            have the type (an int stands for a float); only ``str`` and string choices take strings.
        name: how the message names the config (:func:`config_name`).

    Raises:
        ConfigError: ``"<name> key 'k': expected <type>, got <value>"``.
    """
    origin = typing.get_origin(tp)
    field = _Field(key, tp, strict, name)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(field, value)
    if origin is Literal:
        return _coerce_choice(field, value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return config_from_dict(tp, value, name=name, prefix=f"{key}.")
        raise field.bad(value)
    if tp in _SCALARS:
        return _SCALARS[tp](field, value)
    if tp is dict or origin is dict:
        return _coerce_dict(field, value)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        return _coerce_sequence(field, value)
    raise ConfigError(f"{name} key {key!r}: unsupported field type {type_name(tp)}")


@dataclasses.dataclass(frozen=True)
class _Field:
    """What :func:`coerce` converts to: the key, its type, strictness and the config's name in messages."""

    key: str
    tp: Any
    strict: bool
    name: str

    def text(self, value: Any) -> bool:
        """Whether ``value`` is a string to parse (overrides only)."""
        return isinstance(value, str) and not self.strict

    def bad(self, value: Any) -> ConfigError:
        """The one-line error for ``value``."""
        return ConfigError(f"{self.name} key {self.key!r}: expected {type_name(self.tp)}, got {shorten(value)}")


def _coerce_union(field: _Field, value: Any) -> Any:
    args = typing.get_args(field.tp)
    if type(None) in args and (value is None or (field.text(value) and value.strip().lower() in ("none", "null"))):
        return None
    for a in args:
        if a is type(None):
            continue
        try:
            return coerce(field.key, value, a, strict=field.strict, name=field.name)
        except ConfigError:
            pass
    raise field.bad(value)


def _coerce_choice(field: _Field, value: Any) -> Any:
    for c in typing.get_args(field.tp):
        if field.strict:
            if isinstance(value, type(c)) and value == c:
                return c
        elif value == c or (field.text(value) and value.strip() == str(c)):
            return c
    raise field.bad(value)


def _coerce_bool(field: _Field, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if field.text(value) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise field.bad(value)


def _coerce_int(field: _Field, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if field.text(value):
        try:
            return int(value.strip())
        except ValueError:
            raise field.bad(value) from None
    raise field.bad(value)


def _coerce_float(field: _Field, value: Any) -> float:
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif field.text(value):
            out = float(value.strip())
        else:
            raise field.bad(value)
    except (ValueError, OverflowError):  # "high"; an int too large for a float
        raise field.bad(value) from None
    # NaN is never a meaningful setting: it would only surface later as a NaN loss. (inf is allowed:
    # NegGrad's loss_bound=inf disables the bound.)
    if math.isnan(out):
        raise field.bad(value)
    return out


def _coerce_str(field: _Field, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise field.bad(value)


_SCALARS = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coerce_dict(field: _Field, value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if field.text(value):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise field.bad(value) from None
        if isinstance(parsed, dict):
            return parsed
    raise field.bad(value)


def _coerce_sequence(field: _Field, value: Any) -> list | tuple:
    original = value
    if field.text(value):
        try:
            value = json.loads(value)
        except ValueError:
            raise field.bad(original) from None
    if not isinstance(value, (list, tuple)):
        raise field.bad(value)
    args = [a for a in typing.get_args(field.tp) if a is not Ellipsis]
    try:
        items = ([coerce(field.key, v, args[0], strict=field.strict, name=field.name) for v in value] if args
                 else list(value))
    except ConfigError:
        raise field.bad(value) from None
    origin = typing.get_origin(field.tp)
    container = field.tp if field.tp in (list, tuple) else origin if origin in (list, tuple) else type(value)
    return container(items)


def _fields(config_cls: type) -> list[tuple[str, Any]]:
    """``(name, annotation)`` of the fields a config's constructor takes."""
    hints = typing.get_type_hints(config_cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(config_cls) if f.init]


def _is_nested(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def config_keys(config_cls: type) -> list[str]:
    """All settable keys of a config dataclass, nested dataclasses as ``outer.inner``."""
    keys = []
    for name, tp in _fields(config_cls):
        if _is_nested(tp):
            keys += [f"{name}.{k}" for k in config_keys(tp)]
        else:
            keys.append(name)
    return keys


def parse_overrides(config_cls: type, overrides: dict[str, Any] | list[str] | tuple[str, ...] | None = None,
                    base: Any = None) -> Any:
    """Build a ``config_cls`` instance from ``key=value`` overrides (no eval/exec).

    Args:
        config_cls: a dataclass; nested dataclass fields are addressed as ``outer.inner``.
        overrides: ``["alpha=0.5", "terms.md=false"]`` or ``{"alpha": "0.5"}`` (values may be strings
            or already typed). Types follow the field annotations: int, float, bool
            (true/false/yes/no/on/off/1/0), str, ``Literal[...]`` choices, ``X | None`` ("none"), dict
            (JSON object), list (JSON array).
        base: start from this instance instead of the defaults.

    Raises:
        ConfigError: unknown key (the message lists the valid keys), a value of the wrong type (the
            message names the key and the expected type), or a value the config rejects.
    """
    cfg = copy.deepcopy(base) if base is not None else config_cls()
    if overrides is None:
        return cfg
    if isinstance(overrides, (list, tuple)):
        items = []
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"override {shorten(item)} is not of the form key=value")
            k, v = item.split("=", 1)
            items.append((k.strip(), v))
    elif isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        raise ConfigError(f"overrides must be a dict or a list of 'key=value' strings, not "
                          f"{type(overrides).__name__}")
    name = config_name(config_cls)
    valid = config_keys(config_cls)
    for key, value in items:
        if key not in valid:
            raise ConfigError(f"unknown {name} key {shorten(key)} for {config_cls.__name__}; valid keys: "
                              + ", ".join(valid))
        cfg = _set_path(cfg, key.split("."), value, key, name)
    return cfg


def _set_path(obj: Any, path: list[str], value: Any, full_key: str, name: str) -> Any:
    field = path[0]
    if len(path) == 1:
        new = coerce(full_key, value, typing.get_type_hints(type(obj))[field], name=name)
    else:
        new = _set_path(getattr(obj, field), path[1:], value, full_key, name)
    try:
        return dataclasses.replace(obj, **{field: new})
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} key {full_key!r}: {e}") from e


def config_from_dict(config_cls: type, d: Any, *, name: str | None = None, prefix: str = "") -> Any:
    """A ``config_cls`` instance from its :func:`config_to_dict` form (what ``config.json`` stores).

    Strict: every key must be a field (nested dataclasses as nested dicts), every value of the field's type
    (an int stands for a float; strings are not parsed, see :func:`coerce`). Missing keys keep their
    defaults.

    Args:
        name: how messages name the config (default :func:`config_name` of ``config_cls``).
        prefix: the dotted path of a nested config (``"graph."``), for messages.

    Raises:
        ConfigError: ``d`` is not a dict, has a key that is not a field (named, with the valid keys), a value
            of the wrong type (named, with the expected type), or one the config rejects.
    """
    name = name or config_name(config_cls)
    if not isinstance(d, dict):
        where = f"{name} key {prefix[:-1]!r}" if prefix else f"a {name}"
        raise ConfigError(f"{where} must be a dict, got {type(d).__name__}")
    fields = dict(_fields(config_cls))
    for key in d:
        if key not in fields:
            raise ConfigError(f"unknown {name} key {shorten(prefix + str(key))}; valid keys: "
                              + ", ".join(prefix + k for k in fields))
    kwargs = {key: coerce(prefix + key, value, fields[key], strict=True, name=name)
              for key, value in d.items()}
    try:
        return config_cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}{' ' + repr(prefix[:-1]) if prefix else ''}: {e}") from e


def config_to_dict(cfg: Any) -> dict:
    """A config dataclass as a plain dict (nested dataclasses included; what a run's ``config.json``
    records). :func:`config_from_dict` reverses it."""
    return dataclasses.asdict(cfg)


def check_types(cfg: Any) -> None:
    """Check that every field of the config instance ``cfg`` holds a value of its annotated type (as
    :func:`config_from_dict` would take it: an int stands for a float, NaN is refused), for configs built
    by hand (call it in ``__post_init__``).

    Raises:
        ConfigError: ``"<name> key 'k': expected <type>, got <value>"`` for the first field that does not.
    """
    name = config_name(type(cfg))
    for key, tp in _fields(type(cfg)):
        coerce(key, getattr(cfg, key), tp, strict=True, name=name)


def record_overrides(record: dict[str, Any]) -> dict[str, Any]:
    """The overrides that rebuild a recorded method config (a run's ``config.json`` ``method_config``:
    :func:`config_to_dict` plus the ``method`` name): nested dicts become dotted keys (``terms.md``), the
    ``method`` name is left out. ``parse_overrides(cls.Config, record_overrides(record))`` equals the
    config that was recorded."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "method":
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in record_overrides(value).items()})
        else:
            out[key] = value
    return out


def check(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` (for configs' ``__post_init__``)."""
    if not cond:
        raise ConfigError(message)


class ConfigMixin:
    """``from_dict``, ``to_dict`` and ``with_overrides`` for a config dataclass, by the kernel above.

    A subclass may set ``config_name`` (a plain class attribute, not a field) to how messages name it.
    """

    config_name: ClassVar[str] = "config"

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        """Rebuild a config from its :meth:`to_dict` form, refusing unknown keys and wrong types
        (:func:`config_from_dict`)."""
        return config_from_dict(cls, d)

    def to_dict(self) -> dict:
        """The config as a plain (JSON-ready) dict, nested configs included."""
        return config_to_dict(self)

    def with_overrides(self, overrides: dict[str, Any] | list[str] | tuple[str, ...] | None) -> Any:
        """A new config: this one with ``key=value`` overrides applied (:func:`parse_overrides`)."""
        return parse_overrides(type(self), overrides, base=self)
