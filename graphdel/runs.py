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
      certificate.json    the deletion certificate (unlearned runs only); it records the SHA-256 of the
                          weights and config.json, which every command reading the run checks
      integrity.json      trained runs: the SHA-256 of model.safetensors and config.json, written last

Folders are assembled under a temporary name and renamed when complete (:func:`graphdel.io.staged_folder`),
so a folder with a ``config.json`` is finished. A run folder is never opened for writing once made, and
no command writes inside, over, or around a run it reads (:func:`check_output`).

The integrity records are in :mod:`graphdel.run_integrity` and the output check in :mod:`graphdel.run_outputs`;
every name of both is imported from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from graphdel.errors import ConfigError, IntegrityError, RunError, warn
from graphdel.io import atomic_write_json
from graphdel.run_integrity import INTEGRITY_FILE, INTEGRITY_FILES, integrity_changes, write_integrity
from graphdel.run_outputs import check_output, is_run_folder, run_lineage

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
        accepted_modifications: files found changed since the run was written and accepted when it was
            loaded (``accept_modified=True``), as :func:`integrity_changes` lists them; empty otherwise.
    """

    path: Path
    config: dict
    metrics: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    history: list = field(default_factory=list)
    accepted_modifications: list = field(default_factory=list)
    _model: Any = None

    @classmethod
    def load(cls, path: str | Path, *, check: bool = True, accept_modified: bool = False) -> "Run":
        """Read a finished run folder (refusing unfinished or foreign folders).

        With ``check`` (the default) its weights and ``config.json`` are checked against the hashes
        recorded when it was written (:meth:`check_integrity`); ``accept_modified`` accepts a change
        (listed in :attr:`accepted_modifications`). ``check=False`` is for readers that hash and report
        the files themselves (``graphdel verify``).

        Raises:
            RunError: not a finished run, or an unreadable file.
            ConfigError: an edited ``config.json`` that later commands could not use.
            IntegrityError: ``check`` and a changed weights file or ``config.json`` not accepted.
        """
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder {path} does not exist")
        if path.name.endswith(".partial"):  # a staging folder left by a killed run holds every file already
            raise RunError(f"{path} is the staging folder of an interrupted run, not a finished run; "
                           "it can be deleted")
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if missing:
            raise RunError(f"{path} is not a finished graphdel run (missing {', '.join(missing)})")

        def read(name: str, default, kind: type):
            if not (path / name).is_file():
                return default
            try:
                value = json.loads((path / name).read_text(encoding="utf-8"))
            # ValueError covers bad JSON and non-UTF-8 bytes; RecursionError absurdly nested brackets.
            except (OSError, ValueError, RecursionError) as e:
                raise RunError(f"{path / name}: unreadable JSON ({type(e).__name__}: {e})") from e
            if not isinstance(value, kind):
                raise RunError(f"{path / name}: expected a JSON {'object' if kind is dict else 'array'}, "
                               f"found {type(value).__name__}")
            return value

        run = cls(path, read("config.json", {}, dict), read("metrics.json", {}, dict), read("log.json", [], list),
                  read("history.json", [], list))
        check_run_config(path / "config.json", run.config)
        if check:
            run.accepted_modifications = run.check_integrity(accept_modified=accept_modified)
        return run

    def check_integrity(self, *, accept_modified: bool = False) -> list[dict]:
        """Check the run's weights and ``config.json`` against the hashes recorded when it was written.

        Every command that reads a run calls this (through :meth:`load`, or directly as ``forget`` does to
        record what it accepted). A run written before graphdel recorded hashes is accepted with a one-line
        warning on stderr.

        Returns:
            The accepted changes (:func:`integrity_changes`), empty when the files are as written.

        Raises:
            IntegrityError: a file changed and ``accept_modified`` is false; one line naming each file.
        """
        changes = integrity_changes(self.path)
        if changes is None:
            warn(f"{self.path} has no integrity record (written before graphdel recorded one): its "
                 "weights and config.json cannot be checked")
            return []
        if not changes:
            return []
        files = " and ".join(str(self.path / c["file"]) for c in changes)
        details = "; ".join(f"{c['file']}: unreadable or malformed" if c["recorded_sha256"] is None else
                            f"{c['file']}: sha256 {str(c['sha256'])[:12]}, {c['record']} records "
                            f"{c['recorded_sha256'][:12]}" for c in changes)
        if not accept_modified:
            raise IntegrityError(f"{files} changed since the run was written ({details}); pass --accept-modified "
                                 "(accept_modified=True) to use it anyway")
        warn(f"using {files} although changed since the run was written (--accept-modified)")
        return changes

    @property
    def model(self):
        """The run's model, loaded lazily from safetensors."""
        if self._model is None:
            from graphdel.models.persistence import load_model

            self._model = load_model(self.path)
        return self._model

    @property
    def data_source(self) -> str:
        """The dataset spec the run was trained on (e.g. ``drugs``, ``csv:PATH``)."""
        return self.config["data"]["source"]

    @property
    def data_hash(self) -> str:
        """The content hash of the data the run was trained on (checked before the data is reused)."""
        return self.config["data"]["content_hash"]

    @property
    def calibration_ids(self) -> list[str]:
        """Pair ids of the calibration hold-out, never trained on (empty when there is none)."""
        return list(self.config.get("calibration_ids", []))

    @property
    def excluded_ids(self) -> list[str]:
        """Training pairs this model has never trained on because they were excluded or deleted."""
        return list(self.config.get("excluded_ids", []))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.config.get('kind')!r}, method={self.config.get('method')!r})"


