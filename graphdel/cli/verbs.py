"""The commands over the API's verbs that make and score runs: ``graphdel train``, ``forget`` and
``evaluate``.

Each imports the API (and so torch) only inside the command, after its cheap checks, so the parser and
the argument errors stay torch-free (tests/test_cli.py).
"""

from __future__ import annotations

import sys

from graphdel.cli.common import _add_device, _add_json, _emit, _table
from graphdel.errors import InvalidInputError
from graphdel.runs import check_output  # torch-free

__all__ = ["cmd_train", "cmd_forget", "cmd_evaluate"]


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a joint model on a dataset and save a run folder")
    p.add_argument("--data", default="drugs", help="dataset: drugs, chebi20:PATH, csv:PATH, wordnet, kg:PATH, "
                   "depictions, karpathy:PATH, imagefolder:PATH (default drugs)")
    p.add_argument("--out", required=True, help="run folder to create (must not exist, nor lie inside a run)")
    p.add_argument("--epochs", type=int,
                   help="maximum epochs (default: the recipe's: molecules 20, KGs 30, images 15; quick 4 or 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", help="file of pair ids to leave out of training (one per line)")
    p.add_argument("--quick", action="store_true", help="small model and data sample, for tests and smoke runs")
    p.add_argument("--skip-invalid", action="store_true", help="skip and report invalid rows instead of failing")
    _add_device(p)
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine: re-runs the command under torchrun "
                        "(gloo on CPU, NCCL on GPUs); batch sizes stay global (default 1)")
    _add_json(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    """``graphdel train``: train a joint model on ``--data`` into the new run folder ``--out``.

    Prints any rows skipped with ``--skip-invalid`` (to stderr) and the summary (run path, best epoch,
    pool-64 and full graph-to-text MRR per split; JSON with ``--json``). Returns the exit status (0).
    """
    from dataclasses import replace

    import graphdel.api as api

    data = api.DataConfig(source=args.data, skip_invalid=args.skip_invalid)
    model_config = train_config = None
    if args.quick:
        data, model_config, train_config = api.quick_configs(args.data)
        data = replace(data, skip_invalid=args.skip_invalid)
    train_config = train_config or api.TrainConfig()
    train_config = replace(train_config, seed=args.seed, device=args.device,
                           **({"epochs": args.epochs} if args.epochs is not None else {}))
    exclude = api.read_id_file(args.exclude) if args.exclude else ()
    run = api.train(data, train_config, model_config, out=args.out, exclude=exclude, progress=True)
    splits = run.metrics["splits"]
    summary = {split: {"pool64_g2t_mrr": round(m["pool64"]["g2t_mrr"], 4), "g2t_mrr": round(m["g2t"]["mrr"], 4)}
               for split, m in splits.items()}
    skipped = run.config["data"].get("skipped", [])
    for record in skipped[:20]:  # --skip-invalid: say which rows were left out, not only how many
        where = f"{record['file']}, " if record.get("file") else ""
        print(f"graphdel: skipped {where}row {record.get('row')}, id {record.get('id')!r}: {record.get('reason')}",
              file=sys.stderr)
    result = {"run": str(run.path), "best_epoch": run.metrics["best_epoch"],
              "skipped_invalid": run.config["data"].get("skipped_count", len(skipped)),
              "wall_time_s": round(run.metrics["wall_time_s"], 1), "splits": summary}
    _emit(args, result, f"run: {result['run']}\nbest epoch {result['best_epoch']}, "
          f"{result['wall_time_s']} s, {result['skipped_invalid']} invalid rows skipped\n"
          + _table(["split", "pool-64 g2t MRR", "g2t MRR"],
                   [(k, f"{v['pool64_g2t_mrr']:.4f}", f"{v['g2t_mrr']:.4f}") for k, v in summary.items()]))
    return 0


def _add_forget(sub) -> None:
    p = sub.add_parser("forget", help="unlearn a deletion request from a run into a new run folder")
    p.add_argument("--model", help="run folder to unlearn from (never modified); required unless --replay")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--forget", help="file of ids (one per line) or a saved request JSON")
    g.add_argument("--replay", metavar="RUN",
                   help="run again what made the unlearned run RUN: its request, its method with the settings "
                        "it resolved to, and its seed, from its parent (so no --model, --method, --set, --seed)")
    g.add_argument("--forget-random", metavar="N_OR_FRACTION",
                   help="random request: a count (a whole number >= 1, no decimal point), or a fraction "
                        "strictly between 0 and 1 of the training units of --by")
    p.add_argument("--by", default="pair", help="granularity: pair, molecule, scaffold, image (every caption "
                   "of an image), triple, relation, entity ... (default pair, for --forget and --forget-random "
                   "alike; a saved request JSON keeps its own)")
    p.add_argument("--method", help="unlearning method (see `graphdel methods`; default multidelete)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter")
    p.add_argument("--seed", type=int, help="seed of a random request and of the method (default 0)")
    p.add_argument("--force", action="store_true", help="allow a request covering every training pair")
    p.add_argument("--close", action="store_true",
                   help="knowledge graphs: also delete the retained triples that state a requested fact backwards "
                        "(symmetric or inverse relations, learned from the graph); recorded in the request")
    p.add_argument("--tune", action="store_true",
                   help="choose the method's learning rate among 1, 0.5 and 2 times the configured one, each run in "
                        "full and judged on calibration and validation only (the run's time counts all three)")
    p.add_argument("--force-data", action="store_true",
                   help="use the data even if its content hash differs from the one the model was trained on")
    p.add_argument("--data", metavar="SPEC", help="read the run's data from SPEC (e.g. csv:NEW/PATH) instead of "
                   "the recorded source, after it moved; its content hash is still checked")
    p.add_argument("--accept-modified", action="store_true",
                   help="use a run whose weights or config.json changed since it was written (refused "
                   "otherwise); recorded in the new run's config and certificate")
    _add_device(p)
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine: re-runs the command under torchrun "
                        "(gloo on CPU, NCCL on GPUs); batch sizes stay global (default 1)")
    p.add_argument("--out", required=True, help="new run folder (must not exist, nor lie inside a run)")
    _add_json(p)
    p.set_defaults(func=cmd_forget)


