"""Benchmark: the memory of the frozen text pass as the corpus grows (what a PubChem-size corpus needs).

    python bench/prepare_memory.py [--captions 2000,8000] [--paths in_memory,cold,warm] [--fusion-tokens 64]
        [--jobs 1]
    python bench/prepare_memory.py --molecules 30000,300000

The embedded corpus's distinct captions, each made distinct again per copy (" Copy k." appended), to
``N`` captions; for each size, each path runs in a fresh Python process (one torch thread) that samples
its own resident memory every 10 ms, split as ``/proc/self/status`` splits it: anonymous (the process's
own) and file-backed (mapped files: page cache the kernel may drop):

* ``in_memory``: :func:`graphdel.encoders.text.encode_frozen` without a cache: the whole result in the
  process (the frozen pass before the mapped cache, without its cache write's copies);
* ``cold``: the same into an empty cache: states streamed into the entry's mapped files;
* ``warm``: the entry read back, then every caption's states gathered in batches of 64 in a random order
  (what an epoch reads).

With ``--molecules SIZES`` the same for the molecule graphs instead: the embedded corpus's SMILES repeated
to ``N`` molecules, ``mol_cold`` (featurised into an empty cache, in this process) and ``mol_warm`` (read
back, then every molecule gathered once in batches of 64, as an epoch does).

Peaks are reported above the process's memory just before the pass (torch, graphdel and the captions
loaded). Each JSON line names its size and path; the last line compares: per path, the peak anonymous
memory's growth from the smallest to the largest size against the result's growth, and whether the cold
and warm results equal the in-memory one bit for bit (a SHA-256 of the arrays).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _common

PATHS = ("in_memory", "cold", "warm")
MOLECULE_PATHS = ("mol_cold", "mol_warm")


def memory_mib() -> dict[str, float]:
    """This process's resident memory now, MiB: ``anon`` (RssAnon) and ``file`` (RssFile + RssShmem)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1024
    return {"anon": fields.get("RssAnon", float("nan")),
            "file": fields.get("RssFile", 0.0) + fields.get("RssShmem", 0.0)}


class PeakSampler:
    """Samples :func:`memory_mib` every ``interval`` seconds on a thread; ``peak``: the largest of each."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.peak, self._stop = interval, memory_mib(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = memory_mib()
            self.peak = {k: max(self.peak[k], now[k]) for k in now}
            time.sleep(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = memory_mib()
        self.peak = {k: max(self.peak[k], now[k]) for k in now}


def captions(n: int) -> list[str]:
    """``n`` distinct captions: the embedded corpus's, then copies of them with " Copy k." appended."""
    from graphdel.data.sources import load_dataset

    base = list(dict.fromkeys(load_dataset("drugs").texts))
    return [base[i % len(base)] + ("" if i < len(base) else f" Copy {i // len(base)}.") for i in range(n)]


def digest(features) -> str:
    """SHA-256 of the feature arrays' bytes (hidden, mask, pooled), to compare results bit for bit."""
    h = hashlib.sha256()
    for t in (features.hidden, features.mask, features.pooled):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def child(n: int, path: str, cache: str, fusion_tokens: int) -> None:
    """Run one path on ``n`` captions in this process and print its JSON line."""
    import os

    os.environ["GRAPHDEL_CACHE"] = cache
    import torch

    from graphdel.encoders.text import TextEncoderConfig, encode_frozen

    torch.set_num_threads(1)
    texts = captions(n)
    config = TextEncoderConfig(fusion_tokens=fusion_tokens)
    before = memory_mib()
    t0 = time.perf_counter()
    with PeakSampler() as sampler:
        features = encode_frozen(texts, config, use_cache=path != "in_memory", progress=False, device="cpu")
        if path == "warm":
            gathered = 0
            for idx in torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(64):
                gathered += features.select(idx).hidden.numel()
            assert gathered == features.hidden.numel()
    seconds = time.perf_counter() - t0
    result = sum(t.numel() * t.element_size() for t in (features.hidden, features.mask, features.pooled))
    _common.emit({"bench": "prepare_memory", "captions": n, "path": path, "seconds": round(seconds, 1),
                  "result_mib": round(result / 2**20, 1),
                  "peak_anon_mib": round(sampler.peak["anon"] - before["anon"], 1),
                  "peak_file_mib": round(sampler.peak["file"] - before["file"], 1),
                  "start_anon_mib": round(before["anon"], 1), "sha256": digest(features)})


