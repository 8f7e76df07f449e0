"""The fusion stage: only the fusion module and matching head move, negatives are what they claim to be."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from graphdel.api import prepare, quick_configs
from graphdel.evaluation.embed import embed_pairs
from graphdel.models.joint import build_model
from graphdel.training.fusion import fusion_stage_loss, random_of_other_items, stage_pairs, train_fusion_stage
from graphdel.training.loop import TrainConfig, train_model

STAGE = TrainConfig(epochs=1, batch_size=4, fusion_epochs=2, fusion_lr=1e-2)


@pytest.fixture
def tiny(tiny_csv):
    """``(model, train)``: a quick-config molecule model (untrained) and the 12-molecule corpus's training set."""
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    torch.manual_seed(0)
    return build_model(model_cfg), prepared.sets()["train"]


def test_the_stage_leaves_every_encoder_weight_and_buffer_byte_identical(tiny):
    model, train = tiny
    model.train()  # as the training loop leaves it: BatchNorm would update its statistics in train mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_fusion_stage(model, train, STAGE, progress=False)
    after = model.state_dict()
    fusion = [k for k in before if k.startswith(("fusion.", "match_head."))]
    others = [k for k in before if k not in fusion]
    assert any(k.startswith("graph_encoder.") and "running_mean" in k for k in others)  # buffers are checked
    assert all(torch.equal(before[k], after[k]) for k in others), \
        [k for k in others if not torch.equal(before[k], after[k])][:5]
    assert all(not torch.equal(before[k], after[k]) for k in fusion if k.endswith("weight"))
    assert [h["epoch"] for h in history] == [1, 2] and all(h["stage"] == "fusion" for h in history)
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def _hardest_by_brute_force(model, train) -> tuple[dict, dict]:
    """For each training row, the row of another item whose text is most similar to its item (first dict)
    and whose item is most similar to its text (second), under the model's cosine similarity."""
    emb = embed_pairs(model, train)
    sim = emb.z_x @ emb.z_t.t()
    rows = train.rows.tolist()

    def hardest(score):
        return {rows[i]: rows[max((j for j in range(len(rows)) if emb.items[j] != emb.items[i]),
                                  key=lambda j: float(score(i, j)))] for i in range(len(rows))}

    return hardest(lambda i, j: sim[i, j]), hardest(lambda i, j: sim[j, i])


@pytest.mark.parametrize("item_negatives", [True, False])
def test_hard_negatives_are_the_most_similar_captions_of_other_items(tiny, monkeypatch, item_negatives):
    model, train = tiny
    rows = train.rows.tolist()
    hardest_text, hardest_item = _hardest_by_brute_force(model, train)
    calls = []
    real = train.make_batch
    monkeypatch.setattr(train, "make_batch", lambda r: calls.append(r.tolist()) or real(r))
    recipe = replace(STAGE, fusion_epochs=1, fusion_hard_fraction=1.0, fusion_hard_pool=1,
                     fusion_item_negatives=item_negatives)
    train_fusion_stage(model, train, recipe, progress=False)
    # one batch of every training row (the stage embeds them to mine), then one batch per step laid out as
    # stage_pairs reads it: the step's pairs, its texts' negatives and (with item negatives) its items'
    b = STAGE.batch_size
    assert calls[0] == rows and len(calls) == 1 + len(rows) // b
    for step in calls[1:]:
        assert len(step) == (3 if item_negatives else 2) * b
        positives, neg_text = step[:b], step[b:2 * b]
        assert neg_text == [hardest_text[r] for r in positives]
        if item_negatives:
            assert step[2 * b:] == [hardest_item[r] for r in positives]


def test_random_negatives_are_of_other_items():
    items = torch.tensor([0, 0, 0, 1, 2, 2])
    positions = torch.arange(6).repeat(50)
    drawn = random_of_other_items(positions, items, torch.Generator().manual_seed(0))
    assert bool((items[drawn] != items[positions]).all())
    assert set(drawn[positions == 3].tolist()) == {0, 1, 2, 4, 5}  # every pair of another item can be drawn
    with pytest.raises(ValueError, match="two distinct items"):
        random_of_other_items(torch.arange(2), torch.tensor([4, 4]), torch.Generator())


class _ScalarPairs(torch.nn.Module):
    """A stand-in whose fused representation of (x, t) is the scalar x * t and whose logit is that scalar."""

    def fuse(self, x, text, pairs):
        return (x[pairs[:, 0]] * text[pairs[:, 1]])[:, None]

    def match_logits(self, fused):
        return fused.squeeze(-1)


class _Step(SimpleNamespace):
    def __len__(self):
        return self.rows.numel()


def _step(x, text) -> _Step:
    """A step's batch of scalar items ``x`` and texts ``text``."""
    return _Step(x=torch.tensor(x), text=torch.tensor(text), rows=torch.arange(len(x)))


def test_stage_pairs_name_each_item_and_text_by_its_place_in_the_step():
    assert stage_pairs(2, True).tolist() == [[0, 0], [1, 1], [0, 2], [1, 3], [4, 0], [5, 1]]
    assert stage_pairs(2, False).tolist() == [[0, 0], [1, 1], [0, 2], [1, 3]]


