"""The run cache: a finished original run reused when the resolved configuration and data are the same.

A training run is cached under ``$GRAPHDEL_CACHE/runs/train-<hash>`` when ``GRAPHDEL_CACHE`` is set, else
``<out>/../.graphdel-runs/train-<hash>``; the hash covers the resolved data, model and training configs and
the corpus content hash, and a cached run is used only if its ``config.json`` matches and its weights are
as written (:func:`cached_train`). ``graphdel demo``, ``graphdel audit`` and the bench scripts train their
originals through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from graphdel import api
from graphdel.errors import IntegrityError
from graphdel.models.joint import ModelConfig
from graphdel.runs import Run

__all__ = ["run_cache_dir", "cached_train"]


def run_cache_dir(out: str | Path) -> Path:
    """Where finished original runs are cached (see the module docstring)."""
    env = os.environ.get("GRAPHDEL_CACHE")
    if env:
        return Path(env) / "runs"
    return Path(out).resolve().parent / ".graphdel-runs"


def _without_none(config: dict) -> dict:
    """``config`` (a model or training config as a dict) without the settings whose value is ``None``, in it
    and in its nested configs. A setting added to a config later defaults to ``None`` for "as before"
    (``fusion_dropout``), so a run cached before it existed still hashes and matches as the same
    configuration. ``extra`` is data, not settings: kept as it is."""
    return {k: _without_none(v) if isinstance(v, dict) and k != "extra" else v
            for k, v in config.items() if v is not None}


def _resolved(data, model_config, train_config, content_hash: str) -> dict:
    return {"data": {**asdict(data), "content_hash": content_hash},
            "model": _without_none(model_config.to_dict()), "train": _without_none(train_config.to_dict())}


def _matches(run_config: dict, resolved: dict) -> bool:
    data = {k: v for k, v in run_config.get("data", {}).items() if k in resolved["data"]}
    return (run_config.get("kind") == "train" and not run_config.get("excluded_ids")
            and data == resolved["data"] and _without_none(run_config.get("model", {})) == resolved["model"]
            and _without_none(run_config.get("train", {})) == resolved["train"])


def cached_train(data, model_config, train_config, *, cache: Path, prepared=None, progress: bool = True,
                 log: Callable[[str], None] = print, quick: bool = False, accept_modified: bool = False):
    """Train the original model, or reuse a finished cached run with the same resolved config and data.

    The configs are resolved as :func:`graphdel.api.train` records them (the modality's recipe defaults,
    ``quick`` saying which generic defaults they replace, and what the featurised data adds to
    ``model.extra``), so a cached run of a modality with its own recipe (knowledge graph, image) matches.
    The data source is resolved too (``csv:x.csv`` -> ``csv:/abs/x.csv``, as the run records it).

    Returns ``(run, prepared, reused)``.

    Raises:
        IntegrityError: the matching cached run's weights or config.json changed since it was written and
            ``accept_modified`` is false (a modified cache entry is never used silently).
    """
    corpus = api.load_corpus(data)
    data = replace(data, source=corpus.source)
    model_config = ModelConfig.from_dict({**model_config.to_dict(), "modality": corpus.modality})
    # the recipe first: it may change what is featurised (the molecule fusion's caption tokens)
    model_config, train_config = api.modality_defaults(corpus.modality, model_config, train_config, quick)
    prepared = prepared or api.prepare(data, model_config, corpus=corpus, progress=progress)
    model_extra = getattr(prepared.data.items, "model_extra", None)
    if model_extra is not None:
        model_config = ModelConfig.from_dict({**model_config.to_dict(),
                                              "extra": {**model_extra(), **model_config.extra}})
    resolved = _resolved(data, model_config, train_config, corpus.content_hash())
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = cache / f"train-{digest}"
    if (folder / "config.json").is_file():
        try:
            run = Run.load(folder, accept_modified=accept_modified)
            if _matches(run.config, resolved):
                log(f"      reusing the cached original model {folder}")
                return run, prepared, True
            log(f"      cached run {folder} does not match this configuration; training a new one")
        except IntegrityError as e:
            raise IntegrityError(f"cached original: {e}, or delete {folder} to train it again") from e
        except Exception as e:  # an unreadable cache entry is ignored, never trusted
            log(f"      ignoring unreadable cached run {folder}: {e}")
        folder = cache / f"train-{digest}-{int(time.time())}"
    run = api.train(data, train_config, model_config, out=folder, progress=progress, prepared=prepared)
    return run, prepared, False
