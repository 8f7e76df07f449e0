"""The Python API that the command line and the notebooks share.

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")
    print(run.metrics["splits"]["test"]["pool64"])
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

import graphdel
from graphdel.data.corpus import Corpus
from graphdel.data.pairs import PairData
from graphdel.data.sources import load_dataset
from graphdel.encoders.graph import GraphEncoderConfig
from graphdel.encoders.text import TextEncoderConfig
from graphdel.errors import InvalidInputError, RunError
from graphdel.evaluation.suite import retrieval_metrics
from graphdel.io import staged_folder
from graphdel.models.joint import ModelConfig, build_model
from graphdel.runs import Run, write_run
from graphdel.training.loop import TrainConfig, train_model


@dataclass
class DataConfig:
    """Which pairs a run trains on (saved in ``config.json`` so later commands need no ``--data``).

    Attributes:
        source: dataset spec (``drugs``, ``chebi20:PATH``...).
        max_items: keep at most this many items (``--quick``), sampled per split with ``sample_seed``.
        sample_seed: seed of that sampling.
        skip_invalid: skip invalid rows instead of failing.
        calibration_fraction: share of training items held back, never trained on, as the stand-in for
            "never seen but drawn like a deletion" (DESIGN.md section 1).
        calibration_seed: seed of that hold-out.
    """

    source: str = "drugs"
    max_items: int | None = None
    sample_seed: int = 0
    skip_invalid: bool = False
    calibration_fraction: float = 0.03
    calibration_seed: int = 0


def quick_configs(source: str = "drugs") -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The small ``--quick`` setting for tests and smoke runs: 800 molecules, a 3x128 GIN, 4 epochs."""
    return (DataConfig(source=source, max_items=800),
            ModelConfig(graph=GraphEncoderConfig(layers=3, hidden=128), text=TextEncoderConfig(fusion_tokens=16),
                        embed_dim=128, fusion_dim=128),
            TrainConfig(epochs=4, batch_size=64, patience=0))


def load_corpus(data: DataConfig) -> Corpus:
    """Load and (for quick runs) subsample the corpus a :class:`DataConfig` names."""
    corpus = load_dataset(data.source, skip_invalid=data.skip_invalid)
    if data.max_items:
        corpus = corpus.sample_items(data.max_items, data.sample_seed)
    return corpus


def calibration_rows(corpus: Corpus, fraction: float, seed: int) -> list[int]:
    """Rows of the calibration hold-out: every training pair of ``fraction`` of the training items.

    Drawn the way deletions are drawn (random training molecules, seeded), so that a model's scores on it
    show what "trained on everything but this, drawn like Df" looks like.
    """
    if fraction <= 0:
        return []
    train_items = sorted({corpus.item_ids[r] for r in corpus.rows("train")})
    k = max(1, round(fraction * len(train_items)))
    chosen = set(random.Random(seed).sample(train_items, min(k, len(train_items))))
    return [r for r in corpus.rows("train") if corpus.item_ids[r] in chosen]


