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
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from graphdel.device import process_group
from graphdel.errors import ConfigError, GraphdelError
from graphdel.models.protocol import BatchShard, PairBatch


# ------------------------------------------------------------------------------------ process group
@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes (1 in a single process).
        local_rank: rank on this machine (selects the GPU).
        backend: ``gloo``, ``nccl`` or ``None`` (single process).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process run (``torchrun`` sets ``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str = "auto", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group ``torchrun`` describes in the environment; a no-op in a single process.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. The backend and
    this process's device come from :func:`graphdel.device.process_group`: ``nccl`` on
    ``cuda:LOCAL_RANK`` when ``device`` resolves to CUDA (``cuda``, or ``auto`` with CUDA available), else
    ``gloo`` on the CPU; on CUDA that GPU becomes the process's current device.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.
        timeout_s: how long a collective may wait for the other processes.

    Raises:
        ConfigError: ``cuda`` asked for without a CUDA device, or fewer GPUs than local processes.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched_by_torchrun():
        return DistEnv()
    backend, where = process_group(device)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def current() -> DistEnv:
    """The :class:`DistEnv` of this process (single-process values when no group is initialised)."""
    if not is_distributed():
        return DistEnv()
    return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                   str(dist.get_backend()))


def shutdown() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank of this process (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 in a single process)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and shows progress (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it finished.

    For work that fills an on-disk cache (featurisation, frozen text features): rank 0 computes and
    writes it, the others then read it instead of computing it again. No-op in a single process.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def collective_device() -> torch.device:
    """The device tensors must be on for the backend's collectives (the GPU for NCCL, else CPU)."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------- reductions
def all_reduce_mean(t: Tensor) -> Tensor:
    """Mean over processes of ``t`` (any shape, no gradient); ``t`` itself in a single process."""
    if not is_distributed():
        return t
    out = t.detach().to(collective_device(), dtype=torch.float64 if t.dtype == torch.float64 else torch.float32,
                        copy=True)
    dist.all_reduce(out)
    return (out / world_size()).to(device=t.device, dtype=t.dtype)


def all_reduce_max(t: Tensor) -> Tensor:
    """Elementwise maximum over processes of ``t`` (no gradient); ``t`` itself in a single process."""
    if not is_distributed():
        return t
    out = t.detach().to(collective_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out.to(t.device)


def reduce_metrics(values: dict[str, float]) -> dict[str, float]:
    """``{name: mean over processes}`` of per-process floats, in one collective (same keys everywhere)."""
    if not is_distributed() or not values:
        return dict(values)
    packed = all_reduce_mean(torch.tensor(list(values.values()), dtype=torch.float64))
    return {k: float(v) for k, v in zip(values, packed.tolist())}


def global_value(loss: Tensor) -> Tensor:
    """``loss`` with its *value* replaced by the mean over processes and its *gradient* left local.

    Every process then sees the same number (so a divergence check or a loss bound decides the same way
    everywhere), equal to the loss of the global batch when each process holds the mean over its equal
    shard; the backward pass is unchanged (gradient averaging happens elsewhere). Scalar in, scalar out.
    """
    if not is_distributed():
        return loss
    local = loss.detach()
    return loss + (all_reduce_mean(local) - local)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as it is on rank ``src`` (picklable), on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_tensors(tensors: dict[str, Tensor], src: int = 0) -> dict[str, Tensor]:
    """The tensors as they are on rank ``src`` (same names and shapes on every process), in place."""
    if not is_distributed():
        return tensors
    device = collective_device()
    for name in sorted(tensors):
        t = tensors[name]
        buf = t.detach().to(device, copy=True)
        dist.broadcast(buf, src=src)
        t.copy_(buf.to(t.device))
    return tensors


def average_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replace each ``p.grad`` by its mean over processes, in one collective (what DDP computes).

    A parameter without a gradient on some process counts as a zero gradient there; one without a
    gradient on every process keeps ``grad = None`` (so an optimiser skips it, as it would in a single
    process). No-op in a single process.
    """
    if not is_distributed() or not params:
        return
    device = collective_device()
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).float()
             for p in params]
    flat = torch.cat([g.to(device) for g in grads] + [flags.to(device)])
    dist.all_reduce(flat)
    flat[:-len(params)] /= world_size()
    seen = flat[-len(params):].cpu()
    offset = 0
    for p, had in zip(params, seen.tolist()):
        n = p.numel()
        if had > 0:
            g = flat[offset:offset + n].view_as(p).to(device=p.device, dtype=p.dtype)
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)
        offset += n


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the gathered gradient over processes and keeps this
    process's slice (the gradient of the sum of every process's loss with respect to the local input)."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # noqa: D401 - autograd signature
        ctx.rank, ctx.rows = dist.get_rank(), t.size(0)
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(t: Tensor) -> Tensor:
    """``[N * b, ...]``: the ``[b, ...]`` tensors of all ``N`` processes concatenated in rank order, with
    gradients flowing back to each process's own part. Every process must pass the same shape. ``t``
    itself in a single process."""
    if not is_distributed():
        return t
    return _GatherWithGrad.apply(t)


def gather(t: Tensor) -> Tensor:
    """``[N * b, ...]``: ``t`` of every process concatenated in rank order, no gradient."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, 0)


class _AllReduceSumWithGrad(torch.autograd.Function):
    """Sum over processes whose backward is again a sum over processes (each process's input feeds every
    process's output)."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # noqa: D401
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum_with_grad(t: Tensor) -> Tensor:
    """Differentiable sum of ``t`` over processes (same shape everywhere); ``t`` in a single process."""
    if not is_distributed():
        return t
    return _AllReduceSumWithGrad.apply(t)


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
def torchrun_command(nproc: int, module: str, argv: Sequence[str]) -> list[str]:
    """The command that re-executes ``python -m module argv`` under ``torchrun`` with ``nproc`` processes
    on this machine (a free rendezvous port is chosen by ``--standalone``)."""
    import sys

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", module, *argv]