def check_run_config(where: str | Path, config: dict) -> None:
    """Refuse a run ``config.json`` that later commands could not use, naming the key.

    A run folder may come from elsewhere or be edited by hand; without this check an unknown or mistyped
    key surfaces later as a ``TypeError`` or ``KeyError`` deep inside ``forget`` or ``verify``.

    Raises:
        RunError: a missing section, or a data section without its source and content hash.
        ConfigError: an unknown key or a value of the wrong type in the ``train`` or ``model`` section.
    """
    from graphdel.models.joint import ModelConfig
    from graphdel.training.loop import TrainConfig

    missing = [k for k in ("data", "model", "train") if not isinstance(config.get(k), dict)]
    if missing:
        raise RunError(f"{where}: missing or malformed section{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(map(repr, missing))}")
    for key in ("source", "content_hash"):
        if not isinstance(config["data"].get(key), str):
            raise RunError(f"{where}: 'data.{key}' must be a string, got {config['data'].get(key)!r}")
    try:
        TrainConfig.from_dict(config["train"])
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    try:
        ModelConfig.from_dict(config["model"])
    except (TypeError, ValueError) as e:  # dataclass constructors name the unexpected keyword
        raise ConfigError(f"{where}: model config: {e}") from e


def write_run(folder: Path, *, model, config: dict, metrics: dict, log: list, history: list,
              extra_json: dict[str, Any] | None = None) -> None:
    """Write every file of a run into ``folder`` (a staging folder; see :func:`graphdel.io.staged_folder`).

    Raises:
        RunError: the model holds NaN or infinite weights (the last guard, whatever produced them:
            nothing non-finite is ever written as a finished run), or a file cannot be written.
    """
    import torch

    bad = [name for name, t in model.state_dict().items()
           if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise RunError(f"refusing to save non-finite (NaN/Inf) weights in {len(bad)} tensors "
                       f"({', '.join(bad[:5])}); no run folder was written")
    model.save_pretrained(folder)
    atomic_write_json(config, folder / "config.json")
    atomic_write_json(metrics, folder / "metrics.json")
    atomic_write_json(log, folder / "log.json")
    atomic_write_json(history, folder / "history.json")
    for name, obj in (extra_json or {}).items():
        atomic_write_json(obj, folder / name)


def parameter_change_norm(before: Mapping[str, Any], after: Mapping[str, Any]) -> float:
    """L2 norm of ``after - before`` over every floating-point tensor of two state dicts (weights and
    floating buffers alike): 0.0 exactly when those tensors are equal. Integer tensors (a KG model's stored
    graph, which shrinks by the deleted triples) are not weights and are left out; a floating tensor present
    in one state dict only, or with another shape, makes the norm ``inf`` (not comparable weight by weight).
    """
    import torch

    total = 0.0
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if any(t is not None and not torch.is_floating_point(t) for t in (a, b)):
            continue
        if a is None or b is None or tuple(a.shape) != tuple(b.shape):
            return float("inf")
        total += float(torch.sum((b.detach().double().cpu() - a.detach().double().cpu()) ** 2))
    return total ** 0.5


def is_quick_config(config: Mapping[str, Any] | None) -> bool:
    """Whether a run's ``config.json`` describes a ``--quick`` (smoke) run: an explicit ``"quick": true``,
    or training on a sample of the corpus (``data.max_items``, which only ``--quick`` sets:
    :func:`graphdel.api.quick_configs`). A forget run records its original's data block, so this holds for
    the unlearned runs of a quick original too."""
    if not isinstance(config, Mapping):
        return False
    if config.get("quick") is True:
        return True
    data = config.get("data")
    return isinstance(data, Mapping) and bool(data.get("max_items"))
