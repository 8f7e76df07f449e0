"""Saving and loading joint models: safetensors weights plus a JSON config, never pickle.

``save_model`` writes ``model.safetensors`` and ``model_config.json``; ``load_model`` rebuilds the class
``MODEL_TYPES[config.modality]`` from that config and loads the weights strictly. They are defined in
:mod:`graphdel.models.joint`, beside the registry they rebuild from and the ``save_pretrained`` /
``from_pretrained`` methods that call them (this module importing joint while joint imported it was an
import cycle); this is the module they are imported from.
"""

from __future__ import annotations

from graphdel.models.joint import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_model", "save_model"]
