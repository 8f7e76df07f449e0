"""The ``graphdel`` command: a thin shell over :mod:`graphdel.api`.

Every subcommand maps to a few lines of the Python API; errors the user can cause are printed as one line
(``graphdel: error: ...``) with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from graphdel.device import DEVICE_HELP, check_device_name  # torch-free, like the two below
from graphdel.errors import GraphdelError
from graphdel.runs import check_output  # torch-free: `graphdel --help` imports no torch (tests/test_cli.py)

#: One default for every command that computes: a GPU when there is one (results on CPU are bit-identical
#: run to run; pass ``--device cpu`` to get them on a GPU machine).
DEFAULT_DEVICE = "auto"


def _add_device(p: argparse.ArgumentParser) -> None:
    # no argparse `choices`: cuda:N is a device too; main() checks the name (one line, exit 2) and each
    # command resolves it (graphdel.device.resolve_device) before any work
    p.add_argument("--device", default=DEFAULT_DEVICE, metavar="auto|cpu|cuda|cuda:N", help=DEVICE_HELP)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress and "
                   "warnings always go to stderr)")


def _emit(args, result: Any, human: str) -> None:
    """Print the command's result on stdout: ``result`` as JSON with ``--json``, else the ``human`` text."""
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else human)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned plain-text columns (two spaces apart) for the terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a joint model on a dataset and save a run folder")
    p.add_argument("--data", default="drugs", help="dataset: drugs, chebi20:PATH, csv:PATH, wordnet, kg:PATH, "
                   "depictions, karpathy:PATH, imagefolder:PATH (default drugs)")
    p.add_argument("--out", required=True, help="run folder to create (must not exist, nor lie inside a run)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default 15; quick 4)")
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


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("stats", help="print pair, item and text counts per split (a knowledge graph: also "
                                      "entities, relations, triples per split and relation frequencies)")
    s.add_argument("source", help="dataset: drugs, chebi20:PATH, csv:PATH, wordnet, kg:PATH, ...")
    s.add_argument("--skip-invalid", action="store_true")
    _add_json(s)
    s.set_defaults(func=cmd_data_stats)


def cmd_data_stats(args) -> int:
    """``graphdel data stats SOURCE``: print the dataset's pair, item and text counts per split (and what
    loading skipped, stripped or grouped; all of it as JSON with ``--json``); returns 0."""
    import graphdel.data.images  # noqa: F401  (registers the depictions/karpathy/imagefolder sources)
    import graphdel.data.kg  # noqa: F401  (registers the kg:/wordnet sources)
    from graphdel.data.sources import load_dataset

    corpus = load_dataset(args.source, skip_invalid=args.skip_invalid)
    stats = corpus.stats()
    counted = {**stats["splits"], "total": stats["total"]}
    notes = [f"{key.replace('_', ' ')}: {value}" for key, value in stats.items()
             if key not in ("source", "modality", "splits", "total", "skipped") and value]
    graph = _graph_stats(corpus)
    if graph is not None:
        stats["graph"] = graph
    mirrors = _mirror_relations(corpus)
    if mirrors is not None:
        stats["mirror_relations"] = mirrors
    _emit(args, stats, f"{stats['source']} ({stats['modality']})\n"
          + _table(["split", "pairs", "items", "texts"],
                   [(k, v["pairs"], v["items"], v["texts"]) for k, v in counted.items()])
          + "".join(f"\n{note}" for note in notes) + _graph_tables(graph) + _mirror_table(mirrors))
    return 0


def _graph_stats(corpus) -> dict | None:
    """For a KG corpus, its entities, relations, triples per split and relation frequencies
    (:func:`graphdel.data.kg.kg_stats`); else ``None``."""
    if corpus.modality != "kg":
        return None
    from graphdel.data.kg import kg_stats

    return kg_stats(corpus)


