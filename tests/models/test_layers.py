"""The fusion module's readouts, its sink token and its item-token norm, on tiny hand-made inputs."""

import pytest
import torch

from graphdel.models.config import ModelConfig
from graphdel.models.layers import FusionModule, length_groups


def _module(**options) -> FusionModule:
    torch.manual_seed(0)
    return FusionModule(d_text=6, d_item=5, d=8, layers=1, heads=2, dropout=0.0, **options).eval()


def _inputs(atoms: int):
    """One caption of 3 tokens against one item of ``atoms`` copies of the same atom state."""
    torch.manual_seed(1)
    text, atom = torch.randn(1, 3, 6), torch.randn(1, 1, 5)
    return text, torch.ones(1, 3, dtype=torch.bool), atom.expand(1, atoms, 5), torch.ones(1, atoms, dtype=torch.bool)


@pytest.mark.parametrize("readout", ["first", "mean"])
def test_without_a_sink_attention_cannot_count_identical_atoms(readout):
    module = _module(readout=readout)
    assert torch.allclose(module(*_inputs(1)), module(*_inputs(4)), atol=1e-6)


def test_the_sink_lets_the_output_depend_on_how_many_atoms_match():
    module = _module(sink=True)
    with torch.no_grad():
        module.sink.fill_(0.5)
    assert not torch.allclose(module(*_inputs(1)), module(*_inputs(4)), atol=1e-4)


def test_a_fresh_sink_is_zero_and_trainable():
    module = _module(sink=True)
    assert module.sink.shape == (1, 1, 8) and module.sink.requires_grad and float(module.sink.abs().sum()) == 0.0
    assert "sink" not in dict(_module().named_parameters())


def test_mean_readout_averages_real_positions_only():
    module = _module(readout="mean")
    text, text_mask, item, item_mask = _inputs(2)
    padded = torch.cat([text, torch.randn(1, 2, 6)], 1)
    padded_mask = torch.cat([text_mask, torch.zeros(1, 2, dtype=torch.bool)], 1)
    assert torch.allclose(module(text, text_mask, item, item_mask), module(padded, padded_mask, item, item_mask),
                          atol=1e-6)


def test_mean_and_first_readouts_differ_on_the_same_weights():
    first, mean = _module(readout="first"), _module(readout="mean")
    mean.load_state_dict(first.state_dict())
    assert not torch.allclose(first(*_inputs(2)), mean(*_inputs(2)), atol=1e-4)


def test_an_unknown_readout_is_named():
    with pytest.raises(ValueError, match="fusion readout 'max'"):
        _module(readout="max")
    with pytest.raises(Exception, match="fusion_readout"):
        ModelConfig.from_dict({"fusion_readout": "max"})


def _scaled_items(module: FusionModule, scale: float) -> torch.Tensor:
    """The module's output with every item token's input-map output multiplied by ``scale`` (bias zeroed)."""
    with torch.no_grad():
        module.item_in.bias.zero_()
    text, text_mask, item, item_mask = _inputs(2)
    # two different atoms, so attention has something to choose between; the same two in every call, since
    # _inputs seeds the generator
    item = item + torch.randn(1, 2, 5)
    return module(text, text_mask, scale * item, item_mask)


def test_the_item_norm_makes_the_output_blind_to_the_item_states_scale():
    module = _module(item_norm=True)
    assert torch.allclose(_scaled_items(module, 1.0), _scaled_items(module, 8.0), atol=1e-5)


def test_without_the_item_norm_the_item_states_scale_changes_the_attention():
    module = _module()
    assert not torch.allclose(_scaled_items(module, 1.0), _scaled_items(module, 8.0), atol=1e-3)


def test_the_item_norm_is_a_fresh_identity_layer_norm_only_when_asked():
    module = _module(item_norm=True)
    names = dict(module.named_parameters())
    assert torch.equal(names["item_norm.weight"], torch.ones(8))
    assert torch.equal(names["item_norm.bias"], torch.zeros(8))
    assert not any(n.startswith("item_norm") for n in dict(_module().named_parameters()))
    # the norm draws no random numbers: every other weight is the same as without it
    plain = _module().state_dict()
    others = {k: v for k, v in module.state_dict().items() if not k.startswith("item_norm")}
    assert others.keys() == plain.keys() and all(torch.equal(v, plain[k]) for k, v in others.items())


