"""Benchmark: how long `graphdel --help` and an argument error take, against bare Python and against
importing the heavy stack they no longer load.

    python bench/startup.py [--rounds 5]

Each variant is a fresh interpreter (``python -c ...``), interleaved round by round, medians reported:

* ``python``: ``python -c pass`` (the floor);
* ``help``: ``graphdel --help``; ``argument_error``: ``graphdel forget --model x`` (a missing option);
* ``heavy_imports``: ``import torch_geometric, transformers`` (what every start paid before the package
  imported them on first use).

The issue's target: help and argument errors under 2 s; the ratio ``help / heavy_imports`` says how much
of the old cost is gone on this machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import load, machine, median, emit

VARIANTS = {
    "python": [sys.executable, "-c", "pass"],
    "help": [sys.executable, "-m", "graphdel.cli", "--help"],
    "argument_error": [sys.executable, "-m", "graphdel.cli", "forget", "--model", "x"],
    "heavy_imports": [sys.executable, "-c", "import torch_geometric, transformers"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    start_load = load()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, cmd in VARIANTS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - t0)
    med = {name: round(median(ts), 3) for name, ts in times.items()}
    emit({"bench": "startup", "rounds": args.rounds, "median_s": med,
          "help_under_2s": med["help"] < 2.0, "argument_error_under_2s": med["argument_error"] < 2.0,
          "help_over_heavy_imports": round(med["help"] / med["heavy_imports"], 4),
          "machine": machine(start_load)})


if __name__ == "__main__":
    main()
