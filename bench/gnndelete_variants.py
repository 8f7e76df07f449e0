"""Benchmark: GNNDelete as published against the earlier adaptation, on one KG request, in one table.

    python bench/gnndelete_variants.py [--data wordnet] [--fraction 0.02] [--seed 0] [--quick] [--out DIR]

1. Trains the original with the KG recipe, or reuses it from the run cache (``$GRAPHDEL_CACHE/runs``, the
   one ``graphdel demo --kg`` uses); ``--quick``: the KG recipe's quick training (6 epochs) on the whole
   graph.
2. Draws a random request of ``--fraction`` of the training triples (``--seed``), as ``graphdel demo --kg``.
3. Runs Retrain and both GNNDelete variants with ``api.forget`` (same seed):
   ``published`` (the defaults: one operator per GNN layer on the layer's k-hop neighbourhood of the
   deleted triples, NI on that neighbourhood, dropout off) and ``earlier`` (``operator=final
   dropout=true``: one operator on the final states over 1 hop, NI on a Dr batch plus unimodal retention,
   dropout on: the adaptation graphdel had before).

Prints one JSON line (``bench/_common.py``): per model the deleted triples' filtered MRR (against Retrain's), test MRR and
collateral 1/2-hop MRR (against the original's), Df-vs-Dr AUROC (the suite's convention), wall time and
its share of Retrain's, and for the GNNDelete runs the epochs, steps and why they stopped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common

VARIANTS = {"published": [], "earlier": ["operator=final", "dropout=true"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="wordnet")
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the KG recipe's quick training (6 epochs)")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args()
    start_load = _common.load()

    from graphdel import api
    from graphdel.demo import cached_train, run_cache_dir

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        t0 = time.perf_counter()
        original, prepared, reused = cached_train(api.DataConfig(source=args.data), api.ModelConfig(),
                                                  api.TrainConfig(), cache=run_cache_dir(out), progress=False,
                                                  log=lambda s: None, quick=args.quick)
        original_s = time.perf_counter() - t0
        request = api.make_request(original, random_amount=args.fraction, by="triple", seed=args.seed,
                                   prepared=prepared)
        sets = api.evaluation_sets(prepared, request.rows(prepared.corpus), args.seed)
        original.model.eval()
        rows = {"original": _row(original.model.split_metrics(sets), None)}
        runs = {}
        for name, method, overrides in [("retrain", "retrain", None)] + [
                (f"gnndelete-{v}", "gnndelete", o) for v, o in VARIANTS.items()]:
            runs[name] = api.forget(original, request, method=method, overrides=overrides,
                                    out=os.path.join(out, name), seed=args.seed, progress=False,
                                    prepared=prepared)
            rows[name] = _row(runs[name].metrics["splits"], runs[name].metrics)
        retrain_s = rows["retrain"]["wall_time_s"]
        for name, row in rows.items():
            if row.get("wall_time_s") is not None and name != "retrain":
                row["time_share"] = round(row["wall_time_s"] / retrain_s, 4)
        _common.emit({
            "bench": "gnndelete_variants", "data": args.data, "quick": args.quick,
            "request": {"by": "triple", "fraction": args.fraction, "seed": args.seed, "pairs": len(request)},
            "original": {"path": str(original.path), "reused": reused, "wall_time_s": round(original_s, 1)},
            "variants": {f"gnndelete-{v}": o for v, o in VARIANTS.items()}, "models": rows,
            "machine": _common.machine(start_load)})


def _row(splits: dict, metrics: dict | None) -> dict:
    """The table's numbers of one model from its split metrics (and, for an unlearned run, its metrics)."""
    mrr = lambda split: ((splits.get(split) or {}).get("lp") or {}).get("mrr")
    row = {"forget": mrr("forget"), "test": mrr("test"), "collateral@1": mrr("collateral@1"),
           "collateral@2": mrr("collateral@2"),
           "auroc": ((splits.get("forget") or {}).get("lp") or {}).get("auroc_vs_retain")}
    if metrics is not None:
        selected = metrics.get("selected") or {}
        row.update(wall_time_s=metrics["wall_time_s"], epochs=selected.get("epochs_run"),
                   steps=selected.get("steps"), stop_reason=selected.get("stop_reason"))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


if __name__ == "__main__":
    main()
