"""The helpers of an unlearning run (:func:`graphdel.api.forget`): the checks and audit of its request, the
chain of deletions it continues, its :class:`~graphdel.unlearning.UnlearningContext`, its metrics, its
``config.json``, its certificate's procedure and the writing of its folder.

They prepare and record, and train the Retrain a method may ask for (:func:`retrain_model` with the run's
recorded recipe, :func:`recorded_configs`); the verb itself stays in :mod:`graphdel.api`, which re-exports
:func:`deleted_pairs` and :func:`retrain_model`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import torch

import graphdel
from graphdel.data.kg_facts import MIRRORED, NOT_INFERABLE, audit_and_close, describe_record
from graphdel.device import placed
from graphdel.errors import ConfigError, InvalidInputError, UnlearningNoOpError, warn
from graphdel.evaluation import certificate as certificates
from graphdel.evaluation.certificate import parent_certificate_sha256, structural_change
from graphdel.evaluation.reference_weights import series_matched_weights
from graphdel.evaluation.run_data import Prepared, calibration_mirrors
from graphdel.evaluation.suite import retrieval_metrics
from graphdel.history import chain_original
from graphdel.io import atomic_write_json, cached_sha256_file, staged_folder
from graphdel.models.joint import ModelConfig, build_model
from graphdel.runs import Run, parameter_change_norm, write_run
from graphdel.train_run import merge_split_metrics
from graphdel.training.loop import TrainConfig, TrainResult, train_model
from graphdel.unlearning import UnlearningContext

__all__ = ["anchor_loader", "chain_original_of", "check_still_trained", "deleted_pairs", "forget_metrics",
           "forget_run_config", "inferable_facts", "recorded_configs", "retrain_model", "retrain_when_asked",
           "unlearning_context", "unlearning_procedure", "utc_now",
           "write_forget_run"]


def deleted_pairs(run: Run) -> dict[str, int]:
    """``{pair id: k}`` for every pair the ``k``-th request of ``run``'s history (1 = the first since the
    original training) deleted; empty for a trained run."""
    return {pair["pair_id"]: k for k, step in enumerate(run.history, 1) for pair in step["request"]["pairs"]}


def check_still_trained(run: Run, prepared: Prepared, df_rows: Sequence[int]) -> None:
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


def unlearning_context(run: Run, prepared: Prepared, sets: dict, dr_rows: Sequence[int], distractors, retrain,
                        root: Run | None, seed: int, where: torch.device, progress: bool, *, closed: bool = False):
    """The :class:`~graphdel.unlearning.UnlearningContext` of a deletion from ``run``: the evaluation
    ``sets``, the retained rows, the pairs earlier requests of its history deleted and, for a chain of
    deletions, the chain's original ``root`` as an anchor. ``closed`` (a KG request closed over its
    mirrors): the calibration pairs are scored with their retained mirrors hidden (:func:`calibration_mirrors`)."""
    corpus = prepared.corpus
    earlier = sorted(corpus.index_of(p) for p in deleted_pairs(run) if corpus.has_pair(p))  # earlier requests' pairs
    df_rows = sets["forget"].rows.tolist()
    return UnlearningContext(forget=sets["forget"], retain=prepared.data.subset(dr_rows, "retain"),
                             calibration=sets["calibration"] if len(sets["calibration"]) else None,
                             calibration_hidden=calibration_mirrors(prepared, dr_rows) if closed else None,
                             calibration_weights=series_matched_weights(prepared, df_rows, dr_rows),
                             val=sets["val"], distractors=distractors, retrain=retrain, seed=seed,
                             device=where,
                             progress=progress, anchor=anchor_loader(root, run, prepared) if root is not None else None,
                             earlier_forget=prepared.data.subset(earlier, "earlier_forget") if earlier else None)


def forget_metrics(result, sets: dict, distractors, cost: dict, inferable: dict | None,
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
        merge_split_metrics(metrics["splits"], result.model, sets)
    return metrics


def forget_run_config(run: Run, result, method: str, corpus, request, seed: int, parent_weights: str,
                       accepted, root: Run | None) -> dict:
    """The ``config.json`` of an unlearned run: the parent's, with the method and its resolved config, the
    data actually used, the parent (and what of it was accepted modified), the pairs now excluded and the
    chain's original. A Retrain at another training seed records that seed in its recipe (``train``), which
    is the recipe its weights were trained with."""
    retrain_seed = result.config.get("seed") if result.config.get("method") == "retrain" else None
    train = run.config.get("train")
    if retrain_seed is not None and train is not None:
        train = {**train, "seed": retrain_seed}
    return {
        **run.config, "kind": "forget", **({"train": train} if train is not None else {}),
        "method": result.config.get("method", method),
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


def write_forget_run(out: Path, run: Run, result, run_config: dict, metrics: dict | None, history: list,
                      request_json: dict, parent_weights: str, procedure: dict) -> None:
    """Write the unlearned run folder ``out`` (staged, then moved into place): the run, its request, and the
    certificate chained to ``run``'s."""
    with staged_folder(out) as folder:
        write_run(folder, model=result.model, config=run_config, metrics=metrics, log=result.log,
                  history=history, extra_json={"request.json": request_json})
        # looked up at call time on its module, like the verbs' other steps, so it can be wrapped (a fault test
        # interrupts the run here)
        certificate = certificates.build_certificate(
            folder, original_weights_sha256=parent_weights,
            procedure=procedure,
            previous_certificate_sha256=parent_certificate_sha256(run.path))
        atomic_write_json(certificate, folder / "certificate.json")