def cmd_forget(args) -> int:
    """``graphdel forget``: unlearn a request (``--forget`` file or ``--forget-random``) from the run ``--model``
    with ``--method`` into the new run folder ``--out``.

    The method and its ``--set`` overrides are checked before any work. Prints a summary (JSON with ``--json``: new run path,
    method, deleted pair count, wall time, pool-64 MRR and, for KG runs, link-prediction MRR per split;
    ``stopping``, the kept checkpoint's Df selection score against the calibration reference and that
    reference's standard error over its pairs, for a run judged against one; and ``inferable``, how many
    deleted triples the retained graph still mirrors or links by a short path, and what ``--close`` added).
    Returns the exit status (0).
    """
    from graphdel.runs import Run

    if args.replay is not None:
        return _replay(args)
    if args.model is None:
        raise InvalidInputError("graphdel forget: --model RUN is required (unless --replay RUN)")
    args.method = args.method or "multidelete"
    args.seed = 0 if args.seed is None else args.seed
    # the cheap checks first: a missing run or a taken --out is said before torch is imported
    run = Run.load(args.model, accept_modified=args.accept_modified)
    check_output(args.out, reads=[run.path])  # before any work; api.forget checks it again

    import graphdel.api as api
    from graphdel.data.requests import parse_amount
    from graphdel.device import resolve_device
    from graphdel.unlearning import get_method, parse_overrides

    parse_overrides(get_method(args.method).Config, args.set)  # refuse a bad method or key before any work
    resolve_device(args.device)  # and CUDA asked for without a GPU
    amount = parse_amount(args.forget_random) if args.forget_random is not None else None
    prepared = api.load_run_data(run, force=args.force_data, source=args.data)
    request = api.make_request(run, file=args.forget, random_amount=amount, by=args.by, seed=args.seed,
                               force=args.force, prepared=prepared)
    new = api.forget(run, request, method=args.method, overrides=args.set, out=args.out, seed=args.seed,
                     device=args.device, prepared=prepared,
                     accept_modified=args.accept_modified, data=args.data, close=args.close, tune=args.tune)
    inferable = new.metrics.get("inferable")
    result = {"run": str(new.path), "method": new.config["method"],
              "deleted_pairs": new.history[-1]["request"]["count"],  # with --close, the closed request's
              "wall_time_s": round(new.metrics["wall_time_s"], 2), **_split_scores(new.metrics["splits"]),
              **({"inferable": {k: inferable[k] for k in ("triples", "counts", "inferable_share", "max_hops",
                                                           "closure") if k in inferable}} if inferable else {})}
    stopping = _stopping_record(new.metrics.get("selected") or {})
    if stopping:
        result["stopping"] = stopping
    _emit(args, result, f"run: {result['run']}\n{result['method']}: {result['deleted_pairs']} pairs deleted "
          f"in {result['wall_time_s']} s\n" + _scores_table(result) + _stopping_line(stopping)
          + _inferable_line(inferable))
    return 0


