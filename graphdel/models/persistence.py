"""Saving and loading joint models: safetensors weights plus a JSON config, never pickle.

``save_model`` writes ``model.safetensors`` and ``model_config.json``; ``load_model`` rebuilds the class
``MODEL_TYPES[config.modality]`` from that config and loads the weights strictly. They are defined in
:mod:`graphdel.models.saving`, below the base class whose ``save_pretrained`` / ``from_pretrained`` call them;
this is the module they are imported from. It imports them through :mod:`graphdel.models.joint` so that the
molecule model is registered before anything is loaded.
"""

from __future__ import annotations

from graphdel.models.joint import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_model", "save_model"]
