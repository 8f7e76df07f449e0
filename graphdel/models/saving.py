"""Saving and loading joint models: safetensors weights plus a JSON config, never pickle.

Imported by the base class (``save_pretrained`` / ``from_pretrained``) and re-exported by
:mod:`graphdel.models.persistence` and :mod:`graphdel.models.joint`, which also make sure the molecule model is
registered before anything is loaded. Loading rebuilds the class of :data:`~graphdel.models.registry.
MODEL_TYPES` named by the saved config.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save

from graphdel.errors import RunError
from graphdel.io import atomic_write_bytes, atomic_write_json
from graphdel.models.config import ModelConfig
from graphdel.models.registry import build_model


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
