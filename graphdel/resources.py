"""What a block of work costs: wall time and peak memory (RSS, and GPU memory when torch uses a GPU); and
handing freed heap memory back to the operating system (:func:`release_freed_memory`)."""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

#: Keys that hold costs of one execution, which differ between two runs of the same work: the ones
#: ``measure`` fills, and ``seconds``, where a method's run says how its time split (``selected.seconds``).
MEASURED_KEYS = frozenset({"wall_time_s", "peak_mem_mb", "start_mem_mb", "peak_gpu_mem_mb", "seconds"})


@contextmanager
def measure(interval: float = 0.01) -> Iterator[dict]:
    """Wall time and peak resident memory of a block.

    ``peak_mem_mb`` is the highest resident set size (RSS) of the whole process while the block runs, in
    MiB, sampled every ``interval`` seconds from ``/proc/self/statm`` (Linux; torch's C++ allocations are
    included, which ``tracemalloc`` would miss); ``start_mem_mb`` is the RSS when the block began, so
    ``peak_mem_mb - start_mem_mb`` is what the block added on top. (Reporting only that difference, as
    graphdel once did, called 0.26 MB the "peak memory" of a whole unlearning run whose process held
    hundreds of MB.) Where ``/proc`` is unavailable it falls back to ``resource.getrusage``'s
    ``ru_maxrss``, the process's lifetime peak. The dict yielded is filled on exit with ``wall_time_s``,
    ``peak_mem_mb``, ``start_mem_mb`` (when known) and ``peak_mem_method``, and on a GPU that torch has
    initialised with ``peak_gpu_mem_mb`` (``torch.cuda.max_memory_allocated`` over the block, less what was
    allocated when it began).
    """
    out: dict[str, Any] = {}
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        except OSError:
            return None

    torch = sys.modules.get("torch")
    gpu_start = 0
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
        gpu_start = torch.cuda.memory_allocated()
    start_rss = rss()
    peak = [start_rss or 0]
    stop = threading.Event()

    def sample():
        while not stop.wait(interval):
            v = rss()
            if v is not None and v > peak[0]:
                peak[0] = v

    thread = threading.Thread(target=sample, daemon=True) if start_rss is not None else None
    if thread:
        thread.start()
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["wall_time_s"] = time.perf_counter() - t0
        stop.set()
        if thread:
            thread.join()
            peak[0] = max(peak[0], rss() or 0)
            out["peak_mem_mb"] = peak[0] / 2**20
            out["start_mem_mb"] = start_rss / 2**20
            out["peak_mem_method"] = "peak RSS of the process during the block, sampled from /proc/self/statm"
        else:
            out["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            out["peak_mem_method"] = "lifetime peak RSS of the process (resource.getrusage ru_maxrss)"
        cuda = sys.modules.get("torch")  # only when torch is loaded already: measuring never imports it
        if cuda is not None and cuda.cuda.is_available() and cuda.cuda.is_initialized():
            out["peak_gpu_mem_mb"] = (cuda.cuda.max_memory_allocated() - gpu_start) / 2**20


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Ask the C library to hand freed heap memory back to the operating system (glibc's
    ``malloc_trim(0)``); ``False`` where it cannot.

    Why: a pass whose tensors grow from batch to batch (the frozen text pass, texts sorted by length) leaves
    glibc holding the freed memory of every earlier shape. Over 8,000 captions that was 611 of the pass's
    656 MiB of growth, growing with the corpus; trimming after each batch keeps it to about one batch
    (docs/experiments/2026-12-07-bounded-preparation.md). Numbers are unchanged: only free memory moves.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
