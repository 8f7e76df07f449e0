"""The configuration of a joint model: what :func:`graphdel.models.registry.build_model` builds from and
``model_config.json`` holds beside the saved weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphdel.config import ConfigMixin
from graphdel.encoders.graph import GraphEncoderConfig
from graphdel.encoders.text import TextEncoderConfig


@dataclass
class ModelConfig(ConfigMixin):
    """Hyperparameters of a joint model (saved as ``model_config.json`` beside the weights).

    Attributes:
        modality: which :data:`~graphdel.models.registry.MODEL_TYPES` entry builds the model.
        graph: the molecule graph encoder (used by the molecule modality).
        text: the text encoder.
        embed_dim: width of the shared contrastive space.
        fusion_dim: width of the fusion module.
        fusion_layers: cross-attention layers in the fusion module; 0: no fusion module and no matching
            head (a two-tower model that retrieves by similarity alone; MultiDelete then needs
            ``representation="similarity"``, and ``matching_weight`` must be 0).
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
        fusion_readout: what of the fusion module's text positions is the fused representation:
            ``"first"`` (the first position) or ``"mean"`` (the masked mean of all of them)
            (:class:`~graphdel.models.layers.FusionModule`).
        fusion_sink: the fusion module's cross-attention also sees one learned item token, so that it can
            count the atoms (item tokens) that match a caption token.
        fusion_item_norm: the fusion module layer-normalises the item tokens it attends to
            (:class:`~graphdel.models.layers.FusionModule`, ``item_norm``).
        dropout: dropout in the projections, and in the fusion module unless ``fusion_dropout`` is set.
        fusion_dropout: dropout in the fusion module (its attention weights, residual branches and
            feed-forward layers); ``None``: ``dropout``. On CPU, drawing the dropout masks of the attention
            weights takes about a quarter of a fusion step's time.
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
    fusion_readout: Literal["first", "mean"] = "first"
    fusion_sink: bool = False
    fusion_item_norm: bool = False
    dropout: float = 0.1
    fusion_dropout: float | None = None
    fusion_max_item_tokens: int = 96
    extra: dict = field(default_factory=dict)

    config_name = "model config"  # how messages name it: "model config key 'embed_dim': ..."

    # to_dict, from_dict and with_overrides come from ConfigMixin (graphdel.config, the one config kernel):
    # from_dict takes the nested encoder configs as dicts (missing keys keep their defaults), ``extra`` as a
    # dict taken as is, and refuses an unknown key or a value of the wrong type, naming it.