def read_id_file(path: str | Path) -> list[str]:
    """Ids from a file: one per line, blank lines and ``#`` comment lines ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read id file {path}: {e}") from e
    return [s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")]


@dataclass
class Prepared:
    """A corpus featurised for a run, with its row sets."""

    corpus: Corpus
    data: PairData
    calibration: list[int]
    excluded: list[int]

    def trained_rows(self) -> list[int]:
        drop = set(self.calibration) | set(self.excluded)
        return [r for r in self.corpus.rows("train") if r not in drop]

    def sets(self) -> dict:
        """Named pair sets: train (trained rows), calibration, val, test."""
        return {"train": self.data.subset(self.trained_rows(), "train"),
                "calibration": self.data.subset(self.calibration, "calibration"),
                "val": self.data.subset(self.corpus.rows("val"), "val"),
                "test": self.data.subset(self.corpus.rows("test"), "test")}


def prepare(data: DataConfig, model_config: ModelConfig, *, exclude: Sequence[str] = (),
            corpus: Corpus | None = None, progress: bool = True) -> Prepared:
    """Load, featurise and split the data of a run; ``exclude`` names pair ids never to train on."""
    corpus = corpus if corpus is not None else load_corpus(data)
    unknown = [p for p in exclude if not corpus.has_pair(p)]
    if unknown:
        raise InvalidInputError(f"--exclude names {len(unknown)} unknown pair ids: {unknown[:10]}")
    pair_data = PairData(corpus, model_config.text, progress=progress)
    calibration = calibration_rows(corpus, data.calibration_fraction, data.calibration_seed)
    return Prepared(corpus, pair_data, calibration, sorted({corpus.index_of(p) for p in exclude}))


def _default_out(kind: str, payload: dict) -> Path:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path("runs") / f"{kind}-{digest}"


def train(data: str | DataConfig = "drugs", config: TrainConfig | None = None,
          model_config: ModelConfig | None = None, *, out: str | Path | None = None,
          exclude: Sequence[str] = (), quick: bool = False, progress: bool = True,
          prepared: Prepared | None = None) -> Run:
    """Train a joint model and save it as a run folder.

    Args:
        data: a dataset spec or a :class:`DataConfig`.
        config: the training recipe (default :class:`TrainConfig`, or the quick one).
        model_config: the architecture (default :class:`ModelConfig`, or the quick one).
        out: the run folder to create (must not exist); default ``runs/train-<hash>``.
        exclude: pair ids left out of training (Retrain uses this).
        quick: use :func:`quick_configs` for whatever is not given.
        prepared: reuse already featurised data (must match ``data`` and ``exclude``).

    Returns:
        The loaded :class:`~graphdel.runs.Run`.
    """
    data = DataConfig(source=data) if isinstance(data, str) else data
    if out is not None and Path(out).exists():  # fail before hours of training, not after
        raise RunError(f"output folder {out} already exists; choose another --out or remove it")
    if quick:
        q_data, q_model, q_train = quick_configs(data.source)
        if data.max_items is None:
            data = DataConfig(**{**asdict(data), "max_items": q_data.max_items})
        model_config = model_config or q_model
        config = config or q_train
    model_config = model_config or ModelConfig()
    config = config or TrainConfig()
    prepared = prepared or prepare(data, model_config, exclude=exclude, progress=progress)
    corpus = prepared.corpus
    model_config = ModelConfig.from_dict({**model_config.to_dict(), "modality": corpus.modality})
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    sets = prepared.sets()
    result = train_model(model, sets["train"], sets["val"], config, progress=progress)
    metrics = {"splits": retrieval_metrics(result.model, sets, pool_size=config.eval_pool),
               "best_epoch": result.best_epoch, "wall_time_s": result.wall_time_s}
    run_config = {
        "kind": "train", "graphdel_version": graphdel.__version__,
        "data": {**asdict(data), "content_hash": corpus.content_hash(), "modality": corpus.modality},
        "model": model_config.to_dict(), "train": config.to_dict(),
        "calibration_ids": [corpus.pair_ids[r] for r in prepared.calibration],
        "excluded_ids": [corpus.pair_ids[r] for r in prepared.excluded],
    }
    out = Path(out) if out is not None else _default_out("train", run_config)
    with staged_folder(out) as folder:
        write_run(folder, model=result.model, config=run_config, metrics=metrics, log=result.history, history=[])
    run = Run.load(out)
    run._model = result.model
    return run


def load_run_data(run: Run, *, force: bool = False, progress: bool = True) -> Prepared:
    """Reload and featurise the data a run was trained on, refusing data whose content hash changed."""
    data = DataConfig(**{k: v for k, v in run.config["data"].items() if k in DataConfig.__dataclass_fields__})
    corpus = load_corpus(data)
    if corpus.content_hash() != run.data_hash and not force:
        raise RunError(f"the data {data.source!r} has changed since {run.path} was trained (content hash "
                       f"{corpus.content_hash()[:12]} != {run.data_hash[:12]}); pass force to use it anyway")
    model_config = ModelConfig.from_dict(run.config["model"])
    return prepare(data, model_config, exclude=run.excluded_ids, corpus=corpus, progress=progress)
