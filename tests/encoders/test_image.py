"""Image encoders on tiny generated images: shapes, the frozen/trainable split, the feature cache."""

from __future__ import annotations

import pytest
import torch

from graphdel.encoders.image import (IMAGE_ENCODERS, LITE0_POOLED_WIDTH, LITE0_TOKEN_WIDTH, EfficientNetLite0,
                                     ImageEncoder, ImageEncoderConfig, ImageInput, SmallCNN, encode_frozen_images,
                                     load_efficientnet_lite0, normalise_pixels)
from graphdel.errors import ConfigError
from tests.mapped_memory import mapped_file


def pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_registry_and_config_validation():
    assert set(IMAGE_ENCODERS) >= {"efficientnet-lite0", "cnn", "hf"}
    assert ImageEncoderConfig().name == "efficientnet-lite0"
    with pytest.raises(ConfigError, match="unknown image encoder 'resnet'"):
        ImageEncoderConfig(name="resnet")
    with pytest.raises(ConfigError, match="needs image.path"):
        ImageEncoderConfig(name="hf")
    with pytest.raises(ConfigError, match="efficientnet-lite0 only"):
        ImageEncoderConfig(name="cnn", trainable_blocks=1)
    with pytest.raises(ConfigError, match="has 16 MBConv blocks"):
        ImageEncoderConfig(trainable_blocks=17)
    with pytest.raises(ConfigError, match="image_size >= 32"):
        ImageEncoderConfig(image_size=16)
    with pytest.raises(ConfigError, match=r"unknown image encoder keys \['size'\]"):
        ImageEncoderConfig.from_dict({"size": 3})
    cfg = ImageEncoderConfig(name="cnn", image_size=16, cnn_channels=[4, 8])
    assert ImageEncoderConfig.from_dict(cfg.to_dict()) == cfg


def test_normalise_pixels_maps_to_minus_one_one():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert normalise_pixels(x)[0, 0, 0].tolist() == [-1.0, 1.0]


def test_small_cnn_shapes_and_pooling():
    torch.manual_seed(0)
    cnn = SmallCNN([4, 8]).eval()
    tokens, mask, pooled = cnn(ImageInput(pixels(3, 16)))
    assert tokens.shape == (3, 16, 8) and mask.shape == (3, 16) and bool(mask.all())
    assert pooled.shape == (3, 8) and torch.allclose(pooled, tokens.mean(1))
    with pytest.raises(ValueError, match="reads pixels"):
        cnn(ImageInput(torch.zeros(1, 4, 8), torch.zeros(1, 8), "tokens"))


def test_efficientnet_frozen_features_match_the_packaged_network():
    cfg = ImageEncoderConfig(image_size=64)
    x = pixels(2, 64)
    out = EfficientNetLite0.frozen(cfg)(x)
    assert out.kind == "tokens" and out.values.dtype == torch.float16
    assert out.values.shape == (2, 4, LITE0_TOKEN_WIDTH) and out.pooled.shape == (2, LITE0_POOLED_WIDTH)
    net = load_efficientnet_lite0(64)
    with torch.no_grad():
        head = net.extract_features(normalise_pixels(x))                  # the package's own forward
    assert torch.allclose(out.pooled, head.mean(dim=(2, 3)), atol=1e-4)
    # the packaged ImageNet weights are loaded (not a random init): the stem weights are the file's
    state = torch.load(__import__("graphdel.encoders.image", fromlist=["x"]).efficientnet_lite0_weights(),
                       weights_only=True)
    assert torch.equal(net._conv_stem.weight, state["_conv_stem.weight"])


