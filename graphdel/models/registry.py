"""The registry of joint model classes by modality, and :func:`build_model`, which builds from it.

An in-tree modality's class is named by its record in :mod:`graphdel.modalities` and imported the first time
:data:`MODEL_TYPES` is asked for it (so the registry read through :mod:`graphdel.models.joint` answers for
``"molecule"``, ``"kg"`` and ``"image"`` without any module imported for its side effects); a modality of
one's own is added with ``MODEL_TYPES[name] = cls`` (docs/extending.md). The registry sits below the model
classes so that loading (:mod:`graphdel.models.saving`), which the base class's ``from_pretrained`` calls, can
rebuild a class without importing it.
"""

from __future__ import annotations

from graphdel.models.config import ModelConfig
from graphdel.models.protocol import ModalityModule
from graphdel.modalities import MODALITIES, model_class
from graphdel.registry import Registry


def _recorded_class(name: str) -> type[ModalityModule] | None:
    return model_class(name) if name in MODALITIES else None


class ModelTypes(Registry[type[ModalityModule]]):
    """``{modality name: joint model class}``; a recorded modality's class (:data:`graphdel.modalities.
    MODALITIES`) is loaded on its first look-up, so ``name in MODEL_TYPES`` holds for it from the start.
    Iterating lists the classes loaded or added so far; ``MODEL_TYPES[name] = cls`` registers a class (another
    class under a taken name is refused: :meth:`~graphdel.registry.Registry.register` with ``overwrite``)."""

    def __init__(self) -> None:
        super().__init__("model type", on_miss=_recorded_class, lazy_names=lambda: MODALITIES)

    def known(self) -> list[str]:
        """Every name it answers for, loaded or not, sorted."""
        return self.names()


MODEL_TYPES: ModelTypes = ModelTypes()
"""Modality name -> joint model class (a :class:`~graphdel.models.base.JointModel` subclass); the in-tree
classes come from :data:`graphdel.modalities.MODALITIES`, other modalities register their subclass here."""


def build_model(config: ModelConfig) -> ModalityModule:
    """Instantiate the joint model for ``config.modality``."""
    if config.modality not in MODEL_TYPES:
        raise ValueError(f"unknown modality {config.modality!r}; known: {MODEL_TYPES.known()}")
    return MODEL_TYPES[config.modality](config)