def _replay(args) -> int:
    """``graphdel forget --replay RUN``: :func:`graphdel.api.replay`; the same summary as a forget."""
    from graphdel.runs import Run

    given = [f"--{name}" for name in ("model", "method", "seed") if getattr(args, name) is not None]
    given += ["--set"] if args.set else []
    given += ["--by"] if args.by != "pair" else []
    given += ["--close"] if args.close else []
    given += ["--tune"] if args.tune else []  # the replay reproduces the kept run, without searching again
    if given:
        raise InvalidInputError(f"graphdel forget --replay takes the model, request, method, settings and seed "
                                f"from the run it replays; drop {', '.join(given)}")
    run = Run.load(args.replay, accept_modified=args.accept_modified)
    check_output(args.out, reads=[run.path])

    import graphdel.api as api

    new = api.replay(run, args.out, device=args.device, accept_modified=args.accept_modified, data=args.data)
    result = {"run": str(new.path), "method": new.config["method"], "replayed": str(run.path),
              "deleted_pairs": new.history[-1]["request"]["count"],
              "wall_time_s": round(new.metrics["wall_time_s"], 2), **_split_scores(new.metrics["splits"])}
    _emit(args, result, f"run: {result['run']} (replay of {run.path})\n{result['method']}: "
          f"{result['deleted_pairs']} pairs deleted in {result['wall_time_s']} s\n" + _scores_table(result))
    return 0


def _stopping_record(selected: dict) -> dict | None:
    """What a run's kept checkpoint was judged against: its Df selection score, the reference score (the
    calibration pairs, never trained on), the reference's standard error over its pairs and their count;
    None for a run with no such reference (Retrain, a model scored by its own selection score, a run that
    kept its last checkpoint without one)."""
    scores = selected.get("scores") or {}
    if "reference_se" not in selected or "forget" not in scores:
        return None
    return {"forget": round(scores["forget"], 4), "reference": round(scores["reference"], 4),
            "reference_name": selected.get("reference"), "reference_se": round(selected["reference_se"], 4),
            "reference_pairs": selected["reference_pairs"]}


def _stopping_line(record: dict | None) -> str:
    """The kept checkpoint's Df score against the reference and its standard error, as one more line of a
    ``forget`` summary ("" without one): a Df within about two standard errors of the reference is as close
    as the reference's own pairs can tell (docs/experiments/2026-12-07-reference-noise.md)."""
    if not record:
        return ""
    return (f"\nkept: Df selection score {record['forget']:.3f} against the {record['reference_name']} "
            f"reference {record['reference']:.3f} ± {record['reference_se']:.3f} (standard error over its "
            f"{record['reference_pairs']} pairs)")


