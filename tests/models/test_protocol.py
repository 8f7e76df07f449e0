"""The optional model hooks are declared once, on ModalityModule, with defaults that do nothing."""

import ast
from pathlib import Path

import torch

from graphdel.models.protocol import ModalityModule

HOOKS = ("default_configs", "unlearning_defaults", "selection_score", "split_metrics", "fused_parts", "retain_neighbourhood",
         "forget_structure", "share_frozen_states", "deletion_parameters", "deletion_neighbourhood")
PACKAGE = Path(__file__).resolve().parents[2] / "graphdel"


def test_every_hook_has_a_default_that_does_nothing():
    model = ModalityModule()
    assert sorted(h for h in HOOKS if hasattr(ModalityModule, h)) == sorted(HOOKS)
    assert ModalityModule.default_configs(quick=True) == ({}, {})
    assert model.unlearning_defaults == {}
    assert model.selection_score([]) is None
    assert model.split_metrics({"test": object()}) == {}
    assert model.forget_structure(object()) == 0 and model.fused_parts() == ()
    assert model.retain_neighbourhood(object(), object()) is None
    with model.share_frozen_states(ModalityModule()):
        pass
    assert model.deletion_parameters(object()) is None and model.deletion_neighbourhood() is None


def test_a_model_overrides_only_what_it_needs():
    class Scored(ModalityModule):
        def selection_score(self, batches):
            return 0.25

    assert Scored().selection_score([torch.zeros(1)]) == 0.25 and Scored().split_metrics({}) == {}


def test_no_module_probes_a_model_for_a_hook():
    """``getattr(model, "split_metrics", None)``-style probing is what the base class replaced: a call site
    that probes would silently skip a hook a model misspells."""
    probes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in HOOKS):
                probes.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} probes {node.args[1].value!r}")
    assert probes == []
