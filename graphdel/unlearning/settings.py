"""What a method can be told: each setting of a method's config, its default and its one-line meaning.

The meanings are read from the ``Attributes:`` sections of the config dataclasses' docstrings (the config
and its bases), so ``graphdel methods`` and the API documentation cannot drift apart. A nested dataclass
(MultiDelete's ``terms``) appears as dotted keys (``terms.md``), the form ``--set`` takes.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

#: ``    name: text`` or ``    a, b, c: text`` at the first indentation level of an ``Attributes:`` block
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*):\s*(?P<text>.*)$")


@dataclass(frozen=True)
class Setting:
    """One ``--set`` key of a method: its dotted name, default value, whether the method changes the common
    default (``own``: defined or re-defaulted by the method's config, not inherited unchanged), and the
    first sentence of its documentation."""

    key: str
    default: Any
    own: bool
    help: str


def documented_attributes(cls: type) -> dict[str, str]:
    """``{name: description}`` from the ``Attributes:`` sections of ``cls`` and its bases (the nearest class
    wins). Continuation lines are joined; ``a, b: text`` documents both ``a`` and ``b``."""
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        doc = inspect.getdoc(klass) if "__doc__" in klass.__dict__ else None
        for name, text in _attributes_block(doc or "").items():
            out.setdefault(name, text)
    return out


def _attributes_block(doc: str) -> dict[str, str]:
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    indent = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:  # the block ended (a new section)
            break
        match = _ENTRY.match(line.strip()) if depth == indent else None
        if match:
            entries.append(([n.strip() for n in match["names"].split(",")], [match["text"]]))
        elif entries:
            entries[-1][1].append(line.strip())
    return {name: " ".join(text).strip() for names, text in entries for name in names}


def plain(text: str) -> str:
    """Docstring markup made terminal text: a literal in double back-quotes loses them, and a role such as
    ``:mod:`a.b``` becomes ``a.b`` (``:func:`~a.b``` becomes ``b``, as Sphinx shows it)."""
    def role(match: re.Match) -> str:
        target = match[1]
        return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target

    return re.sub(r":\w+:`([^`]*)`", role, text).replace("``", "")


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop followed by a space (the whole text when there is none)."""
    match = re.search(r"\.\s", text + " ")
    return text[: match.start() + 1] if match else text


def method_settings(config_cls: type) -> list[Setting]:
    """Every setting of the config dataclass ``config_cls`` in declaration order (nested dataclasses
    flattened to dotted keys), with its default and the first sentence of its documentation
    (:func:`documented_attributes`, markup removed).

    ``own`` is true for a field the common base config (the most general dataclass ``config_cls`` derives
    from, e.g. ``GradientConfig``) does not have, or whose default the method changes. A method without
    settings (Retrain) gives ``[]``.
    """
    if not dataclasses.is_dataclass(config_cls):
        return []
    docs = documented_attributes(config_cls)
    bases = [b for b in config_cls.__mro__[1:] if dataclasses.is_dataclass(b)]
    common = dataclasses.asdict(bases[-1]()) if bases else {}
    defaults = config_cls()
    out: list[Setting] = []
    for key, value in dataclasses.asdict(defaults).items():
        if isinstance(value, dict):  # a nested dataclass: its own docstring documents its fields
            nested_docs = documented_attributes(type(getattr(defaults, key)))
            for sub, sub_value in value.items():
                text = nested_docs.get(sub, docs.get(key, ""))
                out.append(Setting(f"{key}.{sub}", sub_value, common.get(key) != value,
                                   plain(first_sentence(text))))
            continue
        own = key not in common or common[key] != value
        out.append(Setting(key, value, own, plain(first_sentence(docs.get(key, "")))))
    return out
