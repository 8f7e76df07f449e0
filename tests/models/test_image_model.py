"""The image–text joint model on tiny generated images: protocol, the two-tower default and fusion over
patch tokens when asked for, persistence, training end to end with the small CNN and with EfficientNet-Lite0."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import graphdel.api as api
from graphdel.encoders.image import ImageInput
from graphdel.encoders.text import TextEncoderConfig
from graphdel.models.image import ImageTextModel
from graphdel.models.joint import ModelConfig
from graphdel.models.protocol import ModalityModel
from graphdel.runs import Run
from graphdel.training.loop import TrainConfig
from tests.data.test_images import write_imagefolder

CNN = {"name": "cnn", "image_size": 16, "cnn_channels": [4, 8]}


def small_image_config(image: dict | None = None) -> ModelConfig:
    return ModelConfig(text=TextEncoderConfig(fusion_tokens=8), embed_dim=16, fusion_dim=16, fusion_heads=2,
                       extra={"image": dict(image or CNN)})


def make_tiny_image_run(root: Path, image: dict | None = None, epochs: int = 2) -> Run:
    """An original image–text run on 24 generated images (two captions each: 20 train, 2 val, 2 test)."""
    folder = root / "images"
    if not (folder / "captions.csv").exists():
        write_imagefolder(folder, n=24)
    return api.train(api.DataConfig(source=f"imagefolder:{folder}"), TrainConfig(epochs=epochs, batch_size=8,
                     device="cpu"), small_image_config(image), out=root / f"orig-{(image or CNN)['name']}",
                     progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagemodel")
    return root, make_tiny_image_run(root)


def test_trained_run_records_the_image_encoder_and_metrics(trained):
    _, run = trained
    assert run.config["data"]["modality"] == "image" and run.config["model"]["modality"] == "image"
    assert run.config["model"]["extra"]["image"] == {**CNN, "path": None, "trainable_blocks": 0}
    assert isinstance(run.model, ImageTextModel)
    splits = run.metrics["splits"]
    # 20 training images, one held out for calibration (3%, at least one), two captions each
    assert splits["train"]["n"] == 38 and splits["test"]["n"] == 4 and splits["calibration"]["n"] == 2
    assert 0 < splits["test"]["pool64"]["g2t_mrr"] <= 1


def test_protocol_shapes_and_fusion_reads_the_image(trained):
    _, run = trained
    prepared = api.load_run_data(run, progress=False)
    model = run.model.eval()
    assert isinstance(model, ModalityModel)
    batch = prepared.data.batch(torch.tensor([0, 2, 4]))
    assert isinstance(batch.x, ImageInput) and batch.x.kind == "pixels" and batch.x.values.shape == (3, 3, 16, 16)
    # the image recipe is a two-tower model (no fusion module, no matching head); a config that asks for
    # fusion layers builds the module over the image's patch tokens
    assert model.fusion is None and model.config.fusion_layers == 0 and model.config.matching_weight == 0
    fusing = ImageTextModel(ModelConfig.from_dict({**model.config.to_dict(), "fusion_layers": 2})).eval()
    with torch.no_grad():
        zx, zt = model.encode_x(batch.x), model.encode_text(batch.text)
        tokens, mask, pooled = model.item_states(batch.x)
        assert torch.equal(model.image_encoder.pooled(batch.x), pooled)  # a trainable top: its whole pass
        fused = fusing.fuse(batch.x, batch.text)
        other = fusing.fuse(batch.x.select(torch.tensor([1, 2, 0])), batch.text)
    assert zx.shape == zt.shape == (3, 16)
    assert torch.allclose(zx.norm(dim=1), torch.ones(3)) and torch.allclose(zt.norm(dim=1), torch.ones(3))
    assert tokens.shape == (3, 16, 8) and pooled.shape == (3, 8) and bool(mask.all())
    assert fused.shape == (3, 16) and fusing.match_logits(fused).shape == (3,)
    assert not torch.allclose(fused, other)                    # text tokens attend to the image's patches
    assert model.sim(zx, zt).shape == (3, 3)
    student = copy.deepcopy(model).train()                    # train mode moves BatchNorm statistics
    loss = student.training_loss(prepared.data.batch(torch.arange(8)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert student.pair_losses(prepared.data.batch(torch.arange(8))).shape == (8,)


def test_saved_model_reloads_identically(trained):
    _, run = trained
    prepared = api.load_run_data(run, progress=False)
    batch = prepared.data.batch(torch.arange(6))
    reloaded = Run.load(run.path).model
    with torch.no_grad():
        assert torch.equal(run.model.eval().encode_text(batch.text), reloaded.encode_text(batch.text))
        assert torch.equal(run.model.encode_x(batch.x), reloaded.encode_x(batch.x))


def test_efficientnet_model_trains_only_the_heads(tmp_path):
    run = make_tiny_image_run(tmp_path, {"name": "efficientnet-lite0", "image_size": 32}, epochs=1)
    model = run.model
    assert isinstance(model, ImageTextModel) and list(model.image_encoder.parameters()) == []
    assert model.x_projection.net[0].in_features == 1280 and model.image_encoder.token_width == 320
    prepared = api.load_run_data(run, progress=False)
    x = prepared.data.batch(torch.arange(4)).x
    assert x.kind == "tokens" and x.values.shape == (4, 1, 320) and x.pooled.shape == (4, 1280)
    assert 0 < run.metrics["splits"]["val"]["pool64"]["g2t_mrr"] <= 1
    # the item embedding reads the cached pooled features alone: the same values as through the whole top,
    # without converting the patch tokens it never reads
    from graphdel.encoders.image_base import FrozenFeatures

    with torch.no_grad():
        whole = model.x_projection(model.item_states(x)[2])
        model.image_encoder.top.forward = lambda *_: pytest.fail("read the patch tokens")
        assert torch.equal(model.encode_x(x), whole)
    assert isinstance(model.image_encoder.top, FrozenFeatures)


def test_image_model_recommends_its_multidelete_settings(trained, monkeypatch):
    from graphdel.unlearning import MultiDeleteConfig, parse_overrides

    _, run = trained
    merged = api.with_model_defaults(run.model, "MultiDelete", ["lr=5e-4"])
    cfg = parse_overrides(MultiDeleteConfig, merged)
    assert (cfg.representation, cfg.similarity_target, cfg.beta, cfg.lr) == ("similarity", "calibrated", 2.5,
                                                                             5e-4)
    assert (cfg.alpha, cfg.pair_weight, cfg.ukr_split) == (4.0, 1.0, "dr")
    assert cfg.stop_margin == 0.0          # stops at the calibration reference itself, as on molecules
    assert api.with_model_defaults(run.model, "neggrad", ["lr=1e-5"]) == ["lr=1e-5"]     # nothing recommended
    assert api.with_model_defaults(run.model, "multidelete", {"lr": 2e-4})["lr"] == 2e-4
    monkeypatch.setattr(ImageTextModel, "unlearning_defaults", {"multidelete": {"gone_key": 1, "alpha": 3.0}})
    assert api.with_model_defaults(run.model, "multidelete", None) == ["alpha=3.0"]    # unknown keys left out
