"""Data-parallel training and unlearning on ``torch.distributed`` (run under ``torchrun``).

``graphdel train|forget ... --nproc N`` re-executes itself under
``python -m torch.distributed.run --nproc-per-node N -m graphdel.cli ...``; a Python script does the same
by calling :func:`init_from_env` first and being started with ``torchrun``. Every process then holds the
whole (featurised) data set and a full replica of the model:

* **Same global batch.** Every process draws the *global* batch order with the same seeded generator, as a
  single process would, and keeps its own contiguous slice of each global batch (:class:`ShardedSampler`).
  ``batch_size`` in every config is the global batch. A global batch whose size is not a multiple of the
  number of processes loses its last ``size mod N`` pairs (only an epoch's last batch can: at most
  ``N - 1`` pairs per pass, different ones each epoch since the order is reshuffled), so that every shard
  has the same length.
* **Same gradient.** Each process computes its share of the loss and gradients are averaged: by
  :class:`~torch.nn.parallel.DistributedDataParallel` in the training loop (:func:`data_parallel`), and by
  :func:`average_gradients` in the unlearning engine, whose methods call ``encode_x``, ``fuse``,
  ``training_loss`` ... of ``f'`` several times per step (DDP only synchronises what runs inside its own
  ``forward``). Both compute the same average.
* **The single-process objective, not a per-shard one.** Terms that are means over pairs (MultiDelete's
  terms on the fused representation, MSE/L1/cosine distances) are exact by averaging alone. Batch-level
  terms are made global: the contrastive loss ranks each local pair against the embeddings gathered from
  all processes (:func:`gather_with_grad`); the matching head draws the global batch's hard negatives with
  the shared generator (the same draws as one process) and fuses each local pair with them, their token
  states gathered from the processes that own them; BatchNorm in training mode normalises with the global
  batch's statistics (:func:`synchronized_batch_norm`; ``torch.nn.SyncBatchNorm`` is GPU-only); random
  "other pair" negatives of the unlearning losses are drawn over the global batch
  (:attr:`BatchShard.fetch <graphdel.models.protocol.BatchShard>`). Not exact: dropout masks (drawn per
  process), the similarity-matrix variants of the unlearning losses and SCRUB's in-batch KL (each process
  sees the diagonal block of the global matrix), and the knowledge-graph model's losses (per shard, as
  plain DDP computes them). tests/test_distributed.py compares a 2-process run with a single one.
* **Same decisions everywhere.** Logged loss values are averaged over processes before anything is
  decided on them (divergence checks, NegGrad's guard: :func:`global_value`), evaluation runs on every
  process on identical replicas, so early stopping and checkpoint selection agree without messages.
* **Only rank 0 writes** run folders and caches (:func:`main_process_first`, :func:`is_main`).

Backend: ``gloo`` on CPU, ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).

The process group and its collectives are in :mod:`graphdel.collectives`, every name imported from here too;
this module holds what builds on them: synchronised BatchNorm, the sharded samplers, the DDP wrapper and the
``torchrun`` command.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist  # noqa: F401 - callers reach torch.distributed as graphdel.distributed.dist
from torch import Tensor, nn

from graphdel.collectives import (DistEnv, all_reduce_max, all_reduce_mean, all_reduce_sum_with_grad,
                                  average_gradients, barrier, broadcast_object, broadcast_tensors,
                                  collective_device, current, gather, gather_with_grad, global_value,
                                  init_from_env, is_distributed, is_main, launched_by_torchrun,
                                  main_process_first, rank, reduce_metrics, shutdown, world_size)
from graphdel.errors import ConfigError, GraphdelError
from graphdel.models.protocol import BatchShard, PairBatch


# ---------------------------------------------------------------------------------------- batch norm
def _synced_batch_norm(bn: nn.modules.batchnorm._BatchNorm, original: Callable[[Tensor], Tensor],
                       x: Tensor) -> Tensor:
    """BatchNorm over the union of every process's batch (training mode); ``original`` otherwise.

    Two-pass statistics (mean, then mean squared deviation) as the single-process kernel computes them.
    Shapes: ``x [N_local, C, *]`` -> same.
    """
    if not (bn.training and is_distributed()):
        return original(x)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    dtype = x.dtype
    x = x.float()  # statistics in float32 even under bf16 autocast
    local_count = x.numel() // x.size(1)
    packed = torch.cat([x.sum(dims), x.new_tensor([float(local_count)])])
    packed = all_reduce_sum_with_grad(packed)
    total = packed[-1].detach()
    if float(total) < 2:
        raise ValueError("BatchNorm needs more than one value per channel in training mode (global batch)")
    mean = packed[:-1] / total
    centred = x - mean.view(shape)
    var = all_reduce_sum_with_grad((centred * centred).sum(dims)) / total  # biased, as normalisation uses
    out = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
            unbiased = var.detach() * (total / (total - 1))
            bn.running_mean.mul_(1 - factor).add_(mean.detach() * factor)
            bn.running_var.mul_(1 - factor).add_(unbiased * factor)
    return out.to(dtype)


@contextlib.contextmanager
def synchronized_batch_norm(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every BatchNorm layer of ``model`` in training mode uses the statistics of the
    global batch (all processes' shards), as a single process on the global batch would, and updates its
    running statistics with them (identical on every process). Eval mode is unchanged. A no-op in a
    single process. (``torch.nn.SyncBatchNorm`` does the same on GPUs only.)"""
    if not is_distributed():
        yield model
        return
    patched = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and "forward" not in m.__dict__:
            original = m.forward
            m.forward = lambda x, _m=m, _f=original: _synced_batch_norm(_m, _f, x)  # instance attribute
            patched.append(m)
    try:
        yield model
    finally:
        for m in patched:
            del m.forward


