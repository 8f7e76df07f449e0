"""The process group of a data-parallel run and the collectives between its processes: who this process is
(:func:`current`, :func:`rank`, :func:`is_main`), joining and leaving the group ``torchrun`` describes
(:func:`init_from_env`), and the reductions, broadcasts and gathers the training loop and the unlearning
engine use (:func:`average_gradients`, :func:`gather_with_grad`...). Each is a no-op, or the identity, in a
single process. How they make a multi-process run compute what one process would is explained in
:mod:`graphdel.distributed`, which imports every name from here.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from graphdel.device import process_group


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
