"""The small CNN image encoder, trained from scratch on pixels (``cnn``; see
:mod:`graphdel.encoders.image`)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from graphdel.encoders.image_base import (ImageEncoderConfig, ImageEncoderSpec, ImageInput, ImageTop,
                                         grid_tokens, normalise_pixels, register_image_encoder)
from graphdel.errors import ConfigError


class SmallCNN(ImageTop):
    """A CNN trained from scratch: per channel count ``c`` in ``channels``, a 3x3 stride-2 convolution,
    BatchNorm and ReLU.

    Shapes: pixels ``uint8 [B, 3, S, S]`` -> ``(tokens [B, h*w, c_last], mask [B, h*w], pooled [B, c_last])``
    with ``h = w = ceil(S / 2^len(channels))``; pooled is the mean of the tokens.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size=3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.token_width = self.pooled_width = c_in
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (ReLU) convolution weights and fresh BatchNorm parameters and statistics."""
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """``pixels uint8 [B, 3, S, S]`` -> ``(tokens [B, h*w, c_last], mask [B, h*w] all True,
        pooled [B, c_last])``, pooled the token mean (see the class docstring)."""
        if x.kind != "pixels":
            raise ValueError(f"the cnn image encoder reads pixels, got an input of kind {x.kind!r}")
        tokens = grid_tokens(self.net(normalise_pixels(x.values)))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask, tokens.mean(dim=1)


@register_image_encoder
class SmallCNNSpec(ImageEncoderSpec):
    """The small CNN trained from scratch (see :class:`SmallCNN`)."""

    name = "cnn"

    @classmethod
    def check(cls, config: ImageEncoderConfig) -> None:
        """Refuse ``trainable_blocks`` (the CNN is trained whole)."""
        if config.trainable_blocks:
            raise ConfigError("trainable_blocks applies to efficientnet-lite0 only (the cnn is trained whole)")

    @classmethod
    def stored_kind(cls, config: ImageEncoderConfig) -> str:
        """``pixels``: nothing is frozen."""
        return "pixels"

    @classmethod
    def fingerprint(cls, config: ImageEncoderConfig) -> str:
        """A constant (there are no frozen weights)."""
        return "cnn:pixels"

    @classmethod
    def frozen(cls, config: ImageEncoderConfig) -> None:
        """``None``: the pixels are stored as they are."""
        return None

    @classmethod
    def top(cls, config: ImageEncoderConfig) -> ImageTop:
        """A freshly initialised :class:`SmallCNN` with ``config.cnn_channels``."""
        return SmallCNN(config.cnn_channels)