# ----------------------------------------------------------------------------------------- samplers
def _shard_rows(rows: Tensor, rank_: int, world: int) -> tuple[Tensor, int, int] | None:
    """This rank's contiguous slice of a global batch's rows: ``(rows [b], start, global_size)``, or
    ``None`` when the batch has fewer rows than processes."""
    per = rows.numel() // world
    if per == 0:
        return None
    start = rank_ * per
    return rows[start:start + per], start, per * world


class ShardedSampler:
    """A :class:`~graphdel.models.protocol.PairSampler` that yields this process's shard of every global
    batch a single process would draw from ``base`` with the same generator.

    ``base`` must be row-addressable (``sample_rows``, ``iter_rows``, ``make_batch``, as
    :class:`~graphdel.data.pairs.PairSet`). Every process consumes the generator exactly as a single
    process drawing the global batches does, so all processes stay in step.

    Args:
        base: the full sampler (Df, Dr, the training pairs).
        rank: this process's rank (default: from the process group).
        world_size: number of processes (default: from the process group).
    """

    def __init__(self, base: Any, rank: int | None = None, world_size: int | None = None) -> None:
        missing = [m for m in ("sample_rows", "iter_rows", "make_batch") if not hasattr(base, m)]
        if missing:
            raise GraphdelError(f"cannot shard a {type(base).__name__} across processes: it has no "
                                f"{', '.join(missing)} (use graphdel.data.pairs.PairSet)")
        env = current()
        self.base = base
        self.rank = env.rank if rank is None else rank
        self.world_size = env.world_size if world_size is None else world_size

    def __len__(self) -> int:
        """Number of pairs of the *full* set (the epoch length every process shares)."""
        return len(self.base)

    def _local(self, rows: Tensor) -> PairBatch | None:
        cut = _shard_rows(rows, self.rank, self.world_size)
        if cut is None:
            return None
        local, start, global_size = cut
        batch = self.base.make_batch(local)
        kept = rows[:global_size]
        batch.shard = BatchShard(self.rank, self.world_size, start, global_size,
                                 fetch=lambda positions, _rows=kept: self.base.make_batch(_rows[positions.cpu()]))
        return batch

    def sample(self, batch_size: int, generator: torch.Generator) -> PairBatch:
        """This process's ``batch_size`` pairs of a global sample of ``batch_size * world_size`` pairs."""
        rows = self.base.sample_rows(batch_size * self.world_size, generator)
        return self._local(rows)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[PairBatch]:
        """This process's shard of each global batch of ``batch_size`` pairs (see the module docstring on
        batches smaller than the number of processes, which are skipped everywhere)."""
        for rows in self.base.iter_rows(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            batch = self._local(rows)
            if batch is not None:
                yield batch


def shard(sampler: Any) -> Any:
    """``sampler`` itself in a single process, a :class:`ShardedSampler` over it under ``torchrun``."""
    return ShardedSampler(sampler) if is_distributed() else sampler


# ---------------------------------------------------------------------------------------------- DDP
class LossModule(nn.Module):
    """Lets :class:`~torch.nn.parallel.DistributedDataParallel` see a whole loss computation as one
    forward pass: ``forward(fn) = fn(model)``, so any method of the model (``loss_terms``, ``fuse``...)
    can be called inside it and DDP averages the gradients during the backward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[nn.Module], Any]) -> Any:
        """``fn(model)``: whatever the loss computation returns (e.g. the ``loss_terms`` dict of scalars)."""
        return fn(self.model)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped for data-parallel steps: call ``wrapped(lambda m: m.loss_terms(batch))``.

    Under ``torchrun`` this is a :class:`~torch.nn.parallel.DistributedDataParallel` over a
    :class:`LossModule` (parameters broadcast from rank 0 once; buffers are kept identical by
    :func:`synchronized_batch_norm`, so they are not re-broadcast every step); in a single process a plain
    :class:`LossModule`. Unused parameters are allowed (a step may skip the matching head).
    """
    wrapped = LossModule(model)
    if not is_distributed():
        return wrapped
    from torch.nn.parallel import DistributedDataParallel

    import inspect

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    # buffers need no per-step broadcast (see above); torch >= 2.12 names that option forward_sync_buffers
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(wrapped, device_ids=device_ids, find_unused_parameters=True, **no_sync)


# -------------------------------------------------------------------------------------- launching
def torchrun_command(nproc: int, module: str, argv: Sequence[str], log_dir: str | None = None) -> list[str]:
    """The command that re-executes ``python -m module argv`` under ``torchrun`` with ``nproc`` processes
    on this machine (a free rendezvous port is chosen by ``--standalone``). ``log_dir``: where torchrun
    keeps its per-process folders; without it torchrun makes a ``torchelastic_*`` folder in the system's
    temporary directory at every launch and leaves it there."""
    import sys

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    logs = [f"--log-dir={log_dir}"] if log_dir is not None else []
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            *logs, "-m", module, *argv]
