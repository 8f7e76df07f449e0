import pytest
import torch

from graphdel.api import prepare, quick_configs, with_model_defaults
from graphdel.models.joint import ModelConfig, build_model, contrastive_loss
from graphdel.models.protocol import ModalityModel
from graphdel.unlearning import MultiDeleteConfig, parse_overrides


def _tiny(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    torch.manual_seed(0)
    return prepared, build_model(model_cfg)


def test_output_shapes_and_protocol(tiny_csv):
    prepared, model = _tiny(tiny_csv)
    assert isinstance(model, ModalityModel)
    batch = prepared.data.batch(torch.arange(5))
    model.eval()
    out = model(batch)
    d, f = model.config.embed_dim, model.config.fusion_dim
    assert out.z_x.shape == (5, d) and out.z_t.shape == (5, d)
    assert out.sim.shape == (5, 5) and out.logits.shape == (5, 5)
    assert out.fused.shape == (5, f) and out.match_logits.shape == (5,)
    assert torch.allclose(out.z_x.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(out.sim, model.sim(model.encode_x(batch.x), model.encode_text(batch.text)), atol=1e-6)
    assert model.pair_losses(batch).shape == (5,)


def test_training_steps_lower_the_loss(tiny_csv):
    prepared, model = _tiny(tiny_csv)
    batch = prepared.data.batch(torch.arange(8))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    first = float(model.training_loss(batch, gen))
    for _ in range(25):
        loss = model.training_loss(batch, gen)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(model.training_loss(batch, gen)) < 0.5 * first


def test_checkpoint_round_trip_is_exact(tiny_csv, tmp_path):
    prepared, model = _tiny(tiny_csv)
    model.eval()
    batch = prepared.data.batch(torch.arange(6))
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path)
    assert torch.equal(model.encode_x(batch.x), loaded.encode_x(batch.x))
    assert torch.equal(model.encode_text(batch.text), loaded.encode_text(batch.text))
    assert torch.equal(model.fuse(batch.x, batch.text), loaded.fuse(batch.x, batch.text))


def test_multi_positive_contrastive_targets():
    logits = torch.tensor([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    items = torch.tensor([0, 0, 1])
    positives = items[:, None] == items[None, :]
    loss = contrastive_loss(logits, positives)
    # item 0's two texts share the target mass: row loss = -log(e^2 / (2e^2 + 1)) with half-half targets
    expected = -torch.log(torch.exp(torch.tensor(2.0)) / (2 * torch.exp(torch.tensor(2.0)) + 1))
    assert torch.allclose(loss[0], expected)


def test_molecule_model_recommends_similarity_space_multidelete(tiny_csv):
    from graphdel import api

    _, model = _tiny(tiny_csv)
    merged = api.with_model_defaults(model, "multidelete", ["lr=1e-4"])
    assert "representation=similarity" in merged and "similarity_target=calibrated" in merged
    assert merged[-1] == "lr=1e-4"                        # the caller's setting comes last and wins
    assert api.with_model_defaults(model, "neggrad", None) is None


def _top_and_projections(model) -> str:
    """The ``trainable`` setting that leaves every graph layer but the top one frozen."""
    top = model.config.graph.layers - 1
    names = [f"graph_encoder.convs.{top}", f"graph_encoder.norms.{top}", "x_projection", "text_projection"]
    if model.graph_encoder.uses_edges:
        names.append(f"graph_encoder.bond_encoders.{top}")
    return ",".join(names)


def _frozen_bottom_student(model, trainable: str | None = None):
    """A student copy with only ``trainable`` (default: the top graph layer and the projections) trainable,
    and a frozen teacher."""
    from graphdel.unlearning.base import frozen_copy, make_student, restrict_updates

    teacher, student = frozen_copy(model), make_student(model)
    restrict_updates(student, trainable if trainable is not None else _top_and_projections(model))
    student.eval()
    return student, teacher


def test_frozen_bottom_student_updates_the_top_graph_layer_and_the_projections(tiny_csv):
    _, model = _tiny(tiny_csv)
    student, _ = _frozen_bottom_student(model)
    top = model.config.graph.layers - 1
    trainable = {n.split(".weight")[0].split(".bias")[0] for n, p in student.named_parameters() if p.requires_grad}
    assert all(n.startswith((f"graph_encoder.convs.{top}.", f"graph_encoder.norms.{top}", "x_projection.",
                             "text_projection.")) for n in trainable), trainable
    assert any(n.startswith(f"graph_encoder.convs.{top}.") for n in trainable)
    assert student.graph_encoder.frozen_depth() == top


def test_molecule_recipe_stage_lengths():
    from graphdel.models.molecule import MoleculeTextModel
    _, full = MoleculeTextModel.default_configs(quick=False)
    _, quick = MoleculeTextModel.default_configs(quick=True)
    # the full recipe's fusion stage is the longest the 8-minute budget admits on 2 CPU cores
    # (docs/experiments/2026-12-07-fusion-stage-pairs.md); the quick recipe keeps its short stage
    assert (full["epochs"], full["fusion_epochs"]) == (20, 8)
    assert quick["fusion_epochs"] == 4 and "epochs" not in quick


def test_recommended_multidelete_updates_the_text_projection_alone(tiny_csv):
    _, model = _tiny(tiny_csv)
    student, _ = _frozen_bottom_student(model, model.unlearning_defaults["multidelete"]["trainable"])
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("text_projection.") for n in trainable), trainable
    # the whole graph encoder is frozen: every layer's node states are shared with the teacher
    assert student.graph_encoder.frozen_depth() == model.config.graph.layers
    # and each retained pair's own similarity is held
    # (docs/experiments/2026-12-06-retained-pairs-text-projection.md)
    assert model.unlearning_defaults["multidelete"]["pair_weight"] == 0.5
    # the unimodal term holds the retained pairs alone, at the weight the Dr half had inside the mean
    # (docs/experiments/2026-12-06-molecule-unimodal-split.md)
    assert model.unlearning_defaults["multidelete"]["ukr_split"] == "dr"
    assert model.unlearning_defaults["multidelete"]["beta"] == 2.5
    # and the retained pairs' similarities with alpha 1
    # (docs/experiments/2026-12-06-molecule-retention-weight.md)
    assert model.unlearning_defaults["multidelete"]["alpha"] == 1.0
    # stopping reads 8 draws against a reference weighted like the request
    # (docs/experiments/2026-12-06-reference-draws-and-series.md)
    assert model.unlearning_defaults["multidelete"]["eval_draws"] == 8
    assert model.unlearning_defaults["multidelete"]["match_reference"] is True
    assert model.unlearning_defaults["multidelete"]["match_target"] is True
    # and keeps the smallest gap + retain drop, as the KG model does
    # (docs/experiments/2026-12-06-molecule-selection-rule.md)
    cfg = parse_overrides(MultiDeleteConfig, with_model_defaults(model, "multidelete", None))
    assert cfg.select_rule == "sum"
    # over 48 epochs (docs/experiments/2026-12-07-molecule-longer-budget.md)
    assert cfg.epochs == 48


def test_shared_frozen_states_are_exact_computed_once_and_guarded(tiny_csv):
    prepared, model = _tiny(tiny_csv)
    student, teacher = _frozen_bottom_student(model)
    batch = prepared.data.batch(torch.arange(6))
    expect_s, expect_t = student.encode_x(batch.x), teacher.encode_x(batch.x)
    with student.share_frozen_states(teacher):
        cache = student.graph_encoder.trunk_cache
        assert cache is teacher.graph_encoder.trunk_cache and cache.depth == model.config.graph.layers - 1
        got_s = student.encode_x(batch.x)
        assert (cache.misses, cache.hits) == (6, 0)
        got_t = teacher.encode_x(batch.x)                 # the teacher reuses the student's bottom states
        again = student.encode_x(prepared.data.batch(torch.tensor([4, 1])).x)
        assert (cache.misses, cache.hits) == (6, 8)
        assert torch.allclose(got_s, expect_s, atol=1e-6) and torch.allclose(got_t, expect_t, atol=1e-6)
        assert torch.allclose(again, expect_s[[4, 1]], atol=1e-6)
        # gradients still reach the top layer, and only it
        got_s.sum().backward()
        top = student.graph_encoder.convs[-1]
        assert all(p.grad is not None for p in top.parameters())
        with torch.no_grad():
            student.graph_encoder.convs[0].nn[0].weight.add_(1.0)  # a "frozen" layer changed in place
        with pytest.raises(RuntimeError, match="frozen bottom layer"):
            student.encode_x(batch.x)
    assert student.graph_encoder.trunk_cache is None and teacher.graph_encoder.trunk_cache is None


def test_item_table_serves_frozen_molecule_embeddings_computes_only_the_missing_and_is_guarded(tiny_csv):
    prepared, model = _tiny(tiny_csv)
    student, teacher = _frozen_bottom_student(model, "text_projection")
    expect = student.encode_x(prepared.data.batch(torch.arange(6)).x)
    plain = student.encode_x(prepared.data.batch(torch.tensor([0, 1])).x)
    computed, embed = [], student._embed_items

    def spy(x):
        computed.append(x.item_index.tolist())
        return embed(x)

    student._embed_items = spy
    with student.share_frozen_states(teacher):
        table = student.item_table
        assert table is not None and teacher.item_table is table  # the teacher's item side is the same
        first = student.encode_x(prepared.data.batch(torch.tensor([0, 1])).x)
        mixed = student.encode_x(prepared.data.batch(torch.tensor([2, 0, 3, 1, 2])).x)
        again = teacher.encode_x(prepared.data.batch(torch.tensor([3, 2])).x)
        assert computed == [[0, 1], [2, 3]]  # each molecule once, the second batch's uncached ones alone
        assert (table.misses, table.hits) == (5, 4)  # 0, 1; then 2, 3, 2 missed, 0 and 1 served; 3, 2 served
        assert torch.equal(first, plain)  # a batch of which nothing is held: the uncached result itself
        assert torch.allclose(mixed, expect[[2, 0, 3, 1, 2]], atol=1e-6)
        assert torch.allclose(again, expect[[3, 2]], atol=1e-6)
        student.x_projection.train()  # its dropout active, the graph encoder in eval mode: not read
        student.encode_x(prepared.data.batch(torch.tensor([1])).x)
        assert computed[-1] == [1] and table.hits == 4
        student.x_projection.eval()
        student.train()  # dropout active: computed, never read from the table
        student.encode_x(prepared.data.batch(torch.tensor([0])).x)
        assert computed[-1] == [0] and table.hits == 4
        student.eval()
        with torch.no_grad():
            student.x_projection.net[0].weight.add_(1.0)  # a "frozen" weight changed in place
        with pytest.raises(RuntimeError, match="frozen parameter of the item side"):
            student.encode_x(prepared.data.batch(torch.tensor([0])).x)
    assert student.item_table is None and teacher.item_table is None


def test_molecules_named_by_row_are_built_where_no_table_serves_them(tiny_csv):
    from graphdel.models.protocol import ItemRows

    prepared, model = _tiny(tiny_csv)
    model.eval()
    named = prepared.data.batch(torch.tensor([4, 0, 7]), item_rows=True)
    built = prepared.data.batch(torch.tensor([4, 0, 7]))
    assert isinstance(named.x, ItemRows) and named.x.item_index.tolist() == built.x.item_index.tolist()
    assert len(named.x) == 3 and named.to("cpu").x.device == torch.device("cpu")
    assert model.reads_item_rows
    with torch.no_grad():
        assert torch.equal(model.encode_x(named.x), model.encode_x(built.x))
        assert all(torch.equal(a, b) for a, b in zip(model.item_states(named.x), model.item_states(built.x)))
    student, teacher = _frozen_bottom_student(model, "text_projection")
    with student.share_frozen_states(teacher), torch.no_grad():
        first = student.encode_x(named.x)  # nothing held: built and computed whole
        again = teacher.encode_x(prepared.data.batch(torch.tensor([0, 4]), item_rows=True).x)
        assert (student.item_table.misses, student.item_table.hits) == (3, 2)
    assert torch.equal(first, model.encode_x(built.x)) and torch.equal(again, first[[1, 0]])


def test_no_item_table_while_any_part_of_the_item_side_is_trainable(tiny_csv):
    _, model = _tiny(tiny_csv)
    top = model.config.graph.layers - 1
    for trainable in ("text_projection,x_projection", f"text_projection,graph_encoder.convs.{top}",
                      _top_and_projections(model)):
        student, teacher = _frozen_bottom_student(model, trainable)
        with student.share_frozen_states(teacher):
            assert student.item_table is None and teacher.item_table is None, trainable


def _shared_and_plain_runs(tiny_csv, tmp_path, monkeypatch, trainable, cache_class, method: str):
    """A MultiDelete run on a three-pair request of a quick tiny original with ``trainable`` updated, with
    the frozen-state sharing (every call of ``cache_class.method`` recorded: served or not) and without it.
    Returns ``(original, shared, plain, served)``. SGD: Adam normalises each step, so float-order noise (a
    cache sums in another order) on a weight whose gradient is near zero would grow into a visible
    difference."""
    from contextlib import nullcontext

    import graphdel as gd
    from graphdel import api
    from graphdel.models.joint import MoleculeTextModel
    from graphdel.training.loop import TrainConfig

    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    request = api.make_request(original, ids=["aspirin#0", "ethanol#0", "benzene#0"], by="pair")
    settings = ["epochs=2", "batch_size=2", "selection=last", "lr=1e-1", "optimizer=sgd",
                f"trainable={trainable(original.model)}"]
    served, cached = [], getattr(cache_class, method)

    def spy(self, *args):
        out = cached(self, *args)
        served.append(out is not None)
        return out

    monkeypatch.setattr(cache_class, method, spy)
    shared = api.forget(original, request, overrides=settings, out=tmp_path / "shared", progress=False)
    monkeypatch.setattr(MoleculeTextModel, "share_frozen_states", lambda self, *others, **kw: nullcontext())
    plain = api.forget(original, request, overrides=settings, out=tmp_path / "plain", progress=False)
    return original, shared, plain, served


def test_an_item_store_too_large_to_table_is_computed_every_time(tiny_csv):
    from graphdel.models.frozen_items import FrozenItemEmbeddings

    prepared, model = _tiny(tiny_csv)
    student, _ = _frozen_bottom_student(model, "text_projection")
    batch = prepared.data.batch(torch.tensor([0, 1])).x
    row_bytes = model.config.embed_dim * 4
    for max_bytes, tabled in ((len(prepared.data.items) * row_bytes - 1, False),
                              (len(prepared.data.items) * row_bytes, True)):
        table = FrozenItemEmbeddings(student._item_side_state(), max_bytes=max_bytes)
        for _ in range(2):
            with torch.no_grad():
                assert torch.equal(table.embeddings(batch, student._embed_items), student._embed_items(batch))
        assert (table.hits, table.misses) == ((2, 2) if tabled else (0, 4)), max_bytes


def test_the_item_table_leaves_a_text_side_multidelete_run_unchanged(tiny_csv, tmp_path, monkeypatch):
    from graphdel.models.frozen_items import FrozenItemEmbeddings

    original, tabled, plain, served = _shared_and_plain_runs(tiny_csv, tmp_path, monkeypatch,
                                                             lambda model: "text_projection",
                                                             FrozenItemEmbeddings, "embeddings")
    assert served and all(served)  # every molecule batch of the run read the table
    a, b = tabled.model.state_dict(), plain.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    changed = [k for k in a if not torch.equal(a[k], original.model.state_dict()[k])]
    assert changed and all(k.startswith("text_projection") for k in changed), changed


def test_frozen_state_sharing_leaves_multidelete_unchanged(tiny_csv, tmp_path, monkeypatch):
    from graphdel.encoders.graph import FrozenTrunkCache

    original, shared, plain, served = _shared_and_plain_runs(tiny_csv, tmp_path, monkeypatch,
                                                             _top_and_projections, FrozenTrunkCache, "states")
    assert served and all(served)                   # every molecule batch of the run went through the cache
    a, b = shared.model.state_dict(), plain.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), (k, float((a[k]-b[k]).abs().max()), float(a[k].abs().max()))
    changed = [k for k in a if not torch.equal(a[k], original.model.state_dict()[k])]
    assert changed and all(k.startswith(("graph_encoder.convs.", "graph_encoder.norms.", "x_projection",
                                         "text_projection")) for k in changed), changed


def test_frozen_state_cache_drops_the_least_recently_used_molecules(tiny_csv):
    from graphdel.encoders.graph import FrozenTrunkCache

    prepared, model = _tiny(tiny_csv)
    student, _ = _frozen_bottom_student(model)
    enc = student.graph_encoder
    ptr = prepared.data.batch(torch.arange(4)).x.ptr
    atoms = ptr[1:] - ptr[:-1]
    cache = FrozenTrunkCache(enc.frozen_depth(), enc.bottom_state(enc.frozen_depth()),
                             max_nodes=int(atoms[2:].sum()))
    enc.trunk_cache = cache
    try:
        student.encode_x(prepared.data.batch(torch.tensor([0, 1])).x)
        student.encode_x(prepared.data.batch(torch.tensor([2, 3])).x)   # over capacity: 0 and 1 are dropped
        assert cache._nodes == int(atoms[2:].sum()) and (cache.misses, cache.hits) == (4, 0)
        student.encode_x(prepared.data.batch(torch.tensor([3, 2])).x)
        assert (cache.misses, cache.hits) == (4, 2)
        student.encode_x(prepared.data.batch(torch.tensor([0])).x)
        assert (cache.misses, cache.hits) == (5, 2)
    finally:
        enc.trunk_cache = None


def test_frozen_state_cache_computes_only_the_molecules_it_does_not_hold(tiny_csv):
    from graphdel.encoders.graph import FrozenTrunkCache

    prepared, model = _tiny(tiny_csv)
    student, _ = _frozen_bottom_student(model)
    enc = student.graph_encoder
    depth = enc.frozen_depth()
    mixed = prepared.data.batch(torch.tensor([2, 0, 3, 1, 2])).x   # 0 and 1 cached below, 2 twice
    with torch.no_grad():
        plain = enc.layers(mixed, 0, depth)
    computed, layers = [], enc.layers
    def spy(batch, *args, **kwargs):
        computed.append(batch.item_index.tolist())
        return layers(batch, *args, **kwargs)

    enc.layers = spy
    enc.trunk_cache = cache = FrozenTrunkCache(depth, enc.bottom_state(depth))
    try:
        with torch.no_grad():
            cache.states(prepared.data.batch(torch.tensor([0, 1])).x, lambda part: enc.layers(part, 0, depth))
            served = cache.states(mixed, lambda part: enc.layers(part, 0, depth))
    finally:
        enc.trunk_cache = None
        del enc.layers
    assert computed == [[0, 1], [2, 3]]              # the second batch computed its uncached molecules once
    assert (cache.misses, cache.hits) == (5, 2)      # 0, 1; then 2, 3 and 2 again missed, 0 and 1 served
    assert served.shape == plain.shape and torch.allclose(served, plain, atol=1e-6)
    assert cache._nodes == int(prepared.data.batch(torch.arange(4)).x.num_nodes)


def test_fusion_product_appends_the_embeddings_product_to_the_fused_representation(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    config = ModelConfig.from_dict({**model_cfg.to_dict(), "fusion_product": True, "matching_weight": 0.0})
    torch.manual_seed(0)
    model = build_model(config).eval()
    batch = prepared.data.batch(torch.arange(5))
    fused = model.fuse(batch.x, batch.text)
    f = config.fusion_dim
    assert fused.shape == (5, f + config.embed_dim)
    z_x, z_t = model.encode_x(batch.x), model.encode_text(batch.text)
    d = config.embed_dim
    assert torch.allclose(fused[:, f:], d * z_x * z_t, atol=1e-5)
    assert torch.allclose(fused[:, f:].sum(1) / d, model.sim(z_x, z_t).diag(), atol=1e-6)  # sum: d x cosine
    assert torch.allclose(fused[:, :f], model.fusion(*model.text_encoder(batch.text)[:2],
                                                     *model.item_states(batch.x)[:2]), atol=1e-6)
    out = model(batch)
    assert torch.allclose(out.fused, fused, atol=1e-6) and out.match_logits.shape == (5,)
    # pairs across the batch: each (item, text) gets what the batch of those rows gets, product included
    pairs = torch.tensor([[0, 1], [3, 3], [1, 0], [0, 4]])
    crossed = prepared.data.batch(torch.arange(5)[pairs[:, 0]])
    crossed.text = batch.text.select(pairs[:, 1])
    assert torch.allclose(model.fuse(batch.x, batch.text, pairs), model.fuse(crossed.x, crossed.text),
                          atol=1e-5)
    with pytest.raises(Exception, match="fusion_product is trained by the fusion stage only"):
        build_model(ModelConfig.from_dict({**config.to_dict(), "matching_weight": 1.0}))


def test_fusion_dropout_sets_the_fusion_modules_dropout_alone():
    config = ModelConfig(modality="molecule", dropout=0.1, fusion_dropout=0.0, fusion_layers=2)
    model = build_model(config).train()
    fusion_p = {m.p for m in model.fusion.modules() if isinstance(m, torch.nn.Dropout)}
    fusion_p |= {m.dropout for m in model.fusion.modules() if isinstance(m, torch.nn.MultiheadAttention)}
    assert fusion_p == {0.0}
    assert [m.p for m in model.x_projection.modules() if isinstance(m, torch.nn.Dropout)] == [0.1]
    # None keeps the model's dropout everywhere (the default)
    model = build_model(ModelConfig(modality="molecule", dropout=0.1, fusion_layers=1))
    assert {m.dropout for m in model.fusion.modules() if isinstance(m, torch.nn.MultiheadAttention)} == {0.1}
    with pytest.raises(Exception, match="model config key 'fusion_dropout': must be in \\[0, 1\\) \\(got 1.5\\)"):
        build_model(ModelConfig(modality="molecule", fusion_dropout=1.5))


def test_matching_weight_zero_skips_the_fusion_module_and_the_negative_draws(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict({**model_cfg.to_dict(), "matching_weight": 0.0}))
    batch = prepared.data.batch(torch.arange(6))
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    terms = model.loss_terms(batch, gen)
    assert torch.equal(gen.get_state(), state)  # no negatives drawn
    assert float(terms["matching"]) == 0.0 and torch.equal(terms["loss"], terms["contrastive"])
    terms["loss"].backward()
    assert all(p.grad is None for p in model.fusion.parameters())  # the fusion module was not run


def test_fusion_layers_zero_builds_a_two_tower_model_with_no_head(tiny_csv):
    from graphdel.errors import ConfigError
    from graphdel.models.protocol import has_matching_head

    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    two_tower = ModelConfig.from_dict({**model_cfg.to_dict(), "fusion_layers": 0, "matching_weight": 0.0})
    torch.manual_seed(0)
    model = build_model(two_tower)
    torch.manual_seed(0)
    with_head = build_model(ModelConfig.from_dict({**model_cfg.to_dict(), "matching_weight": 0.0}))
    assert model.fusion is None and model.match_head is None and model.fusion_modules() == []
    assert not model.has_fusion and not has_matching_head(model) and has_matching_head(with_head)
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith(("fusion.", "match_head.")) for n in names)
    assert names == {n for n, _ in with_head.named_parameters()
                     if not n.startswith(("fusion.", "match_head."))}
    batch = prepared.data.batch(torch.arange(5))
    model.eval()
    out = model(batch)
    assert out.fused is None and out.match_logits is None and out.sim.shape == (5, 5)
    with pytest.raises(ConfigError, match="no fusion module .* representation='similarity'"):
        model.fuse(batch.x, batch.text)
    with pytest.raises(ConfigError, match="has no matching head"):
        model.match_logits(torch.zeros(5, model_cfg.fusion_dim))
    terms = model.loss_terms(batch, torch.Generator().manual_seed(0))
    assert float(terms["matching"]) == 0.0 and torch.equal(terms["loss"], terms["contrastive"])
    for bad, message in (({"matching_weight": 1.0}, "no matching head to train: set matching_weight to 0"),
                         ({"fusion_layers": -1}, "'fusion_layers': must be >= 0")):
        with pytest.raises(ConfigError, match=message):
            build_model(ModelConfig.from_dict({**two_tower.to_dict(), **bad}))


def test_fusion_stage_refuses_a_model_without_a_fusion_module(tiny_csv):
    from graphdel.errors import ConfigError
    from graphdel.training.fusion import train_fusion_stage
    from graphdel.training.loop import TrainConfig

    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    model = build_model(ModelConfig.from_dict({**model_cfg.to_dict(), "fusion_layers": 0, "matching_weight": 0.0}))
    from graphdel.data.pairs import PairSet

    train = PairSet(prepared.data, range(8), "train")
    with pytest.raises(ConfigError, match="no fusion module .* set fusion_epochs to 0"):
        train_fusion_stage(model, train, TrainConfig(fusion_epochs=1, device="cpu"), progress=False)


def test_a_cache_sized_to_the_pairs_it_serves_holds_them_all_or_is_not_built(tiny_csv, monkeypatch):
    import graphdel.models.molecule as molecule

    prepared, model = _tiny(tiny_csv)
    model.eval()
    for p in model.parameters():  # every layer frozen, as in the fusion stage
        p.requires_grad_(False)
    train = prepared.data.subset(prepared.trained_rows(), "train")
    ptr, items = prepared.data.items.node_ptr, prepared.data.item_index[train.rows].unique()
    atoms = int((ptr[items + 1] - ptr[items]).sum())
    with model.share_frozen_states():
        assert model.graph_encoder.trunk_cache.max_nodes == 250_000  # no pairs named: the default capacity
    with model.share_frozen_states(reads=train):
        cache = model.graph_encoder.trunk_cache
        assert cache.max_nodes == atoms
        # the graph encoder itself (encode_x would read the item table that the frozen projection adds)
        for batch in train.batches(7, shuffle=True, generator=torch.Generator().manual_seed(0)):
            model.graph_encoder(batch.x)
        assert cache._nodes == atoms  # one pass holds every molecule
        hits = cache.hits
        for batch in train.batches(5, shuffle=True, generator=torch.Generator().manual_seed(1)):
            model.graph_encoder(batch.x)
        assert cache.hits - hits == len(train)  # a second pass in other batches: every batch served
    monkeypatch.setattr(molecule, "MAX_SIZED_CACHE_ATOMS", atoms - 1)
    with model.share_frozen_states(reads=train):  # more atoms than the bound: no cache at all
        assert model.graph_encoder.trunk_cache is None