def _graph_tables(graph: dict | None) -> str:
    """A KG's counts as text: entities and relations, triples per split, relation frequencies ("" without)."""
    if graph is None:
        return ""
    e, t = graph["entities"], graph["triples"]
    splits = [k for k in t if k != "total"]
    return (f"\nknowledge graph: {e['total']:,} entities ({e['with_text']:,} with a text: the pairs above), "
            f"{graph['relations']} relations\n"
            + _table(["split", "triples"], [(k, f"{v:,}") for k, v in t.items()])
            + "\nrelation frequencies (triples per split):\n"
            + _table(["relation", *splits, "total"],
                     [(f["relation"], *(f"{f[k]:,}" for k in splits), f"{f['total']:,}")
                      for f in graph["relation_frequencies"]]))


def _mirror_relations(corpus) -> dict | None:
    """For a KG corpus, the relation pairs whose training triples the graph also states backwards
    (:func:`graphdel.data.kg_facts.learn_mirror_relations`, default thresholds): ``{"min_share",
    "min_support", "pairs": [{"relation", "mirror", "share", "mirrored", "triples"}]}``; else ``None``."""
    if corpus.modality != "kg":
        return None
    from graphdel.data.kg import kg_triples
    from graphdel.data.kg_facts import learn_mirror_relations

    learned = learn_mirror_relations(kg_triples(corpus, "train"))
    return {"min_share": learned.min_share, "min_support": learned.min_support, "pairs": learned.to_json()}


def _mirror_table(mirrors: dict | None) -> str:
    """The mirror relation pairs as a text table under a heading ("" when there is nothing to show)."""
    if mirrors is None:
        return ""
    head = (f"\nmirror relations (share of a relation's training triples (h, r, t) with (t, mirror, h) in the "
            f"graph; share >= {mirrors['min_share']}, at least {mirrors['min_support']} mirrored):")
    if not mirrors["pairs"]:
        return head + " none"
    return head + "\n" + _table(["relation", "mirror", "share", "mirrored", "triples"],
                                 [(p["relation"], p["mirror"], f"{p['share']:.4f}", p["mirrored"], p["triples"])
                                  for p in mirrors["pairs"]])


