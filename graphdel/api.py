"""The Python API that the command line and the notebooks share.

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")
    print(run.metrics["splits"]["test"]["pool64"])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

import graphdel
from graphdel import distributed
from graphdel.device import placed, resolve_device
from graphdel.encoders.graph import GraphEncoderConfig
from graphdel.encoders.text import TextEncoderConfig
from graphdel.errors import InvalidInputError, UnlearningNoOpError, warn
# A run's data is prepared in graphdel.evaluation.run_data (which also imports every in-tree modality, for
# what it registers), below the evaluation that reads it too; its names are imported here, where the verbs
# use them and where they have always been found (graphdel.load_run_data, api.prepare, api.evaluation_sets).
from graphdel.evaluation.run_data import (DISTRACTOR_LIMIT, DataConfig, Prepared, calibration_rows, data_config_of,
                                          evaluation_sets, load_corpus, load_request_any, load_run_data, prepare,
                                          retain_sample_rows, source_path)
from graphdel.evaluation.suite import retrieval_metrics
from graphdel.io import atomic_write_json, sha256_file, staged_folder
from graphdel.models.joint import ModelConfig, build_model
from graphdel.runs import Run, check_output, parameter_change_norm, write_integrity, write_run
from graphdel.training.loop import TrainConfig, train_model

__all__ = ["DISTRACTOR_LIMIT", "DataConfig", "Prepared", "calibration_rows", "data_config_of", "deleted_pairs",
           "evaluate", "evaluate_retrieval", "evaluation_sets", "forget", "load_corpus", "load_request_any",
           "load_run_data", "make_request", "modality_defaults", "prepare", "quick_configs", "read_id_file",
           "replay", "retain_sample_rows", "retrain_model", "source_path", "train", "with_model_defaults"]


def quick_configs(source: str = "drugs") -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The small ``--quick`` setting for tests and smoke runs: 800 molecules, a 3x128 GIN, 4 epochs."""
    return (DataConfig(source=source, max_items=800),
            ModelConfig(graph=GraphEncoderConfig(layers=3, hidden=128), text=TextEncoderConfig(fusion_tokens=16),
                        embed_dim=128, fusion_dim=128),
            TrainConfig(epochs=4, batch_size=64, patience=0))


def read_id_file(path: str | Path) -> list[str]:
    """Ids from a file: one per line, blank lines and ``#`` comment lines ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read id file {path}: {e}") from e
    return [s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")]


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
        out: the run folder to create (must not exist, nor lie inside a run); default ``runs/train-<hash>``.
        exclude: pair ids left out of training (Retrain uses this).
        quick: use :func:`quick_configs` for whatever is not given.
        prepared: reuse already featurised data (must match ``data`` and ``exclude``).

    Returns:
        The loaded :class:`~graphdel.runs.Run` (its model on the CPU). Training and the metrics it records
        run on ``config.device`` (:func:`graphdel.device.resolve_device`).

    Raises:
        ConfigError: ``config.device`` is not here (CUDA without a GPU), before any work.
    """
    data = DataConfig(source=data) if isinstance(data, str) else data
    if out is not None:  # fail before hours of training, not after: taken, inside a run, or not writable
        check_output(out)
    data, model_config, config = _given_or_default_configs(data, model_config, config, quick)
    device = resolve_device(config.device)  # CUDA asked for without a GPU: said before any work
    # the modality's recipe is resolved before featurising: it may change what is cached (the caption tokens
    # the molecule model's fusion module reads)
    corpus = prepared.corpus if prepared is not None else load_corpus(data)
    model_config, config = modality_defaults(corpus.modality, model_config, config, quick)
    prepared = prepared or prepare(data, model_config, exclude=exclude, corpus=corpus, progress=progress)
    model_config = _with_item_settings(model_config, prepared)
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    sets = prepared.sets()
    distractors = prepared.distractors()
    result = train_model(model, sets["train"], sets["val"], config, progress=progress, distractors=distractors)
    metrics = None
    if distributed.is_main():  # torchrun: only rank 0 evaluates and writes (graphdel.distributed)
        metrics = _trained_metrics(result, sets, distractors, config, device)
    run_config = _train_run_config(data, prepared, model_config, config)
    out = Path(out) if out is not None else _default_out("train", run_config)
    if distributed.is_main():
        with staged_folder(out) as folder:
            write_run(folder, model=result.model, config=run_config, metrics=metrics, log=result.history, history=[])
            write_integrity(folder)  # last: the hashes of the weights and config.json as written
    distributed.barrier()  # the other processes read rank 0's folder
    run = Run.load(out)
    run._model = result.model
    return run


