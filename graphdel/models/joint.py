"""The joint model: unimodal encoders, projections into a shared space, a fusion module and a matching head.

Architecture (ALBEF-style, Li et al. 2021, with a graph in place of the image):

* an *item encoder* (a GNN for molecules; other modalities subclass :class:`JointModel`) gives item
  tokens ``[B, N, h_x]`` (node states) and a pooled item embedding ``[B, h_x]``;
* the text encoder (:class:`~graphdel.encoders.text.TextEncoder`) gives token states ``[B, T, h_t]``
  and a sentence embedding ``[B, h_t]``;
* projections map both pooled embeddings into a shared ``embed_dim`` space (L2-normalised), trained with
  symmetric InfoNCE and a learnable temperature (Radford et al. 2021);
* the fusion module lets text tokens cross-attend to item tokens (one or more transformer decoder layers);
  its first-token output is the fused representation ``h`` (with ``fusion_product``, followed by
  ``embed_dim * z_x * z_t``), and a matching head scores whether the pair is true. The head is trained
  either jointly with InfoNCE on in-batch hard negatives sampled by similarity (ALBEF's graph-text
  matching; ``matching_weight``), or -- the molecule recipe, :meth:`MoleculeTextModel.default_configs` --
  after it, by the fusion stage on the frozen encoders (:mod:`graphdel.training.fusion`).

The model implements :class:`~graphdel.models.protocol.ModalityModel`, so the unlearning engine can use it.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import Tensor, nn

from graphdel.encoders.graph import FrozenTrunkCache, GraphEncoderConfig, MoleculeGNN
from graphdel.encoders.text import TextEncoder, TextEncoderConfig
from graphdel.errors import ConfigError, RunError
from graphdel.io import atomic_write_bytes, atomic_write_json
from graphdel.models.protocol import ModalityModule, PairBatch, TextFeatures


@dataclass
class ModelConfig:
    """Hyperparameters of a joint model (saved as ``model_config.json`` beside the weights).

    Attributes:
        modality: which :data:`MODEL_TYPES` entry builds the model.
        graph: the molecule graph encoder (used by the molecule modality).
        text: the text encoder.
        embed_dim: width of the shared contrastive space.
        fusion_dim: width of the fusion module.
        fusion_layers: cross-attention layers in the fusion module.
        fusion_heads: attention heads in the fusion module.
        init_temperature: initial softmax temperature of InfoNCE.
        matching_weight: weight of the in-batch hard-negative matching loss in the main training objective
            (0: the matching head is left to the fusion stage, :mod:`graphdel.training.fusion`).
        fusion_product: the fused representation also carries ``embed_dim * z_x * z_t``, the elementwise
            product of the projected embeddings (whose sum is ``embed_dim`` times their cosine similarity;
            the factor makes its entries of order 1, like the fusion module's normalised output, so that
            the head learns both at one pace), beside the fusion module's output, as the knowledge-graph
            model's carries ``h * r * t``: the matching head then weighs the encoders' agreement dimension
            by dimension together with what cross-attention finds. Trained by the fusion stage only (needs
            ``matching_weight`` 0).
        dropout: dropout in projections and fusion.
        fusion_max_item_tokens: item tokens (atoms) the fusion module attends to per item; larger items
            are truncated for fusion only (the pooled embedding still sees every atom). Without a cap one
            peptide of 400 atoms pads a whole batch to 400 tokens and dominates the step time.
        extra: modality-specific settings (e.g. the knowledge graph's relation count).
    """

    modality: str = "molecule"
    graph: GraphEncoderConfig = field(default_factory=GraphEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 256
    fusion_dim: int = 128
    fusion_layers: int = 1
    fusion_heads: int = 4
    init_temperature: float = 0.07
    matching_weight: float = 1.0
    fusion_product: bool = False
    dropout: float = 0.1
    fusion_max_item_tokens: int = 96
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The configuration as a plain (JSON-ready) dict, nested encoder configs included."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild a :class:`ModelConfig` from :meth:`to_dict`'s output."""
        d = dict(d)
        d["graph"] = GraphEncoderConfig(**d.get("graph", {}))
        d["text"] = TextEncoderConfig(**d.get("text", {}))
        return cls(**d)


@dataclass
class JointOutput:
    """What a forward pass over a batch of ``B`` true pairs returns.

    Attributes:
        z_x: ``[B, embed_dim]`` normalised item embeddings.
        z_t: ``[B, embed_dim]`` normalised text embeddings.
        sim: ``[B, B]`` cosine similarities (``sim[i, j]`` = item i vs text j).
        logits: ``[B, B]`` temperature-scaled similarities.
        fused: ``[B, fusion_dim]`` fused representation of the true pairs (``[B, fusion_dim + embed_dim]``
            with ``fusion_product``).
        match_logits: ``[B]`` matching-head logits of the true pairs.
    """

    z_x: Tensor
    z_t: Tensor
    sim: Tensor
    logits: Tensor
    fused: Tensor
    match_logits: Tensor


class Projection(nn.Module):
    """Two-layer MLP into the shared space followed by L2 normalisation: ``[B, d_in] -> [B, d_out]``."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_in, d_out))

    def forward(self, h: Tensor) -> Tensor:
        """``h [B, d_in]`` -> ``[B, d_out]``, unit L2 norm."""
        return F.normalize(self.net(h), dim=-1)


class FusionModule(nn.Module):
    """Text tokens cross-attend to item tokens; the first text position is the fused representation.

    Each layer is a pre-norm transformer decoder layer: self-attention over text tokens, cross-attention
    from text tokens to item tokens, feed-forward.

    Shapes: ``text [B, T, d_t]``, ``text_mask [B, T]``, ``item [B, N, d_x]``, ``item_mask [B, N]``
    -> ``[B, d]``.
    """

    def __init__(self, d_text: int, d_item: int, d: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.text_in = nn.Linear(d_text, d)
        self.item_in = nn.Linear(d_item, d)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d, heads, dim_feedforward=2 * d, dropout=dropout, batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, text: Tensor, text_mask: Tensor, item: Tensor, item_mask: Tensor) -> Tensor:
        """``text [B, T, d_t]``, ``text_mask [B, T]``, ``item [B, N, d_x]``, ``item_mask [B, N]`` (True at
        real positions) -> the fused representation ``[B, d]`` (the first text position after the last
        layer)."""
        h = self.text_in(text)
        memory = self.item_in(item)
        for layer in self.layers:
            h = layer(h, memory, tgt_key_padding_mask=~text_mask, memory_key_padding_mask=~item_mask)
        return self.norm(h[:, 0])


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
        self.fusion = FusionModule(text_width, item_width, config.fusion_dim, config.fusion_layers,
                                   config.fusion_heads, config.dropout)
        if config.fusion_product and config.matching_weight != 0:
            raise ConfigError("fusion_product is trained by the fusion stage only: set matching_weight to 0 "
                              f"(got {config.matching_weight})")
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
        return self.text_projection(self.text_encoder(text)[2])

    def fuse(self, x: Any, text: TextFeatures) -> Tensor:
        """``[B, fusion_dim]`` fused representation of (x_i, text_i) (``[B, fusion_dim + embed_dim]`` with
        ``fusion_product``)."""
        item_tokens, item_mask, item_pooled = self.item_states(x)
        text_tokens, text_mask, text_pooled = self.text_encoder(text)
        fused = self.fusion(text_tokens, text_mask, item_tokens, item_mask)
        if not self.config.fusion_product:
            return fused
        product = self.x_projection(item_pooled) * self.text_projection(text_pooled)
        return torch.cat([fused, self.config.embed_dim * product], dim=1)

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
        """``[B]`` logit that each fused pair is a true pair."""
        return self.match_head(fused).squeeze(-1)

    def fusion_modules(self) -> list[nn.Module]:
        """The modules the fusion stage trains (:mod:`graphdel.training.fusion`): the fusion module and the
        matching head. Everything else (encoders, projections, temperature) stays frozen there."""
        return [self.fusion, self.match_head]

    # -- forward and losses ------------------------------------------------------------------------
    def forward(self, batch: PairBatch) -> JointOutput:
        """Embeddings, similarities and fused representation of a batch of true pairs."""
        item_tokens, item_mask, item_pooled = self.item_states(batch.x)
        text_tokens, text_mask, text_pooled = self.text_encoder(batch.text)
        z_x, z_t = self.x_projection(item_pooled), self.text_projection(text_pooled)
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
        positives = _positive_mask(batch, logits.size(0), logits.device)
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
        return contrastive_loss(logits, _positive_mask(batch, logits.size(0), logits.device))

    def _matching_loss(self, logits: Tensor, positives: Tensor, item_tokens: Tensor, item_mask: Tensor,
                       text_tokens: Tensor, text_mask: Tensor, generator: torch.Generator | None) -> Tensor:
        """ALBEF matching: each item gets a hard negative text and each text a hard negative item, drawn
        with probability softmax(similarity) over the batch's non-positives."""
        b = logits.size(0)
        if b < 2 or bool(positives.all()):
            return logits.new_zeros(())
        neg_text, neg_item = _hard_negatives(logits, positives, generator)
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
        neg_text, neg_item = _hard_negatives(logits, positives, generator)  # [B] each, global positions
        mine = slice(batch.shard.start, batch.shard.start + z_x.size(0))
        neg_text, neg_item = neg_text[mine].to(item_tokens.device), neg_item[mine].to(item_tokens.device)
        all_text, all_text_mask = _gather_tokens(text_tokens, text_mask)
        all_item, all_item_mask = _gather_tokens(item_tokens, item_mask)
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


def _positive_mask(batch: PairBatch, b: int, device) -> Tensor:
    """``[B, B]`` bool: pairs sharing an item are positives of each other (the diagonal always is)."""
    if batch.items is None:
        return torch.eye(b, dtype=torch.bool, device=device)
    items = batch.items.to(device)
    return items[:, None] == items[None, :]


def _hard_negatives(logits: Tensor, positives: Tensor, generator: torch.Generator | None
                    ) -> tuple[Tensor, Tensor]:
    """ALBEF hard negatives: for each item a text and for each text an item, drawn with probability
    softmax(similarity) over the non-positives. ``logits``, ``positives`` ``[B, B]`` -> ``(neg_text [B],
    neg_item [B])`` long, on the CPU (the seeded generator is a CPU generator: same draws on every device)."""
    if not bool(torch.isfinite(logits).all()):
        # Sampling needs finite weights; the non-finite contrastive loss is reported by the caller.
        logits = torch.zeros_like(logits)
    logits, positives = logits.detach().float().cpu(), positives.cpu()
    weights = torch.softmax(logits, dim=1).masked_fill(positives, 0.0) + (~positives) * 1e-6
    neg_text = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    weights_t = torch.softmax(logits.t(), dim=1).masked_fill(positives.t(), 0.0) + (~positives.t()) * 1e-6
    neg_item = torch.multinomial(weights_t, 1, generator=generator).squeeze(1)
    return neg_text, neg_item


def _gather_tokens(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Token states ``[b, L, h]`` and mask ``[b, L]`` of every process, padded to the longest ``L`` and
    concatenated in rank order: ``[B, L_max, h]`` (with gradients to their owners) and ``[B, L_max]``."""
    from graphdel import distributed

    length = int(distributed.all_reduce_max(torch.tensor(float(tokens.size(1)))))
    if tokens.size(1) < length:
        pad = length - tokens.size(1)
        tokens = F.pad(tokens, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    return distributed.gather_with_grad(tokens), distributed.gather(mask)


def contrastive_loss(logits: Tensor, positives: Tensor) -> Tensor:
    """Per-pair symmetric InfoNCE with multi-positive soft targets.

    Args:
        logits: ``[B, B]`` item-vs-text logits.
        positives: ``[B, B]`` bool, true where item i and text j belong together.

    Returns:
        ``[B]``: for pair i, the mean of the item->text and text->item cross-entropies, each against the
        uniform distribution over i's positives.
    """
    targets = positives.float() / positives.float().sum(1, keepdim=True)
    g2t = -(targets * F.log_softmax(logits, dim=1)).sum(1)
    t2g = -(targets.t() * F.log_softmax(logits.t(), dim=1)).sum(1)
    return 0.5 * (g2t + t2g)


class MoleculeTextModel(JointModel):
    """Joint model over molecule graphs and text: a :class:`~graphdel.encoders.graph.MoleculeGNN` gives
    node states (the item tokens for fusion) and the pooled graph embedding."""

    modality = "molecule"

    @classmethod
    def default_configs(cls, quick: bool = False) -> tuple[dict, dict]:
        """The molecule recipe's defaults ``(model fields, training fields)``, applied by
        :func:`graphdel.api.train` to the fields a caller left at the generic defaults.

        The main loop trains the encoders and projections on the contrastive loss alone
        (``matching_weight`` 0); then the fusion stage (:mod:`graphdel.training.fusion`) trains the fusion
        module and matching head on the frozen encoders with half random, half hard negatives. The fusion
        module reads the first 64 caption tokens (a caption's name, size, classes and most of its
        functional groups; median caption length 92) and the head also reads ``z_x * z_t``
        (``fusion_product``). Trained jointly on in-batch hard negatives over 24 tokens the head stayed at
        its prior on ``drugs`` (balanced accuracy 0.5). The main loop's learning rate follows a cosine
        decay (validation pool-64 MRR 0.629 against 0.604 at a constant rate, 15 epochs). The stage runs 2
        epochs: the fewest whose validation ``match_bal_acc`` is within 0.02 of 10 epochs' (0.807 against
        0.814), at a fifth of the cost. Measured in
        docs/results.md, "The fusion stage and the molecule recipe"."""
        text = {**asdict(TextEncoderConfig()), "fusion_tokens": 64}
        model = {"matching_weight": 0.0, "fusion_product": True, "text": text}
        train = {"fusion_epochs": 4 if quick else 2, "fusion_lr": 1e-3, "fusion_hard_fraction": 0.5,
                 "fusion_hard_pool": 1, "lr_schedule": "cosine"}
        return model, train

    @property
    def unlearning_defaults(self) -> dict:
        """Recommended MultiDelete settings (see :func:`graphdel.api.with_model_defaults`).

        Retrieval reads only the cosine similarities (the fusion module does not rank), so decoupling and
        retention act on them: each deleted pair's similarity moves to where it would rank among
        never-trained distractor texts the way a calibration pair of the same standing ranks
        (``calibrated``: the deleted pairs' ranks are matched to the calibration pairs' by quantile), so
        that the deleted pairs end up distributed like never-seen pairs rather than all at the level of an
        unrelated text (``pairwise``, which forgot some pairs far more than Retrain does); both splits'
        unimodal embeddings are held with weight 5 and the retained pairs' similarities with weight 2. Only
        the top graph layer and the two projections are updated: the bottom layers' node states are then
        computed once per molecule and shared with the teacher (:meth:`share_frozen_states`).

        Measured on ``drugs`` (docs/results.md, "Per-pair parity with Retrain"): on the development request
        (5% of the training molecules, seed 0) ``calibrated`` took Df-vs-Dr AUC from 0.765 (``pairwise``)
        to 0.640 against Retrain's 0.649 with Df within 0.011 of Retrain's, at 14% of Retrain's time (24
        epochs, against 5% for ``pairwise``); evaluating every 3rd epoch (``eval_every``) instead of every
        one gave the same scores (Df 0.789, validation within 0.001) for a third of the evaluations. The
        requests it was then run on without changes are in the same section. Earlier choices (``pairwise`` era): updating every weight did as well in as many
        epochs at 18% of Retrain's time; alpha 1 loses up to 0.018 test MRR; a higher lr, a smaller batch,
        beta 1-2 or an lr warm-up lose 0.015-0.045 test MRR; the engine's defaults (fused representation,
        lr 1e-4, every weight) barely move the similarities."""
        top = self.config.graph.layers - 1
        trainable = [f"graph_encoder.convs.{top}", f"graph_encoder.norms.{top}", "x_projection", "text_projection"]
        if self.graph_encoder.uses_edges:
            trainable.append(f"graph_encoder.bond_encoders.{top}")
        return {"multidelete": {"representation": "similarity", "similarity_target": "calibrated", "lr": 3e-4,
                                "epochs": 24, "alpha": 2.0, "beta": 5.0, "ukr_split": "both", "smooth": 1,
                                "stop_margin": 0.02, "eval_every": 3, "trainable": ",".join(trainable)}}

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, config.graph.hidden)
        self.graph_encoder = MoleculeGNN(config.graph)

    def encode_x(self, x: Any) -> Tensor:
        """``[B, embed_dim]`` normalised molecule embeddings (the pooled graph embedding, projected; the
        padded atom tokens only the fusion module needs are not built)."""
        return self.x_projection(self.graph_encoder(x)[1])

    @contextmanager
    def share_frozen_states(self, *others: nn.Module) -> Iterator[None]:
        """While active, the graph encoders of this model and of ``others`` compute the node states of the
        bottom layers that are frozen in this model (no trainable parameter) once per molecule and share
        them (:class:`~graphdel.encoders.graph.FrozenTrunkCache`). A model of ``others`` joins only if its
        bottom layers are equal to this model's. Nothing is cached when no bottom layer is frozen.

        The unlearning engine holds this around a run whose ``trainable`` setting leaves the bottom of the
        graph encoder frozen: the student and its teacher then share those states. Nested in an active one
        (the fusion stage's, and the evaluation it runs after an epoch) it keeps the active cache, which
        checks by itself that its layers are unchanged."""
        depth = self.graph_encoder.frozen_depth()
        if depth == 0 or self.graph_encoder.trunk_cache is not None:
            yield
            return
        mine = self.graph_encoder.bottom_state(depth)
        encoders = [self.graph_encoder]
        for other in others:
            enc = getattr(other, "graph_encoder", None)
            same_shape = isinstance(enc, MoleculeGNN) and enc.config == self.graph_encoder.config
            if same_shape and enc is not self.graph_encoder:
                theirs = enc.bottom_state(depth)
                if all(a.shape == b.shape and torch.equal(a, b.to(a.device)) for a, b in zip(mine, theirs)):
                    encoders.append(enc)
        cache = FrozenTrunkCache(depth, [t for enc in encoders for t in enc.bottom_state(depth)])
        for enc in encoders:
            enc.trunk_cache = cache
        try:
            yield
        finally:
            for enc in encoders:
                enc.trunk_cache = None

    def item_states(self, x) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (a batch of ``B`` molecules) -> ``(tokens [B, N, hidden], mask [B, N], pooled [B, hidden])``:
        the atom states padded per molecule (at most ``fusion_max_item_tokens`` atoms each) for the fusion
        module, and the pooled graph embedding."""
        from torch_geometric.utils import to_dense_batch

        nodes, pooled = self.graph_encoder(x)
        largest = int((x.ptr[1:] - x.ptr[:-1]).max()) if x.num_graphs else 0
        tokens, mask = to_dense_batch(nodes, x.batch, batch_size=x.num_graphs,
                                      max_num_nodes=min(largest, self.config.fusion_max_item_tokens))
        return tokens, mask, pooled


MODEL_TYPES: dict[str, type[JointModel]] = {"molecule": MoleculeTextModel}
"""Modality name -> joint model class; other modalities register their subclass here."""


def build_model(config: ModelConfig) -> JointModel:
    """Instantiate the joint model for ``config.modality``."""
    if config.modality not in MODEL_TYPES:
        raise ValueError(f"unknown modality {config.modality!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[config.modality](config)


# -- saving and loading (graphdel.models.persistence re-exports these) -------------------------------------
# Here, not in persistence.py: loading rebuilds the class of MODEL_TYPES above, and JointModel's own
# save_pretrained/from_pretrained call these, so a persistence module of its own would import this one and be
# imported by it.

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"


def save_model(model, folder: str | Path) -> None:
    """Write ``model.safetensors`` (contiguous, shared tensors cloned) and ``model_config.json``."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    # One metadata entry only: safetensors writes the metadata map in hash-map order, which changes from
    # one call to the next, so two entries made identical weights hash differently (seen on CPU: same
    # tensors, different file bytes). With one entry the file, and the certificate's weights hash, is a
    # function of the weights alone.
    atomic_write_bytes(save(state, metadata={"format": "pt"}), folder / WEIGHTS_FILE)
    atomic_write_json(model.config.to_dict(), folder / CONFIG_FILE)


def load_model(folder: str | Path, *, map_location: str = "cpu"):
    """Rebuild the model saved in ``folder`` and load its weights strictly."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise RunError(f"{folder} holds no saved model ({WEIGHTS_FILE} and {CONFIG_FILE} expected)")
    config = ModelConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    model = build_model(config)
    try:
        state = load_file(folder / WEIGHTS_FILE, device=map_location)
    except Exception as e:
        raise RunError(f"cannot read weights {folder / WEIGHTS_FILE}: {e}") from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RunError(f"weights in {folder} do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    return model
