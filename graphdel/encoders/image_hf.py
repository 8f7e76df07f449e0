"""A frozen Hugging Face vision model from a local folder as the image encoder (``hf``; see
:mod:`graphdel.encoders.image`): never downloaded, its token states and pooled output cached."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from graphdel.encoders.image_base import (FrozenFeatures, ImageEncoderConfig, ImageEncoderSpec, ImageInput,
                                         ImageTop, register_image_encoder)
from graphdel.errors import ConfigError
from graphdel.io import cached_sha256_file


def resolve_hf_folder(config: ImageEncoderConfig) -> Path:
    """The local folder of an ``hf`` encoder (:class:`ConfigError` unless it holds a ``config.json``)."""
    if not config.path:
        raise ConfigError("the hf image encoder needs image.path: a local Hugging Face model folder")
    path = Path(config.path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"hf image encoder: no Hugging Face config.json in {path} (graphdel loads image "
                          "models from local folders only)")
    return path


def _hf_vision_width(path: Path) -> int:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path, local_files_only=True)
    cfg = getattr(cfg, "vision_config", None) or cfg
    width = getattr(cfg, "hidden_size", None)
    if not isinstance(width, int):
        raise ConfigError(f"hf image encoder {path}: unsupported model type {cfg.model_type!r} (needs a "
                          "transformer vision model with hidden_size, e.g. ViT or CLIP)")
    return width


@register_image_encoder
class HFVision(ImageEncoderSpec):
    """A frozen Hugging Face vision model from a local folder (see the module docstring)."""

    name = "hf"

    @classmethod
    def check(cls, config: ImageEncoderConfig) -> None:
        """Refuse a missing ``path`` and any ``trainable_blocks`` (the model is frozen)."""
        if not config.path:
            raise ConfigError("the hf image encoder needs image.path: a local Hugging Face model folder")
        if config.trainable_blocks:
            raise ConfigError("the hf image encoder is frozen: trainable_blocks must be 0")

    @classmethod
    def stored_kind(cls, config: ImageEncoderConfig) -> str:
        """``tokens``: the model's frozen token states and pooled output."""
        return "tokens"

    @classmethod
    def fingerprint(cls, config: ImageEncoderConfig) -> str:
        """``hf:`` and a SHA-256 of the contents of the folder's ``config.json`` and weight files."""
        path = resolve_hf_folder(config)
        h = hashlib.sha256((path / "config.json").read_bytes())
        for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f"{weights.name}:{cached_sha256_file(weights)}".encode())
        return f"hf:{h.hexdigest()}"

    @classmethod
    def frozen(cls, config: ImageEncoderConfig) -> Callable[[Tensor], ImageInput]:
        """The folder's image processor and (vision) model: ``pixels uint8 [N, 3, S, S]`` ->
        ``tokens [N, P, H]`` float16 (``last_hidden_state``) with ``pooled [N, H]`` (``pooler_output``, or
        the token mean). Raises :class:`ConfigError` when the folder has no image processor."""
        from transformers import AutoImageProcessor, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = resolve_hf_folder(config)
        try:
            processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"hf image encoder {path}: no image processor (preprocessor_config.json): {e}") from e
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        vision = getattr(model, "vision_model", None) or model

        def run(pixels: Tensor) -> ImageInput:
            images = [p.permute(1, 2, 0).numpy() for p in pixels]
            inputs = processor(images=images, return_tensors="pt")
            out = vision(pixel_values=inputs["pixel_values"])
            tokens = out.last_hidden_state
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                pooled = tokens.mean(dim=1)
            return ImageInput(tokens.contiguous().to(torch.float16), pooled.float().contiguous(), "tokens")

        return run

    @classmethod
    def top(cls, config: ImageEncoderConfig) -> ImageTop:
        """:class:`FrozenFeatures` as wide as the model's ``hidden_size`` (tokens and pooled)."""
        width = _hf_vision_width(resolve_hf_folder(config))
        return FrozenFeatures(width, width)

