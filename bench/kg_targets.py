"""Benchmark: the knowledge-graph cleanup targets on one KG and one request, in one run.

    python bench/kg_targets.py [--out DIR] [--data wordnet] [--by triple] [--fraction 0.02 | --forget ID ...]
                               [--seed 0] [--methods multidelete,gnndelete,neggrad+] [--skip-distmult]
                               [--set [METHOD:]KEY=VALUE ...]

1. Runs the demo's steps on ``--data`` (default the embedded ``wordnet``; any ``kg:PATH`` folder, e.g. the
   one ``bench/hpo_kg.py`` builds): the default KG–text model (reused from the run cache when it was trained
   before), a deletion request (``--fraction`` of the training units of ``--by`` drawn with ``--seed``, or
   the units ``--forget`` names; ``--set`` overrides a method setting, for one method with ``METHOD:`` or
   else for every method of ``--methods``, after the model's recommendation; for ``--by relation`` without ``--forget``, one relation drawn with
   ``--seed`` among those holding at most 10% of the training triples: a curator withdraws a relation,
   not most of the graph), Retrain
   and the methods with the model's recommended settings, the full audit and report under ``--out``.
2. Unless ``--skip-distmult``: trains a text-free DistMult (no GNN layer, no description features, no text
   or matching loss) with the same training recipe and budget, the baseline the KG–text model is compared
   with.

Prints one JSON line: test filtered MRR of both models, and for each method its deleted-triple MRR against
Retrain's, test MRR and 1-/2-hop collateral MRR against the original's, Df-vs-Dr AUROC and time as a share
of Retrain's, with the targets checked (deleted within 0.03 of Retrain, test and both collaterals within
0.01 of the original, at most 5% of Retrain's time).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace


def drawn_relation(data: str, seed: int, largest_share: float = 0.10) -> str:
    """One relation of ``data``'s training triples drawn with ``seed`` among those holding at most
    ``largest_share`` of them."""
    import random
    from collections import Counter

    from graphdel import api

    counts = Counter(r for _, r, _ in api.load_corpus(api.DataConfig(source=data)).extra["triples"]["train"])
    total = sum(counts.values())
    return random.Random(seed).choice(sorted(r for r, n in counts.items() if n <= largest_share * total))


def method_overrides(settings: list[str], methods: list[str]) -> dict[str, list[str]]:
    """``{method: ["key=value", ...]}`` from ``--set`` values: ``METHOD:KEY=VALUE`` for that method only,
    ``KEY=VALUE`` for every method of ``methods``, in the order given."""
    out: dict[str, list[str]] = {}
    for item in settings:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            out.setdefault(head, []).append(rest)
        else:
            for m in methods:
                out.setdefault(m, []).append(item)
    return out


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="demo output folder (default: a temporary folder)")
    parser.add_argument("--data", default="wordnet", help="wordnet or kg:PATH")
    parser.add_argument("--by", default="triple", choices=["triple", "relation", "entity"])
    parser.add_argument("--fraction", type=float, default=0.02,
                        help="share (or, >= 1, number) of the training units to delete at random")
    parser.add_argument("--forget", nargs="+", default=None, metavar="ID", help="delete these units instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request, the methods and the evaluation")
    parser.add_argument("--close", action="store_true",
                        help="every run (Retrain too) also deletes the request's retained mirror triples")
    parser.add_argument("--methods", default="multidelete,gnndelete,neggrad+")
    parser.add_argument("--skip-distmult", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="[METHOD:]KEY=VALUE", dest="settings",
                        help="a method setting (repeatable): METHOD:KEY=VALUE for one method, KEY=VALUE for all")
    return parser.parse_args()


def method_rows(models: dict) -> dict[str, dict]:
    """``{method: row}`` from the audit's ``models`` entries: each method's deleted-triple, test and 1-/2-hop
    collateral MRR, Df-vs-Dr AUROC, time as a share of Retrain's, and the four targets checked."""
    mrr = lambda name, split: ((models[name]["splits"].get(split) or {}).get("lp") or {}).get("mrr")
    auc = lambda name: ((models[name]["splits"].get("forget") or {}).get("lp") or {}).get("auroc_vs_retain")
    retrain_t = models["retrain"]["wall_time_s"]
    rows = {}
    for name, e in models.items():
        if e["role"] != "method":
            continue
        row = {"forget": mrr(name, "forget"), "test": mrr(name, "test"), "collateral@1": mrr(name, "collateral@1"),
               "collateral@2": mrr(name, "collateral@2"), "auroc": auc(name),
               "time_share": e["wall_time_s"] / retrain_t}
        row["targets"] = {
            "forget_within_0.03_of_retrain": abs(row["forget"] - mrr("retrain", "forget")) <= 0.03,
            "test_within_0.01_of_original": mrr("original", "test") - row["test"] <= 0.01,
            "collateral_within_0.01_of_original": all(
                mrr("original", c) - row[c] <= 0.01 for c in ("collateral@1", "collateral@2")),
            "time_at_most_5pct": row["time_share"] <= 0.05}
        rows[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
    return rows


def main() -> None:
    args = parse_args()

    import torch

    from graphdel import api
    from graphdel.demo import DemoConfig, run_demo

    methods = [m for m in args.methods.split(",") if m]
    forget = args.forget
    if args.by == "relation" and not forget:
        forget = [drawn_relation(args.data, args.seed)]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "demo")
        cfg = DemoConfig(out=out, data=args.data, by=args.by, fraction=args.fraction, forget=forget, close=args.close,
                         seed=args.seed, requests=1, methods=methods,
                         overrides=method_overrides(args.settings, methods), progress=False)
        start = time.perf_counter()
        result = run_demo(cfg, log=lambda s: None)
        demo_s = time.perf_counter() - start
        models = result["audit"]["results"]["models"]
        mrr = lambda name, split: ((models[name]["splits"].get(split) or {}).get("lp") or {}).get("mrr")
        auc = lambda name: ((models[name]["splits"].get("forget") or {}).get("lp") or {}).get("auroc_vs_retain")
        retrain_t = models["retrain"]["wall_time_s"]
        rows = method_rows(models)

        distmult = None
        if not args.skip_distmult:
            original = result["audit"]["original"]
            model_cfg = api.ModelConfig.from_dict(original.config["model"])
            extra = {**model_cfg.extra, "gnn_layers": 0, "text_weight": 0.0, "text_init": False}
            model_cfg = replace(model_cfg, matching_weight=0.0, extra=extra)
            train_cfg = api.TrainConfig(**original.config["train"])
            t0 = time.perf_counter()
            run = api.train(api.DataConfig(source=args.data), train_cfg, model_cfg,
                            out=os.path.join(tmp, "distmult"), progress=False)
            distmult = {"test_mrr": round(run.metrics["splits"]["test"]["lp"]["mrr"], 4),
                        "wall_time_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps({
            "bench": "kg_targets", "data": args.data, "by": args.by, "seed": args.seed, "close": args.close,
            "request": forget or args.fraction, "settings": args.settings, "demo_wall_s": round(demo_s, 1), "report": str(result["report"]) if args.out else None,
            "original": {"test_mrr": round(mrr("original", "test"), 4), "forget_mrr": round(mrr("original", "forget"), 4),
                         "collateral": [round(mrr("original", c), 4) for c in ("collateral@1", "collateral@2")]},
            "retrain": {"forget_mrr": round(mrr("retrain", "forget"), 4), "test_mrr": round(mrr("retrain", "test"), 4),
                        "auroc": round(auc("retrain"), 4), "wall_time_s": round(retrain_t, 1)},
            "text_free_distmult": distmult, "methods": rows,
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}))


if __name__ == "__main__":
    main()