@pytest.mark.parametrize("layers", [1, 2])
def test_the_first_position_shortcut_matches_the_full_last_layer(layers):
    # in eval mode a "first" readout computes the last layer's cross-attention and feed-forward block for
    # the first position only; in training mode (dropout 0 here, so the same function) every position runs
    torch.manual_seed(0)
    module = FusionModule(d_text=6, d_item=5, d=8, layers=layers, heads=2, dropout=0.0)
    text, item = torch.randn(3, 4, 6), torch.randn(3, 2, 5, requires_grad=True)
    text_mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, True, False]])
    item_mask = torch.tensor([[True, True], [True, False], [True, True]])
    short = module.eval()(text, text_mask, item, item_mask)
    full = module.train()(text, text_mask, item, item_mask)
    assert torch.allclose(short, full, atol=1e-6)
    grad_short, = torch.autograd.grad(short.square().sum(), item)
    grad_full, = torch.autograd.grad(full.square().sum(), item)
    assert torch.allclose(grad_short, grad_full, atol=1e-6)
    # padding beyond the real text changes nothing, in either path
    padded = torch.cat([text, torch.randn(3, 1, 6)], 1)
    padded_mask = torch.cat([text_mask, torch.zeros(3, 1, dtype=torch.bool)], 1)
    assert torch.allclose(module.eval()(padded, padded_mask, item, item_mask), short, atol=1e-6)


def test_the_shortcut_runs_out_of_training_mode_only(monkeypatch):
    # training keeps the full layer (its dropout draws over every position); evaluation takes the shortcut,
    # and a "mean" readout, which reads every position, never does
    import graphdel.models.layers as layers

    calls = []
    real = layers._first_position
    monkeypatch.setattr(layers, "_first_position", lambda *a, **k: calls.append(1) or real(*a, **k))
    text, text_mask, item, item_mask = _inputs(2)
    module = _module()
    module.train()(text, text_mask, item, item_mask)
    assert calls == []
    module.eval()(text, text_mask, item, item_mask)
    assert calls == [1]
    _module(readout="mean")(text, text_mask, item, item_mask)
    assert calls == [1]


def _extents_mask(extents, n):
    return torch.arange(n)[None] < torch.tensor(extents)[:, None]


def test_length_groups_split_where_fewest_positions_remain():
    # extents 2, 1, 8, 2 of 8: cutting the three short rows to 2 leaves 3 x 2 + 1 x 8 = 14 of 32 positions
    groups = length_groups(_extents_mask([2, 1, 8, 2], 8))
    assert [(rows.tolist(), extent) for rows, extent in groups] == [([0, 1, 3], 2), ([2], 8)]


def test_length_groups_read_the_last_real_position_not_the_count():
    mask = _extents_mask([1, 1, 1, 8], 8)
    mask[1] = False
    mask[1, 5] = True  # one real position, the sixth
    assert [(rows.tolist(), extent) for rows, extent in length_groups(mask)] == [([0, 2], 1), ([1, 3], 8)]


def test_length_groups_leave_a_batch_alone_when_little_is_saved():
    assert length_groups(_extents_mask([8, 8, 8, 8], 8)) is None
    assert length_groups(_extents_mask([7, 8, 6, 8], 8)) is None  # 25 of 32 positions at best
    assert length_groups(_extents_mask([3], 8)) is None  # a single row: nothing to split


def _padded(module: FusionModule, text, text_mask, item, item_mask):
    """The module on one padded batch, every input position mapped (no groups, no shared parts)."""
    return module._forward(module.text_in(text), text_mask, module.map_items(item), item_mask)


@pytest.mark.parametrize("readout,sink", [("mean", True), ("first", False)])
def test_grouped_rows_give_each_row_its_padded_output(readout, sink):
    torch.manual_seed(2)
    module = FusionModule(d_text=6, d_item=5, d=8, layers=2, heads=2, dropout=0.0, readout=readout, sink=sink,
                          item_norm=True)
    extents = [2, 9, 1, 3, 12, 2]
    text, item = torch.randn(6, 4, 6), torch.randn(6, 12, 5)
    text_mask, item_mask = torch.ones(6, 4, dtype=torch.bool), _extents_mask(extents, 12)
    assert length_groups(item_mask) is not None
    for training in (True, False):
        module.train(training)
        grouped = module(text, text_mask, item, item_mask)
        padded = _padded(module, text, text_mask, item, item_mask)
        assert torch.allclose(grouped, padded, atol=1e-6), (grouped - padded).abs().max()
    grad = [torch.autograd.grad(f(module, text, text_mask, item, item_mask).square().sum(),
                                module.text_in.weight)[0] for f in (FusionModule.__call__, _padded)]
    assert torch.allclose(grad[0], grad[1], atol=1e-5)


