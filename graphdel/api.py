"""The Python API that the command line and the notebooks share.

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")
    print(run.metrics["splits"]["test"]["pool64"])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch

from graphdel import distributed, unlearning
from graphdel.data.requests import DeletionRequest
from graphdel.device import placed, resolve_device
from graphdel.errors import InvalidInputError
# A run's data is prepared in graphdel.evaluation.run_data (each modality's registrations are loaded on first
# use, from its record in graphdel.modalities), below the evaluation that reads it too; its names are imported
# here, where the verbs use them and where they have always been found (graphdel.load_run_data, api.prepare,
# api.evaluation_sets).
from graphdel.evaluation.run_data import (DISTRACTOR_LIMIT, DataConfig, Prepared, calibration_rows, data_config_of,
                                          evaluation_sets, load_corpus, load_request_any, load_run_data, prepare,
                                          retain_sample_rows, source_path)
from graphdel.evaluation.suite import Audit, evaluate_runs, retrieval_metrics
# The preparation and recording of a forget run (its Retrain included) and of a training run; deleted_pairs,
# retrain_model, quick_configs and modality_defaults are re-exported here, where they have always been found.
from graphdel.forget_run import (chain_original_of, check_still_trained, deleted_pairs, forget_metrics,
                                 forget_run_config, inferable_facts, retrain_model, retrain_when_asked,
                                 unlearning_context, unlearning_procedure, utc_now, write_forget_run)
from graphdel.io import sha256_file, staged_folder
from graphdel.models.joint import ModelConfig, build_model
from graphdel.resources import measure
from graphdel.runs import Run, check_output, write_integrity, write_run
from graphdel.train_run import (given_or_default_configs, merge_split_metrics, modality_defaults, quick_configs,
                                train_run_config, trained_metrics, with_item_settings)
from graphdel.training.loop import TrainConfig, train_model
from graphdel.unlearning import config_keys, get_method
from graphdel.unlearning import tuning
from graphdel.unlearning.config import record_overrides
from graphdel.unlearning.tuning import TuneConfig

__all__ = ["DISTRACTOR_LIMIT", "DataConfig", "Prepared", "calibration_rows", "data_config_of", "deleted_pairs",
           "evaluate", "evaluate_retrieval", "evaluation_sets", "forget", "load_corpus", "load_request_any",
           "load_run_data", "make_request", "modality_defaults", "prepare", "quick_configs", "read_id_file",
           "replay", "retain_sample_rows", "retrain_model", "source_path", "train", "with_model_defaults"]


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
    data, model_config, config = given_or_default_configs(data, model_config, config, quick)
    device = resolve_device(config.device)  # CUDA asked for without a GPU: said before any work
    # the modality's recipe is resolved before featurising: it may change what is cached (the caption tokens
    # the molecule model's fusion module reads)
    corpus = prepared.corpus if prepared is not None else load_corpus(data)
    model_config, config = modality_defaults(corpus.modality, model_config, config, quick)
    prepared = prepared or prepare(data, model_config, exclude=exclude, corpus=corpus, progress=progress)
    model_config = with_item_settings(model_config, prepared)
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    sets = prepared.sets()
    distractors = prepared.distractors()
    result = train_model(model, sets["train"], sets["val"], config, progress=progress, distractors=distractors)
    metrics = None
    if distributed.is_main():  # torchrun: only rank 0 evaluates and writes (graphdel.distributed)
        metrics = trained_metrics(result, sets, distractors, config, device)
    run_config = train_run_config(data, prepared, model_config, config)
    out = Path(out) if out is not None else _default_out("train", run_config)
    if distributed.is_main():
        with staged_folder(out) as folder:
            write_run(folder, model=result.model, config=run_config, metrics=metrics, log=result.history, history=[])
            write_integrity(folder)  # last: the hashes of the weights and config.json as written
    distributed.barrier()  # the other processes read rank 0's folder
    run = Run.load(out)
    run._model = result.model
    return run


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


def with_model_defaults(model, method: str, overrides: dict | Sequence[str] | None):
    """``overrides`` preceded by the model's recommended settings for ``method``
    (``model.unlearning_defaults = {method name: {key: value}}``, a class attribute or a property, e.g. the
    image model's MultiDelete settings); the caller's overrides win. Keys the method's config does not have
    are left out (a method's options may change without breaking a model's recommendation). Returns
    ``overrides`` unchanged when the model recommends nothing."""
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
           retrain_fn=None, accept_modified: bool = False, data: str | None = None, close: bool = False,
           tune: TuneConfig | bool = False) -> Run:
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
        retrain_fn: ``(prepared, dr_rows) -> TrainResult`` (or the model alone), to share one Retrain between
            callers (the demo); a TrainResult lets the run record the epoch Retrain kept.
        accept_modified: use ``run`` although its weights or config.json changed since it was written
            (:meth:`~graphdel.runs.Run.check_integrity`); the new run's config records what was accepted
            (``parent.accepted_modifications``), so its certificate carries it.
        data: the dataset spec to read instead of the recorded one (the data moved); see
            :func:`load_run_data`.
        close: (knowledge graphs) extend the request with the retained triples that state its facts
            backwards (mirror relations learned from the graph), recorded in the request's ``added``
            (:func:`graphdel.data.kg_facts.close_request`); the methods' calibration reference is then
            scored with the calibration triples' own mirrors hidden
            (:func:`graphdel.evaluation.run_data.calibration_mirrors`).
            Every KG request is audited either way: the
            new run's ``metrics["inferable"]`` says how many deleted triples the retained graph still
            mirrors or links by a short path (:func:`graphdel.data.kg_facts.audit_and_close`).
        tune: choose the method's learning rate by the rule of :func:`graphdel.unlearning.tuning.tune`
            (``True``: its default :class:`~graphdel.unlearning.tuning.TuneConfig`); the run's time is the
            whole search, and ``metrics.json``'s ``selected["tuning"]`` records every candidate.

    Raises:
        IntegrityError: ``run``'s weights or config.json changed and ``accept_modified`` is false.
        InvalidInputError: ``close`` for a corpus that is not a knowledge graph.
        ConfigError: ``device`` is not here (CUDA without a GPU), before any work.
    """
    where = resolve_device(device)  # CUDA asked for without a GPU: said before any work
    run, accepted, prepared, request = _forget_inputs(run, request, out, prepared, data, progress,
                                                      accept_modified)
    request, inferable, dr_rows, sets = _deletion_sets(run, prepared, request, close, seed)
    retrain = retrain_when_asked(run, prepared, dr_rows, device, where, retrain_fn, progress)
    distractors = prepared.distractors()
    root = chain_original_of(run)
    ctx = unlearning_context(run, prepared, sets, dr_rows, distractors, retrain, root, seed, where, progress,
                             closed=close)
    result, cost, procedure = _unlearn_measured(run, ctx, method, overrides, sets["forget"], tune)
    metrics = None
    if distributed.is_main():  # torchrun: only rank 0 evaluates and writes (graphdel.distributed)
        metrics = forget_metrics(result, sets, distractors, cost, inferable, where)
    return _save_forget_run(out, run, result, method, overrides, prepared.corpus, request, seed, accepted,
                            root, metrics, procedure)


def _forget_inputs(run: Run | str | Path, request, out: str | Path | None, prepared: Prepared | None,
                   data: str | None, progress: bool, accept_modified: bool):
    """The checked inputs of :func:`forget`, before any work: ``(run, accepted, prepared, request)``, the
    run loaded and its integrity checked (``accepted``: the changes ``accept_modified`` let through,
    :meth:`~graphdel.runs.Run.check_integrity`), ``out`` known to be usable, the run's data prepared and
    matching it, and ``request`` a :class:`~graphdel.data.requests.DeletionRequest` (a path is read as a
    request file or a file of pair ids)."""
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
    return run, accepted, prepared, request


def _deletion_sets(run: Run, prepared: Prepared, request, close: bool, seed: int):
    """What the deletion removes and what it is scored on: ``(request, inferable, dr_rows, sets)``, the
    request checked against what ``run`` still trains on and, with ``close``, extended by the retained pairs
    that state its facts backwards (``inferable``: the KG audit,
    :func:`~graphdel.forget_run.inferable_facts`), the retained rows Dr, and the evaluation pair sets
    (:func:`evaluation_sets`, drawn with ``seed``)."""
    corpus = prepared.corpus
    check_still_trained(run, prepared, request.rows(corpus))
    request, inferable = inferable_facts(prepared, request, close)  # a closure adds retained pairs to Df
    df_rows = request.rows(corpus)
    dr_rows = prepared.retained_rows(df_rows)
    sets = evaluation_sets(prepared, df_rows, seed)
    return request, inferable, dr_rows, sets


def _unlearn_measured(run: Run, ctx, method: str, overrides: dict | Sequence[str] | None, forget_set,
                      tune: TuneConfig | bool = False):
    """Unlearn with ``method`` from ``run``'s model in ``ctx`` (``overrides`` after the model's recommended
    settings, :func:`with_model_defaults`; with ``tune``, the learning rate chosen by
    :func:`graphdel.unlearning.tuning.tune`), measuring its memory, then drop the deleted pairs ``forget_set``
    from the unlearned model's stored data. Returns ``(result, cost, procedure)``: the method's result, the
    memory measured (:func:`graphdel.resources.measure`) and the procedure the new run records."""
    settings = with_model_defaults(run.model, method, overrides)
    with measure() as cost:  # the memory the method needed, recorded with the run (the report shows it)
        if tune:
            result = tuning.tune(run.model, ctx, method, settings, tune if isinstance(tune, TuneConfig) else None)
        else:
            # looked up on the package at call time, so a caller's wrapper of unlearn (a spy, a profiler) is used
            result = unlearning.unlearn(run.model, ctx, method, settings)
    result.model.forget_structure(forget_set)  # a model storing training data (a KG's graph) drops Df
    procedure = unlearning_procedure(run.model, result, forget_set, run.path, method)
    return result, cost, procedure


def _save_forget_run(out: str | Path | None, run: Run, result, method: str, overrides, corpus, request,
                     seed: int, accepted, root, metrics: dict | None, procedure) -> Run:
    """Write the unlearned run folder (rank 0 only under torchrun,
    :func:`~graphdel.forget_run.write_forget_run`) and load it back: its config, its history (``run``'s
    requests and this one), the request and the procedure; ``out`` defaults to ``runs/forget-<hash>`` of the
    parent's weights, the method, the request and the overrides. Returns the new
    :class:`~graphdel.runs.Run` with ``result``'s model attached."""
    request_json = request.to_json(corpus)
    parent_weights = sha256_file(run.path / "model.safetensors")
    run_config = forget_run_config(run, result, method, corpus, request, seed, parent_weights, accepted, root)
    history = run.history + [{"request": request_json, "method": run_config["method"],
                              "parent_weights_sha256": parent_weights, "applied_at": utc_now()}]
    out = Path(out) if out is not None else _default_out("forget", {"parent": parent_weights, "method": method,
                                                                    "request": request_json, "o": overrides})
    if distributed.is_main():
        write_forget_run(out, run, result, run_config, metrics, history, request_json, parent_weights, procedure)
    distributed.barrier()  # the other processes read rank 0's folder
    new = Run.load(out)
    new._model = result.model
    return new


def evaluate_retrieval(run: Run | str | Path, request=None, *, seed: int = 0, progress: bool = False,
                       accept_modified: bool = False, data: str | None = None,
                       device: str | torch.device = "auto") -> dict:
    """Retrieval metrics of ``run`` on forget / retain / calibration / val / test for a request.

    ``request`` defaults to the run's own latest request (an unlearned run); for a trained run without a
    request, only the calibration / val / test splits are reported. ``accept_modified``, ``data`` and
    ``device`` (where the model is scored) are those of :func:`forget`.
    """
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
        merge_split_metrics(splits, run.model, sets)
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
    runs = [run, *others] + ([reference] if reference is not None else [])
    return Audit(evaluate_runs(runs, config=config, original=original, progress=progress,
                               log=log or (lambda s: None), accept_modified=accept_modified, data=data))
