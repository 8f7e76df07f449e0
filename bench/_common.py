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


def run_and_rounds(doc: str):
    """``(args, start_load)`` of a script timing one trained run in rounds: ``--run RUN`` (required) and
    ``--rounds`` (default 5) parsed, the load average read before any import."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--rounds", type=int, default=5)
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
