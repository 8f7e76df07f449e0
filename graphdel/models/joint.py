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

Where each part is defined (every name is imported from here):

* :mod:`graphdel.models.config`: :class:`ModelConfig`;
* :mod:`graphdel.models.layers`: :class:`Projection`, :class:`FusionModule`;
* :mod:`graphdel.models.contrastive`: :func:`contrastive_loss` and the hard negatives of the matching head;
* :mod:`graphdel.models.base`: :class:`JointModel`, :class:`JointOutput`;
* :mod:`graphdel.models.molecule`: :class:`MoleculeTextModel`;
* :mod:`graphdel.models.registry`: :data:`MODEL_TYPES` (filled from :data:`graphdel.modalities.MODALITIES`),
  :func:`build_model`;
* :mod:`graphdel.models.saving`: :func:`save_model`, :func:`load_model` (also in
  :mod:`graphdel.models.persistence`).
"""

from __future__ import annotations

from graphdel.models.base import JointModel, JointOutput
from graphdel.models.config import ModelConfig
from graphdel.models.contrastive import contrastive_loss
from graphdel.models.layers import FusionModule, Projection
from graphdel.models.molecule import MoleculeTextModel
from graphdel.models.registry import MODEL_TYPES, build_model
from graphdel.models.saving import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model

__all__ = ["CONFIG_FILE", "MODEL_TYPES", "WEIGHTS_FILE", "FusionModule", "JointModel", "JointOutput", "ModelConfig",
           "MoleculeTextModel", "Projection", "build_model", "contrastive_loss", "load_model", "save_model"]
