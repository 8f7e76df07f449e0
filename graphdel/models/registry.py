"""The registry of joint model classes by modality, and :func:`build_model`, which builds from it.

Each modality's module registers its class when imported (:mod:`graphdel.models.molecule`,
:mod:`graphdel.models.kg`, :mod:`graphdel.models.image`); :mod:`graphdel.models.joint` imports the molecule
model, so the registry read through it always holds ``"molecule"``. The registry sits below the model classes
so that loading (:mod:`graphdel.models.saving`), which the base class's ``from_pretrained`` calls, can rebuild
a class without importing it.
"""

from __future__ import annotations

from graphdel.models.config import ModelConfig
from graphdel.models.protocol import ModalityModule

MODEL_TYPES: dict[str, type[ModalityModule]] = {}
"""Modality name -> joint model class (a :class:`~graphdel.models.base.JointModel` subclass); other
modalities register their subclass here."""


def build_model(config: ModelConfig) -> ModalityModule:
    """Instantiate the joint model for ``config.modality``."""
    if config.modality not in MODEL_TYPES:
        raise ValueError(f"unknown modality {config.modality!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[config.modality](config)
