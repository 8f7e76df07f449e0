"""Benchmark: default training on the embedded corpus, from a cold cache, wall time and metrics.

    python bench/train_time.py [--data drugs] [--epochs N] [--out RUN]

Prints one JSON line: wall time of the whole ``train`` call (featurisation and text encoding included,
since the cache starts empty), the time of the training loop alone, the best epoch, and pool-64
graph->text MRR on train, val and test with the train-test gap (how much the model memorises, which is
what deletion removes). Targets of the default recipe: training under 480 s on 2 CPU cores; test pool-64
MRR >= 0.65; train - test >= 0.25 (docs/results.md, Benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="drugs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--warm", action="store_true", help="keep the default cache (measure warm)")
    parser.add_argument("--out", default=None, help="keep the trained run in this folder (default: discarded)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.warm:
            os.environ["GRAPHDEL_CACHE"] = os.path.join(tmp, "cache")
        import torch

        import graphdel as gd

        config = gd.TrainConfig()
        if args.epochs:
            config = replace(config, epochs=args.epochs)
        start = time.perf_counter()
        run = gd.train(args.data, config, out=args.out or os.path.join(tmp, "run"), progress=False)
        total = time.perf_counter() - start
        splits = run.metrics["splits"]
        mrr = {s: round(splits[s]["pool64"]["g2t_mrr"], 4) for s in ("train", "val", "test")}
        print(json.dumps({
            "bench": "train_time", "data": args.data, "cold_cache": not args.warm,
            "total_s": round(total, 1), "loop_s": round(run.metrics["wall_time_s"], 1),
            "best_epoch": run.metrics["best_epoch"], "epochs_run": len(run.log),
            "pool64_g2t_mrr": mrr, "train_minus_test": round(mrr["train"] - mrr["test"], 4),
            "test_g2t_mrr_full": round(splits["test"]["g2t"]["mrr"], 4),
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "processor": platform.processor() or platform.machine()},
        }))


if __name__ == "__main__":
    main()
