"""Batch loading for the training loop: optional background prefetching and pinned memory.

A batch is built from in-memory tensors by vectorised gathers (:meth:`PairData.batch
<graphdel.data.pairs.PairData.batch>` and :meth:`MoleculeGraphs.batch
<graphdel.data.molecules.MoleculeGraphs.batch>`: no Python loop over molecules or atoms), which takes about
2 ms for 64 pairs of the embedded corpus against about 1.3 s for a CPU training step (measured,
``bench/throughput.py``), so on a CPU waiting for data is well under 1% of a step and a worker pool would
only add copies. On a GPU a step takes milliseconds, so :func:`prefetch` builds the next batches in a
background thread (tensor ops release the GIL) and pins them, and the copy to the device is asynchronous.

Worker *processes* are used where the cost is: featurising SMILES with RDKit on a cold cache
(:func:`graphdel.data.molecules.featurize_smiles` with ``workers``).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

import torch

from graphdel.models.protocol import PairBatch

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(batches: Iterable[PairBatch], *, depth: int = 2, pin_memory: bool = False) -> Iterator[PairBatch]:
    """Yield the batches of ``batches`` in order, building up to ``depth`` of them ahead in a thread.

    The first batch is drawn in the calling thread, so a sampler that draws its random order when the
    first batch is asked for (every :class:`~graphdel.data.pairs.PairSet` and
    :class:`~graphdel.distributed.ShardedSampler` does, and uses its generator for nothing else during the
    pass) consumes its generator exactly as without prefetching: results do not change. An exception in
    the thread is raised here.

    Args:
        batches: an iterator of :class:`~graphdel.models.protocol.PairBatch` (``sampler.batches(...)``).
        depth: batches built ahead (0 = no thread, plain iteration).
        pin_memory: pin each batch (page-locked memory) for asynchronous copies to a GPU.
    """
    it = iter(batches)
    if depth <= 0:
        for b in it:
            yield b.pin_memory() if pin_memory else b
        return
    try:
        first = next(it)
    except StopIteration:
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for b in it:
                if stop.is_set():
                    return
                q.put(b.pin_memory() if pin_memory else b)
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer
            q.put(_Failure(e))

    thread = threading.Thread(target=work, name="graphdel-prefetch", daemon=True)
    thread.start()
    try:
        yield first.pin_memory() if pin_memory else first
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def use_prefetch(device: torch.device) -> bool:
    """Whether the training loop prefetches for ``device``: on CUDA only (see the module docstring)."""
    return device.type == "cuda"
