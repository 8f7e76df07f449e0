"""Benchmark: the knowledge-graph cleanup targets on the embedded WordNet KG, in one run.

    python bench/kg_targets.py [--out DIR] [--methods multidelete,gnndelete,neggrad+] [--skip-distmult]

1. Runs ``graphdel demo --kg`` (default KG–text model on ``wordnet``, reused from the run cache when it was
   trained before; a 2% random deletion of the training triples, seed 0; Retrain and the methods; the
   full audit and report under ``--out``).
2. Trains a text-free DistMult (no GNN layer, no description features, no text or matching loss) with the
   same training recipe and budget, the baseline the KG–text model is compared with.

Prints one JSON line: test filtered MRR of both models, and for each method its deleted-triple MRR against
Retrain's, test MRR and 1-/2-hop collateral MRR against the original's, Df-vs-Dr AUROC and time as a share
of Retrain's, with the issue's targets checked (deleted within 0.05 of Retrain, test within 0.02 and
collateral within 0.03 of the original, at most 10% of Retrain's time; original test MRR >= 0.25).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="demo output folder (default: a temporary folder)")
    parser.add_argument("--methods", default="multidelete,gnndelete,neggrad+")
    parser.add_argument("--skip-distmult", action="store_true")
    args = parser.parse_args()

    import torch

    from graphdel import api
    from graphdel.demo import DemoConfig, run_demo

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "demo")
        cfg = DemoConfig(out=out, data="wordnet", by="triple", fraction=0.02, seed=0,
                         methods=[m for m in args.methods.split(",") if m], progress=False)
        start = time.perf_counter()
        result = run_demo(cfg, log=lambda s: None)
        demo_s = time.perf_counter() - start
        models = result["audit"]["results"]["models"]
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
                "forget_within_0.05_of_retrain": abs(row["forget"] - mrr("retrain", "forget")) <= 0.05,
                "test_within_0.02_of_original": mrr("original", "test") - row["test"] <= 0.02,
                "collateral_within_0.03_of_original": all(
                    mrr("original", c) - row[c] <= 0.03 for c in ("collateral@1", "collateral@2")),
                "time_at_most_10pct": row["time_share"] <= 0.10}
            rows[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}

        distmult = None
        if not args.skip_distmult:
            original = result["audit"]["original"]
            model_cfg = api.ModelConfig.from_dict(original.config["model"])
            extra = {**model_cfg.extra, "gnn_layers": 0, "text_weight": 0.0, "text_init": False}
            model_cfg = replace(model_cfg, matching_weight=0.0, extra=extra)
            train_cfg = api.TrainConfig(**original.config["train"])
            t0 = time.perf_counter()
            run = api.train(api.DataConfig(source="wordnet"), train_cfg, model_cfg,
                            out=os.path.join(tmp, "distmult"), progress=False)
            distmult = {"test_mrr": round(run.metrics["splits"]["test"]["lp"]["mrr"], 4),
                        "wall_time_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps({
            "bench": "kg_targets", "demo_wall_s": round(demo_s, 1), "report": str(result["report"]) if args.out else None,
            "original": {"test_mrr": round(mrr("original", "test"), 4),
                         "target_test_mrr_at_least_0.25": mrr("original", "test") >= 0.25},
            "retrain": {"forget_mrr": round(mrr("retrain", "forget"), 4), "test_mrr": round(mrr("retrain", "test"), 4),
                        "auroc": round(auc("retrain"), 4), "wall_time_s": round(retrain_t, 1)},
            "text_free_distmult": distmult, "methods": rows,
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}))


if __name__ == "__main__":
    main()
