"""The commands on what an unlearning left behind: ``graphdel report`` (the audit report of unlearned runs),
``verify`` (a deletion certificate), ``history`` (the chain of requests applied to a run) and ``compare``
(one request on two modalities).
"""

from __future__ import annotations

import sys
from pathlib import Path

from graphdel.cli.common import _add_device, _add_json, _emit, _table
from graphdel.runs import check_output  # torch-free

__all__ = ["cmd_report", "cmd_verify", "cmd_history", "cmd_compare"]


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="evaluate unlearned runs (one original, one request) and write the audit report")
    p.add_argument("runs", nargs="+", metavar="RUN", help="unlearned run folders; the first run whose method "
                   "is `retrain` is the reference (a further one, at another seed, is shown with its gaps "
                   "to it: role `spread`), their common parent the original")
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
