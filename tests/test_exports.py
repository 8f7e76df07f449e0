"""What each subpackage exports: an explicit ``__all__`` whose every name imports, which lists every public
module of a package that re-exports nothing, and which costs nothing to import."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import graphdel

SUBPACKAGES = sorted(f"graphdel.{m.name}" for m in pkgutil.iter_modules(graphdel.__path__) if m.ispkg)


def public_modules(package: str) -> set[str]:
    """The names of the package's modules and subpackages that do not start with an underscore (found on
    disk, without importing them)."""
    path = importlib.import_module(package).__path__
    return {m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")}


def lists_modules_only(package: str) -> bool:
    """Whether the package's ``__all__`` names only its own modules (it re-exports no function or class)."""
    return set(importlib.import_module(package).__all__) <= public_modules(package)


def test_the_subpackages_are_found():
    assert {"graphdel.data", "graphdel.models", "graphdel.unlearning"} <= set(SUBPACKAGES)


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_every_name_in_all_imports(package):
    module = importlib.import_module(package)
    names = module.__all__
    assert isinstance(names, list) and names and all(isinstance(n, str) for n in names), package
    assert len(set(names)) == len(names), f"{package}.__all__ repeats a name"
    for name in names:
        value = getattr(module, name, None)
        if value is None:  # a submodule, not imported by the package itself
            value = importlib.import_module(f"{package}.{name}")
        assert value is not None and (not isinstance(value, ModuleType) or value.__name__ == f"{package}.{name}")


@pytest.mark.parametrize("package", [p for p in SUBPACKAGES if lists_modules_only(p)])
def test_a_list_of_modules_is_complete(package):
    missing = public_modules(package) - set(importlib.import_module(package).__all__)
    assert not missing, f"add {sorted(missing)} to {package}.__all__ (and its docstring)"


def test_importing_the_module_lists_loads_nothing_heavy():
    """A package whose ``__all__`` only names its modules imports none of them: ``import graphdel.data`` must
    not load torch (the command line's start-up depends on it, see tests/test_cli.py)."""
    light = [p for p in SUBPACKAGES if lists_modules_only(p)]
    assert {"graphdel.data", "graphdel.encoders", "graphdel.evaluation", "graphdel.models",
            "graphdel.training"} <= set(light)
    code = f"import sys; import {', '.join(light)}; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