def inferable_facts(prepared: Prepared, request: "graphdel.data.requests.DeletionRequest", close: bool
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

    request, record = audit_and_close(prepared.corpus, request, prepared.trained_rows(), close=close)
    if record is not None:
        left = record["closure"]["counts"] if close else record["counts"]
        if sum(left.values()) > left[NOT_INFERABLE]:
            hint = "; close=True (--close) also deletes the mirrored ones" if left[MIRRORED] else ""
            warn(describe_record(record) + hint)
    return request, record


def chain_original_of(run: Run) -> Run | None:
    """For a run that is itself unlearned, the trained run its chain of deletions started from (``None``
    for a trained run); a warning, and ``None``, when that run is no longer where the chain records it."""
    if not run.history:
        return None

    root = chain_original(run)
    if root is None:
        warn(f"{run.path}: the original of its chain of deletions was not found (a folder of the chain "
             "moved?); methods retain against this run itself")
    return root


def anchor_loader(root: Run, run: Run, prepared: Prepared):
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


def utc_now() -> str:
    """The time now, UTC, to the second (ISO 8601): when a request was applied, for ``graphdel history``."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def unlearning_procedure(original, result, forget, original_path: Path, method: str) -> dict:
    """What an unlearning run did, for its certificate: update steps, epochs, the selected epoch, the L2 norm
    of the weight change and the facts removed from the model's stored structure (a KG's graph).

    Raises:
        UnlearningNoOpError: the weights came out equal to the original's and nothing was removed from the
            model's structure, so there is no deletion to certify.
    """
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


# ------------------------------------------------------------------------------------------------ Retrain

def recorded_configs(run: Run) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs ``run``'s model was built and trained with (its ``config.json``)."""
    return ModelConfig.from_dict(run.config["model"]), TrainConfig(**run.config["train"])


def retrain_model(prepared: Prepared, dr_rows: Sequence[int], model_config: ModelConfig, train_config: TrainConfig,
                  *, progress: bool = True) -> TrainResult:
    """Retrain: a fresh model trained from scratch on ``dr_rows`` with the original recipe and seed; the
    :class:`~graphdel.training.loop.TrainResult` (its ``model``, its epochs and the one kept)."""
    torch.manual_seed(train_config.seed)
    model = build_model(model_config)
    sets = prepared.sets()
    return train_model(model, prepared.data.subset(dr_rows, "retain"), sets["val"], train_config,
                       progress=progress, distractors=prepared.distractors())


def retrain_when_asked(run: Run, prepared: Prepared, dr_rows: Sequence[int], device: str | torch.device,
                       where: torch.device, retrain_fn: Callable | None, progress: bool) -> Callable:
    """``(seed=None) -> TrainResult`` (a bare model from a ``retrain_fn`` that returns one): Retrain for a
    deletion from ``run`` (``retrain_fn(prepared, dr_rows)`` when given, else :func:`retrain_model` with the
    run's recorded recipe, with ``seed`` instead of its seed when given), trained only when a method asks
    for it.

    Raises (when called):
        ConfigError: a ``seed`` together with ``retrain_fn`` (whose recipe is the caller's)."""
    model_config, recorded = recorded_configs(run)
    # Retrain replays the original recipe on the device this deletion runs on (not the one the original
    # was trained on: `forget --device cpu` on a GPU machine retrains on the CPU)
    train_config = dataclasses.replace(recorded, device=device if isinstance(device, str) else str(where))

    def retrain(seed: int | None = None):
        if retrain_fn is not None:
            if seed is not None:
                raise ConfigError(f"a Retrain seed ({seed}) replays the run's recorded recipe; this caller "
                                  "trains its own Retrain (retrain_fn)")
            return retrain_fn(prepared, dr_rows)
        config = train_config if seed is None else dataclasses.replace(train_config, seed=seed)
        return retrain_model(prepared, dr_rows, model_config, config, progress=progress)

    return retrain
