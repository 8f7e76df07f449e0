"""The package's import graph, read from the source: no cycle, no private name taken from another subpackage,
and every import points down the layers below.

Every ``import`` and ``from ... import`` of a graphdel module counts, at module level or inside a function
(an import hidden in a function still closes the circle at run time, it only postpones it), relative imports
resolved. The layers, bottom to top (:data:`LAYERS`):

0. foundations: ``errors``, ``config`` (the config kernel), ``io``, ``mapped_arrays``, ``resources``,
   ``device``, ``modalities`` (the modality records, whose modules are loaded by name), ``registry`` (the one
   name -> object registry) (and the package's lazy exports);
1. ``models.protocol``, what a model implements and the engine relies on;
2. ``data``, ``encoders``, ``distributed``;
3. scoring (``evaluation.embed``, ``retrieval``, ``matching``, ``link_prediction``... every evaluation module
   not listed higher): it knows models only through the protocol, and a model's own validation score is one
   (the KG model's is link prediction), so it sits below the models;
4. ``models``;
5. ``training``;
6. ``unlearning``, the engine (``tests/unlearning/test_engine_imports.py`` guards what it may import);
7. reports and runs: ``evaluation.run_data``, ``suite*``, ``report*``, ``certificate*``, ``audit_report``,
   ``compare``, ``runs``, ``history``;
8. ``api``, the verbs;
9. ``audit`` and ``demo``, which train and unlearn through the verbs;
10. ``cli``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import graphdel

ROOT = Path(graphdel.__file__).parent

#: Module (or dotted prefix) -> layer; the longest matching entry wins. A module imports only from its own
#: layer or lower ones.
LAYERS = {
    "graphdel": 0,  # the package itself: __version__ and lazy exports (importlib, no import statement)
    "graphdel.errors": 0,
    "graphdel.config": 0,  # the config kernel: standard library and graphdel.errors only
    "graphdel.io": 0,
    "graphdel.mapped_arrays": 0,  # memory-mapped cache entries: graphdel.io and graphdel.errors only
    "graphdel.resources": 0,
    "graphdel.device": 0,
    "graphdel.modalities": 0,  # the modality records: standard library and graphdel.errors (importlib loads them)
    "graphdel.registry": 0,  # the one Registry class: standard library and graphdel.errors only
    "graphdel.run_outputs": 0,  # where a command may write: graphdel.errors and graphdel.io only
    "graphdel.run_integrity": 0,  # integrity.json: graphdel.io only
    "graphdel.models.protocol": 1,
    "graphdel.data": 2,
    "graphdel.encoders": 2,
    "graphdel.distributed": 2,
    "graphdel.collectives": 2,  # the process group and its collectives, under graphdel.distributed
    "graphdel.evaluation": 3,
    "graphdel.models": 4,
    "graphdel.training": 5,
    "graphdel.unlearning": 6,
    "graphdel.evaluation.run_data": 7,
    "graphdel.evaluation.suite": 7,
    "graphdel.evaluation.suite_signals": 7,
    "graphdel.evaluation.suite_attacks": 7,
    "graphdel.evaluation.suite_model": 7,
    "graphdel.evaluation.metrics": 7,  # the registered metrics, computed from suite_signals' per-pair signals
    "graphdel.evaluation.suite_runs": 7,
    "graphdel.evaluation.suite_output": 7,
    "graphdel.evaluation.report": 7,
    "graphdel.evaluation.report_format": 7,
    "graphdel.evaluation.report_plots": 7,
    "graphdel.evaluation.report_render": 7,
    "graphdel.evaluation.report_verdicts": 7,
    "graphdel.evaluation.audit_report": 7,
    "graphdel.evaluation.certificate": 7,
    "graphdel.evaluation.certificate_build": 7,
    "graphdel.evaluation.certificate_verify": 7,
    "graphdel.evaluation.certificate_checks": 7,
    "graphdel.evaluation.certificate_recompute": 7,
    "graphdel.evaluation.compare": 7,
    "graphdel.runs": 7,
    "graphdel.history": 7,
    "graphdel.train_run": 8,  # the helpers of a training run, under graphdel.api
    "graphdel.forget_run": 8,  # the helpers of an unlearning run, under graphdel.api
    "graphdel.api": 8,
    "graphdel.audit": 9,
    "graphdel.demo": 9,
    "graphdel.run_cache": 9,  # the cache of trained originals: trains through the verbs
    "graphdel.cli": 10,
}

#: ``(importer, imported) -> why``: upward imports known and allowed until they can be fixed. Each must still
#: occur (a stale entry fails), so the list only shrinks.
UPWARD_EXCEPTIONS = {
}


@dataclass(frozen=True)
class Import:
    """One graphdel module imported by another: ``name`` is the name taken from it (``None`` for a plain
    ``import``), ``line`` where the statement is."""

    importer: str
    target: str
    name: str | None
    line: int

    def where(self) -> str:
        return f"{module_path(self.importer)}:{self.line}"


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_names()


def module_path(name: str) -> str:
    return str(MODULES[name].relative_to(ROOT.parent)) if name in MODULES else name


def resolve(importer: str, node: ast.Import | ast.ImportFrom, modules, is_package: bool
            ) -> list[tuple[str, str | None]]:
    """``[(module, name)]`` that ``node`` in module ``importer`` imports: ``from X import y`` is the module
    ``X.y`` when there is one, else ``X`` (with the name ``y``); a relative ``X`` is resolved against the
    importer's package. Modules outside ``modules`` are left out."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name in modules]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            out.append((sub, None))
        elif base in modules:
            out.append((base, alias.name))
    return out