def child_molecules(n: int, path: str, cache: str) -> None:
    """Featurise (``mol_cold``) or read back and gather (``mol_warm``) ``n`` molecules in this process and
    print the JSON line."""
    import os

    os.environ["GRAPHDEL_CACHE"] = cache
    import torch

    from graphdel.data.molecules import featurize_smiles
    from graphdel.data.sources import load_dataset

    torch.set_num_threads(1)
    corpus = load_dataset("drugs")
    base = [corpus.items[i] for i in corpus.item_list()]
    smiles = [base[i % len(base)] for i in range(n)]
    before = memory_mib()
    t0 = time.perf_counter()
    with PeakSampler() as sampler:
        graphs = featurize_smiles(smiles, workers=0)
        if path == "mol_warm":
            atoms = sum(graphs.batch(idx).x.size(0) for idx in torch.arange(n).split(64))
            assert atoms == graphs.x.size(0)
    seconds = time.perf_counter() - t0
    tensors = [graphs.x, graphs.edge_index, graphs.edge_attr, graphs.node_ptr, graphs.edge_ptr]
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    _common.emit({"bench": "prepare_memory", "molecules": n, "path": path, "seconds": round(seconds, 1),
                  "result_mib": round(sum(t.numel() * t.element_size() for t in tensors) / 2**20, 1),
                  "peak_anon_mib": round(sampler.peak["anon"] - before["anon"], 1),
                  "peak_file_mib": round(sampler.peak["file"] - before["file"], 1),
                  "start_anon_mib": round(before["anon"], 1), "sha256": h.hexdigest()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", default="2000,8000", help="sizes, comma-separated")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"some of {', '.join(PATHS)}")
    parser.add_argument("--fusion-tokens", type=int, default=64, help="the molecule recipe's (64)")
    parser.add_argument("--jobs", type=int, default=1, help="sizes measured at once (one process each)")
    parser.add_argument("--molecules", default=None, help="sizes of the molecule-graph measurement instead "
                        "(comma-separated)")
    parser.add_argument("--child", nargs=3, metavar=("N", "PATH", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, path, cache = int(args.child[0]), args.child[1], args.child[2]
        if path in MOLECULE_PATHS:
            child_molecules(n, path, cache)
        else:
            child(n, path, cache, args.fusion_tokens)
        return
    start_load = _common.load()
    unit = "molecules" if args.molecules else "captions"
    sizes = sorted(int(n) for n in (args.molecules or args.captions).split(","))
    paths = list(MOLECULE_PATHS) if args.molecules else [p for p in PATHS if p in args.paths.split(",")]

    def one_size(n: int) -> list[dict]:
        out_lines = []
        with tempfile.TemporaryDirectory(prefix="prepare-memory-") as cache:
            for path in paths:  # cold before warm: warm reads the entry cold wrote
                command = [sys.executable, __file__, "--fusion-tokens", str(args.fusion_tokens),
                           "--child", str(n), path, cache]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                out_lines.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(out_lines[-1]), flush=True)
        return out_lines

    # sizes side by side, one process each (memory, not time, is measured)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        lines = [line for size_lines in pool.map(one_size, sizes) for line in size_lines]
    by = {(rec[unit], rec["path"]): rec for rec in lines}
    lo, hi = sizes[0], sizes[-1]
    summary = {"bench": "prepare_memory", "summary": True, "unit": unit, "sizes": [lo, hi]}
    for path in paths:
        if (lo, path) in by and (hi, path) in by and hi > lo:
            grew = by[(hi, path)]["result_mib"] - by[(lo, path)]["result_mib"]
            anon = by[(hi, path)]["peak_anon_mib"] - by[(lo, path)]["peak_anon_mib"]
            summary[path] = {"anon_growth_mib": round(anon, 1), "result_growth_mib": round(grew, 1),
                             "anon_growth_per_result_growth": round(anon / grew, 3) if grew else None}
    if "in_memory" in paths:
        summary["equal_to_in_memory"] = {path: all(by[(n, path)]["sha256"] == by[(n, "in_memory")]["sha256"]
                                                   for n in sizes)
                                         for path in paths if path != "in_memory"}
    if args.molecules:
        # the featurised graphs are held in memory by design (1 KB a molecule): their bound is a multiple
        # of the result; the mapped read holds none of it
        summary["peak_anon_per_result"] = {f"{path}@{n}": round(by[(n, path)]["peak_anon_mib"]
                                                                 / by[(n, path)]["result_mib"], 2)
                                           for n in sizes for path in paths if by[(n, path)]["result_mib"]}
        summary["warm_equal_to_cold"] = all(by[(n, "mol_warm")]["sha256"] == by[(n, "mol_cold")]["sha256"]
                                            for n in sizes)
    else:
        streamed = [summary[p]["anon_growth_per_result_growth"] for p in ("cold", "warm") if p in summary]
        summary["targets"] = {"streamed_anon_growth_below_a_tenth_of_the_result": bool(streamed) and all(
            r is not None and r < 0.1 for r in streamed)}
    summary["machine"] = _common.machine(start_load)
    _common.emit(summary)


if __name__ == "__main__":
    main()