def test_the_stage_loss_is_the_class_balanced_cross_entropy():
    # a step of 2 true pairs laid out as stage_pairs reads it: true pairs, negative texts, negative items
    # (the items of the negative-text rows and the texts of the negative-item rows are never read: 99)
    step = _step([1.0, 2.0, 99.0, 99.0, -2.0, 0.0], [3.0, -1.0, 0.5, 1.0, 99.0, 99.0])
    loss = fusion_stage_loss(_ScalarPairs(), step, 2)
    true_logits = torch.tensor([3.0, -2.0])             # x_i * t_i
    false_logits = torch.tensor([0.5, 2.0, -6.0, 0.0])  # x_i * t'_i, then x'_i * t_i
    # true pairs weigh 2, so 2 true and 4 false pairs weigh alike (4 each); the mean is over total weight 8
    expected = (2 * F.softplus(-true_logits).sum() + F.softplus(false_logits).sum()) / 8
    assert torch.allclose(loss, expected)
    # without negative items: 2 true and 2 false pairs, each of weight 1
    step = _step([1.0, 2.0, 99.0, 99.0], [3.0, -1.0, 0.5, 1.0])
    loss = fusion_stage_loss(_ScalarPairs(), step, 2)
    expected = (F.softplus(-true_logits).sum() + F.softplus(false_logits[:2]).sum()) / 4
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="2 or 3 times its 2 true pairs, not 5"):
        fusion_stage_loss(_ScalarPairs(), _step([1.0] * 5, [1.0] * 5), 2)


def test_training_with_the_stage_changes_no_embedding(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    sets = prepared.sets()
    models, results = [], []
    for fusion_epochs in (0, 2):
        torch.manual_seed(0)
        model = build_model(model_cfg)
        results.append(train_model(model, sets["train"], sets["val"],
                                   replace(STAGE, epochs=2, fusion_epochs=fusion_epochs), progress=False))
        models.append(results[-1].model)
    plain, staged = (embed_pairs(m, sets["test"], with_matching=True) for m in models)
    assert torch.equal(plain.z_x, staged.z_x) and torch.equal(plain.z_t, staged.z_t)
    assert not torch.equal(plain.match_prob, staged.match_prob)
    assert [h.get("stage") for h in results[1].history] == [None, None, "fusion", "fusion"]
    assert results[0].best_epoch == results[1].best_epoch


def test_the_molecule_recipe_trains_contrastively_then_runs_the_stage(tiny_csv, tmp_path, monkeypatch):
    import graphdel as gd
    from graphdel import api

    featurised = []
    real_prepare = api.prepare
    monkeypatch.setattr(api, "prepare", lambda *a, **kw: featurised.append(real_prepare(*a, **kw)) or featurised[-1])
    run = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "run", quick=True,
                   progress=False)
    model, train = run.config["model"], run.config["train"]
    assert model["matching_weight"] == 0.0 and model["fusion_product"] is False
    assert (model["fusion_layers"], model["fusion_readout"], model["fusion_sink"]) == (2, "mean", True)
    assert model["fusion_dropout"] == 0.0
    assert model["text"]["fusion_tokens"] == 64 and train["fusion_epochs"] == 4
    assert train["lr_schedule"] == "cosine"
    # the recipe is resolved before featurising: the cached caption tokens are the 64 the fusion reads
    assert featurised[0].data.text.hidden.size(1) == 64
    assert [h["epoch"] for h in run.log if h.get("stage") == "fusion"] == [1, 2, 3, 4]
    assert all(h["matching"] == 0.0 for h in run.log if "stage" not in h)  # no joint matching loss
    for split in ("val", "test"):
        assert set(run.metrics["splits"][split]["matching"]) == {"match_bal_acc", "match_hard_bal_acc", "rerank"}
    assert "matching" not in run.metrics["splits"]["train"]


def test_the_stage_steps_at_its_scheduled_rates(tiny, monkeypatch):
    model, train = tiny
    rates = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step",
                        lambda self, *a, **k: rates.append(self.param_groups[0]["lr"]) or real_step(self, *a, **k))
    stage = replace(STAGE, batch_size=len(train) // 2)  # 2 steps a stage epoch, so 4 in 2 epochs
    train_fusion_stage(model, train, replace(stage, fusion_lr_schedule="cosine", fusion_warmup_epochs=1),
                       progress=False)
    # warm-up over epoch 1 (1/3, 2/3 of the rate), then the half cosine over epoch 2 (1, 1/2)
    assert rates == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 0.5e-2], abs=1e-15)
    rates.clear()
    train_fusion_stage(model, train, stage, progress=False)
    assert rates == [1e-2] * 4  # the default: constant, exactly the configured rate


def test_the_stage_caches_the_states_of_all_its_molecules_and_serves_its_second_epoch(tiny, monkeypatch):
    from graphdel.encoders.graph import FrozenTrunkCache

    model, train = tiny
    caches, seen = [], FrozenTrunkCache.states
    monkeypatch.setattr(FrozenTrunkCache, "states", lambda self, *a: caches.append(self) or seen(self, *a))
    counts = []  # (hits, misses) after each epoch
    train_fusion_stage(model, train, STAGE, progress=False,
                       after_epoch=lambda epoch: counts.append((caches[-1].hits, caches[-1].misses)))
    ptr, items = train.data.items.node_ptr, train.data.item_index[train.rows].unique()
    assert {c.max_nodes for c in caches} == {int((ptr[items + 1] - ptr[items]).sum())}  # sized to the stage
    (hits_1, misses_1), (hits_2, misses_2) = counts
    assert misses_2 == misses_1 and hits_2 > hits_1  # the second epoch computes no molecule again