def parse_imports(name: str, source: str, modules, is_package: bool = False) -> list[Import]:
    """Every graphdel import of module ``name`` (``source``), wherever it stands in the file."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target, imported in resolve(name, node, modules, is_package):
                if target != name:
                    out.append(Import(name, target, imported, node.lineno))
    return out


def private_attribute_uses(name: str, source: str, modules) -> list[Import]:
    """``module._name`` read through a module bound by an import (``import graphdel.api as api`` then
    ``api._load``, or ``graphdel.api._load``): a private name taken from a module as surely as by
    ``from ... import``."""
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> module (one namespace per file: good enough for a check)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in modules:
                    bound[a.asname] = a.name
                elif not a.asname and a.name.split(".")[0] in modules:
                    bound[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if f"{node.module}.{a.name}" in modules:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.append(inner.attr)
            inner = inner.value
        if not isinstance(inner, ast.Name) or inner.id not in bound:
            continue
        chain.reverse()  # the attributes after the bound name, outermost last
        module = bound[inner.id]
        while chain and f"{module}.{chain[0]}" in modules:
            module = f"{module}.{chain.pop(0)}"
        if chain and len(chain) == 1 and is_private(chain[0]):
            out.append(Import(name, module, chain[0], node.lineno))
    return out


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def subpackage(module: str) -> tuple[str, ...]:
    """``graphdel.evaluation.suite`` -> ``("graphdel", "evaluation")``; a top-level module is its own."""
    return tuple(module.split(".")[:2])


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LAYERS:
            return LAYERS[".".join(parts[:k])]
    return None


def graph_imports() -> list[Import]:
    out = []
    for name, path in MODULES.items():
        out += parse_imports(name, path.read_text(encoding="utf-8"), MODULES, path.name == "__init__.py")
    return out


IMPORTS = graph_imports()


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def a_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One cycle through the first module of a strongly connected ``component``, as a path back to it
    (breadth-first: the shortest)."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


def cycles(imports: list[Import]) -> list[str]:
    """Each import cycle, named with the line of every import along it."""
    edges: dict[str, set[str]] = {}
    first: dict[tuple[str, str], Import] = {}
    for imp in imports:
        edges.setdefault(imp.importer, set()).add(imp.target)
        edges.setdefault(imp.target, set())
        first.setdefault((imp.importer, imp.target), imp)
    out = []
    for component in strongly_connected(edges):
        path = a_cycle(component, edges)
        steps = " -> ".join(f"{a} ({first[a, b].where()})" for a, b in zip(path, path[1:]))
        out.append(f"{steps} -> {path[-1]}  [the whole circle: {', '.join(component)}]")
    return out


# -------------------------------------------------------------------------------------- the reader itself

def test_the_reader_finds_imports_anywhere_and_resolves_relative_ones():
    modules = {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.sub.d"}
    source = ("import pkg.a\n"
              "from pkg.sub import c, _helper\n"
              "from . import b\n"
              "from .d import thing\n"
              "from .. import a as alias\n"
              "import numpy\n"
              "def f():\n"
              "    from pkg.b import _late\n")
    found = {(i.target, i.name, i.line) for i in parse_imports("pkg.sub.c2", source, modules | {"pkg.sub.c2"})}
    assert found == {("pkg.a", None, 1), ("pkg.sub.c", None, 2), ("pkg.sub", "_helper", 2), ("pkg.sub", "b", 3),
                     ("pkg.sub.d", "thing", 4), ("pkg.a", None, 5), ("pkg.b", "_late", 8)}
    # in a package's __init__, "." is the package itself
    assert [(i.target, i.name) for i in parse_imports("pkg.sub", "from . import c\n", modules, is_package=True)] == [
        ("pkg.sub.c", None)]


def test_the_reader_sees_a_private_name_read_through_a_module():
    modules = {"pkg", "pkg.a", "pkg.b"}
    source = ("import pkg.a as a\n"
              "import pkg\n"
              "from pkg import b\n"
              "x = a._hidden + a.public + pkg.b._also + b._third + b.__doc__\n")
    assert sorted((i.target, i.name) for i in private_attribute_uses("pkg.c", source, modules)) == [
        ("pkg.a", "_hidden"), ("pkg.b", "_also"), ("pkg.b", "_third")]


def test_a_cycle_is_named_with_its_lines():
    imports = [Import("graphdel.io", "graphdel.errors", None, 3), Import("graphdel.errors", "graphdel.io", "x", 9),
               Import("graphdel.api", "graphdel.io", None, 1)]
    [found] = cycles(imports)
    assert found.startswith("graphdel.errors (graphdel/errors.py:9) -> graphdel.io (graphdel/io.py:3) -> "
                            "graphdel.errors")


def test_the_package_is_read():
    assert len(MODULES) > 60
    assert {"graphdel.api", "graphdel.evaluation.suite", "graphdel.unlearning.base"} <= set(MODULES)
    pairs = {(i.importer, i.target) for i in IMPORTS}
    assert ("graphdel.api", "graphdel.evaluation.run_data") in pairs  # module level
    assert ("graphdel.evaluation.suite_model", "graphdel.evaluation.run_data") in pairs  # inside a function


# ------------------------------------------------------------------------------------------- the rules

def test_no_import_cycle():
    found = cycles(IMPORTS)
    assert not found, "import cycles (an import inside a function counts too):\n" + "\n".join(found)


def test_no_private_name_is_taken_from_another_subpackage():
    taken = [i for i in IMPORTS if i.name is not None and is_private(i.name)]
    for name, path in MODULES.items():
        taken += private_attribute_uses(name, path.read_text(encoding="utf-8"), MODULES)
    crossing = [f"{i.where()}: {i.importer} takes {i.target}.{i.name}" for i in taken
                if subpackage(i.importer) != subpackage(i.target)]
    assert not crossing, ("private names used across subpackages (make the name public where it is defined, "
                          "or move it down to where both can import it):\n" + "\n".join(crossing))


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"add {missing} to LAYERS in tests/test_layering.py"


def test_no_module_imports_from_a_higher_layer():
    upward = dict.fromkeys(  # one line per import statement, however many names it takes
        f"{i.where()}: {i.importer} (layer {layer_of(i.importer)}) imports {i.target} (layer {layer_of(i.target)})"
        for i in IMPORTS if (layer_of(i.target) or 0) > (layer_of(i.importer) or 0)
        and (i.importer, i.target) not in UPWARD_EXCEPTIONS)
    assert not upward, ("imports from a higher layer (move what is needed down, or pass it in):\n"
                        + "\n".join(upward))


def test_every_allowed_upward_import_still_occurs():
    pairs = {(i.importer, i.target) for i in IMPORTS}
    stale = [pair for pair in UPWARD_EXCEPTIONS if pair not in pairs]
    assert not stale, f"remove {stale} from UPWARD_EXCEPTIONS: the import is gone"
