"""The commands that run whole experiments, training and unlearning many models through the API:
``graphdel audit`` (the per-example privacy audit of a method) and ``graphdel demo`` (train, delete, run
Retrain and every method, write the report).
"""

from __future__ import annotations

import argparse
import sys

from graphdel.cli.common import _add_device, _add_json, _emit, _table
from graphdel.runs import check_output  # torch-free

__all__ = ["cmd_audit", "cmd_demo"]


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
    p.add_argument("--seed", type=int, default=0, help="seed of the (first) request, the methods and the evaluation")
    p.add_argument("--requests", type=int, default=None, metavar="N",
                   help="measure the deletion on N requests (seeds SEED..SEED+N-1), each against its own Retrain, "
                   "and report every gap as mean ± spread (default 3; --quick: 1)")
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
    run_demo(DemoConfig(out=args.out, quick=args.quick, seed=args.seed, requests=args.requests, methods=methods,
                        lira_shadows=args.lira_shadows, lira_epochs=args.lira_epochs, device=args.device,
                        overwrite=args.overwrite, accept_modified=args.accept_modified, **scenario))
    return 0
