import pytest
import torch

from graphdel.errors import ConfigError
from graphdel.unlearning import unlearn
from graphdel.unlearning.base import frozen_copy, make_student, restrict_updates
from graphdel.unlearning.config import GradientConfig
from graphdel.unlearning.subspace import RetainedSubspace, energy_basis

from tests.unlearning.toy import ToySampler


def test_energy_basis_keeps_the_fewest_directions_that_reach_the_share():
    # squared norms 9, 4, 1 along e1, e2, e3 (14 in all): shares 9/14 = 0.643, 13/14 = 0.929, 1
    inputs = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    assert energy_basis(inputs, 0.6).shape == (3, 1)
    two = energy_basis(inputs, 0.9)
    assert two.shape == (3, 2)
    # the two columns span e1 and e2: projecting e3 on them leaves nothing, e1 and e2 are kept whole
    projector = two @ two.t()
    assert torch.allclose(projector, torch.diag(torch.tensor([1.0, 1.0, 0.0])), atol=1e-6)
    assert energy_basis(inputs, 0.93).shape == (3, 3)


def _text_outputs(model, sampler):
    with torch.no_grad():
        return model.encode_text(next(sampler.batches(len(sampler))).text)


def test_a_projected_change_leaves_the_retained_pairs_outputs(original, samplers):
    data = samplers["retain"].data
    retained = ToySampler(data, samplers["retain"].indices[:4].tolist())
    student = make_student(original)
    restrict_updates(student, "text_proj")
    span = RetainedSubspace(student, frozen_copy(original), retained, 1 - 1e-9, pairs=4,
                            generator=torch.Generator().manual_seed(0))
    # both layers of the text projection: inputs of 16 and 32 widths, with the bias; 4 pairs span 4 directions
    assert span.sizes == {"text_proj.0": (4, 17), "text_proj.2": (4, 33)} and span.pairs == 4
    with torch.no_grad():  # an arbitrary update of every weight of the text projection
        for n, p in student.named_parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(n))))
    moved = (_text_outputs(student, retained) - _text_outputs(original, retained)).abs().max()
    assert moved > 0.05
    span.project()
    assert torch.allclose(_text_outputs(student, retained), _text_outputs(original, retained), atol=1e-5)
    deleted = samplers["forget"]
    assert (_text_outputs(student, deleted) - _text_outputs(original, deleted)).abs().max() > 0.01


def test_a_run_changes_each_layer_only_outside_the_retained_span(original, make_ctx):
    res = unlearn(original, make_ctx(), "multidelete",
                  ["lr=3e-2", "epochs=6", "batch_size=8", "pool_size=8", "trainable=text_proj",
                   "retain_subspace=0.9", "subspace_pairs=40"])
    logged = [r for r in res.log if r.get("phase") == "subspace"]
    assert len(logged) == 1 and logged[0]["pairs"] == 40
    kept = logged[0]["kept"]
    assert set(kept) == {"text_proj.0", "text_proj.2"} and all(0 < k < width for k, width in kept.values())
    # the span the run used (same retained pairs, same seed): the change of each layer is orthogonal to it
    student = make_student(original)
    restrict_updates(student, "text_proj")
    span = RetainedSubspace(student, frozen_copy(original), make_ctx().retain, 0.9, pairs=40,
                            generator=torch.Generator().manual_seed(0))
    assert {n: list(v) for n, v in span.sizes.items()} == kept
    layers = dict(res.model.named_modules())
    for layer in span.layers:
        now = layers[layer.name]
        delta = torch.cat([now.weight, now.bias[:, None]], 1) - layer.weight0
        assert delta.abs().max() > 1e-3
        assert (delta @ layer.basis).abs().max() < 1e-5


def test_the_share_must_leave_room_to_move():
    with pytest.raises(ConfigError, match=r"retain_subspace must be in \[0, 1\), got 1"):
        GradientConfig(retain_subspace=1.0)