def _add_forget(sub) -> None:
    p = sub.add_parser("forget", help="unlearn a deletion request from a run into a new run folder")
    p.add_argument("--model", required=True, help="run folder to unlearn from (never modified)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--forget", help="file of ids (one per line) or a saved request JSON")
    g.add_argument("--forget-random", metavar="N_OR_FRACTION",
                   help="random request: a count (a whole number >= 1, no decimal point), or a fraction "
                        "strictly between 0 and 1 of the training units of --by")
    p.add_argument("--by", default="pair", help="granularity: pair, molecule, scaffold, image (every caption "
                   "of an image), triple, relation, entity ... (default pair, for --forget and --forget-random "
                   "alike; a saved request JSON keeps its own)")
    p.add_argument("--method", default="multidelete", help="unlearning method (see `graphdel methods`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="allow a request covering every training pair")
    p.add_argument("--close", action="store_true",
                   help="knowledge graphs: also delete the retained triples that state a requested fact backwards "
                        "(symmetric or inverse relations, learned from the graph); recorded in the request")
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
    method, deleted pair count, wall time, pool-64 MRR and, for KG runs, link-prediction MRR per split and
    ``inferable``, how many deleted triples the retained graph still mirrors or links by a short path, and
    what ``--close`` added). Returns the exit status (0).
    """
    from graphdel.runs import Run

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
                     accept_modified=args.accept_modified, data=args.data, close=args.close)
    inferable = new.metrics.get("inferable")
    result = {"run": str(new.path), "method": new.config["method"],
              "deleted_pairs": new.history[-1]["request"]["count"],  # with --close, the closed request's
              "wall_time_s": round(new.metrics["wall_time_s"], 2), **_split_scores(new.metrics["splits"]),
              **({"inferable": {k: inferable[k] for k in ("triples", "counts", "inferable_share", "max_hops",
                                                           "closure") if k in inferable}} if inferable else {})}
    _emit(args, result, f"run: {result['run']}\n{result['method']}: {result['deleted_pairs']} pairs deleted "
          f"in {result['wall_time_s']} s\n" + _scores_table(result) + _inferable_line(inferable))
    return 0


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


def _add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the unlearning methods and their settings (--set KEY=VALUE)",
                       description="Without NAME: every method, its citation and the settings it sets itself. "
                       "With NAME: every setting of those methods, its default and meaning.")
    p.add_argument("names", nargs="*", metavar="NAME", help="show every setting of these methods")
    _add_json(p)
    p.set_defaults(func=cmd_methods)


def cmd_methods(args) -> int:
    """``graphdel methods [NAME...]``: print each registered unlearning method (or the named ones) with its
    summary, citation and settings (:func:`graphdel.unlearning.settings.method_settings`).

    Without names only the settings a method sets itself are listed, as ``key=default``; with names every
    setting, its default and meaning; with ``--json`` everything. Returns 0; an unknown name raises
    :class:`~graphdel.errors.ConfigError` (exit 2).
    """
    from graphdel.unlearning import available_methods, get_method
    from graphdel.unlearning.settings import method_settings

    rows = available_methods()
    if args.names:
        rows = [(cls.name, cls.summary, cls.citation) for cls in map(get_method, args.names)]
    described = [{"name": name, "summary": summary, "citation": citation,
                  "settings": [vars(s) for s in method_settings(get_method(name).Config)]}
                 for name, summary, citation in rows]
    blocks = []
    for method in described:
        head = f"{method['name']}: {method['summary']}\n  [{method['citation']}]"
        settings = method["settings"]
        if args.names:
            body = _table(["  setting", "default", "meaning"],
                          [(f"  {s['key']}", _shown(s["default"]), s["help"]) for s in settings])
        else:
            own = [f"{s['key']}={_shown(s['default'])}" for s in settings if s["own"]]
            common = len(settings) - len(own)
            body = ("  settings: " + (" ".join(own) or "none of its own")
                    + (f" (+{common} common; `graphdel methods {method['name']}`)" if common else ""))
        blocks.append(head + "\n" + body)
    _emit(args, described, "\n\n".join(blocks))
    return 0


def _shown(value: Any) -> str:
    """A default as ``--set`` takes it (``true``, ``none``, ``1e-05``)."""
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return str(value)


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="evaluate unlearned runs (one original, one request) and write the audit report")
    p.add_argument("runs", nargs="+", metavar="RUN", help="unlearned run folders; a run whose method is "
                   "`retrain` is the reference, their common parent the original")
    p.add_argument("--out", required=True, help="report folder (report.html, report.md, metrics.json, plots/, "
                   "certificates/); never inside or around a run it reads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder whole")
    p.add_argument("--data", metavar="SPEC", help="read the original's data from SPEC instead of the recorded "
                   "source (it moved); its content hash is still checked")
    p.add_argument("--accept-modified", action="store_true",
                   help="use a run whose weights or config.json changed since it was written (refused otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation samples, pools and attacks")
    p.add_argument("--chunks", type=int, default=5, help="Dr chunks of |Df| for Df-vs-Dr AUC (default 5)")
    p.add_argument("--no-probes", action="store_true", help="skip the unimodal property probes")
    p.add_argument("--lira-shadows", type=int, default=0, metavar="N",
                   help="also run LiRA with N >= 4 shadow models trained on random halves (costly)")
    p.add_argument("--lira-epochs", type=int, default=None, metavar="E",
                   help="epochs per shadow model (default: the original recipe's)")
    p.add_argument("--audit", action="append", default=[], metavar="DIR",
                   help="a `graphdel audit` folder of one method on the same original and request: its "
                   "per-example epsilon and U-LiRA are shown, and the certificates of that method's runs "
                   "record its hash; repeat for several methods")
    _add_device(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    """``graphdel report RUN...``: evaluate unlearned runs of one request against their common original (and the
    ``retrain`` run as reference) and write the audit report folder ``--out``.

    Prints the short table and the path of ``report.html``; returns the exit status (0). Raises
    :class:`~graphdel.errors.InvalidInputError` when ``--lira-shadows`` is between 1 and 3.
    """
    from graphdel.errors import InvalidInputError

    if args.lira_shadows and args.lira_shadows < 4:
        raise InvalidInputError(f"--lira-shadows needs at least 4 shadow models, got {args.lira_shadows}")
    # before any work (and torch); an audit folder is read too, so --out never replaces one
    check_output(args.out, reads=[*args.runs, *args.audit], overwrite=args.overwrite)

    from graphdel.device import resolve_device
    from graphdel.evaluation.audit_report import attach_audits, check_audits_against_run, read_audits
    from graphdel.evaluation.suite import SuiteConfig, evaluate_runs, save_audit, short_table

    resolve_device(args.device)  # CUDA asked for without a GPU: said before any work
    audits = read_audits(args.audit)  # a bad audit file, or one of another request, before the evaluation
    check_audits_against_run(audits, args.runs[0])
    cfg = SuiteConfig(seed=args.seed, chunks=args.chunks, probes=not args.no_probes,
                      lira_shadows=args.lira_shadows, lira_epochs=args.lira_epochs, device=args.device)
    audit = evaluate_runs(args.runs, config=cfg, progress=False, log=lambda s: print(s, file=sys.stderr),
                          accept_modified=args.accept_modified, data=args.data)
    if audits:
        attach_audits(audit, audits)  # of the runs' original and request, else refused
    files = save_audit(args.out, audit, overwrite=args.overwrite)  # staged and swapped in whole
    print(short_table(audit))
    print(f"report: {files['report.html']}")
    return 0


def _add_verify(sub) -> None:
    p = sub.add_parser(
        "verify", help="check every field of a deletion certificate (hashes, procedure, re-evaluated metrics); "
        "exit 0 holds, 1 does not hold, 3 could not be checked",
        description="Check every field a deletion certificate asserts against its run folders and the corpus, "
                    "re-evaluating its metrics, and name each field that no longer holds.",
        epilog="exit status: 0 the certificate holds (checks that could not be made, e.g. of a moved original "
               "run, are listed as 'not checked'); 1 it does NOT hold; 2 bad input (unreadable certificate, "
               "bad --tolerance); 3 it could not be checked (its unlearned run was not found, e.g. the "
               "certificate was copied away from its run folder)")
    p.add_argument("certificate", metavar="CERT", help="certificate.json (in a run folder or a report's "
                   "certificates/ folder)")
    p.add_argument("--tolerance", type=float, default=1e-6,
                   help="metric tolerance, a finite number >= 0 (default 1e-6; relative above magnitude 1)")
    p.add_argument("--no-metrics", action="store_true", help="check hashes and recorded fields only, do not "
                   "re-evaluate (metric checks are reported as not checked)")
    _add_device(p)
    p.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    """``graphdel verify CERT``: check every field of a deletion certificate (metrics re-evaluated unless
    ``--no-metrics``) and print each check as ok, FAIL or not checked.

    Returns 0 when the certificate holds, 1 when a check failed, 3 when it could not be checked (its run was
    not found). Raises :class:`~graphdel.errors.InvalidInputError` (exit 2) for a ``--tolerance`` that is not
    a finite number >= 0.
    """
    import math

    from graphdel.errors import InvalidInputError
    from graphdel.evaluation.certificate import verify_certificate

    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise InvalidInputError(f"--tolerance must be a finite number >= 0, got {args.tolerance!r}")
    result = verify_certificate(args.certificate, tolerance=args.tolerance, metrics=not args.no_metrics,
                                device=args.device)
    for name, ok, detail in result.checks:
        mark = "ok" if ok else ("FAIL" if ok is False else "not checked")
        print(f"{mark:<11} {name}: {detail}")
    if result.unreachable is not None:  # nothing about the run itself could be checked
        print(f"{'not checked':<11} run: {result.unreachable}")
    names = lambda checks: ", ".join(name for name, _, _ in checks)
    if result.status == "does not hold":
        print(f"certificate does NOT hold: {len(result.failed)} failed check(s): {names(result.failed)}")
        return 1
    if result.status == "cannot check":
        print(f"certificate could NOT be checked: {result.unreachable}")
        return 3  # distinct from 1: nothing was found wrong, the run was not there to check
    skipped = result.not_checked
    print(f"certificate holds: {args.certificate}"
          + (f" ({len(skipped)} check(s) not made: {names(skipped)})" if skipped else ""))
    return 0


def _add_audit(sub) -> None:
    p = sub.add_parser("audit", help="per-example privacy audit of a method on one request: many unlearned "
                       "and many retrained models, per-example epsilon and U-LiRA",
                       description="Train M unlearned models (the method with M seeds) and M Retrains (M "
                       "training seeds) of one request and estimate, per deleted pair, how well an attacker "
                       "tells them apart (graphdel.audit). Every model is cached and reused.")
    p.add_argument("--model", required=True, help="the trained original run (never modified)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--forget", help="file of ids (one per line) or a saved request JSON")
    g.add_argument("--forget-random", metavar="N_OR_FRACTION", help="random request, as in forget")
    p.add_argument("--by", default="pair", help="granularity, as in forget (default pair)")
    p.add_argument("--seed", type=int, default=0, help="seed of a random request and of the signal pools")
    p.add_argument("--method", default="multidelete", help="the unlearning method audited")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method setting")
    p.add_argument("--models", type=int, default=16, metavar="M", help="models of each kind (>= 4; default 16)")
    p.add_argument("--originals", action="store_true",
                   help="also train M originals (seeds 0..M-1) and unlearn each (U-LiRA's population)")
    _add_device(p)
    p.add_argument("--out", required=True, help="output folder (audit.json, epsilon.png, ulira_roc.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out whole")
    _add_json(p)
    p.set_defaults(func=cmd_audit)


def cmd_audit(args) -> int:
    """``graphdel audit``: :func:`graphdel.audit.run_audit` of ``--method`` on the request, written to
    ``--out``; prints the per-example ε (median, 90th percentile) and U-LiRA TPR at 1% FPR of each signal
    against the floor (JSON with ``--json``). Returns 0."""
    from graphdel.errors import InvalidInputError
    from graphdel.runs import Run

    if args.models < 4:
        raise InvalidInputError(f"--models must be at least 4 (two shadows and two targets per side), "
                                f"got {args.models}")
    original = Run.load(args.model)
    if original.config.get("kind") == "forget":
        raise InvalidInputError(f"--model {args.model}: give the trained original, not an unlearned run")
    check_output(args.out, reads=[original.path], overwrite=args.overwrite)

    import graphdel.api as api
    from graphdel.audit import AuditConfig, run_audit
    from graphdel.data.requests import parse_amount
    from graphdel.device import resolve_device
    from graphdel.unlearning import get_method, parse_overrides

    parse_overrides(get_method(args.method).Config, args.set)
    resolve_device(args.device)  # CUDA asked for without a GPU: said before any work
    amount = parse_amount(args.forget_random) if args.forget_random is not None else None
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, file=args.forget, random_amount=amount, by=args.by, seed=args.seed,
                               prepared=prepared)
    config = AuditConfig(method=args.method, overrides=args.set, models=args.models, originals=args.originals,
                         seed=args.seed, device=args.device)
    result = run_audit(original, request, config, args.out, overwrite=args.overwrite,
                       log=lambda line: print(line, file=sys.stderr))
    rows = []
    for name, est in result["signals"].items():
        eps, half, fl = est["epsilon"], est["epsilon_half"], est["epsilon_floor"]
        rows.append((name, f"{eps['median']:.2f} / {eps['p90']:.2f}", f"{half['median']:.2f} / {half['p90']:.2f}",
                     f"{fl['median']:.2f} / {fl['p90']:.2f}",
                     f"{est['ulira']['tpr_at']['0.01']:.3f}",
                     "n/a (< 8 models)" if est["ulira_floor"] is None else f"{est['ulira_floor']['tpr_at']['0.01']:.3f}"))
    _emit(args, result, f"audit: {args.out}/audit.json ({args.method}, {len(result['per_example'])} deleted "
          f"pairs, {args.models} models of each kind)\n"
          + _table(["signal", "epsilon median / p90", "at M/2", "floor (M/2)", "U-LiRA TPR@1%FPR", "floor"], rows))
    return 0


def _add_history(sub) -> None:
    p = sub.add_parser("history", help="list the deletion requests applied to a run since its original "
                       "training, and check the chain of their certificates",
                       epilog="exit status: 0 every link of the chain holds (or could not be checked: a "
                       "parent folder moved); 1 a link is broken (a certificate or history replaced)")
    p.add_argument("run", metavar="RUN", help="a run folder (trained or unlearned)")
    _add_json(p)
    p.set_defaults(func=cmd_history)


def cmd_history(args) -> int:
    """``graphdel history RUN``: print every request applied since the original training, oldest first
    (when, granularity, pairs, method, the certificate's hash, the chain check;
    :func:`graphdel.history.deletion_history`). Returns 1 when a link of the chain is broken, else 0."""
    from dataclasses import asdict

    from graphdel.history import deletion_history

    steps = deletion_history(args.run)
    rows = [(s.step, s.applied_at or "not recorded", s.by, s.pairs, s.method,
             (s.certificate_sha256 or "not found")[:12], s.chain) for s in steps]
    human = (_table(["step", "applied (UTC)", "by", "pairs", "method", "certificate", "chain"], rows)
             + "".join(f"\n  {s.step}: {s.description}" for s in steps)
             if steps else f"{args.run}: no deletion request applied (a trained run)")
    _emit(args, [asdict(s) for s in steps], human)
    return 1 if any(s.chain.startswith("broken") for s in steps) else 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train, delete 5%% of the molecules, run Retrain and every method, "
                       "write the report")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out whole (the old one is "
                   "deleted only when the new demo is complete)")
    p.add_argument("--quick", action="store_true", help="small model and data sample (a few minutes on a CPU)")
    p.add_argument("--kg", action="store_true",
                   help="the knowledge-graph cleanup scenario: WordNet, delete 2%% of the training triples")
    p.add_argument("--modality", default="graph", choices=["graph", "image"],
                   help="graph: molecule graphs and captions (drugs); image: RDKit depictions of the same "
                   "molecules with the same captions and pair ids (depictions), so the same request applies")
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)  # advanced: another dataset spec
    p.add_argument("--methods", help="comma-separated methods (default: every registered method)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lira-shadows", type=int, default=0, metavar="N", help="also run LiRA (N >= 4; costly)")
    p.add_argument("--lira-epochs", type=int, default=None, metavar="E", help="epochs per shadow model")
    _add_device(p)
    p.add_argument("--accept-modified", action="store_true",
                   help="use a cached original whose weights or config.json changed since it was written "
                   "(refused otherwise)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """``graphdel demo``: run the end-to-end demo (:func:`graphdel.demo.run_demo`) into ``--out``.

    The scenario is the molecule one (``drugs``), the KG cleanup with ``--kg`` (WordNet, 2% of the triples) or
    the image one with ``--modality image`` (``depictions``). Returns the exit status (0); raises
    :class:`~graphdel.errors.InvalidInputError` for ``--kg`` with ``--modality image`` or a bad ``--lira-shadows``.
    """
    from graphdel.demo import DemoConfig, run_demo
    from graphdel.errors import InvalidInputError

    if args.lira_shadows and args.lira_shadows < 4:
        raise InvalidInputError(f"--lira-shadows needs at least 4 shadow models, got {args.lira_shadows}")
    methods = None
    if args.methods is not None:  # "," or "a,,b" is a mistake, never "every method"
        methods = [m.strip() for m in args.methods.split(",")]
        if not all(methods):
            raise InvalidInputError(f"--methods {args.methods!r}: empty method name in the list; give "
                                    "comma-separated names, e.g. multidelete,neggrad")
    scenario = dict(data="wordnet", by="triple", fraction=0.02) if args.kg else dict(data="drugs")
    if args.modality == "image":
        if args.kg:
            raise InvalidInputError("--kg and --modality image are different scenarios; give one")
        scenario = dict(data="depictions")
    if args.data:
        scenario["data"] = args.data
    run_demo(DemoConfig(out=args.out, quick=args.quick, seed=args.seed, methods=methods,
                        lira_shadows=args.lira_shadows, lira_epochs=args.lira_epochs, device=args.device,
                        overwrite=args.overwrite, accept_modified=args.accept_modified, **scenario))
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="one deletion request on two modalities (e.g. graph and image demos): "
                       "every model's outcome side by side")
    p.add_argument("left", metavar="RUN_GRAPH", help="a report/demo folder or an unlearned run folder")
    p.add_argument("right", metavar="RUN_IMAGE", help="a report/demo folder or an unlearned run folder")
    p.add_argument("--out", help="also write the table (Markdown) to this file, and its numbers to FILE.json")
    p.add_argument("--overwrite", action="store_true", help="replace --out and FILE.json if they exist")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    """``graphdel compare LEFT RIGHT``: print the side-by-side table of one request on two modalities; with
    ``--out FILE.md`` also write the table there and its numbers to ``FILE.json``. Returns the exit status (0)."""
    from graphdel.evaluation.compare import compare
    from graphdel.io import atomic_write_json, atomic_write_text

    from graphdel.errors import InvalidInputError

    if args.out and Path(args.out).suffix.lower() == ".json":
        raise InvalidInputError(f"--out {args.out}: give the Markdown file (e.g. compare.md); the numbers go "
                                "next to it as compare.json")
    if args.out:  # both files, before any work
        for path in (Path(args.out), Path(args.out).with_suffix(".json")):
            check_output(path, reads=[args.left, args.right], overwrite=args.overwrite, kind="file")
    result = compare(args.left, args.right)
    table = result.table()
    print(table)
    if args.out:
        out = Path(args.out)
        atomic_write_text(table + "\n", out)
        atomic_write_json(result.to_dict(), out.with_suffix(".json"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``graphdel`` argument parser, with every subcommand of :data:`COMMANDS` (each sets ``func``)."""
    parser = argparse.ArgumentParser(prog="graphdel", description="Multimodal machine unlearning on graph-text data.")
    parser.add_argument("--version", action="version", version=f"graphdel {__import__('graphdel').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


COMMANDS = [_add_train, _add_forget, _add_evaluate, _add_methods, _add_data]
COMMANDS += [_add_report, _add_verify, _add_history, _add_audit, _add_demo]
COMMANDS += [_add_compare]


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` minus ``--nproc N`` / ``--nproc=N`` (what the processes under torchrun are given)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _run_under_torchrun(args, argv: list[str]) -> int:
    """Re-execute this command as ``python -m torch.distributed.run --nproc-per-node N -m graphdel.cli``;
    the exit status is torchrun's (non-zero when any process failed)."""
    import subprocess

    from graphdel.distributed import torchrun_command

    return subprocess.call(torchrun_command(args.nproc, "graphdel.cli", _without_nproc(argv)))


def main(argv: list[str] | None = None) -> int:
    """Run the ``graphdel`` command on ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    ``--nproc N > 1`` re-runs the command under torchrun; a process started by torchrun joins the process
    group and only rank 0 prints. A :class:`~graphdel.errors.GraphdelError` is printed as one line and
    returns 2; an interrupt returns 130.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    nproc = getattr(args, "nproc", 1)
    try:
        if nproc < 1:
            raise GraphdelError(f"--nproc must be >= 1, got {nproc}")
        if hasattr(args, "device"):
            check_device_name(args.device)  # a misspelt device, before anything is loaded
        if nproc == 1 and "RANK" not in os.environ:  # one plain process: torch.distributed is not needed
            return args.func(args)
        from graphdel import distributed

        if nproc > 1 and not distributed.launched_by_torchrun():
            from graphdel.device import check_processes

            # said once here, not once by each of the N processes: CUDA without a GPU, fewer GPUs than N
            check_processes(getattr(args, "device", "auto"), nproc)
            return _run_under_torchrun(args, list(sys.argv[1:] if argv is None else argv))
        if distributed.launched_by_torchrun() and hasattr(args, "nproc"):
            # one process of `--nproc N`: join the group; only rank 0 prints (and writes, see the API)
            distributed.init_from_env(getattr(args, "device", "auto"))
            if not distributed.is_main():
                sys.stdout = open(os.devnull, "w")
        return args.func(args)
    except GraphdelError as e:
        print(f"graphdel: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        # the last net: paths are checked up front (graphdel.runs.check_output), but any too-long name is a
        # user's mistake, not a bug worth a traceback
        print(f"graphdel: error: file name too long: {str(e.filename)[:80]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphdel: interrupted; no run folder was finished", file=sys.stderr)
        return 130
    finally:
        if "graphdel.distributed" in sys.modules:  # imported above or by the command
            sys.modules["graphdel.distributed"].shutdown()


if __name__ == "__main__":
    sys.exit(main())