def _given_or_default_configs(data: DataConfig, model_config: ModelConfig | None, config: TrainConfig | None,
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


def _with_item_settings(model_config: ModelConfig, prepared: Prepared) -> ModelConfig:
    """``model_config`` for the prepared corpus: its modality, and in ``extra`` the settings the item store
    reports (``model_extra()``, e.g. the image encoder), under those the caller set."""
    model_extra = getattr(prepared.data.items, "model_extra", None)
    extra = {**(model_extra() if model_extra is not None else {}), **model_config.extra}
    return ModelConfig.from_dict({**model_config.to_dict(), "modality": prepared.corpus.modality, "extra": extra})


def _trained_metrics(result, sets: dict, distractors, config: TrainConfig, device: torch.device) -> dict:
    """The metrics a trained run records: retrieval on each split with the model's own per-split metrics
    and, when the fusion stage ran, the matching head's on the held-out splits; computed on ``device``."""
    with placed(result.model, device):  # scored where it trained; back on the CPU to be written
        splits = retrieval_metrics(result.model, sets, distractors, pool_size=config.eval_pool)
        metrics = {"splits": splits, "best_epoch": result.best_epoch, "wall_time_s": result.wall_time_s}
        _merge_split_metrics(splits, result.model, sets)
        if config.fusion_epochs:  # the trained matching head: true vs random and hard partners, re-ranking
            from graphdel.evaluation.matching import matching_metrics

            held_out = {k: v for k, v in sets.items() if k != "train"}
            for name, entry in matching_metrics(result.model, held_out, distractors,
                                                pool_size=config.eval_pool, device=device).items():
                splits[name]["matching"] = entry
    return metrics


def _train_run_config(data: DataConfig, prepared: Prepared, model_config: ModelConfig, config: TrainConfig
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


def _merge_split_metrics(splits: dict, model, sets: dict) -> None:
    """Add a model's own per-split metrics (``model.split_metrics(sets)``, e.g. link prediction ``lp``)
    into the retrieval metrics of each split."""
    for name, extra in model.split_metrics({k: v for k, v in sets.items() if k != "train"}).items():
        splits.setdefault(name, {}).update(extra)


# ------------------------------------------------------------------------------------------ forgetting

def _as_run(run: Run | str | Path, *, accept_modified: bool = False) -> Run:
    """``run`` itself, or the run folder it names loaded with its integrity checked (a :class:`Run` was
    checked when it was loaded)."""
    return run if isinstance(run, Run) else Run.load(run, accept_modified=accept_modified)


def replay(run: Run | str | Path, out: str | Path, *, device: str | torch.device = "auto", progress: bool = True,
           accept_modified: bool = False, data: str | None = None) -> Run:
    """Run again what made the unlearned run ``run``: its request (``request.json``), its method with the
    settings it resolved to (``config.json``'s ``method_config``, recommendations included, so a changed
    default does not change the replay) and its seed, from its parent run, into the new folder ``out``.

    The parent is the run folder ``config.json`` names, and its weights must still be the ones the run
    started from (their SHA-256 is recorded). On the same machine and device the replay's weights equal
    the run's (the determinism tests check it); elsewhere they may differ by floating-point reordering.

    Raises:
        InvalidInputError: ``run`` is not an unlearned run, or its parent is gone or has other weights.
    """
    from graphdel.unlearning.config import record_overrides

    run = _as_run(run, accept_modified=accept_modified)
    if run.config.get("kind") != "forget":
        raise InvalidInputError(f"{run.path} is a {run.config.get('kind', 'unknown')!r} run, not an unlearned "
                                "one: there is no deletion to replay")
    recorded = run.config["parent"]
    parent_path = Path(recorded["path"])
    if not (parent_path / "model.safetensors").is_file():
        raise InvalidInputError(f"{run.path}: its parent run {parent_path} is gone; a replay starts from it")
    if sha256_file(parent_path / "model.safetensors") != recorded["weights_sha256"]:
        raise InvalidInputError(f"{run.path}: the weights of its parent run {parent_path} changed since the "
                                "deletion was made; a replay would start from another model")
    return forget(parent_path, run.path / "request.json", method=run.config["method"],
                  overrides=record_overrides(run.config["method_config"]), out=out, seed=int(run.config["seed"]),
                  device=device, progress=progress, accept_modified=accept_modified, data=data)


def make_request(run: Run | str | Path, *, ids: Sequence[str] | None = None, file: str | Path | None = None,
                 random_amount: float | None = None, by: str = "molecule", seed: int = 0, force: bool = False,
                 prepared: Prepared | None = None):
    """A :class:`~graphdel.data.requests.DeletionRequest` validated against what ``run`` was trained on.

    Exactly one of ``ids``, ``file`` (ids or a saved request JSON) or ``random_amount`` (a count, or a
    fraction of the training units of ``by``) is given. Pairs the run never trained on (calibration,
    val/test) are refused with their ids named, and so are pairs an earlier request of the run's history
    deleted (naming that request); a random request draws only from what is still trained on.
    """
    from graphdel.data.requests import DeletionRequest

    run = _as_run(run)
    prepared = prepared or load_run_data(run, progress=False)
    prepared.check_matches(run)
    allowed = prepared.trained_rows()
    deleted = deleted_pairs(run)
    given = [x is not None for x in (ids, file, random_amount)]
    if sum(given) != 1:
        raise InvalidInputError("give exactly one of ids, a request file, or a random amount")
    if ids is not None:
        return DeletionRequest.from_ids(prepared.corpus, ids, by=by, allowed_rows=allowed, force=force,
                                        deleted=deleted)
    if file is not None:
        return DeletionRequest.from_file(prepared.corpus, file, by=by, allowed_rows=allowed, force=force,
                                         deleted=deleted)
    return DeletionRequest.random(prepared.corpus, random_amount, by=by, seed=seed, allowed_rows=allowed,
                                  force=force)


def deleted_pairs(run: Run) -> dict[str, int]:
    """``{pair id: k}`` for every pair the ``k``-th request of ``run``'s history (1 = the first since the
    original training) deleted; empty for a trained run."""
    return {pair["pair_id"]: k for k, step in enumerate(run.history, 1) for pair in step["request"]["pairs"]}


def with_model_defaults(model, method: str, overrides: dict | Sequence[str] | None):
    """``overrides`` preceded by the model's recommended settings for ``method``
    (``model.unlearning_defaults = {method name: {key: value}}``, a class attribute or a property, e.g. the
    image model's MultiDelete settings); the caller's overrides win. Keys the method's config does not have
    are left out (a method's options may change without breaking a model's recommendation). Returns
    ``overrides`` unchanged when the model recommends nothing."""
    from graphdel.unlearning import config_keys, get_method

    cls = get_method(method)
    known = set(config_keys(cls.Config))
    defaults = {k: v for k, v in (model.unlearning_defaults.get(cls.name) or {}).items()
                if k in known}
    if not defaults:
        return overrides
    if isinstance(overrides, dict):
        return {**defaults, **overrides}
    return [f"{k}={v}" for k, v in defaults.items()] + list(overrides or [])


def forget(run: Run | str | Path, request=None, *, method: str = "multidelete",
           overrides: dict | Sequence[str] | None = None, out: str | Path | None = None, seed: int = 0,
           device: str | torch.device = "auto", progress: bool = True, prepared: Prepared | None = None,
           retrain_fn=None, accept_modified: bool = False, data: str | None = None, close: bool = False) -> Run:
    """Unlearn ``request`` from ``run`` with ``method`` and save the result as a new run folder.

    ``run`` is only read, never written. The new folder holds the unlearned weights, the request, the
    resolved method config, retrieval metrics on forget/retain/calibration/val/test, the log, the history
    of every request applied since the original training, and ``certificate.json``.

    Args:
        run: the model to unlearn from (a trained run or an earlier unlearned one).
        request: a :class:`~graphdel.data.requests.DeletionRequest` (see :func:`make_request`) or the path
            of a request/id file.
        method: a registered method name (``graphdel methods`` lists them).
        overrides: method hyperparameters, ``["alpha=0.5", ...]`` or a dict; applied after the model's own
            recommended settings for the method, if any (:func:`with_model_defaults`).
        out: the new run folder (must not exist, nor lie inside, equal or contain ``run`` or its ancestors);
            default ``runs/forget-<hash>``.
        device: where the method, its Retrain and the recorded metrics compute: ``auto`` (CUDA when
            present, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or a :class:`torch.device`
            (:func:`graphdel.device.resolve_device`). The new run's model is on the CPU either way.
        retrain_fn: ``(prepared, dr_rows) -> model``, to share one Retrain between callers (the demo).
        accept_modified: use ``run`` although its weights or config.json changed since it was written
            (:meth:`~graphdel.runs.Run.check_integrity`); the new run's config records what was accepted
            (``parent.accepted_modifications``), so its certificate carries it.
        data: the dataset spec to read instead of the recorded one (the data moved); see
            :func:`load_run_data`.
        close: (knowledge graphs) extend the request with the retained triples that state its facts
            backwards (mirror relations learned from the graph), recorded in the request's ``added``
            (:func:`graphdel.data.kg_facts.close_request`). Every KG request is audited either way: the
            new run's ``metrics["inferable"]`` says how many deleted triples the retained graph still
            mirrors or links by a short path (:func:`graphdel.data.kg_facts.audit_and_close`).

    Raises:
        IntegrityError: ``run``'s weights or config.json changed and ``accept_modified`` is false.
        InvalidInputError: ``close`` for a corpus that is not a knowledge graph.
        ConfigError: ``device`` is not here (CUDA without a GPU), before any work.
    """
    from graphdel.data.requests import DeletionRequest
    from graphdel.resources import measure
    from graphdel.unlearning import unlearn

    where = resolve_device(device)  # CUDA asked for without a GPU: said before any work
    run = _as_run(run, accept_modified=accept_modified)
    accepted = run.check_integrity(accept_modified=accept_modified)  # again: a Run may have been loaded unchecked
    if out is not None:  # taken, inside a run, or not writable: say so before the work, not after
        check_output(out, reads=[run.path])
    prepared = prepared or load_run_data(run, progress=progress, source=data)
    prepared.check_matches(run)  # Dr must be what this run still trains on, not its parent's
    if not isinstance(request, DeletionRequest):
        # An id file names pairs, as with `graphdel forget --forget FILE`: reading it by molecule would
        # silently widen the request to every pair of each named molecule.
        request = make_request(run, file=request, by="pair", prepared=prepared)
    corpus = prepared.corpus
    _check_still_trained(run, prepared, request.rows(corpus))
    request, inferable = _inferable_facts(prepared, request, close)  # a closure adds retained pairs to Df
    df_rows = request.rows(corpus)
    dr_rows = prepared.retained_rows(df_rows)
    sets = evaluation_sets(prepared, df_rows, seed)
    retrain = _retrain(run, prepared, dr_rows, device, where, retrain_fn, progress)
    distractors = prepared.distractors()
    root = _chain_original(run)
    ctx = _unlearning_context(run, prepared, sets, dr_rows, distractors, retrain, root, seed, where, progress)
    with measure() as cost:  # the memory the method needed, recorded with the run (the report shows it)
        result = unlearn(run.model, ctx, method, with_model_defaults(run.model, method, overrides))
    result.model.forget_structure(sets["forget"])  # a model storing training data (a KG's graph) drops Df
    procedure = _procedure(run.model, result, sets["forget"], run.path, method)
    metrics = None
    if distributed.is_main():  # torchrun: only rank 0 evaluates and writes (graphdel.distributed)
        metrics = _forget_metrics(result, sets, distractors, cost, inferable, where)
    request_json = request.to_json(corpus)
    parent_weights = sha256_file(run.path / "model.safetensors")
    run_config = _forget_run_config(run, result, method, corpus, request, seed, parent_weights, accepted, root)
    history = run.history + [{"request": request_json, "method": run_config["method"],
                              "parent_weights_sha256": parent_weights, "applied_at": _utc_now()}]
    out = Path(out) if out is not None else _default_out("forget", {"parent": parent_weights, "method": method,
                                                                    "request": request_json, "o": overrides})
    if distributed.is_main():
        _write_forget_run(out, run, result, run_config, metrics, history, request_json, parent_weights, procedure)
    distributed.barrier()  # the other processes read rank 0's folder
    new = Run.load(out)
    new._model = result.model
    return new


def _check_still_trained(run: Run, prepared: Prepared, df_rows: Sequence[int]) -> None:
    """Refuse requested rows ``run`` does not train on: those an earlier request of its history deleted
    (naming that request), then any other it never trained on (calibration, val/test).

    Raises:
        InvalidInputError: naming the first 10 such pairs.
    """
    corpus = prepared.corpus
    allowed = set(prepared.trained_rows())
    outside = [corpus.pair_ids[r] for r in df_rows if r not in allowed]
    deleted = deleted_pairs(run)
    again = [f"{p} (request {deleted[p]})" for p in outside if p in deleted]
    if again:
        raise InvalidInputError(f"{len(again)} requested pairs were already deleted by an earlier request of "
                                f"{run.path} (graphdel history lists them): {again[:10]}")
    if outside:
        raise InvalidInputError(f"{len(outside)} requested pairs were never trained on by {run.path}: {outside[:10]}")


def _retrain(run: Run, prepared: Prepared, dr_rows: Sequence[int], device: str | torch.device,
             where: torch.device, retrain_fn, progress: bool):
    """``() -> model``: Retrain for a deletion from ``run`` (``retrain_fn(prepared, dr_rows)`` when given,
    else :func:`retrain_model` with the run's recorded recipe), trained only when a method asks for it."""
    # Retrain replays the original recipe on the device this deletion runs on (not the one the original
    # was trained on: `forget --device cpu` on a GPU machine retrains on the CPU)
    train_config = dataclasses.replace(TrainConfig(**run.config["train"]),
                                       device=device if isinstance(device, str) else str(where))
    model_config = ModelConfig.from_dict(run.config["model"])

    def retrain():
        if retrain_fn is not None:
            return retrain_fn(prepared, dr_rows)
        return retrain_model(prepared, dr_rows, model_config, train_config, progress=progress)

    return retrain


def _unlearning_context(run: Run, prepared: Prepared, sets: dict, dr_rows: Sequence[int], distractors, retrain,
                        root: Run | None, seed: int, where: torch.device, progress: bool):
    """The :class:`~graphdel.unlearning.UnlearningContext` of a deletion from ``run``: the evaluation
    ``sets``, the retained rows, the pairs earlier requests of its history deleted and, for a chain of
    deletions, the chain's original ``root`` as an anchor."""
    from graphdel.unlearning import UnlearningContext

    corpus = prepared.corpus
    earlier = sorted(corpus.index_of(p) for p in deleted_pairs(run) if corpus.has_pair(p))  # earlier requests' pairs
    return UnlearningContext(forget=sets["forget"], retain=prepared.data.subset(dr_rows, "retain"),
                             calibration=sets["calibration"] if len(sets["calibration"]) else None,
                             val=sets["val"], distractors=distractors, retrain=retrain, seed=seed,
                             device=where,
                             progress=progress, anchor=_anchor(root, run, prepared) if root is not None else None,
                             earlier_forget=prepared.data.subset(earlier, "earlier_forget") if earlier else None)


def _forget_metrics(result, sets: dict, distractors, cost: dict, inferable: dict | None,
                    where: torch.device) -> dict:
    """The metrics an unlearned run records: retrieval on each split with the model's own per-split metrics,
    the method's time and memory (``cost``), the selected epoch and, for a KG, what stays inferable;
    computed on ``where``."""
    with placed(result.model, where):  # scored where it was unlearned; back on the CPU to be written
        metrics = {"splits": retrieval_metrics(result.model, sets, distractors),
                   "wall_time_s": result.wall_time_s,
                   **{k: v for k, v in cost.items() if k != "wall_time_s"},
                   "selected": result.selected,
                   **({"inferable": inferable} if inferable is not None else {})}
        _merge_split_metrics(metrics["splits"], result.model, sets)
    return metrics


def _forget_run_config(run: Run, result, method: str, corpus, request, seed: int, parent_weights: str,
                       accepted, root: Run | None) -> dict:
    """The ``config.json`` of an unlearned run: the parent's, with the method and its resolved config, the
    data actually used, the parent (and what of it was accepted modified), the pairs now excluded and the
    chain's original."""
    from graphdel.io import cached_sha256_file

    return {
        **run.config, "kind": "forget", "method": result.config.get("method", method),
        # the data actually used: its content hash (differs from the parent's only when forced) and where it
        # was read (differs when --data re-pointed the run at moved data)
        "data": {**run.config["data"], "source": corpus.source, "content_hash": corpus.content_hash()},
        "method_config": result.config, "seed": seed,
        "parent": {"path": str(run.path.resolve()), "weights_sha256": parent_weights,
                   # a parent modified since it was written and accepted (--accept-modified): said in the
                   # config, so the certificate (which hashes the config) carries it
                   **({"accepted_modifications": accepted} if accepted else {})},
        "excluded_ids": sorted(set(run.excluded_ids) | set(request.pair_ids)),
        # the original of a chain of deletions, which a method may retain against (UnlearningContext.anchor)
        **({"chain_original": {"path": str(root.path.resolve()),
                               "weights_sha256": cached_sha256_file(root.path / "model.safetensors")}}
           if root is not None else {}),
    }


def _write_forget_run(out: Path, run: Run, result, run_config: dict, metrics: dict | None, history: list,
                      request_json: dict, parent_weights: str, procedure: dict) -> None:
    """Write the unlearned run folder ``out`` (staged, then moved into place): the run, its request, and the
    certificate chained to ``run``'s."""
    from graphdel.evaluation.certificate import build_certificate, parent_certificate_sha256

    with staged_folder(out) as folder:
        write_run(folder, model=result.model, config=run_config, metrics=metrics, log=result.log,
                  history=history, extra_json={"request.json": request_json})
        certificate = build_certificate(
            folder, original_weights_sha256=parent_weights,
            procedure=procedure,
            previous_certificate_sha256=parent_certificate_sha256(run.path))
        atomic_write_json(certificate, folder / "certificate.json")


def _inferable_facts(prepared: Prepared, request: "graphdel.data.requests.DeletionRequest", close: bool
                     ) -> tuple["graphdel.data.requests.DeletionRequest", dict | None]:
    """``(request, record)``: a KG request audited for the facts the retained graph still states or implies
    and, with ``close``, extended with its retained mirror triples
    (:func:`graphdel.data.kg_facts.audit_and_close`); a warning says what stays inferable. ``record`` is
    ``None`` for a corpus without triples.

    Raises:
        InvalidInputError: ``close`` for a corpus that is not a knowledge graph.
    """
    if prepared.corpus.modality != "kg":
        if close:
            raise InvalidInputError(f"close (--close) adds the mirrored triples of a knowledge-graph request; "
                                    f"{prepared.corpus.source} is a {prepared.corpus.modality!r} corpus")
        return request, None
    from graphdel.data.kg_facts import MIRRORED, NOT_INFERABLE, audit_and_close, describe_record

    request, record = audit_and_close(prepared.corpus, request, prepared.trained_rows(), close=close)
    if record is not None:
        left = record["closure"]["counts"] if close else record["counts"]
        if sum(left.values()) > left[NOT_INFERABLE]:
            hint = "; close=True (--close) also deletes the mirrored ones" if left[MIRRORED] else ""
            warn(describe_record(record) + hint)
    return request, record


def _chain_original(run: Run) -> Run | None:
    """For a run that is itself unlearned, the trained run its chain of deletions started from (``None``
    for a trained run); a warning, and ``None``, when that run is no longer where the chain records it."""
    if not run.history:
        return None
    from graphdel.history import chain_original

    root = chain_original(run)
    if root is None:
        warn(f"{run.path}: the original of its chain of deletions was not found (a folder of the chain "
             "moved?); methods retain against this run itself")
    return root


def _anchor(root: Run, run: Run, prepared: Prepared):
    """``() -> model``: the chain's original as a method may retain against it (``UnlearningContext.anchor``),
    loaded when first asked for. A model that stores training facts (a KG's graph) has the facts of every
    earlier request of ``run``'s history removed first, as they were removed from the unlearned models:
    otherwise retaining towards it would teach the deleted edges back."""
    def load():
        model = root.model
        rows = sorted(prepared.corpus.index_of(p) for p in deleted_pairs(run))
        model.forget_structure(prepared.data.subset(rows, "deleted"))
        return model

    return load


def _utc_now() -> str:
    """The time now, UTC, to the second (ISO 8601): when a request was applied, for ``graphdel history``."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _procedure(original, result, forget, original_path: Path, method: str) -> dict:
    """What an unlearning run did, for its certificate: update steps, epochs, the selected epoch, the L2 norm
    of the weight change and the facts removed from the model's stored structure (a KG's graph).

    Raises:
        UnlearningNoOpError: the weights came out equal to the original's and nothing was removed from the
            model's structure, so there is no deletion to certify.
    """
    from graphdel.evaluation.certificate import structural_change

    change = parameter_change_norm(original.state_dict(), result.model.state_dict())
    removed = structural_change(original, forget)  # what leaving Df out of the stored structure takes away
    selected = result.selected or {}
    if change == 0.0 and removed is None:
        raise UnlearningNoOpError(
            f"{method} left every weight of {original_path} unchanged ({selected.get('steps', 0)} update steps, "
            f"stop reason: {selected.get('stop_reason', 'none given')}) and the model stores none of the "
            "request: nothing was deleted, so no run folder or certificate was written")
    return {"steps": selected.get("steps"), "epochs_run": selected.get("epochs_run"),
            "selected_epoch": selected.get("epoch"), "param_change_norm": change, "structural_change": removed}


def retrain_model(prepared: Prepared, dr_rows: Sequence[int], model_config: ModelConfig, train_config: TrainConfig,
                  *, progress: bool = True):
    """Retrain: a fresh model trained from scratch on ``dr_rows`` with the original recipe and seed."""
    torch.manual_seed(train_config.seed)
    model = build_model(model_config)
    sets = prepared.sets()
    return train_model(model, prepared.data.subset(dr_rows, "retain"), sets["val"], train_config,
                       progress=progress, distractors=prepared.distractors()).model


def evaluate_retrieval(run: Run | str | Path, request=None, *, seed: int = 0, progress: bool = False,
                       accept_modified: bool = False, data: str | None = None,
                       device: str | torch.device = "auto") -> dict:
    """Retrieval metrics of ``run`` on forget / retain / calibration / val / test for a request.

    ``request`` defaults to the run's own latest request (an unlearned run); for a trained run without a
    request, only the calibration / val / test splits are reported. ``accept_modified``, ``data`` and
    ``device`` (where the model is scored) are those of :func:`forget`.
    """
    from graphdel.data.requests import DeletionRequest

    where = resolve_device(device)
    run = _as_run(run, accept_modified=accept_modified)
    prepared = load_run_data(run, progress=progress, source=data)
    if request is None and (run.path / "request.json").is_file():
        request = run.path / "request.json"
    if request is None:
        sets = {k: v for k, v in prepared.sets().items() if k != "train"}
    else:
        if not isinstance(request, DeletionRequest):
            request = load_request_any(prepared, request)
        sets = evaluation_sets(prepared, request.rows(prepared.corpus), seed)
    with placed(run.model, where):
        splits = retrieval_metrics(run.model, sets, prepared.distractors())
        _merge_split_metrics(splits, run.model, sets)
    return {"run": str(run.path), "splits": splits}


def evaluate(run: Run | str | Path, *, original: Run | str | Path | None = None,
             reference: Run | str | Path | None = None, others: Sequence[Run | str | Path] = (), config=None,
             progress: bool = False, log=None, accept_modified: bool = False, data: str | None = None):
    """The full evaluation suite of an unlearned run (and ``others`` of the same request) against the
    original (default: the run's parent) and a Retrain ``reference``.

    >>> audit = evaluate(forgotten, original=run, reference=retrained)
    >>> audit.save("out/")   # report.md, report.html, metrics.json, plots/, certificates/

    ``config`` is a :class:`~graphdel.evaluation.suite.SuiteConfig` (LiRA, probes, seed, the device the
    models are evaluated on...); ``accept_modified`` and ``data`` are those of :func:`forget` (``data`` is
    the original's).
    """
    from graphdel.evaluation.suite import Audit, evaluate_runs

    runs = [run, *others] + ([reference] if reference is not None else [])
    return Audit(evaluate_runs(runs, config=config, original=original, progress=progress,
                               log=log or (lambda s: None), accept_modified=accept_modified, data=data))
