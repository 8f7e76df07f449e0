import torch

from graphdel.api import prepare, quick_configs
from graphdel.models.joint import ModelConfig, build_model, contrastive_loss
from graphdel.models.protocol import ModalityModel


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
    assert "representation=similarity" in merged and "similarity_target=pairwise" in merged
    assert merged[-1] == "lr=1e-4"                        # the caller's setting comes last and wins
    assert api.with_model_defaults(model, "neggrad", None) is None