def test_efficientnet_trainable_top_continues_the_frozen_bottom():
    x = pixels(2, 64, seed=1)
    frozen0 = EfficientNetLite0.frozen(ImageEncoderConfig(image_size=64))(x)
    cfg2 = ImageEncoderConfig(image_size=64, trainable_blocks=2)
    cached = EfficientNetLite0.frozen(cfg2)(x)
    assert cached.kind == "feature_map" and cached.values.shape == (2, 192, 2, 2) and cached.pooled is None
    enc = ImageEncoder(cfg2).eval()
    assert len(enc.top.blocks) == 2 and sum(p.numel() for p in enc.parameters()) > 0
    with torch.no_grad():
        tokens, mask, pooled = enc(cached)
    assert tokens.shape == (2, 4, 320) and pooled.shape == (2, 1280)
    assert torch.allclose(pooled, frozen0.pooled, atol=2e-2, rtol=1e-2)   # float16 cache in between
    assert torch.allclose(tokens, frozen0.values.float(), atol=2e-2, rtol=1e-2)
    frozen_top = ImageEncoder(ImageEncoderConfig(image_size=64))
    assert list(frozen_top.parameters()) == []                          # frozen: nothing in the model


def test_encode_frozen_images_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    cfg = ImageEncoderConfig(name="cnn", image_size=16, cnn_channels=[4])
    images = pixels(5, 16)
    calls = []

    def load(i):
        calls.append(i)
        return images[i]

    keys = [f"img{i}" for i in range(5)]
    first = encode_frozen_images(keys, load, cfg, batch_size=2, progress=False)
    assert first.kind == "pixels" and torch.equal(first.values, images) and calls == [0, 1, 2, 3, 4]
    entries = [p for p in (tmp_path / "images").iterdir() if p.is_dir()]
    assert [sorted(q.name for q in e.iterdir()) for e in entries] == [["values.npy"]]  # pixels: no pooled
    again = encode_frozen_images(keys, load, cfg, progress=False)
    assert calls == [0, 1, 2, 3, 4] and torch.equal(again.values, images)  # read from the cache
    assert mapped_file(again.values) == str(entries[0] / "values.npy")  # mapped, not read into memory
    encode_frozen_images(keys[:4] + ["other"], load, cfg, progress=False)  # another image: another key
    assert len(calls) == 10


def test_frozen_tokens_and_pooled_features_are_cached_in_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    cfg = ImageEncoderConfig(image_size=64)
    images = pixels(3, 64, seed=2)
    whole = EfficientNetLite0.frozen(cfg)(images)  # one batch of all three
    first = encode_frozen_images(["a", "b", "c"], lambda i: images[i], cfg, batch_size=2, progress=False)
    again = encode_frozen_images(["a", "b", "c"], lambda i: pytest.fail("cached"), cfg, progress=False)
    for got in (first, again):
        assert got.kind == "tokens" and got.values.dtype == torch.float16 and got.pooled.dtype == torch.float32
        assert got.values.shape == (3, 4, LITE0_TOKEN_WIDTH) and got.pooled.shape == (3, LITE0_POOLED_WIDTH)
        assert torch.allclose(got.pooled, whole.pooled, atol=1e-5)  # rows in order across the batches
        assert torch.allclose(got.values.float(), whole.values.float(), atol=1e-3)


def test_hf_vision_model_from_a_local_folder(tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path / "vit"
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    cfg = ImageEncoderConfig(name="hf", path=str(folder), image_size=16)
    out = IMAGE_ENCODERS["hf"].frozen(cfg)(pixels(3, 16))
    assert out.values.shape == (3, 5, 16) and out.pooled.shape == (3, 16)  # CLS + 2x2 patches
    enc = ImageEncoder(cfg)
    assert (enc.token_width, enc.pooled_width) == (16, 16)
    with pytest.raises(ConfigError, match="no Hugging Face config.json"):
        IMAGE_ENCODERS["hf"].frozen(ImageEncoderConfig(name="hf", path=str(tmp_path / "nothing")))


def test_hf_fingerprint_follows_the_weights_contents(tmp_path, monkeypatch):
    """Two folders with the same file names and sizes but other weights give other cache keys."""
    from graphdel.encoders import image_hf

    folders = []
    for name, byte in (("a", b"\x01"), ("b", b"\x02")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(byte * 64)
        folders.append(folder)
    keys = []
    for folder in folders:
        monkeypatch.setattr(image_hf, "resolve_hf_folder", lambda config, f=folder: f)
        keys.append(image_hf.HFVision.fingerprint(None))
    assert keys[0] != keys[1]