def _inferable_line(record: dict | None) -> str:
    """The KG inferable-fact audit of a ``forget`` run as one more line of its summary ("" without one)."""
    if not record:
        return ""
    from graphdel.data.kg_facts import describe_record

    return "\n" + describe_record(record)


def _split_scores(splits: dict) -> dict:
    """``{"pool64_g2t_mrr": {split: x}}`` and, for KG runs, ``{"link_prediction_mrr": {split: x}}`` (4 places)."""
    out = {"pool64_g2t_mrr": {k: round(v["pool64"]["g2t_mrr"], 4) for k, v in splits.items() if "pool64" in v}}
    if any("lp" in v for v in splits.values()):
        out["link_prediction_mrr"] = {k: round(v["lp"]["mrr"], 4) for k, v in splits.items() if "lp" in v}
    return out


def _scores_table(scores: dict) -> str:
    """:func:`_split_scores` as a split-per-row table."""
    columns = [c for c in ("pool64_g2t_mrr", "link_prediction_mrr") if scores.get(c)]
    splits = list(dict.fromkeys(s for c in columns for s in scores[c]))
    header = {"pool64_g2t_mrr": "pool-64 g2t MRR", "link_prediction_mrr": "link-prediction MRR"}
    return _table(["split"] + [header[c] for c in columns],
                  [[s] + [f"{scores[c][s]:.4f}" if s in scores[c] else "" for c in columns] for s in splits])


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a run on forget/retain/val/test, optionally the full "
                       "suite against the original and a Retrain reference")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--forget", help="request JSON or id file naming Df (default: the run's own request)")
    p.add_argument("--original", help="the original run (default: the run's parent); selects the full suite")
    p.add_argument("--reference", help="the Retrain run of the same request; selects the full suite")
    p.add_argument("--seed", type=int, default=0, help="seed of the retain sample and the pools")
    p.add_argument("--data", metavar="SPEC", help="read the data from SPEC instead of the recorded source "
                   "(it moved); its content hash is still checked")
    p.add_argument("--accept-modified", action="store_true",
                   help="use a run whose weights or config.json changed since it was written (refused otherwise)")
    p.add_argument("--out", required=True, help="JSON file to write (never inside a run)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_device(p)
    _add_json(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    """``graphdel evaluate``: write a run's metrics to the JSON file ``--out``.

    With ``--original`` or ``--reference`` runs the full audit suite and prints its table; otherwise only
    retrieval metrics on forget/retain/val/test and prints the pool-64 (or link-prediction) MRR per split.
    With ``--json`` prints the suite's results, or the MRRs, as JSON instead.
    Returns the exit status (0).
    """
    reads = [args.model] + [r for r in (args.original, args.reference) if r]
    check_output(args.out, reads=reads, overwrite=args.overwrite, kind="file")  # before any work (and torch)

    import graphdel.api as api
    from graphdel.device import resolve_device
    from graphdel.io import atomic_write_json

    resolve_device(args.device)  # CUDA asked for without a GPU: said before any work
    if args.original or args.reference:
        from graphdel.evaluation.suite import SuiteConfig

        audit = api.evaluate(args.model, original=args.original, reference=args.reference,
                             config=SuiteConfig(seed=args.seed, device=args.device),
                             accept_modified=args.accept_modified, data=args.data)
        from graphdel.evaluation.report import to_jsonable

        results = to_jsonable(audit.results)
        atomic_write_json(results, args.out)
        _emit(args, results, audit.table())
        return 0
    result = api.evaluate_retrieval(args.model, args.forget, seed=args.seed, accept_modified=args.accept_modified,
                                    data=args.data, device=args.device)
    atomic_write_json(result, args.out)
    scores = _split_scores(result["splits"])
    _emit(args, {"out": str(args.out), **scores}, f"metrics: {args.out}\n" + _scores_table(scores))
    return 0
