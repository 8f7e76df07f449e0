"""Unlearned runs -> one evaluation (:func:`evaluate_runs`): the runs of one original and one request are
checked, every model (the original, Retrain, each method) is scored on the same pair sets
(:func:`~graphdel.evaluation.suite_model.evaluate_model`) and compared with Retrain and the original, and
the results are laid out for the report (:func:`graphdel.evaluation.report.write_report`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from graphdel.device import resolve_device
from graphdel.errors import InvalidInputError
from graphdel.evaluation.report_verdicts import SPREAD_ROLE
from graphdel.evaluation.run_data import Prepared, calibration_mirrors, load_request_any, load_run_data
from graphdel.evaluation.suite_attacks import train_shadows
from graphdel.evaluation.suite_model import SuiteConfig, compare_to_references, evaluate_model, suite_sets
from graphdel.evaluation.summary import judgement
from graphdel.history import deletion_history
from graphdel.io import canonical_json_sha256
from graphdel.models.joint import ModelConfig
from graphdel.runs import Run, is_quick_config
from graphdel.training.loop import TrainConfig

__all__ = ["MEMORY_KEYS", "evaluate_runs"]

#: What :func:`graphdel.resources.measure` records of a method's memory, copied from a run into its entry.
MEMORY_KEYS = ("peak_mem_mb", "start_mem_mb", "peak_mem_method", "peak_gpu_mem_mb")


def evaluate_runs(runs: Sequence[Any], *, config: SuiteConfig | None = None, original=None,
                  measurements: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                  log=print, accept_modified: bool = False, data: str | None = None,
                  prepared: Prepared | None = None) -> dict[str, Any]:
    """Evaluate unlearned runs that share one original (their ``config.parent``) and one request.

    Roles: the first run whose method is ``retrain`` is the reference; a further Retrain (another training
    seed) is shown with its gaps to it as role ``spread``, neither judged nor ranked; the parent is the
    original; every other run is a method. ``measurements`` maps a run folder name to
    ``{"peak_mem_mb", "peak_mem_method"}`` measured by the caller; they replace what the run folder
    recorded (``forget`` records both). Run folders given as paths are loaded with their integrity checked
    (``accept_modified`` accepts a changed file, see :meth:`graphdel.runs.Run.check_integrity`); ``data``
    re-points the original at moved data (:func:`graphdel.evaluation.run_data.load_run_data`); ``prepared``
    is the original's data already loaded by the caller (the demo's, which scores three requests of one
    original), checked against the original, instead of loading it again.

    Returns:
        ``{"results": ..., "plots": ..., "names": {name: Run}, "original": Run, "reference": Run | None,
        "entries": {name: entry}}`` where ``results``/``plots`` are in the layout of
        :func:`graphdel.evaluation.report.write_report`.

    The steps (checks, data, models, summary, layout) are helpers of this module; what stays here is their
    order and the ``results`` layout, written out whole in one place so the report's keys can be read off it.
    """
    cfg = config or SuiteConfig()
    resolve_device(cfg.device)  # a device that is not here is refused before any work
    runs, original = _load_runs(runs, original, accept_modified)
    reference = next((r for r in runs if r.config.get("method") == "retrain"), None)
    names = dict(zip(_model_names(runs), runs))

    log(f"evaluating {len(runs)} runs against original {original.path}"
        + (f" and Retrain {reference.path}" if reference else " (no Retrain run: forgetting is not judged)"))
    prepared, sets, shadows, hidden = _suite_data(original, runs, cfg, data, progress, log, prepared)
    corpus = prepared.corpus
    entries, sigs, ref_name = _compared_models(original, names, reference, sets, cfg, corpus, shadows, hidden,
                                               measurements, log)
    plots = _plots(entries, sigs)

    methods, summary, order = _ranking(entries, names, ref_name)
    shown = ["original"] + ([ref_name] if ref_name else []) + order[:3]
    examples = _examples(sets["forget"], corpus, sigs, shown)
    rq = _read_json(runs[0].path / "request.json")
    entries = _report_order(entries, ref_name, order)
    smoke = is_quick_config(original.config)  # a --quick original: measured, never judged
    results = {
        "title": _title(len(methods), summary, order, rq, corpus.source, smoke),
        "request": {"description": rq.get("description"), "pairs": rq.get("count"), "by": rq.get("by"),
                    "seed": rq.get("seed"), "source": rq.get("source"), "source_hash": rq.get("source_hash"),
                    "modality": corpus.modality, "original": str(original.path),
                    "reference": str(reference.path) if reference else None, "evaluation_seed": cfg.seed,
                    "Dr chunks": cfg.chunks, "sets": {k: len(v) for k, v in sets.items()},
                    **({"lira_shadow_training_s": round(shadows["wall_time_s"], 1)} if shadows else {})},
        "models": entries,
        "summary": summary,
        "examples": examples,
        "smoke": smoke,
        # every request applied since the original training, when the runs continue a chain of deletions
        "history": [dataclasses.asdict(step) for step in deletion_history(runs[0].path)],
    }
    return {"results": results, "plots": plots, "names": names, "original": original, "reference": reference,
            "entries": entries, "config": cfg}


def _suite_data(original, runs: Sequence[Any], cfg: SuiteConfig, data: str | None, progress: bool, log,
                prepared: Prepared | None = None
                ) -> tuple[Prepared, dict[str, Any], dict[str, Any] | None, Any]:
    """``(prepared, sets, shadows, hidden)``: the original's data (re-pointed at ``data`` when given), the
    suite's pair sets for the runs' request (:func:`~graphdel.evaluation.suite_model.suite_sets`: Df, Dr
    chunks, test...), when ``cfg.lira_shadows`` LiRA's shadow models (else ``None``) and, when the request
    was closed over its mirrors (``forget --close``: a run's ``inferable`` record holds a ``closure``),
    the retained mirrors of the calibration triples
    (:func:`~graphdel.evaluation.run_data.calibration_mirrors`, else ``None``). A ``prepared`` given is
    used when it is the original's (:meth:`~graphdel.evaluation.run_data.Prepared.check_matches`)."""
    if prepared is None:
        prepared = load_run_data(original, progress=progress, source=data)
    prepared.check_matches(original)
    request = load_request_any(prepared, runs[0].path / "request.json")
    df_rows = request.rows(prepared.corpus)
    sets = suite_sets(prepared, df_rows, chunks=cfg.chunks, seed=cfg.seed)
    closed = any("closure" in (run.metrics.get("inferable") or {}) for run in runs)
    hidden = calibration_mirrors(prepared, prepared.retained_rows(df_rows)) if closed else None
    shadows = None
    if cfg.lira_shadows:
        shadows = _lira_shadows(prepared, df_rows, sets, original, cfg, progress, log)
    return prepared, sets, shadows, hidden


def _compared_models(original, names: Mapping[str, Any], reference, sets, cfg: SuiteConfig, corpus,
                     shadows: dict | None, hidden, measurements: Mapping[str, Mapping[str, Any]] | None, log
                     ) -> tuple[dict[str, dict], dict[str, dict], str | None]:
    """``(entries, signals, ref_name)``: every model scored (:func:`_evaluate_models`) and each entry
    completed with its comparison to Retrain (the run named ``ref_name``, ``None`` without one) and to the
    original (:func:`~graphdel.evaluation.suite_model.compare_to_references`)."""
    entries, sigs = _evaluate_models(original, names, reference, sets, cfg, corpus, shadows, hidden,
                                     measurements, log)
    ref_name = next((n for n, r in names.items() if r is reference), None)
    for name in names:
        entries[name].update(compare_to_references(entries[name],
                                                   retrain=entries[ref_name] if ref_name else None,
                                                   original=entries["original"]))
    return entries, sigs, ref_name


def _ranking(entries: Mapping[str, dict], names: Mapping[str, Any], ref_name: str | None
             ) -> tuple[dict[str, dict], dict[str, Any], list[str]]:
    """``(methods, summary, order)``: the entries of the methods (every run but the Retrains), their summary
    (:func:`~graphdel.evaluation.summary.judgement`; empty without Retrain) and their order, best first (the summary's ranking, else the
    order given)."""
    methods = {n: entries[n] for n in names if entries[n]["role"] == "method"}
    summary = judgement(entries, "original", ref_name, list(methods))
    order = (summary.get("scores") or {}).get("ranking") or list(methods)
    return methods, summary, order


def _report_order(entries: Mapping[str, dict], ref_name: str | None, order: Sequence[str]) -> dict[str, dict]:
    """``entries`` reordered for the report: the original, Retrain, then the methods in ``order``, then any
    other entry."""
    # methods in ranking order (best first), so the first screen reads top-down
    return {n: entries[n] for n in ["original"] + ([ref_name] if ref_name else []) + list(order)
            + [n for n in entries if n not in order and n not in ("original", ref_name)]}


def _load_runs(runs: Sequence[Any], original, accept_modified: bool) -> tuple[list, Any]:
    """``(runs, original)`` as :class:`~graphdel.runs.Run` (folders loaded with their integrity checked), once
    the runs are known to be unlearned runs of one original and one request (else
    :class:`~graphdel.errors.InvalidInputError`); the original defaults to the runs' parent."""
    runs = [r if isinstance(r, Run) else Run.load(r, accept_modified=accept_modified) for r in runs]
    if not runs:
        raise InvalidInputError("give at least one unlearned run")
    not_forget = [str(r.path) for r in runs if r.config.get("kind") != "forget" or not (r.path / "request.json").is_file()]
    if not_forget:
        raise InvalidInputError(f"not unlearned runs (no parent/request): {not_forget}")
    parents = {r.config["parent"]["weights_sha256"] for r in runs}
    if len(parents) != 1:
        raise InvalidInputError("the runs were unlearned from different original models; report them separately")
    requests = {canonical_json_sha256(_read_json(r.path / "request.json")) for r in runs}
    if len(requests) != 1:
        raise InvalidInputError("the runs unlearned different deletion requests; report them separately")
    if original is None:
        original = Run.load(runs[0].config["parent"]["path"], accept_modified=accept_modified)
    elif not isinstance(original, Run):
        original = Run.load(original, accept_modified=accept_modified)
    return runs, original


def _model_names(runs) -> list[str]:
    methods = [r.config.get("method") or r.path.name for r in runs]
    return [m if methods.count(m) == 1 else f"{m} ({r.path.name})" for m, r in zip(methods, runs)]


def _lira_shadows(prepared, df_rows: Sequence[int], sets: Mapping[str, Any], original, cfg: SuiteConfig,
                  progress: bool, log) -> dict[str, Any]:
    """LiRA's ``cfg.lira_shadows`` shadow models (:func:`~graphdel.evaluation.suite_attacks.train_shadows`),
    trained with the original's recipe and read on the suite's Df and test pairs."""
    log(f"training {cfg.lira_shadows} LiRA shadow models on random halves ...")
    rows_of = lambda s: [int(r) for r in sets[s].rows.tolist()]
    return train_shadows(prepared, df_rows, ModelConfig.from_dict(original.config["model"]),
                         TrainConfig(**original.config["train"]), shadows=cfg.lira_shadows,
                         epochs=cfg.lira_epochs, seed=cfg.seed, progress=progress,
                         targets={"forget": rows_of("forget"), "test": rows_of("test")},
                         device=cfg.device)


def _evaluate_models(original, names: Mapping[str, Any], reference, sets, cfg: SuiteConfig, corpus,
                     shadows: dict | None, hidden, measurements: Mapping[str, Mapping[str, Any]] | None, log
                     ) -> tuple[dict[str, dict], dict[str, dict]]:
    """``(entries, signals)`` of the original and then of every named run (:func:`evaluate_model`, ``hidden``
    its ``calibration_hidden``), each entry with its role, method, path, wall time and, for the runs, the
    memory recorded or measured."""
    entries: dict[str, dict] = {}
    sigs: dict[str, dict] = {}
    log("  original ...")
    entries["original"], sigs["original"] = evaluate_model(original.model, sets, config=cfg, corpus=corpus,
                                                           shadows=shadows, calibration_hidden=hidden)
    entries["original"].update(role="original", method="original", path=str(original.path),
                               wall_time_s=original.metrics.get("wall_time_s"))
    for name, run in names.items():
        log(f"  {name} ...")
        entry, sig = evaluate_model(run.model, sets, config=cfg, corpus=corpus,
                                    original_signals=sigs["original"], shadows=shadows,
                                    calibration_hidden=hidden)
        # the memory the run recorded (api.forget measures it), unless the caller measured it
        memory = {k: run.metrics[k] for k in MEMORY_KEYS if run.metrics.get(k) is not None}
        memory.update((measurements or {}).get(run.path.name, {}))
        role = ("reference" if run is reference else SPREAD_ROLE if run.config.get("method") == "retrain"
                else "method")
        entry.update(role=role, method=run.config.get("method"),
                     path=str(run.path), wall_time_s=run.metrics.get("wall_time_s"), **memory)
        entries[name], sigs[name] = entry, sig
    return entries, sigs


def _plots(entries: Mapping[str, dict], sigs: Mapping[str, dict]) -> dict[str, Any]:
    """The figures' data (similarities, attack ROC, embeddings of forget/retain/test with Df marked) of every
    model; each entry's per-pair arrays (``entry["_arrays"]``) are taken out of it here."""
    plots: dict[str, Any] = {"similarities": {}, "roc": {}, "embeddings": {}}
    for name, entry in entries.items():
        arrays = entry.pop("_arrays")
        plots["similarities"][name] = {k: v for k, v in arrays["similarity"].items()
                                       if k in ("forget", "retain", "test")}
        if arrays.get("roc") is not None:
            plots["roc"][name] = arrays["roc"]
        parts = [sigs[name][k].emb.z_x for k in ("forget", "retain", "test") if k in sigs[name]]
        mask = np.concatenate([np.full(sigs[name][k].emb.z_x.size(0), k == "forget")
                               for k in ("forget", "retain", "test") if k in sigs[name]])
        plots["embeddings"][name] = (torch.cat(parts).numpy(), mask)
    return plots


def _examples(forget, corpus, sigs: Mapping[str, dict], shown: Sequence[str]) -> list[dict[str, Any]]:
    """The first five deleted pairs (id, shortened caption), each with its similarity under every ``shown``
    model."""
    examples = []
    for k, r in enumerate(forget.rows.tolist()[:5]):
        ex = {"pair_id": corpus.pair_ids[r], "caption": _short(corpus.texts[r])}
        for n in shown:
            ex[f"sim {n}"] = float(sigs[n]["forget"].similarity[k])
        examples.append(ex)
    return examples


def _title(n_methods: int, summary: Mapping[str, Any], order: Sequence[str], rq: Mapping[str, Any], source,
           smoke: bool) -> str:
    """The report's title: what was compared, and the best method and how many pass every target (a smoke
    run is marked not judged instead)."""
    title = (f"graphdel unlearning report: {n_methods} method(s) vs Retrain on {rq.get('count')} deleted "
             f"pairs of {source}")
    if smoke:
        title += " (smoke run: not judged)"
    elif summary.get("thresholds") and order:
        passing = [n for n, t in summary["thresholds"].items() if all(v.get("passed") for v in t.values())]
        best = summary["scores"]["methods"][order[0]]["score"]
        title += (f" — best: {order[0]} (score {best:.2f}); {len(passing)} of {n_methods} pass every target"
                  if best is not None else "")
    return title


def _short(s: str, n: int = 90) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def _read_json(path) -> dict:
    import json

    return json.loads(open(path, encoding="utf-8").read())
