"""Run folders: a trained or unlearned model with everything needed to replay and audit it.

Layout of a run folder::

    RUN/
      config.json         resolved configuration: kind, data source and content hash, model and training
                          recipe, calibration and excluded pair ids; enough to replay the run
      model.safetensors   weights (safetensors only; never pickle)
      model_config.json   the model's constructor arguments
      metrics.json        retrieval metrics per split
      log.json            per-epoch (training) or per-step (unlearning) history
      history.json        the deletion requests applied so far, oldest first (empty for a trained model)
      request.json        the latest deletion request (unlearned runs only)
      certificate.json    the deletion certificate (unlearned runs only)

Folders are assembled under a temporary name and renamed when complete (:func:`graphdel.io.staged_folder`),
so a folder with a ``config.json`` is finished. A run folder is never opened for writing once made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphdel.errors import RunError
from graphdel.io import atomic_write_json

RUN_FILES = ("config.json", "model.safetensors", "model_config.json", "metrics.json")


@dataclass
class Run:
    """A finished run folder, loaded.

    Attributes:
        path: the folder.
        config: the parsed ``config.json``.
        metrics: the parsed ``metrics.json``.
        log: the parsed ``log.json`` (list of dicts).
        history: the deletion requests applied so far (list of request dicts).
    """

    path: Path
    config: dict
    metrics: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    history: list = field(default_factory=list)
    _model: Any = None

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Read a finished run folder (refusing unfinished or foreign folders)."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder {path} does not exist")
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if missing:
            raise RunError(f"{path} is not a finished graphdel run (missing {', '.join(missing)})")
        read = lambda name, default: json.loads((path / name).read_text()) if (path / name).is_file() else default
        try:
            return cls(path, read("config.json", {}), read("metrics.json", {}), read("log.json", []),
                       read("history.json", []))
        except json.JSONDecodeError as e:
            raise RunError(f"{path}: unreadable JSON ({e})") from e

    @property
    def model(self):
        """The run's model, loaded lazily from safetensors."""
        if self._model is None:
            from graphdel.models.persistence import load_model

            self._model = load_model(self.path)
        return self._model

    @property
    def data_source(self) -> str:
        return self.config["data"]["source"]

    @property
    def data_hash(self) -> str:
        return self.config["data"]["content_hash"]

    @property
    def calibration_ids(self) -> list[str]:
        return list(self.config.get("calibration_ids", []))

    @property
    def excluded_ids(self) -> list[str]:
        """Training pairs this model has never trained on because they were excluded or deleted."""
        return list(self.config.get("excluded_ids", []))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.config.get('kind')!r}, method={self.config.get('method')!r})"


def write_run(folder: Path, *, model, config: dict, metrics: dict, log: list, history: list,
              extra_json: dict[str, Any] | None = None) -> None:
    """Write every file of a run into ``folder`` (a staging folder; see :func:`graphdel.io.staged_folder`)."""
    model.save_pretrained(folder)
    atomic_write_json(config, folder / "config.json")
    atomic_write_json(metrics, folder / "metrics.json")
    atomic_write_json(log, folder / "log.json")
    atomic_write_json(history, folder / "history.json")
    for name, obj in (extra_json or {}).items():
        atomic_write_json(obj, folder / name)
