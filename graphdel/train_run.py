"""The helpers of a training run (:func:`graphdel.api.train`): the configurations it runs with, the model
settings the prepared items add, the metrics it records and its ``config.json``.

They prepare and record; the verb itself, which trains and writes the run folder, stays in
:mod:`graphdel.api` (where :func:`~graphdel.api.train` and its names are found and patched by tests), which
re-exports :func:`quick_configs` and :func:`modality_defaults`.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

import graphdel
from graphdel.device import placed
from graphdel.encoders.graph import GraphEncoderConfig
from graphdel.encoders.text import TextEncoderConfig
from graphdel.evaluation.run_data import DataConfig, Prepared
from graphdel.evaluation.suite import retrieval_metrics
from graphdel.models.joint import ModelConfig
from graphdel.training.loop import TrainConfig

__all__ = ["given_or_default_configs", "merge_split_metrics", "modality_defaults", "quick_configs",
           "train_run_config", "trained_metrics", "with_item_settings"]


def quick_configs(source: str = "drugs") -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The small ``--quick`` setting for tests and smoke runs: 800 molecules, a 3x128 GIN, 4 epochs."""
    return (DataConfig(source=source, max_items=800),
            ModelConfig(graph=GraphEncoderConfig(layers=3, hidden=128), text=TextEncoderConfig(fusion_tokens=16),
                        embed_dim=128, fusion_dim=128),
            TrainConfig(epochs=4, batch_size=64, patience=0))


def given_or_default_configs(data: DataConfig, model_config: ModelConfig | None, config: TrainConfig | None,
                              quick: bool) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The configurations :func:`train` runs with: those given, the rest from :func:`quick_configs` when
    ``quick`` (and its item cap when ``data`` sets none), else the generic defaults."""
    if quick:
        q_data, q_model, q_train = quick_configs(data.source)
        if data.max_items is None:
            data = DataConfig(**{**asdict(data), "max_items": q_data.max_items})
        model_config = model_config or q_model
        config = config or q_train
    return data, model_config or ModelConfig(), config or TrainConfig()


def with_item_settings(model_config: ModelConfig, prepared: Prepared) -> ModelConfig:
    """``model_config`` for the prepared corpus: its modality, and in ``extra`` the settings the item store
    reports (``model_extra()``, e.g. the image encoder), under those the caller set."""
    model_extra = getattr(prepared.data.items, "model_extra", None)
    extra = {**(model_extra() if model_extra is not None else {}), **model_config.extra}
    return ModelConfig.from_dict({**model_config.to_dict(), "modality": prepared.corpus.modality, "extra": extra})


def trained_metrics(result, sets: dict, distractors, config: TrainConfig, device: torch.device) -> dict:
    """The metrics a trained run records: retrieval on each split with the model's own per-split metrics
    and, when the fusion stage ran, the matching head's on the held-out splits; computed on ``device``."""
    with placed(result.model, device):  # scored where it trained; back on the CPU to be written
        splits = retrieval_metrics(result.model, sets, distractors, pool_size=config.eval_pool)
        metrics = {"splits": splits, "best_epoch": result.best_epoch, "wall_time_s": result.wall_time_s}
        merge_split_metrics(splits, result.model, sets)
        if config.fusion_epochs:  # the trained matching head: true vs random and hard partners, re-ranking
            from graphdel.evaluation.matching import matching_metrics

            held_out = {k: v for k, v in sets.items() if k != "train"}
            for name, entry in matching_metrics(result.model, held_out, distractors,
                                                pool_size=config.eval_pool, device=device).items():
                splits[name]["matching"] = entry
    return metrics


def train_run_config(data: DataConfig, prepared: Prepared, model_config: ModelConfig, config: TrainConfig
                      ) -> dict:
    """The ``config.json`` of a trained run: the data read (and what of it was skipped or stripped), the
    model and training configurations, and the calibration and excluded pairs."""
    corpus = prepared.corpus
    return {
        "kind": "train", "graphdel_version": graphdel.__version__,
        # corpus.source names the data with an absolute path (csv:/abs/x.csv), so the run works from any
        # directory; `--data` re-points it if the data moves (load_run_data)
        "data": {**asdict(data), "source": corpus.source, "content_hash": corpus.content_hash(),
                 "modality": corpus.modality,
                 # rows left out under skip_invalid, so the run itself reports them (first 100 listed)
                 "skipped_count": len(corpus.skipped), "skipped": corpus.skipped[:100],
                 # rows whose SMILES lost salt/solvent fragments at load (first 100 listed)
                 "stripped_count": len(corpus.stripped), "stripped": corpus.stripped[:100]},
        "model": model_config.to_dict(), "train": config.to_dict(),
        "calibration_ids": [corpus.pair_ids[r] for r in prepared.calibration],
        "excluded_ids": [corpus.pair_ids[r] for r in prepared.excluded],
    }


def modality_defaults(modality: str, model_config: ModelConfig, config: TrainConfig, quick: bool
                      ) -> tuple[ModelConfig, TrainConfig]:
    """Apply a model class's recipe defaults (``default_configs(quick) -> (model fields, train fields)``)
    to the fields still at the generic defaults (those of :class:`ModelConfig`/:class:`TrainConfig`, or of
    :func:`quick_configs` when ``quick``); fields a caller changed are kept."""
    from graphdel.models.joint import MODEL_TYPES

    if modality not in MODEL_TYPES:
        return model_config, config
    model_fields, train_fields = MODEL_TYPES[modality].default_configs(quick)
    _, q_model, q_train = quick_configs()
    generic = [(ModelConfig(), TrainConfig())] + ([(q_model, q_train)] if quick else [])

    def pick(obj, fields, which):
        out = {}
        for k, v in fields.items():
            if any(getattr(obj, k) == getattr(g[which], k) for g in generic):
                out[k] = v
        return out

    m = pick(model_config, model_fields, 0)
    t = pick(config, train_fields, 1)
    model_config = ModelConfig.from_dict({**model_config.to_dict(), **m}) if m else model_config
    config = TrainConfig(**{**config.to_dict(), **t}) if t else config
    return model_config, config


def merge_split_metrics(splits: dict, model, sets: dict) -> None:
    """Add a model's own per-split metrics (``model.split_metrics(sets)``, e.g. link prediction ``lp``)
    into the retrieval metrics of each split."""
    for name, extra in model.split_metrics({k: v for k, v in sets.items() if k != "train"}).items():
        splits.setdefault(name, {}).update(extra)
