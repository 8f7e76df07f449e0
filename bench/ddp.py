"""Benchmark: 2-process data-parallel (DDP, gloo) against 1 process on CPU, same global batches.

    python bench/ddp.py [--pairs 768] [--batch-size 64] [--nproc 2]

Three variants run one after the other, each in fresh processes, on the same work: one epoch of the
default training recipe over the first ``--pairs`` training pairs of the embedded corpus (no validation),
then one MultiDelete epoch (defaults otherwise) on a 5% molecule request, from that model.

* ``1proc_1thread``: one process, one torch thread;
* ``1proc_Nthreads``: one process, ``--nproc`` torch threads (what a single process can use of the cores);
* ``Nproc_1thread``: ``torchrun --nproc-per-node N``, one thread each (gloo).

Wall times are the loop's own (rank 0; the processes wait for each other at every step). MultiDelete's
includes its calibrated evaluations, which every process runs whole (see ``graphdel/distributed.py``).
Prints one JSON line with the times and the speed-ups of DDP over each single-process variant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import _common


def _worker(pairs: int, batch_size: int, out: str) -> None:
    """One process of a variant (alone or under torchrun): train, unlearn, rank 0 writes the times to ``out``."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    from graphdel import api, distributed
    from graphdel.data.requests import DeletionRequest
    from graphdel.models.joint import ModelConfig, build_model
    from graphdel.training.loop import TrainConfig, train_model
    from graphdel.unlearning import UnlearningContext, unlearn

    distributed.init_from_env("cpu")
    prepared = api.prepare(api.DataConfig(), ModelConfig(), progress=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    rows = prepared.trained_rows()[:pairs]
    result = train_model(model, prepared.data.subset(rows), None,
                         TrainConfig(epochs=1, batch_size=batch_size, patience=0, device="cpu"), progress=False)
    request = DeletionRequest.random(prepared.corpus, 0.05, by="molecule", seed=0, allowed_rows=prepared.trained_rows())
    df = request.rows(prepared.corpus)
    ev = api.evaluation_sets(prepared, df)
    ctx = UnlearningContext(forget=ev["forget"], retain=prepared.data.subset(prepared.retained_rows(df)),
                            calibration=ev["calibration"], val=ev["val"], progress=False)
    md = unlearn(result.model, ctx, "multidelete", ["epochs=1", "early_stop=false"])
    if distributed.is_main():
        with open(out, "w") as f:
            json.dump({"train_s": result.history[0]["train_seconds"], "multidelete_s": md.wall_time_s,
                       "multidelete_steps": md.selected.get("steps"), "world_size": distributed.world_size()}, f)
    distributed.shutdown()


def main() -> None:
    """Run the three variants and print the JSON line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # child mode: write results to this file
    args = parser.parse_args()
    if args.worker:
        _worker(args.pairs, args.batch_size, args.worker)
        return
    start_load = _common.load()
    import tempfile

    n = args.nproc
    variants = {"1proc_1thread": (1, 1), f"1proc_{n}threads": (1, n), f"{n}proc_1thread": (n, 1)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (procs, threads) in variants.items():
            out = os.path.join(tmp, f"{name}.json")
            argv = [__file__, "--pairs", str(args.pairs), "--batch-size", str(args.batch_size), "--worker", out]
            cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc-per-node={procs}", f"--log-dir={os.path.join(tmp, 'torchrun')}", *argv]
                   if procs > 1 else [sys.executable, *argv])
            env = {**os.environ, "BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
            t = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"variant {name} failed:\n{done.stderr[-3000:]}")
            results[name] = {**json.load(open(out)), "process_s": round(time.perf_counter() - t, 1)}
    ddp = results[f"{n}proc_1thread"]
    speedups = {}
    for base in ("1proc_1thread", f"1proc_{n}threads"):
        for what in ("train_s", "multidelete_s"):
            speedups[f"{what[:-2]}_vs_{base}"] = round(results[base][what] / ddp[what], 3)
    steps = -(-args.pairs // args.batch_size)
    _common.emit({"bench": "ddp", "backend": "gloo", "nproc": n, "pairs": args.pairs, "batch_size": args.batch_size,
                  "train_pairs_per_s": {k: round(args.pairs / v["train_s"], 1) for k, v in results.items()},
                  "train_steps": steps, "results": {k: {kk: (round(vv, 2) if isinstance(vv, float) else vv)
                                                        for kk, vv in v.items()} for k, v in results.items()},
                  "ddp_speedup": speedups, "machine": _common.machine(start_load)})


if __name__ == "__main__":
    main()
