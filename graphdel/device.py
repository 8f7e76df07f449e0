"""Where graphdel computes: the one place every device decision is made.

Every command and API entry point takes a device *name*: ``auto`` (CUDA when present, else the CPU),
``cpu``, ``cuda`` or ``cuda:N``. :func:`resolve_device` turns it into a :class:`torch.device`; under
``torchrun`` ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``, and :func:`process_group` picks the
backend (NCCL on GPUs, gloo on CPUs) from the same decision.

The rules the rest of the code keeps, so that models and batches always meet on one device:

* **A model at rest is on the CPU**: what training and unlearning return, what a
  :class:`~graphdel.runs.Run` holds, what is written to disk. Code that computes moves the model to the
  resolved device for the duration (:func:`placed`) and returns it to where it was.
* **Batches follow the model**: scoring functions send batches to the device of the model's parameters
  (:func:`model_device`) unless told otherwise, never to a fixed ``"cpu"``.
* **Results leave the device as CPU tensors** (embeddings, metrics, safetensors).
* **On the CPU nothing changes**: the same operations in the same order give the same numbers as before.

CUDA is queried only here (:func:`cuda_available`, :func:`cuda_device_count`, :func:`cuda_device`), so a
test can put a stand-in device in its place and check on a CPU-only machine that every tensor reaching a
model sits on the model's device (tests/standin_device.py).

This module imports no torch at import time: the command line validates ``--device`` with it before
anything heavy is loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Iterator

from graphdel.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used (see the module docstring)
    import torch
    from torch import nn

#: ``--device`` help text, shared by every command.
DEVICE_HELP = "where to compute: auto = cuda when available, else cpu; cpu; cuda; cuda:N (default auto)"

_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def is_device_name(name: object) -> bool:
    """Whether ``name`` is a device name graphdel accepts (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_device_name(name: object) -> str:
    """``name`` itself when it is a device name graphdel accepts (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        ConfigError: any other value, naming it and the valid names.
    """
    if not is_device_name(name):
        raise ConfigError(f"--device {name!r} is not a device; give auto, cpu, cuda or cuda:N")
    return name


# ---------------------------------------------------------------------------- the CUDA queries
# The only functions that ask torch about CUDA. Tests replace them to stand in for a GPU.

def cuda_available() -> bool:
    """Whether torch can use a CUDA device here."""
    import torch

    return torch.cuda.is_available()


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_device(index: int | None) -> "torch.device":
    """The CUDA device ``index`` (``None``: the current one), always with its index, so that two names of
    one GPU (``cuda`` and ``cuda:0``) compare equal."""
    import torch

    return torch.device("cuda", torch.cuda.current_device() if index is None else index)


# ---------------------------------------------------------------------------- decisions

def torchrun_local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` when ``torchrun`` started it with several processes, else ``None``
    (the same test as :func:`graphdel.distributed.launched_by_torchrun`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
        return int(os.environ.get("LOCAL_RANK", "0"))
    return None


def _no_cuda(name: str) -> ConfigError:
    import torch

    build = ("a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, "
             "but no GPU or driver is visible")
    return ConfigError(f"--device {name} was asked for but no CUDA device is available (torch "
                       f"{torch.__version__} is {build}); use --device cpu or auto")


def resolve_device(name: "str | torch.device" = "auto") -> "torch.device":
    """The :class:`torch.device` a device name stands for.

    ``auto`` is CUDA when available, else the CPU. ``cuda`` is the current GPU, or under ``torchrun`` this
    process's GPU ``cuda:LOCAL_RANK``; ``cuda:N`` is GPU ``N`` (under ``torchrun`` only the process's own:
    each process takes the GPU of its local rank). A CUDA device always carries its index. A
    :class:`torch.device` is returned as it is (a CUDA one after the same checks), so resolving twice is
    harmless.

    Raises:
        ConfigError: an unknown name; CUDA asked for without a CUDA device; a GPU index that is not there.
    """
    import torch

    if isinstance(name, torch.device):
        if name.type != "cuda":
            return name
        name = str(name)
    name = check_device_name(name)
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return torch.device("cpu")
    if not cuda_available():
        raise _no_cuda(name)
    rank = torchrun_local_rank()
    index = int(name[5:]) if name.startswith("cuda:") else rank
    if rank is not None and name.startswith("cuda:") and index != rank:
        raise ConfigError(f"--device {name} under torchrun: each process computes on the GPU of its local "
                          "rank; give --device cuda")
    count = cuda_device_count()
    if index is not None and index >= count:
        what = f"local rank {index}" if rank is not None else f"--device {name}"
        raise ConfigError(f"{what} has no GPU: {count} CUDA device{'s' if count != 1 else ''} visible")
    return cuda_device(index)


def check_processes(name: str, nproc: int) -> None:
    """Refuse, before ``torchrun`` starts ``nproc`` processes, a device they could not all have: CUDA
    without a GPU, one GPU named for all of them (``cuda:N``), or more processes than GPUs (each process
    takes one, NCCL shares none).

    Raises:
        ConfigError: as :func:`resolve_device`, ``cuda:N`` with ``nproc > 1``, or fewer GPUs than ``nproc``.
    """
    device = resolve_device(name)
    if nproc > 1 and str(name).startswith("cuda:"):
        raise ConfigError(f"--device {name} with --nproc {nproc}: each process computes on the GPU of its "
                          "local rank; give --device cuda")
    if device.type == "cuda" and nproc > cuda_device_count():
        raise ConfigError(f"--nproc {nproc} on CUDA needs {nproc} GPUs (one per process); "
                          f"{cuda_device_count()} visible")


def process_group(name: str) -> "tuple[str, torch.device]":
    """``(backend, device)`` of this ``torchrun`` process: ``("nccl", cuda:LOCAL_RANK)`` when ``name``
    resolves to CUDA, else ``("gloo", cpu)``.

    Raises:
        ConfigError: as :func:`resolve_device` (CUDA without a GPU, a local rank without a GPU).
    """
    device = resolve_device(name)
    return ("nccl" if device.type == "cuda" else "gloo"), device


def model_device(model: "nn.Module") -> "torch.device":
    """The device of ``model``'s parameters (else of its buffers; the CPU for a model with neither)."""
    import torch

    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def placed(model: "nn.Module", device: "str | torch.device | None") -> "Iterator[nn.Module]":
    """``model`` moved to ``device`` for the block and moved back to where it was afterwards (even on an
    error), so that a model at rest stays on the CPU. ``device=None`` leaves it where it is."""
    if device is None:
        yield model
        return
    target = resolve_device(device)
    before = model_device(model)
    if target == before:
        yield model
        return
    model.to(target)
    try:
        yield model
    finally:
        model.to(before)


def rng_devices(device: "str | torch.device") -> list[int]:
    """The CUDA device indices whose random state :func:`torch.random.fork_rng` must save for a run on
    ``device`` (none on the CPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not cuda_available():
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def autocast(device: "torch.device", enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled``; a no-op context elsewhere (CPU runs stay float32)."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
