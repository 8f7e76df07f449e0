"""What an image encoder is: its configuration, the input a batch carries (:class:`ImageInput`), the trainable
top inside the joint model (:class:`ImageTop`), what a registered encoder provides (:class:`ImageEncoderSpec`)
and the registry (:data:`IMAGE_ENCODERS`).

The built-in encoders register themselves when their modules are imported (``image_efficientnet``,
``image_cnn``, ``image_hf``); :mod:`graphdel.encoders.image` imports all three, so import names from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Callable, ClassVar

import torch
from torch import Tensor, nn

from graphdel.errors import ConfigError
from graphdel.registry import Registry

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
#: Kinds of :class:`ImageInput`: raw pixels, frozen patch tokens plus pooled features, or a frozen
#: feature map entering trainable convolutional blocks.
INPUT_KINDS = ("pixels", "tokens", "feature_map")


@dataclass
class ImageEncoderConfig:
    """Hyperparameters of the image side (stored in ``ModelConfig.extra["image"]``).

    Attributes:
        name: a key of :data:`IMAGE_ENCODERS`: ``efficientnet-lite0``, ``cnn`` or ``hf``.
        path: the local Hugging Face folder (``hf`` only).
        image_size: side ``S`` of the square RGB input in pixels (images are resized, shorter side first,
            and centre-cropped). 160 by default: EfficientNet-Lite0 costs a quarter less than at its native
            224 and half as much cache, measured 1.4 s per 64 images on 2 CPU cores (224: 4.6 s).
        trainable_blocks: ``efficientnet-lite0`` only: how many of its last MBConv blocks (with the head)
            are fine-tuned; 0 = frozen, features cached.
        cnn_channels: ``cnn`` only: output channels of each stride-2 block.
    """

    name: str = DEFAULT_IMAGE_ENCODER
    path: str | None = None
    image_size: int = 160
    trainable_blocks: int = 0
    cnn_channels: list[int] = field(default_factory=lambda: [32, 64, 128])

    def __post_init__(self) -> None:
        spec = IMAGE_ENCODERS[self.name]  # ConfigError: unknown image encoder 'x'; known: cnn, ...
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConfigError(f"image.image_size must be an integer >= 8, got {self.image_size!r}")
        if isinstance(self.trainable_blocks, bool) or not isinstance(self.trainable_blocks, int) \
                or self.trainable_blocks < 0:
            raise ConfigError(f"image.trainable_blocks must be an integer >= 0, got {self.trainable_blocks!r}")
        self.cnn_channels = [int(c) for c in self.cnn_channels]
        if not self.cnn_channels or any(c < 1 for c in self.cnn_channels):
            raise ConfigError(f"image.cnn_channels must be positive integers, got {self.cnn_channels!r}")
        spec.check(self)

    def to_dict(self) -> dict:
        """The configuration as a plain (JSON-ready) dict; :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ImageEncoderConfig":
        """Build from a dict (``None`` or ``{}``: the defaults). Unknown keys raise :class:`ConfigError`."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown image encoder keys {unknown}; valid: {sorted(known)}")
        return cls(**d)


@dataclass
class ImageInput:
    """The non-text side ``x`` of a batch of ``B`` images: what enters the trainable top of the encoder.

    Attributes:
        values: ``uint8 [B, 3, S, S]`` pixels (``kind="pixels"``), ``[B, P, C]`` frozen patch tokens
            (``"tokens"``, float16 in the cache) or a ``[B, C, h, w]`` frozen feature map (``"feature_map"``).
        pooled: ``[B, C']`` frozen pooled features (``"tokens"`` only), else ``None``.
        kind: one of :data:`INPUT_KINDS`.
    """

    values: Tensor
    pooled: Tensor | None = None
    kind: str = "pixels"

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"unknown image input kind {self.kind!r}; known: {INPUT_KINDS}")

    def __len__(self) -> int:
        return self.values.size(0)

    def select(self, index: Tensor) -> "ImageInput":
        """Images ``index`` (``[B']`` long), in that order."""
        return ImageInput(self.values[index], None if self.pooled is None else self.pooled[index], self.kind)

    def to(self, device: torch.device | str) -> "ImageInput":
        """The same input (values and pooled features) on ``device``."""
        pooled = None if self.pooled is None else self.pooled.to(device, non_blocking=True)
        return ImageInput(self.values.to(device, non_blocking=True), pooled, self.kind)


def normalise_pixels(pixels: Tensor) -> Tensor:
    """``uint8 [B, 3, S, S]`` -> float ``[B, 3, S, S]`` in ``[-1, 1]`` (``(x / 255 - 0.5) / 0.5``: the
    EfficientNet-Lite input scaling, mean 127 and standard deviation 128 in 8-bit units)."""
    return pixels.float().div(255.0).sub(0.5).div(0.5)


def grid_tokens(feature_map: Tensor) -> Tensor:
    """A feature map ``[B, C, h, w]`` as tokens ``[B, h*w, C]`` (one per cell, row-major)."""
    return feature_map.flatten(2).transpose(1, 2)


class ImageTop(nn.Module):
    """Base of the trainable tops. Shapes: :class:`ImageInput` of ``B`` images -> ``(tokens [B, P, C],
    mask [B, P] bool, pooled [B, C'])`` with ``C = token_width`` and ``C' = pooled_width``."""

    token_width: int
    pooled_width: int

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (``B`` images) -> ``(tokens [B, P, token_width], mask [B, P] bool, pooled [B, pooled_width])``."""
        raise NotImplementedError

    def pooled(self, x: ImageInput) -> Tensor:
        """``[B, pooled_width]``: the pooled output of :meth:`forward` alone (what a two-tower model reads).
        Default: the whole forward pass; a top that can skip the tokens overrides it."""
        return self(x)[2]


class FrozenFeatures(ImageTop):
    """The top of a fully frozen encoder: the identity on cached ``(tokens, pooled)`` (no parameters)."""

    def __init__(self, token_width: int, pooled_width: int) -> None:
        super().__init__()
        self.token_width, self.pooled_width = token_width, pooled_width

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """Cached ``tokens [B, P, C]`` and ``pooled [B, C']`` as float32, with an all-True ``mask [B, P]``.

        Raises:
            ValueError: ``x`` is not of kind ``tokens`` with pooled features.
        """
        if x.kind != "tokens" or x.pooled is None:
            raise ValueError(f"a frozen image encoder reads cached tokens, got an input of kind {x.kind!r}")
        tokens = x.values.float()
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask, self.pooled(x)

    def pooled(self, x: ImageInput) -> Tensor:
        """The cached ``pooled [B, C']`` as float32, the tokens left unread (a two-tower model never reads
        them, and converting them to float32 on every call was work for nothing).

        Raises:
            ValueError: ``x`` is not of kind ``tokens`` with pooled features.
        """
        if x.kind != "tokens" or x.pooled is None:
            raise ValueError(f"a frozen image encoder reads cached tokens, got an input of kind {x.kind!r}")
        return x.pooled.float()


class ImageEncoderSpec:
    """What a name in :data:`IMAGE_ENCODERS` provides. Subclasses set ``name`` and ``stored_kind`` and
    implement the class methods."""

    name: ClassVar[str] = ""

    @classmethod
    def check(cls, config: ImageEncoderConfig) -> None:
        """Raise :class:`ConfigError` for settings this encoder cannot honour."""

    @classmethod
    def stored_kind(cls, config: ImageEncoderConfig) -> str:
        """The :attr:`ImageInput.kind` that :func:`encode_frozen_images` stores."""
        raise NotImplementedError

    @classmethod
    def fingerprint(cls, config: ImageEncoderConfig) -> str:
        """A string that changes whenever the frozen part's weights change (part of the cache key)."""
        raise NotImplementedError

    @classmethod
    def frozen(cls, config: ImageEncoderConfig) -> Callable[[Tensor], ImageInput] | None:
        """The frozen bottom, ``pixels uint8 [N, 3, S, S] -> ImageInput`` (run under inference mode), or
        ``None`` when nothing is frozen (the pixels are stored)."""
        raise NotImplementedError

    @classmethod
    def top(cls, config: ImageEncoderConfig) -> ImageTop:
        """A freshly built trainable top."""
        raise NotImplementedError


IMAGE_ENCODERS: Registry[type[ImageEncoderSpec]] = Registry("image encoder", unknown_error=ConfigError)
"""Registry of image encoders by name (see the module docstring)."""


def register_image_encoder(cls: type[ImageEncoderSpec], *, overwrite: bool = False) -> type[ImageEncoderSpec]:
    """Class decorator registering an :class:`ImageEncoderSpec` under ``cls.name``; another class under a
    taken name is refused (``ValueError``) unless ``overwrite``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a name")
    return IMAGE_ENCODERS.register(cls.name, cls, overwrite=overwrite)

