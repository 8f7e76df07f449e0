"""graphdel.registry.Registry: one rule for a duplicate name, one for an unknown name, a loader for a missing
one; and every registry of the package is one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from graphdel.errors import ConfigError, GraphdelError
from graphdel.registry import DuplicateNameError, Registry, UnknownNameError


def first() -> None: ...


def second() -> None: ...


def test_a_duplicate_is_refused_in_one_line_naming_the_first():
    reg: Registry = Registry("widget")
    assert reg.register("a", first) is first
    with pytest.raises(DuplicateNameError) as info:
        reg.register("a", second)
    assert str(info.value) == f"widget 'a' is already registered by {__name__}.first"
    assert isinstance(info.value, ValueError) and isinstance(info.value, GraphdelError)
    with pytest.raises(DuplicateNameError, match=r"^widget 'b' is already registered$"):  # no origin known
        reg.register("b", 1)
        reg.register("b", 2)
    assert reg["a"] is first


def test_the_same_object_again_and_overwrite_are_allowed():
    reg: Registry = Registry("widget")
    reg.register("a", first)
    reg.register("a", first)  # a registration that runs twice
    reg["a"] = first
    assert reg.register("a", second, overwrite=True) is second
    assert reg["a"] is second and reg.origin("a") == f"{__name__}.second"


def test_an_unknown_name_is_refused_in_one_line_with_the_known_names():
    reg: Registry = Registry("widget")
    reg.register("b", 2)
    reg.register("a", 1)
    with pytest.raises(UnknownNameError) as info:
        reg["nope"]  # noqa: B018
    assert str(info.value) == "unknown widget 'nope'; known: a, b"
    assert isinstance(info.value, KeyError)
    assert reg.get("nope") is None and reg.get("nope", 0) == 0 and "nope" not in reg
    assert [1] not in reg  # an unhashable name (a list read from JSON) is unknown, not a TypeError
    with pytest.raises(ConfigError, match=r"^unknown gadget 'x'; known: none$"):
        Registry("gadget", unknown_error=ConfigError)["x"]  # noqa: B018
    assert reg.names() == ["a", "b"] and sorted(reg) == ["a", "b"] and len(reg) == 2


def test_on_miss_loads_a_name_once():
    calls = []

    def load(name: str):
        calls.append(name)
        return {"lazy": first}.get(name)

    reg: Registry = Registry("widget", on_miss=load)
    assert "lazy" in reg and reg["lazy"] is first and reg.get("lazy") is first
    assert "other" not in reg and reg.get("other") is None
    with pytest.raises(UnknownNameError, match="unknown widget 'other'; known: lazy"):
        reg["other"]  # noqa: B018
    assert calls == ["lazy", "other"]  # each missing name asked for once


def test_on_miss_may_register_entries_itself():
    reg: Registry = Registry("widget")
    reg.on_miss = lambda name: reg.register("a", 1) and None
    assert reg["a"] == 1


def test_a_copy_restores_with_clear_and_update():
    reg: Registry = Registry("widget")
    reg.register("a", first)
    saved = reg.copy()
    reg.register("b", second)
    reg.clear()
    reg.update(saved)
    assert reg.names() == ["a"] and reg.origin("a") == f"{__name__}.first"
    assert isinstance(saved, Registry) and saved.what == "widget"


def test_the_module_imports_only_the_standard_library_and_graphdel_errors():
    import graphdel.registry

    tree = ast.parse(Path(graphdel.registry.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith("graphdel")} == {"graphdel.errors"}


def test_lazy_names_are_in_the_registry_before_they_load():
    calls = []
    reg: Registry = Registry("widget", on_miss=lambda name: calls.append(name) or first,
                             lazy_names=lambda: ["lazy"])
    assert "lazy" in reg and calls == [] and list(reg) == []  # answered without loading
    assert reg.names() == ["lazy"]
    assert reg["lazy"] is first and calls == ["lazy"] and list(reg) == ["lazy"]


def test_every_registry_of_the_package_is_a_registry():
    """A hand-rolled name -> object dict added later fails here: list it and make it a Registry."""
    from graphdel.data import granularities, pairs, sources
    from graphdel.encoders import image_base
    from graphdel.evaluation import metrics
    from graphdel.models import registry as models
    from graphdel.unlearning import registry as methods

    registries = {
        "methods": methods._METHODS, "method aliases": methods._ALIASES, "sources": sources._SOURCES,
        "granularities": granularities._GRANULARITIES, "featurisers": pairs.ITEM_FEATURIZERS,
        "item properties": pairs.ITEM_PROPERTIES, "training views": pairs.CORPUS_VIEWS,
        "image encoders": image_base.IMAGE_ENCODERS, "model types": models.MODEL_TYPES, "metrics": metrics.METRICS,
    }
    assert [name for name, reg in registries.items() if not isinstance(reg, Registry)] == []
    # and no module-level `NAME: dict[str, ...] = {}` (how each of them began) was added beside them
    import graphdel

    root = Path(graphdel.__file__).parent
    assert hand_rolled_registries(root) == []


def hand_rolled_registries(root: Path) -> list[str]:
    """``path:line NAME`` of every module-level ``NAME: dict[str, ...] = {}``: a name -> object table
    filled at run time, which should be a Registry (a cache keyed by a tuple does not match)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(node.value, ast.Dict) and not node.value.keys):
                continue
            annotation = ast.unparse(node.annotation)
            if annotation.startswith("dict[str,"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.target.id}")
    return found
