"""The base class of the joint models: text encoder, projections, fusion module, matching head, the training
objective and Hugging Face-style saving; a subclass supplies the item encoder (:meth:`JointModel.item_states`).

The architecture is described in :mod:`graphdel.models.joint`, the module every name here is imported from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdel.encoders.text import TextEncoder
from graphdel.errors import ConfigError
from graphdel.models.config import ModelConfig
from graphdel.models.contrastive import contrastive_loss, gather_tokens, hard_negatives, positive_mask
from graphdel.models.layers import FusionModule, Projection
from graphdel.models.protocol import ModalityModule, PairBatch, TextFeatures
from graphdel.models.saving import load_model, save_model


@dataclass
class JointOutput:
    """What a forward pass over a batch of ``B`` true pairs returns.

    Attributes:
        z_x: ``[B, embed_dim]`` normalised item embeddings.
        z_t: ``[B, embed_dim]`` normalised text embeddings.
        sim: ``[B, B]`` cosine similarities (``sim[i, j]`` = item i vs text j).
        logits: ``[B, B]`` temperature-scaled similarities.
        fused: ``[B, fusion_dim]`` fused representation of the true pairs (``[B, fusion_dim + embed_dim]``
            with ``fusion_product``); ``None`` for a model without a fusion module (``fusion_layers`` 0).
        match_logits: ``[B]`` matching-head logits of the true pairs; ``None`` without a fusion module.
    """

    z_x: Tensor
    z_t: Tensor
    sim: Tensor
    logits: Tensor
    fused: Tensor | None
    match_logits: Tensor | None



class JointModel(ModalityModule):
    """Base class of the joint models; subclasses supply the item encoder (:meth:`item_states`).

    Args:
        config: :class:`ModelConfig`.
        item_width: width ``h_x`` of the item tokens and pooled item embedding.
    """

    modality: ClassVar[str] = ""

    def __init__(self, config: ModelConfig, item_width: int) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(config.text)
        text_width = self.text_encoder.width
        self.x_projection = Projection(item_width, config.embed_dim, config.dropout)
        self.text_projection = Projection(text_width, config.embed_dim, config.dropout)
        if config.fusion_product and config.matching_weight != 0:
            raise ConfigError("fusion_product is trained by the fusion stage only: set matching_weight to 0 "
                              f"(got {config.matching_weight})")
        for key in ("dropout", "fusion_dropout"):
            value = getattr(config, key)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"model config key {key!r}: must be in [0, 1) (got {value})")
        if config.fusion_layers < 0:
            raise ConfigError(f"model config key 'fusion_layers': must be >= 0 (got {config.fusion_layers})")
        if config.fusion_layers == 0 and (config.matching_weight != 0 or config.fusion_product):
            raise ConfigError("a model without a fusion module (fusion_layers 0) has no matching head to train: "
                              f"set matching_weight to 0 (got {config.matching_weight}) and fusion_product to "
                              "false")
        # fusion_layers 0: a two-tower model, retrieval by similarity only (the image recipe: its fusion module
        # never beat similarity, docs/results.md), with no module that would sit in the model untrained
        self.fusion: FusionModule | None = None
        self.match_head: nn.Linear | None = None
        if config.fusion_layers:
            self.fusion = FusionModule(text_width, item_width, config.fusion_dim, config.fusion_layers,
                                       config.fusion_heads,
                                       config.dropout if config.fusion_dropout is None else config.fusion_dropout,
                                       readout=config.fusion_readout,
                                       sink=config.fusion_sink, item_norm=config.fusion_item_norm)
            self.match_head = nn.Linear(config.fusion_dim + (config.embed_dim if config.fusion_product else 0), 1)
        # Learnable inverse temperature, stored as a log and clamped at 100 as in CLIP.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    # -- what subclasses provide -------------------------------------------------------------------
    def item_states(self, x: Any) -> tuple[Tensor, Tensor, Tensor]:
        """``(tokens [B, N, h_x], mask [B, N], pooled [B, h_x])`` of a batch of items."""
        raise NotImplementedError

    # -- the modality protocol ---------------------------------------------------------------------
    def encode_x(self, x: Any) -> Tensor:
        """``[B, embed_dim]`` normalised item embeddings."""
        return self.x_projection(self.item_states(x)[2])

    def encode_text(self, text: TextFeatures) -> Tensor:
        """``[B, embed_dim]`` normalised text embeddings."""
        return self.text_projection(self.text_encoder.sentence(text))

    @property
    def has_fusion(self) -> bool:
        """Whether the model has a fusion module and matching head (``fusion_layers`` above 0)."""
        return self.fusion is not None

    def _require_fusion(self, what: str) -> None:
        if self.fusion is None:
            raise ConfigError(f"the {self.modality or 'joint'} model has no fusion module (fusion_layers 0), so "
                              f"it has no {what}: unlearn with MultiDelete's representation='similarity'")

    def fuse(self, x: Any, text: TextFeatures, pairs: Tensor | None = None) -> Tensor:
        """``[B, fusion_dim]`` fused representation of (x_i, text_i) (``[B, fusion_dim + embed_dim]`` with
        ``fusion_product``); with ``pairs [P, 2]`` long, ``[P, ...]`` of (x of ``pairs[k, 0]``, text of
        ``pairs[k, 1]``), each item and text encoded once however many pairs name it.

        Raises:
            ConfigError: the model has no fusion module (``fusion_layers`` 0).
        """
        self._require_fusion("fused representation")
        item_tokens, item_mask, item_pooled = self.item_states(x)
        text_tokens, text_mask, text_pooled = self.text_encoder(text)
        fused = self.fusion(text_tokens, text_mask, item_tokens, item_mask, pairs)
        if not self.config.fusion_product:
            return fused
        z_x, z_t = self.x_projection(item_pooled), self.text_projection(text_pooled)
        if pairs is not None:
            z_x, z_t = z_x[pairs[:, 0]], z_t[pairs[:, 1]]
        return torch.cat([fused, self.config.embed_dim * z_x * z_t], dim=1)

    def sim(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        """``[B_x, B_t]`` cosine similarities of normalised embeddings."""
        return z_x @ z_t.t()

    def temperature_scale(self) -> Tensor:
        """The inverse temperature ``exp(logit_scale)``, clamped at 100."""
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def logits(self, z_x: Tensor, z_t: Tensor) -> Tensor:
        """``[B_x, B_t]`` InfoNCE logits: cosine similarity times the inverse temperature."""
        return self.sim(z_x, z_t) * self.temperature_scale()

    def match_logits(self, fused: Tensor) -> Tensor:
        """``[B]`` logit that each fused pair is a true pair (a :class:`ConfigError` without a fusion module)."""
        self._require_fusion("matching head")
        return self.match_head(fused).squeeze(-1)

    def fusion_modules(self) -> list[nn.Module]:
        """The modules the fusion stage trains (:mod:`graphdel.training.fusion`): the fusion module and the
        matching head (none without a fusion module). Everything else (encoders, projections, temperature)
        stays frozen there."""
        return [] if self.fusion is None else [self.fusion, self.match_head]

    # -- forward and losses ------------------------------------------------------------------------
    def forward(self, batch: PairBatch) -> JointOutput:
        """Embeddings, similarities and fused representation of a batch of true pairs."""
        item_tokens, item_mask, item_pooled = self.item_states(batch.x)
        text_tokens, text_mask, text_pooled = self.text_encoder(batch.text)
        z_x, z_t = self.x_projection(item_pooled), self.text_projection(text_pooled)
        if self.fusion is None:
            return JointOutput(z_x, z_t, self.sim(z_x, z_t), self.logits(z_x, z_t), None, None)
        fused = self.fusion(text_tokens, text_mask, item_tokens, item_mask)
        if self.config.fusion_product:
            fused = torch.cat([fused, self.config.embed_dim * z_x * z_t], dim=1)
        return JointOutput(z_x, z_t, self.sim(z_x, z_t), self.logits(z_x, z_t), fused, self.match_logits(fused))

    def training_loss(self, batch: PairBatch, generator: torch.Generator | None = None) -> Tensor:
        """Symmetric InfoNCE plus ``matching_weight`` times the hard-negative matching loss (scalar).

        On a process's shard of a global batch (``batch.shard``, data-parallel runs) the value is the
        global batch's loss on every process (so a method's loss bound decides alike everywhere) and the
        gradient is this process's share (see :func:`graphdel.distributed.global_value`)."""
        loss = self.loss_terms(batch, generator)["loss"]
        if batch.shard is not None:
            from graphdel.distributed import global_value

            loss = global_value(loss)
        return loss

    def loss_terms(self, batch: PairBatch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The training objective and its parts: ``loss``, ``contrastive``, ``matching``.

        On a shard of a global batch (``batch.shard``) the contrastive part is this shard's share of the
        global batch's InfoNCE (:meth:`sharded_contrastive`); the matching head draws its hard negatives
        within the shard. Values are per process (the training loop averages them)."""
        item_tokens, item_mask, item_pooled = self.item_states(batch.x)
        text_tokens, text_mask, text_pooled = self.text_encoder(batch.text)
        z_x, z_t = self.x_projection(item_pooled), self.text_projection(text_pooled)
        logits = self.logits(z_x, z_t)
        positives = positive_mask(batch, logits.size(0), logits.device)
        sharded = batch.shard is not None and batch.shard.world_size > 1
        if sharded:
            contrastive = self.sharded_contrastive(batch, z_x, z_t).mean()
        else:
            contrastive = contrastive_loss(logits, positives).mean()
        if self.config.matching_weight == 0:
            # the matching head is trained elsewhere (the fusion stage) or not at all: no fusion pass, and no
            # negative draws from the generator
            matching = contrastive.new_zeros(())
        elif sharded:
            matching = self._sharded_matching_loss(batch, z_x.detach(), z_t.detach(), item_tokens, item_mask,
                                                   text_tokens, text_mask, generator)
        else:
            matching = self._matching_loss(logits.detach(), positives, item_tokens, item_mask, text_tokens,
                                           text_mask, generator)
        loss = contrastive + self.config.matching_weight * matching
        return {"loss": loss, "contrastive": contrastive.detach(), "matching": matching.detach()}

    def sharded_contrastive(self, batch: PairBatch, z_x: Tensor, z_t: Tensor) -> Tensor:
        """``[b]`` per-pair symmetric InfoNCE of this process's ``b`` pairs against the whole global batch.

        The embeddings of every process's shard are gathered (with gradients flowing back to their
        owners, :func:`graphdel.distributed.gather_with_grad`), so the mean over all processes of this
        loss is :func:`contrastive_loss` of the global batch, and averaging the processes' gradients gives
        its gradient.

        Args:
            batch: a shard (``batch.shard`` set); ``batch.items`` gives multi-positive groups.
            z_x: ``[b, d]`` this shard's item embeddings.
            z_t: ``[b, d]`` this shard's text embeddings.
        """
        from graphdel import distributed

        all_x, all_t = distributed.gather_with_grad(z_x), distributed.gather_with_grad(z_t)  # [B, d]
        scale = self.temperature_scale()
        x2t, t2x = self.sim(z_x, all_t) * scale, self.sim(z_t, all_x) * scale  # [b, B] each
        b, device = z_x.size(0), z_x.device
        if batch.items is None:
            positives = torch.zeros(b, all_t.size(0), dtype=torch.bool, device=device)
            positives[torch.arange(b, device=device), batch.shard.start + torch.arange(b, device=device)] = True
        else:
            items = batch.items.to(device)
            positives = items[:, None] == distributed.gather(items)[None, :]
        # same targets as contrastive_loss: uniform over the pair's positives (rows and columns agree,
        # since pairs of one group share their positive set)
        targets = positives.float() / positives.float().sum(1, keepdim=True)
        g2t = -(targets * F.log_softmax(x2t, dim=1)).sum(1)
        t2g = -(targets * F.log_softmax(t2x, dim=1)).sum(1)
        return 0.5 * (g2t + t2g)

    def pair_losses(self, batch: PairBatch) -> Tensor:
        """``[B]`` per-pair symmetric InfoNCE loss of the true pairs within the batch."""
        out_x, out_t = self.encode_x(batch.x), self.encode_text(batch.text)
        logits = self.logits(out_x, out_t)
        return contrastive_loss(logits, positive_mask(batch, logits.size(0), logits.device))

    def _matching_loss(self, logits: Tensor, positives: Tensor, item_tokens: Tensor, item_mask: Tensor,
                       text_tokens: Tensor, text_mask: Tensor, generator: torch.Generator | None) -> Tensor:
        """ALBEF matching: each item gets a hard negative text and each text a hard negative item, drawn
        with probability softmax(similarity) over the batch's non-positives."""
        b = logits.size(0)
        if b < 2 or bool(positives.all()):
            return logits.new_zeros(())
        neg_text, neg_item = hard_negatives(logits, positives, generator)
        neg_text, neg_item = neg_text.to(item_tokens.device), neg_item.to(item_tokens.device)
        return self._true_vs_negatives(text_tokens, text_mask, item_tokens, item_mask,
                                       (text_tokens[neg_text], text_mask[neg_text]),
                                       (item_tokens[neg_item], item_mask[neg_item]))

    def _true_vs_negatives(self, text_tokens: Tensor, text_mask: Tensor, item_tokens: Tensor, item_mask: Tensor,
                           neg_text: tuple[Tensor, Tensor], neg_item: tuple[Tensor, Tensor]) -> Tensor:
        """Binary cross-entropy of the matching head: the ``b`` true pairs (label 1), each item with its
        negative text and each text with its negative item (label 0). ``neg_text`` = ``(tokens [b, T, h_t],
        mask [b, T])``, ``neg_item`` = ``(tokens [b, N, h_x], mask [b, N])``."""
        fused = torch.cat([
            self.fusion(text_tokens, text_mask, item_tokens, item_mask),
            self.fusion(neg_text[0], neg_text[1], item_tokens, item_mask),
            self.fusion(text_tokens, text_mask, neg_item[0], neg_item[1]),
        ])
        b = item_tokens.size(0)
        labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).to(fused.device)
        return F.binary_cross_entropy_with_logits(self.match_logits(fused), labels)

    def _sharded_matching_loss(self, batch: PairBatch, z_x: Tensor, z_t: Tensor, item_tokens: Tensor,
                               item_mask: Tensor, text_tokens: Tensor, text_mask: Tensor,
                               generator: torch.Generator | None) -> Tensor:
        """:meth:`_matching_loss` of a process's shard, equal to its share of the global batch's loss.

        Every process computes the global batch's similarities from the gathered embeddings and draws the
        hard negatives of the *global* batch with the shared generator (the draws a single process makes,
        and the generator stays in step for the next batches), then fuses its own pairs with their
        negatives, whose token states are gathered from the processes that own them (gradients flow back).
        Shapes: ``z_x``, ``z_t`` ``[b, d]``; tokens ``[b, N, h_x]`` / ``[b, T, h_t]`` with masks.
        """
        from graphdel import distributed

        all_x, all_t = distributed.gather(z_x), distributed.gather(z_t)  # [B, d], no gradient needed
        logits = self.logits(all_x, all_t)
        if batch.items is None:
            positives = torch.eye(logits.size(0), dtype=torch.bool, device=logits.device)
        else:
            all_items = distributed.gather(batch.items.to(logits.device))
            positives = all_items[:, None] == all_items[None, :]
        if logits.size(0) < 2 or bool(positives.all()):
            return logits.new_zeros(())
        neg_text, neg_item = hard_negatives(logits, positives, generator)  # [B] each, global positions
        mine = slice(batch.shard.start, batch.shard.start + z_x.size(0))
        neg_text, neg_item = neg_text[mine].to(item_tokens.device), neg_item[mine].to(item_tokens.device)
        all_text, all_text_mask = gather_tokens(text_tokens, text_mask)
        all_item, all_item_mask = gather_tokens(item_tokens, item_mask)
        return self._true_vs_negatives(text_tokens, text_mask, item_tokens, item_mask,
                                       (all_text[neg_text], all_text_mask[neg_text]),
                                       (all_item[neg_item], all_item_mask[neg_item]))

    # -- Hugging Face-style persistence ------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``model.safetensors`` and ``model_config.json`` into ``folder`` (atomically each)."""
        save_model(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs) -> "JointModel":
        """Rebuild a model saved by :meth:`save_pretrained` (safetensors only, no pickle)."""
        return load_model(folder, **kwargs)

