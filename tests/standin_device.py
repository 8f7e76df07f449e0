"""A stand-in GPU for machines without one: catches a model and a batch on different devices on a CPU.

A bug of the kind "the model is on the GPU, this batch is still on the CPU" only shows on a GPU. Here the
one place graphdel asks about CUDA (:mod:`graphdel.device`: ``cuda_available``, ``cuda_device_count``,
``cuda_device``) is told that one GPU exists and that it is the stand-in device. Tensors moved there are
:class:`StandinTensor` s: they report their own device (``meta``, the only device type besides ``cpu`` that
a CPU-only torch lets a tensor report) but hold a real CPU tensor and compute on it, so a whole training
runs as it would on the CPU. Like CUDA tensors they refuse to meet CPU tensors in one operation
(:class:`DeviceMismatch`, naming the operation), refuse ``.numpy()`` and CPU random generators; and like
CUDA they accept what CUDA accepts: 0-dim CPU tensors (scalars), CPU index tensors in indexing, copies
across devices.

Used by tests/test_device.py. The interception is a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
(every aten operation of the block passes through :meth:`_StandinMode.__torch_dispatch__`), so nothing in
graphdel is patched but the three CUDA queries. One thing the dispatch mode cannot see is a tensor built
from Python data (``torch.tensor(data, device=...)``, ``torch.as_tensor``, ``Tensor.new_tensor``): torch
builds it below the modes, and on ``meta`` its values would be lost. :class:`_StandinData` (a
:class:`~torch.overrides.TorchFunctionMode`) builds those on the CPU and moves them; a ``meta`` tensor that
still slips through is refused rather than computed with.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, return_and_correct_aliasing

#: The device a stand-in tensor reports.
STANDIN = torch.device("meta")

aten = torch.ops.aten

#: Operations CUDA lets a GPU tensor meet CPU tensors in: copies across devices...
COPIES = {aten.copy_.default, aten._to_copy.default}
#: ... and indexing a GPU tensor with CPU indices (PyTorch moves the indices; not the other way round).
INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}


class DeviceMismatch(AssertionError):
    """A stand-in tensor met a CPU tensor (or a CPU random generator) in one operation."""


class StandinTensor(torch.Tensor):
    """A tensor on the stand-in device: a real CPU tensor (``inner``) behind a wrapper that reports
    :data:`STANDIN` as its device."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor, requires_grad: bool = False):
        return torch.Tensor._make_wrapper_subclass(
            cls, inner.size(), strides=inner.stride(), storage_offset=inner.storage_offset(),
            dtype=inner.dtype, layout=inner.layout, device=STANDIN, requires_grad=requires_grad)

    def __init__(self, inner: torch.Tensor, requires_grad: bool = False) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"StandinTensor({self.inner!r})"

    @property
    def is_meta(self) -> bool:
        # torch special-cases real meta tensors (load_state_dict into one is a no-op); this one holds values
        return False

    def data_ptr(self) -> int:
        # a real GPU tensor has an address; caches keyed on it (the KG model's entity states) rely on that
        return self.inner.data_ptr()

    def tolist(self):
        # torch refuses .tolist() on tensor subclasses; a GPU tensor copies itself to the host for it
        return self.inner.tolist()

    def numpy(self, *args, **kwargs):
        raise DeviceMismatch("can't convert a stand-in device tensor to numpy (as with CUDA): "
                             "use Tensor.cpu() to copy it to host memory first")

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise DeviceMismatch(f"{func}: a stand-in tensor was used outside standin_gpu()")


def _is_standin_device(device) -> bool:
    return device is not None and torch.device(device).type == STANDIN.type


#: The functions that build a tensor from Python data (see the module docstring).
_FROM_DATA = {torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor}


class _StandinData(TorchFunctionMode):
    """Builds tensors from Python data on the CPU and moves them to the stand-in device when asked."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FROM_DATA:
            source = args[0] if func is torch.Tensor.new_tensor else None
            wanted = kwargs.get("device", source.device if source is not None else None)
            if _is_standin_device(wanted):
                kwargs["device"] = torch.device("cpu")
                return func(*args, **kwargs).to(STANDIN)
        return func(*args, **kwargs)


def _leaves(values) -> list:
    """The arguments in ``values`` with lists opened (aten arguments nest one list deep: ``Tensor[]``)."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(v)
        else:
            out.append(v)
    return out


