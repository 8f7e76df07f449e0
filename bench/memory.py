"""Benchmark: peak memory of training, unlearning, evaluation, and of ranking 100,000 x 100,000.

    python bench/memory.py [--phases training,unlearning,evaluation,ranking] [--candidates 100000]

Each phase runs in a fresh Python process, so its peak resident memory (VmHWM) is its own; the process's
resident memory just before the phase's work (torch and graphdel imported, data featurised) is reported
as ``before_mib`` so that the phase's own share is visible.

* ``training``: 20 steps of the default recipe (batch 64, default model) on the embedded corpus;
* ``unlearning``: MultiDelete with its defaults (1 epoch) on a 5% molecule request, from a freshly built
  default model (memory does not depend on the weights);
* ``evaluation``: the retrieval metrics of every split (what ``graphdel evaluate`` computes for a run);
* ``ranking``: :func:`graphdel.evaluation.retrieval.retrieval_ranks` of 100,000 queries against 100,000
  candidates (random unit vectors, d = 256, with group ids, default block limit), the bound its docstring
  states.

Prints one JSON line. Issue target: ranking 100,000 x 100,000 under 2 GiB peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common

PHASES = ("training", "unlearning", "evaluation", "ranking")


def _phase(name: str, candidates: int) -> dict:
    """Run one phase in this process; returns its record (peak and pre-phase resident memory, seconds)."""
    import torch

    torch.set_num_threads(1)  # memory does not depend on it; the machine is shared
    t0 = time.perf_counter()
    if name == "ranking":
        from graphdel.evaluation.retrieval import DEFAULT_MAX_BLOCK_BYTES, retrieval_ranks

        g = torch.Generator().manual_seed(0)
        q = torch.nn.functional.normalize(torch.randn(candidates, 256, generator=g), dim=1)
        c = torch.nn.functional.normalize(q + 0.5 * torch.randn(candidates, 256, generator=g), dim=1)
        groups = torch.arange(candidates) // 2
        before = _common.rss_mib()
        t0 = time.perf_counter()
        ranks = retrieval_ranks(q, c, torch.arange(candidates), query_groups=groups, candidate_groups=groups)
        extra = {"queries": candidates, "candidates": candidates, "dim": 256,
                 "max_block_bytes": DEFAULT_MAX_BLOCK_BYTES, "mean_rank": float(ranks.expected().mean())}
    else:
        from graphdel import api
        from graphdel.models.joint import ModelConfig, build_model
        from graphdel.training.loop import TrainConfig, train_model

        prepared = api.prepare(api.DataConfig(), ModelConfig(), progress=False)
        torch.manual_seed(0)
        model = build_model(ModelConfig())
        sets = prepared.sets()
        before = _common.rss_mib()
        t0 = time.perf_counter()
        if name == "training":
            rows = prepared.trained_rows()[:20 * 64]
            train_model(model, prepared.data.subset(rows), None, TrainConfig(epochs=1, batch_size=64, patience=0),
                        progress=False)
            extra = {"steps": 20, "batch_size": 64}
        elif name == "unlearning":
            from graphdel.data.requests import DeletionRequest
            from graphdel.unlearning import UnlearningContext, unlearn

            request = DeletionRequest.random(prepared.corpus, 0.05, by="molecule", seed=0,
                                             allowed_rows=prepared.trained_rows())
            df = request.rows(prepared.corpus)
            ev = api.evaluation_sets(prepared, df)
            ctx = UnlearningContext(forget=ev["forget"], retain=prepared.data.subset(prepared.retained_rows(df)),
                                    calibration=ev["calibration"], val=ev["val"], distractors=prepared.distractors(),
                                    progress=False)
            unlearn(model, ctx, "multidelete", ["epochs=1"])
            extra = {"forget_pairs": len(df), "epochs": 1}
        else:
            from graphdel.evaluation.suite import retrieval_metrics

            retrieval_metrics(model.eval(), sets, prepared.distractors())
            extra = {"pairs": len(prepared.corpus)}
    return {"phase": name, "peak_mib": _common.peak_rss_mib(), "before_mib": before,
            "seconds": round(time.perf_counter() - t0, 1), **extra}


def main() -> None:
    """Run each phase in a fresh process and print the JSON line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # child mode: run one phase, print its JSON
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.candidates)), flush=True)
        return
    start_load = _common.load()
    results = {}
    for name in [p.strip() for p in args.phases.split(",") if p.strip()]:
        if name not in PHASES:
            raise SystemExit(f"unknown phase {name!r}; valid: {', '.join(PHASES)}")
        done = subprocess.run([sys.executable, __file__, "--phase", name, "--candidates", str(args.candidates)],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    record = {"bench": "memory", "phases": results}
    if "ranking" in results:
        peak = results["ranking"]["peak_mib"]
        record["targets"] = {"ranking_peak_under_2GiB": peak < 2048}
        record["ranking_peak_gib"] = round(peak / 1024, 3)
    import torch  # noqa: F401  (machine() reports its version)

    record["machine"] = _common.machine(start_load)
    _common.emit(record)


if __name__ == "__main__":
    main()