def test_the_memory_maps_real_positions_and_leaves_padding_at_zero():
    torch.manual_seed(3)
    module = FusionModule(d_text=6, d_item=5, d=8, layers=1, heads=2, dropout=0.0, item_norm=True)
    item, item_mask = torch.randn(2, 3, 5), _extents_mask([3, 1], 3)
    memory = module._memory(item, item_mask)
    mapped = module.item_norm(module.item_in(item))
    assert torch.allclose(memory[item_mask], mapped[item_mask], atol=1e-6)
    assert memory[~item_mask].abs().sum() == 0 and memory.shape == (2, 3, 8)
    full = torch.ones(2, 3, dtype=torch.bool)  # no padding: every position mapped
    assert torch.allclose(module._memory(item, full), mapped, atol=1e-6)


def _pair_inputs():
    """Three texts and three items of different lengths, and five pairs that reuse some of each."""
    torch.manual_seed(4)
    text, item = torch.randn(3, 4, 6), torch.randn(3, 5, 5)
    text_mask = _extents_mask([4, 2, 3], 4)
    item_mask = _extents_mask([5, 2, 1], 5)
    pairs = torch.tensor([[0, 0], [1, 1], [0, 2], [2, 0], [1, 0]])
    return text, text_mask, item, item_mask, pairs


def _expanded(module, text, text_mask, item, item_mask, pairs):
    """The module on the pairs written out row by row: what ``pairs`` must equal."""
    return module(text[pairs[:, 1]], text_mask[pairs[:, 1]], item[pairs[:, 0]], item_mask[pairs[:, 0]])


@pytest.mark.parametrize("layers,readout", [(1, "first"), (2, "first"), (2, "mean")])
def test_pairs_give_each_pair_the_output_of_its_own_row(layers, readout):
    torch.manual_seed(5)
    module = FusionModule(d_text=6, d_item=5, d=8, layers=layers, heads=2, dropout=0.0, readout=readout,
                          sink=True, item_norm=True)
    text, text_mask, item, item_mask, pairs = _pair_inputs()
    for training in (True, False):  # eval mode with a "first" readout takes the last layer's shortcut
        module.train(training)
        shared = module(text, text_mask, item, item_mask, pairs)
        expanded = _expanded(module, text, text_mask, item, item_mask, pairs)
        assert shared.shape == (5, 8) and torch.allclose(shared, expanded, atol=1e-6)
    params = [module.text_in.weight, module.item_in.weight, module.layers[0].self_attn.in_proj_weight]
    grads = [torch.autograd.grad(f(module, text, text_mask, item, item_mask, pairs).square().sum(), params)
             for f in (FusionModule.__call__, _expanded)]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


def test_pairs_share_the_first_self_attention_unless_dropout_is_drawn(monkeypatch):
    import graphdel.models.layers as layers

    text, text_mask, item, item_mask, pairs = _pair_inputs()
    calls = []
    real = layers._after_self_attention
    monkeypatch.setattr(layers, "_after_self_attention", lambda *a: calls.append(a[1].size(0)) or real(*a))
    torch.manual_seed(6)
    module = FusionModule(d_text=6, d_item=5, d=8, layers=2, heads=2, dropout=0.1, readout="mean")
    module.eval()(text, text_mask, item, item_mask, pairs)
    assert sum(calls) == 5  # every pair's rows continue after the shared self-attention
    calls.clear()
    module.train()(text, text_mask, item, item_mask, pairs)  # each pair draws its own dropout masks
    assert calls == []


def test_length_groups_cut_a_batch_padded_past_its_longest_row():
    # every row ends at position 2 of 8: one group, cut to 2 (8 of 32 positions)
    groups = length_groups(_extents_mask([2, 2, 2, 2], 8))
    assert [(rows.tolist(), extent) for rows, extent in groups] == [([0, 1, 2, 3], 2)]