def _map(fn, value):
    """``fn`` on ``value``, or on each item of a list or tuple of them (the shapes of aten arguments and
    results)."""
    if isinstance(value, (list, tuple)):
        return type(value)(fn(v) for v in value)
    return fn(value)


def _cpu_operands(values) -> list[torch.Tensor]:
    """The CPU tensors among ``values`` that may not meet a stand-in one: 0-dim CPU tensors are scalars,
    which CUDA takes too."""
    return [t for t in values
            if isinstance(t, torch.Tensor) and not isinstance(t, StandinTensor) and t.dim() > 0]


def _has_standin(values) -> bool:
    return any(isinstance(t, StandinTensor) for t in values)


def _refused(func, args, kwargs, leaves) -> list[torch.Tensor]:
    """The CPU operands CUDA would refuse in ``func(*args, **kwargs)`` (empty when it would run)."""
    if func in COPIES:
        return []
    if func in INDEXING:
        base, rest = args[0], _leaves([*args[2:], *kwargs.values()])
        if not isinstance(base, StandinTensor):  # a CPU tensor indexed with (or given) stand-in tensors
            return [base] if _has_standin(leaves) else []
        return _cpu_operands(rest)  # CPU indices into a stand-in tensor are fine, CPU values are not
    return _cpu_operands(leaves) if _has_standin(leaves) else []


class _StandinMode(TorchDispatchMode):
    """Runs every operation on CPU tensors and puts its results where CUDA would: on the stand-in device
    when an input is there (or a factory or a copy is asked to put them there), else on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0  # operations that ran on the stand-in device

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        leaves = _leaves([*args, *kwargs.values()])
        if any(type(t) is torch.Tensor and t.device.type == STANDIN.type for t in leaves):
            raise DeviceMismatch(f"{func}: a real {STANDIN.type} tensor (no values) reached an operation: "
                                 "built by a factory the stand-in does not cover (tests/standin_device.py)")
        refused = _refused(func, args, kwargs, leaves)
        if refused:
            raise DeviceMismatch(f"{func}: expected all tensors to be on the same device, but found a "
                                 f"stand-in GPU tensor and {len(refused)} CPU tensor(s) of shape(s) "
                                 f"{[tuple(t.shape) for t in refused][:4]}")
        wanted = kwargs.get("device")
        to_standin = _is_standin_device(wanted) or (wanted is None and _has_standin(leaves))
        if to_standin and any(isinstance(g, torch.Generator) and g.device.type == "cpu" for g in leaves):
            raise DeviceMismatch(f"{func}: a CPU random generator drew on the stand-in GPU "
                                 "(CUDA expects a CUDA generator)")
        if _is_standin_device(wanted):
            kwargs["device"] = torch.device("cpu")
        unwrap = lambda t: t.inner if isinstance(t, StandinTensor) else t  # noqa: E731
        out = func(*(_map(unwrap, a) for a in args), **{k: _map(unwrap, v) for k, v in kwargs.items()})
        if not to_standin:
            return out
        self.ops += 1
        wrapped = _map(lambda t: StandinTensor(t) if isinstance(t, torch.Tensor) else t, out)
        return return_and_correct_aliasing(func, args, kwargs, wrapped)


@contextlib.contextmanager
def standin_gpu(monkeypatch) -> Iterator[_StandinMode]:
    """For the block, ``cuda``/``auto`` resolve to the stand-in GPU (:data:`STANDIN`) through
    :mod:`graphdel.device`, and stand-in tensors compute on the CPU; yields the mode, whose ``ops`` counts
    the operations that ran on the stand-in device."""
    import graphdel.device

    monkeypatch.setattr(graphdel.device, "cuda_available", lambda: True)
    monkeypatch.setattr(graphdel.device, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(graphdel.device, "cuda_device", lambda index: STANDIN)
    with _StandinData(), _StandinMode() as mode:
        yield mode


def assert_at_rest(model: torch.nn.Module) -> None:
    """Every parameter and buffer of ``model`` is a plain CPU tensor (a model at rest, graphdel.device)."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert type(t) in (torch.Tensor, torch.nn.Parameter) and t.device.type == "cpu", \
            f"{name} is on {t.device} ({type(t).__name__}), not at rest on the CPU"
