"""One name -> object registry, used by every registry of the package (methods, data sources, granularities,
featurisers, probe targets, training views, image encoders, model classes).

A :class:`Registry` refuses a silent duplicate (:meth:`Registry.register` raises unless ``overwrite=True``;
registering the very same object again is a no-op, so a decorator that runs twice is harmless) and refuses an
unknown name in one line naming the registry, the name and the known names. An ``on_miss`` hook loads what
a missing name needs (the modality records of :mod:`graphdel.modalities` name the modules that register an
in-tree modality's pieces), so a registry answers for a name before anything imported it for its side effects.

This module sits at the bottom of the import layers: standard library and :mod:`graphdel.errors` only.
"""

from __future__ import annotations

import copy
from typing import Callable, Generic, Iterable, Iterator, Mapping, TypeVar

from graphdel.errors import GraphdelError, shorten

__all__ = ["DuplicateNameError", "Registry", "UnknownNameError", "where_defined"]

V = TypeVar("V")
_MISSING = object()


class DuplicateNameError(GraphdelError, ValueError):
    """A name registered a second time with a different object and without ``overwrite=True``."""


class UnknownNameError(GraphdelError, KeyError):
    """A name a registry does not know (a :class:`KeyError`, so a registry reads like a dict)."""

    def __str__(self) -> str:  # KeyError's own str() is the repr of the message
        return str(self.args[0]) if self.args else ""


def where_defined(value: object) -> str | None:
    """Where ``value`` was defined (``module.QualName``), when it says so itself."""
    target = getattr(value, "__func__", value)  # a bound method: its function
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return None


class Registry(Generic[V]):
    """``{name: value}`` with one rule for duplicates and one for unknown names.

    Args:
        what: what a value is, in messages ("dataset source", "image encoder"...).
        unknown_error: the exception type an unknown name raises (:class:`UnknownNameError` by default;
            a registry keeps the type its callers have always caught).
        on_miss: ``on_miss(name)``, called the first time a missing name is looked up (by ``[]``, ``get``
            or ``in``): it may register entries itself (import a module that registers them) or return the
            value, which is then registered under ``name``; ``None`` changes nothing. Called once per name
            until it succeeds (an exception it raises propagates and the next look-up tries again).
        lazy_names: ``lazy_names()``, the names ``on_miss`` loads, when they are known without loading
            anything: ``in`` answers for them without calling ``on_miss``, and :meth:`names` lists them.
    """

    def __init__(self, what: str, *, unknown_error: type[Exception] = UnknownNameError,
                 on_miss: Callable[[str], V | None] | None = None,
                 lazy_names: Callable[[], Iterable[str]] | None = None) -> None:
        self.what = what
        self.unknown_error = unknown_error
        self.on_miss = on_miss
        self.lazy_names = lazy_names
        self._entries: dict[str, V] = {}
        self._origins: dict[str, str | None] = {}
        self._tried: set[str] = set()

    # ------------------------------------------------------------------------------------- registering

    def register(self, name: str, value: V, *, overwrite: bool = False, origin: str | None = None) -> V:
        """Register ``value`` under ``name`` and return it.

        Registering the very object already there (``is``) does nothing; any other raises
        :class:`DuplicateNameError` unless ``overwrite`` (an equal copy is refused too: whoever registers a
        fresh wrapper of the same thing says so with ``overwrite``). ``origin`` says where the value comes
        from in a later duplicate's message (default: the value's ``module.QualName`` when it has one).
        """
        if name in self._entries and not overwrite:
            first = self._entries[name]
            if first is not value:
                where = self._origins.get(name)
                raise DuplicateNameError(f"{self.what} {shorten(name)} is already registered"
                                         + (f" by {where}" if where else ""))
            return first
        self._entries[name] = value
        self._origins[name] = origin if origin is not None else where_defined(value)
        return value

    def __setitem__(self, name: str, value: V) -> None:
        self.register(name, value)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (unknown: :attr:`unknown_error`)."""
        if name not in self._entries:
            raise self._unknown(name)
        del self._entries[name]
        self._origins.pop(name, None)

    __delitem__ = unregister

    # -------------------------------------------------------------------------------------- looking up

    def _load(self, name: object) -> bool:
        """Whether ``name`` is registered, after ``on_miss`` was given its one chance to register it."""
        try:
            if name in self._entries:
                return True
        except TypeError:  # an unhashable name (a list read from JSON) is simply unknown
            return False
        if self.on_miss is None or not isinstance(name, str) or name in self._tried:
            return False
        value = self.on_miss(name)
        self._tried.add(name)
        if value is not None and name not in self._entries:
            self.register(name, value)
        return name in self._entries

    def __contains__(self, name: object) -> bool:
        if self.lazy_names is not None and isinstance(name, str) and name not in self._entries \
                and name in set(self.lazy_names()):
            return True  # on_miss will load it when it is looked up
        return self._load(name)

    def __getitem__(self, name: str) -> V:
        if not self._load(name):
            raise self._unknown(name)
        return self._entries[name]

    def get(self, name: str, default: V | None = None) -> V | None:
        """The value of ``name``, or ``default`` when it is unknown (after ``on_miss``)."""
        return self._entries[name] if self._load(name) else default

    def _unknown(self, name: object) -> Exception:
        known = ", ".join(self.names()) or "none"
        return self.unknown_error(f"unknown {self.what} {shorten(name)}; known: {known}")

    def names(self) -> list[str]:
        """The registered names and those of ``lazy_names``, sorted (nothing is loaded). Iterating the
        registry lists the registered ones only."""
        return sorted(set(self._entries) | set(self.lazy_names() if self.lazy_names is not None else ()))

    def origin(self, name: str) -> str | None:
        """Where the value of ``name`` came from, if known."""
        return self._origins.get(name)

    # --------------------------------------------------------------------------- the rest of a mapping

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self):
        return self._entries.keys()

    def values(self):
        return self._entries.values()

    def items(self):
        return self._entries.items()

    def clear(self) -> None:
        """Remove every entry (``on_miss`` may then load names again)."""
        self._entries.clear()
        self._origins.clear()
        self._tried.clear()

    def update(self, other: Mapping[str, V]) -> None:
        """Register every entry of ``other`` (duplicates refused as by :meth:`register`)."""
        origins = other._origins if isinstance(other, Registry) else {}
        for name, value in other.items():
            self.register(name, value, origin=origins.get(name))

    def copy(self) -> "Registry[V]":
        """A registry with the same entries and settings (a snapshot to restore with ``clear``/``update``)."""
        out = copy.copy(self)  # same class and settings
        out._entries, out._origins, out._tried = dict(self._entries), dict(self._origins), set(self._tried)
        return out

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"
