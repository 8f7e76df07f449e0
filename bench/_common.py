"""Shared helpers of the benchmark scripts: machine description and the one JSON line each prints."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> list[float]:
    """1, 5 and 15 minute load averages (how busy a shared machine was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine(start_load: list[float] | None = None) -> dict:
    """CPU count, torch threads, processor, GPU, and the load average at the start and the end of a run."""
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_avg_start": start_load, "load_avg_end": load()}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mib() -> float:
    """Current resident memory of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def emit(record: dict) -> None:
    """Print the benchmark's one JSON line."""
    print(json.dumps(record), flush=True)


def run_and_rounds(doc: str, extra=None):
    """``(args, start_load)`` of a script timing one trained run in rounds: ``--run RUN`` (required),
    ``--rounds`` (default 5) and whatever ``extra(parser)`` adds parsed, the load average read before any
    import."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--rounds", type=int, default=5)
    if extra is not None:
        extra(parser)
    return parser.parse_args(), load()


def loaded_run(path: str):
    """``(run, prepared)``: the run folder loaded and its data prepared (no progress bars)."""
    from graphdel import api
    from graphdel.runs import Run

    run = Run.load(path)
    return run, api.load_run_data(run, progress=False)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def alternating_runs(methods: list[str], repeats: int, use):
    """Yield ``(method, repeat, variant, out_dir)`` for each method: ``repeats`` rounds of a run with a
    speed-up (``use("fast")`` called first) and one with the path it replaced (``use("reference")``), each
    with a fresh output folder inside a temporary directory that lives while the method's runs do."""
    import tempfile

    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(repeats):
                for variant in ("fast", "reference"):
                    use(variant)
                    yield method, repeat, variant, Path(tmp) / f"{variant}-{repeat}"


def variant_summary(times: dict[str, list[float]], models: dict[str, dict]) -> dict:
    """``{"fast_s", "reference_s", "speedup", "max_weight_diff"}`` of :func:`alternating_runs`: the fastest
    of each variant's ``times`` and their ratio, and the largest difference between the two variants'
    floating-point weights (``models``: variant -> state dict)."""
    best = {k: min(v) for k, v in times.items()}
    fast, reference = models["fast"], models["reference"]
    diff = max(float((fast[k].float() - reference[k].float()).abs().max())
               for k in fast if fast[k].is_floating_point())
    return {"fast_s": round(best["fast"], 2), "reference_s": round(best["reference"], 2),
            "speedup": round(best["reference"] / best["fast"], 2), "max_weight_diff": diff}


def add_variant_arguments(parser, fraction: float) -> None:
    """The arguments of a side-by-side variant bench (``kg_variants.py``, ``molecule_variants.py``):
    ``--original``, ``--fraction``, ``--seed``, ``--methods``, ``--repeats``."""
    parser.add_argument("--original", required=True)
    parser.add_argument("--fraction", type=float, default=fraction)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="multidelete")
    parser.add_argument("--repeats", type=int, default=2)


def original_and_request(args, by: str):
    """``(api, original, prepared, request)``: the run ``args.original``, its data, and a random request of
    ``args.fraction`` of its training units ``by``, drawn with ``args.seed``."""
    import graphdel.api as api

    original = api.Run.load(args.original)
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, random_amount=args.fraction, by=by, seed=args.seed,
                               prepared=prepared)
    return api, original, prepared, request


def fusion_stage_rounds(bench: str, variants: tuple[str, str], use, model, start: dict, train, recipe,
                        rounds: int, matching) -> tuple[dict, dict]:
    """Alternating rounds, the first variant first: per variant, ``use(variant)``, one fusion-stage epoch
    (``train_fusion_stage``) from the weights ``start``, then ``matching()`` timed on ``start`` again in eval
    mode. One JSON line per round and variant; ``use(variants[0])`` and ``start`` are restored at the end.

    Returns ``(summary, scored)``: the fastest seconds of each part and variant (``stage_epoch_s``,
    ``val_matching_s``), the second variant's over the first's (``stage_speedup``, ``matching_speedup``),
    the stage's matching loss per variant (``stage_loss``); and ``matching()``'s last value per variant.
    """
    import time

    from graphdel.training.fusion import train_fusion_stage

    times: dict[str, dict[str, list[float]]] = {"stage": {}, "matching": {}}
    losses: dict[str, float] = {}
    scored: dict[str, object] = {}
    try:
        for r in range(rounds):
            for variant in variants:
                use(variant)
                model.load_state_dict(start)
                history = train_fusion_stage(model, train, recipe, progress=False)
                model.load_state_dict(start)
                model.eval()
                t = time.perf_counter()
                scored[variant] = matching()
                matching_s = time.perf_counter() - t
                times["stage"].setdefault(variant, []).append(history[0]["train_seconds"])
                times["matching"].setdefault(variant, []).append(matching_s)
                losses[variant] = history[0]["matching"]
                emit({"bench": bench, "round": r, "variant": variant,
                      "stage_epoch_s": round(history[0]["train_seconds"], 2),
                      "val_matching_s": round(matching_s, 2), "stage_loss": history[0]["matching"]})
    finally:
        use(variants[0])
        model.load_state_dict(start)
    best = {part: {v: min(ts) for v, ts in by.items()} for part, by in times.items()}
    first, second = variants
    summary = {"stage_epoch_s": {v: round(s, 2) for v, s in best["stage"].items()},
               "stage_speedup": round(best["stage"][second] / best["stage"][first], 3),
               "val_matching_s": {v: round(s, 2) for v, s in best["matching"].items()},
               "matching_speedup": round(best["matching"][second] / best["matching"][first], 3),
               "stage_loss": losses}
    return summary, scored


def row_wise_pool(query, own, candidates, pick, block: int = 64):
    """The pool scorer graphdel replaced (the reference of ``pool_product.py`` and of
    ``molecule_variants.py --compare pool_product``), a stand-in for
    :func:`graphdel.evaluation.retrieval._pool_scores`: each pool's embeddings gathered and scored by
    row-wise sums, ``block`` queries at a time, as on the CPU before (the same bits in any block size)."""
    import torch

    distinct, column = candidates
    candidates = distinct[column]
    out = []
    for s in range(0, len(query), block):
        pool = torch.cat([own[s:s + block].unsqueeze(1), candidates[pick[s:s + block]]], 1)  # [b, 1 + P, d]
        out.append((query[s:s + block].unsqueeze(1) * pool).sum(-1))
    return torch.cat(out)
