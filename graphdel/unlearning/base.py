"""The unlearning engine: context and result types, the method registry, config overrides, and the
optimisation loop shared by every gradient-based method.

The engine is modality-agnostic: it only calls the :mod:`graphdel.models.protocol` interface
(``encode_x``, ``encode_text``, ``fuse``, ``sim``, ``logits``, ``match_logits``, ``training_loss``,
``pair_losses``) and draws batches through :class:`~graphdel.models.protocol.PairSampler`.

Conventions every method follows:

* The original model ``f`` is never modified. The teacher is a frozen deep copy (eval mode,
  ``requires_grad=False``); the student ``f'`` is another deep copy and the only model updated.
* In ``f'``, BatchNorm running statistics stay frozen (every ``torch.nn.modules.batchnorm._BatchNorm``
  is kept in eval mode during updates) and so does the temperature: parameters whose name contains one of
  :data:`FROZEN_PARAMETER_NAMES` (``logit_scale``, ``temperature``) get no update. Other modules (e.g.
  dropout) are in train mode during updates (unless the config's ``dropout`` is off). The returned model
  is in eval mode with the original's ``requires_grad`` flags.
* ``trainable`` (a config setting) restricts updates to named parameters. A model may then share what
  its frozen parts compute with the teacher for the length of the update loop (an optional
  ``share_frozen_states(teacher)`` context manager: the molecule model caches its frozen bottom graph
  layers per molecule); the result must not depend on it.
* A non-finite loss or gradient norm raises :class:`UnlearningDivergedError` with the step, unless a
  method opts into stopping instead (NegGrad's divergence guard).
* Batches are seeded from ``ctx.seed``; the global torch RNG is forked, so a run does not disturb it.
* Every Df batch is used, a batch of one pair included (a one-pair request is the common case). A Df batch
  of fewer than 2 distinct items has no in-batch negative or unrelated text of its own: the methods take
  them from a Dr sample of ``batch_size`` pairs (:meth:`Trainer.outside_negatives`); "unrelated" texts are
  always of another item (:func:`graphdel.unlearning.losses.item_derangement`).
* Under ``torchrun`` (:mod:`graphdel.distributed`) the :class:`Trainer` draws each process's shard of every
  global Df/Dr batch (``batch_size`` is the global batch), averages gradients over processes in
  :meth:`Trainer.step` and logs/decides on loss values averaged over processes; gradient masks are taken
  from rank 0. Evaluation and selection run on every process on identical replicas. Methods need no
  change: they draw batches through the trainer and update through :meth:`Trainer.step`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import math
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphdel import distributed
from graphdel.device import resolve_device, rng_devices
from graphdel.errors import ConfigError, GraphdelError
from graphdel.models.protocol import PairBatch, PairSampler
from graphdel.unlearning.losses import distinct_items
from graphdel.unlearning.selection import CalibratedSelector

#: Substrings of parameter names that are never updated in ``f'`` (the learnt temperature).
FROZEN_PARAMETER_NAMES: tuple[str, ...] = ("logit_scale", "temperature")


class UnlearningDivergedError(GraphdelError):
    """The unlearning loss or gradient became NaN/Inf. Attributes: ``method``, ``epoch``, ``step``."""

    def __init__(self, message: str, *, method: str = "", epoch: int | None = None,
                 step: int | None = None) -> None:
        super().__init__(message)
        self.method, self.epoch, self.step = method, epoch, step


# --------------------------------------------------------------------------------------------- types
@dataclass
class UnlearningContext:
    """Everything a method may use besides the original model.

    Attributes:
        forget: Df, the pairs to delete.
        retain: Dr, the remaining training pairs.
        calibration: pairs drawn the way deletions are drawn but never trained on: the stand-in for
            "never seen" used for stopping and selection (docs/design.md).
        val: validation pairs; used for selection only when ``calibration`` is ``None``.
        distractors: pairs never trained on that every scored pair is ranked against (pool-k retrieval,
            :mod:`graphdel.evaluation.retrieval`; a run's calibration and validation pairs); ``None``:
            the calibration (else validation) pairs.
        retrain: trains a fresh model on Dr with the original recipe (used by the Retrain method).
        anchor: for a request applied to an already unlearned model, a function returning the model the
            chain of deletions started from (the original training, without the facts earlier requests
            removed from a model's stored structure); ``None`` otherwise. Called only by a method that uses
            it, so the others never load that model. Gradient methods may take their
            frozen teacher and their forgetting target from it (``GradientConfig.anchor_teacher``,
            ``anchor_reference``) instead of from the model being unlearned, whose own knowledge already
            carries the errors of the earlier unlearning steps.
        earlier_forget: for a request applied to an already unlearned model, the pairs every earlier
            request of the chain deleted (not in ``forget`` nor ``retain``); ``None`` otherwise. A method may
            keep forgetting them (MultiDelete's ``replay``).
        seed: seeds batch order, negatives, noise and scoring pools.
        device: where the models run: a device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) or a
            :class:`torch.device`, resolved by :func:`graphdel.device.resolve_device` when a method runs.
        progress: show tqdm progress bars.
    """

    forget: PairSampler
    retain: PairSampler
    calibration: PairSampler | None = None
    val: PairSampler | None = None
    distractors: PairSampler | None = None
    retrain: Callable[[], nn.Module] | None = None
    anchor: Callable[[], nn.Module] | None = None
    earlier_forget: PairSampler | None = None
    seed: int = 0
    device: str | torch.device = "cpu"
    progress: bool = True


@dataclass
class UnlearningResult:
    """What a method returns.

    Attributes:
        model: the unlearned model (a new object; the original is untouched), in eval mode, on the CPU
            (a model at rest; :mod:`graphdel.device`).
        log: one dict per optimiser step (``step``, ``epoch``, ``phase``, ``loss``, loss terms) and per
            evaluation (``eval: True``, ``forget``, ``reference``, ``retain`` scores).
        wall_time_s: seconds the method took, evaluation included.
        config: the resolved hyperparameters (``method`` plus the config dataclass as a dict).
        selected: which checkpoint was kept and why.
    """

    model: nn.Module
    log: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    config: dict = field(default_factory=dict)
    selected: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ config parsing
_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` (a string from the command line or an already-typed value) as type ``tp``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str)
                                                     and value.strip().lower() in ("none", "null"))):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ConfigError:
                pass
        raise bad
    if origin is Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if value == c or (isinstance(value, str) and not isinstance(c, str) and value.strip() == str(c)):
                return c
            if isinstance(value, str) and isinstance(c, str) and value.strip() == c:
                return c
        raise bad
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise bad from None
        else:
            raise bad
        # NaN is never a meaningful setting: it would only surface later as a NaN loss. (inf is allowed:
        # NegGrad's loss_bound=inf disables the bound.)
        if math.isnan(out):
            raise bad
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise ConfigError(f"config key {key!r}: unsupported field type {_type_name(tp)}")


def config_keys(config_cls: type) -> list[str]:
    """All settable keys of a config dataclass, nested dataclasses as ``outer.inner``."""
    hints = typing.get_type_hints(config_cls)
    keys = []
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += [f"{f.name}.{k}" for k in config_keys(tp)]
        else:
            keys.append(f.name)
    return keys


def parse_overrides(config_cls: type, overrides: dict[str, Any] | list[str] | tuple[str, ...] | None = None,
                    base: Any = None) -> Any:
    """Build a ``config_cls`` instance from ``key=value`` overrides (no eval/exec).

    Args:
        config_cls: a dataclass; nested dataclass fields are addressed as ``outer.inner``.
        overrides: ``["alpha=0.5", "terms.md=false"]`` or ``{"alpha": "0.5"}`` (values may be strings
            or already typed). Types follow the field annotations: int, float, bool
            (true/false/yes/no/on/off/1/0), str, ``Literal[...]`` choices, ``X | None`` ("none").
        base: start from this instance instead of the defaults.

    Raises:
        ConfigError: unknown key (the message lists the valid keys), a value of the wrong type (the
            message names the key and the expected type), or a value the config rejects.
    """
    cfg = copy.deepcopy(base) if base is not None else config_cls()
    if overrides is None:
        return cfg
    if isinstance(overrides, (list, tuple)):
        items = []
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            k, v = item.split("=", 1)
            items.append((k.strip(), v))
    elif isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        raise ConfigError(f"overrides must be a dict or a list of 'key=value' strings, not "
                          f"{type(overrides).__name__}")
    valid = config_keys(config_cls)
    # group by the first component so nested dataclasses are rebuilt once
    for key, value in items:
        if key not in valid:
            raise ConfigError(f"unknown config key {key!r} for {config_cls.__name__}; valid keys: "
                              + ", ".join(valid))
        cfg = _set_path(cfg, key.split("."), value, key)
    return cfg


def _set_path(obj: Any, path: list[str], value: Any, full_key: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if len(path) == 1:
        new = _coerce(full_key, value, hints[name])
    else:
        new = _set_path(getattr(obj, name), path[1:], value, full_key)
    try:
        return dataclasses.replace(obj, **{name: new})
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {full_key!r}: {e}") from e


def config_to_dict(cfg: Any) -> dict:
    """A method config dataclass as a plain dict (nested dataclasses included; recorded in the run config)."""
    return dataclasses.asdict(cfg)


def check(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` (for configs' ``__post_init__``)."""
    if not cond:
        raise ConfigError(message)


# ---------------------------------------------------------------------------------------- registry
_METHODS: dict[str, type["UnlearningMethod"]] = {}
_ALIASES: dict[str, str] = {}


def register_method(cls: type["UnlearningMethod"]) -> type["UnlearningMethod"]:
    """Class decorator: make ``cls`` available under ``cls.name`` and each of ``cls.aliases``.

    Both must be set on the class itself (a subclass does not inherit its parent's names)."""
    if "name" not in cls.__dict__ or not cls.name:
        raise GraphdelError(f"{cls.__name__} must set its own 'name' to be registered")
    aliases = tuple(cls.__dict__.get("aliases", ()))
    for n in (cls.name, *aliases):
        key = n.lower()
        owner = _METHODS.get(key) or _METHODS.get(_ALIASES.get(key, ""))
        if owner is not None and owner is not cls:
            raise GraphdelError(f"unlearning method name {n!r} already registered by {owner.__name__}")
    _METHODS[cls.name.lower()] = cls
    for a in aliases:
        _ALIASES[a.lower()] = cls.name.lower()
    return cls


def _ensure_builtin_methods() -> None:
    importlib.import_module("graphdel.unlearning")


def get_method(name: str) -> type["UnlearningMethod"]:
    """The method class registered under ``name`` or one of its aliases (case-insensitive)."""
    _ensure_builtin_methods()
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _METHODS:
        raise ConfigError(f"unknown unlearning method {name!r}; available: "
                          + ", ".join(sorted(_METHODS) + sorted(_ALIASES)))
    return _METHODS[key]


def available_methods() -> list[tuple[str, str, str]]:
    """``(name, summary, citation)`` of every registered method, sorted by name (aliases not repeated)."""
    _ensure_builtin_methods()
    return [(c.name, c.summary, c.citation) for _, c in sorted(_METHODS.items())]


def unlearn(original: nn.Module, ctx: UnlearningContext, method: str,
            overrides: dict[str, Any] | list[str] | None = None) -> UnlearningResult:
    """Run the method ``method`` with its default config updated by ``overrides``."""
    cls = get_method(method)
    cfg = parse_overrides(cls.Config, overrides)
    return cls().run(original, ctx, cfg)


# ---------------------------------------------------------------------------------- model helpers
def frozen_copy(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """A deep copy in eval mode with ``requires_grad=False`` everywhere (the teacher ``f``)."""
    out = copy.deepcopy(model).to(device)
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def is_frozen_name(name: str) -> bool:
    """Whether the parameter ``name`` is never updated (it contains one of :data:`FROZEN_PARAMETER_NAMES`)."""
    return any(s in name for s in FROZEN_PARAMETER_NAMES)


def make_student(model: nn.Module, device: str | torch.device = "cpu", forget: PairSampler | None = None
                 ) -> nn.Module:
    """A deep copy to update (``f'``): trainable except the temperature parameters.

    If ``forget`` is given and the model stores part of its training data (it has
    ``forget_structure(sampler)``, e.g. the graph a KG model passes messages on), the copy drops ``forget``
    from it before any update, so ``f'`` never uses deleted data as input; ``f`` keeps it.
    """
    out = copy.deepcopy(model).to(device)
    for n, p in out.named_parameters():
        p.requires_grad_(not is_frozen_name(n))
    hook = getattr(out, "forget_structure", None)
    if forget is not None and hook is not None:
        hook(forget)
    return out


def restrict_updates(model: nn.Module, prefixes: str) -> None:
    """Leave trainable only the parameters of ``model`` whose name starts with one of the comma-separated
    ``prefixes`` (and that were trainable already). A prefix that names no parameter is an error, so a
    typo cannot silently freeze the whole model."""
    wanted = [p.strip() for p in prefixes.split(",") if p.strip()]
    names = [n for n, _ in model.named_parameters()]
    for prefix in wanted:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"trainable: no parameter is named {prefix!r} or starts with {prefix + '.'!r}; "
                              f"the model's top-level modules are {', '.join(tops)}")
    for n, p in model.named_parameters():
        if not any(n == prefix or n.startswith(prefix + ".") for prefix in wanted):
            p.requires_grad_(False)


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter of ``model`` with ``requires_grad``, in registration order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def set_update_mode(model: nn.Module, dropout: bool = True) -> None:
    """Train mode, except BatchNorm layers, whose running statistics stay frozen; with ``dropout=False``
    eval mode throughout (deterministic forward passes, gradients still flow)."""
    model.train(dropout)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finalize(student: nn.Module, original: nn.Module) -> nn.Module:
    """Eval mode and the original's ``requires_grad`` flags."""
    student.eval()
    flags = dict(original.named_parameters())
    for n, p in student.named_parameters():
        p.requires_grad_(flags[n].requires_grad if n in flags else True)
    return student


def make_optimizer(params: list[nn.Parameter], kind: str, lr: float, weight_decay: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """An optimiser of ``params``: ``kind`` is ``adam``, ``adamw`` or ``sgd`` (``momentum`` is used by SGD only).

    Raises:
        ConfigError: an unknown ``kind``.
    """
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ConfigError(f"unknown optimizer {kind!r}; valid: adam, adamw, sgd")


# ------------------------------------------------------------------------------------- base classes
@dataclass
class MethodConfig:
    """Settings common to all methods (none)."""


class UnlearningMethod:
    """Base class of unlearning methods.

    Subclasses set ``name``, ``summary`` (one line), ``citation``, optionally ``aliases``, a ``Config``
    dataclass, and implement :meth:`execute`. :meth:`run` adds what is common: the config, timing, a
    forked RNG, and a check that the original model is not modified.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()  # registered only for the class that sets them
    Config: ClassVar[type] = MethodConfig

    def run(self, original: nn.Module, ctx: UnlearningContext, config: Any = None) -> UnlearningResult:
        """Unlearn ``ctx.forget`` from ``original`` (never modified) and return a new model.

        The method computes on ``ctx.device`` (resolved here, so ``execute`` sees a :class:`torch.device`)
        and the model it returns is moved to the CPU.

        Raises:
            ConfigError: a bad config, or a ``ctx.device`` that is not here (CUDA without a GPU).
        """
        if config is None:
            config = self.Config()
        elif isinstance(config, (dict, list, tuple)):
            config = parse_overrides(self.Config, config)
        elif not isinstance(config, self.Config):
            raise ConfigError(f"{self.name}: config must be a {self.Config.__name__}, "
                              f"not {type(config).__name__}")
        ctx = dataclasses.replace(ctx, device=resolve_device(ctx.device))
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=rng_devices(ctx.device)):
            torch.manual_seed(ctx.seed)
            model, log, selected = self.execute(original, ctx, config)
        model.cpu()  # at rest on the CPU, like a trained model (the time includes the copy back)
        wall = time.perf_counter() - t0
        return UnlearningResult(model=model, log=log, wall_time_s=wall,
                                config={"method": self.name, **config_to_dict(config)}, selected=selected)

    def execute(self, original: nn.Module, ctx: UnlearningContext, cfg: Any
                ) -> tuple[nn.Module, list[dict], dict]:
        """Return ``(model, log, selected)``."""
        raise NotImplementedError


@dataclass
class GradientConfig:
    """Settings shared by the gradient-based methods.

    Attributes:
        lr, weight_decay, optimizer, momentum: the optimiser of ``f'`` (Adam by default; momentum is
            used by SGD only).
        epochs: passes over the method's epoch split (Df for most methods, Dr for FT/DtD).
        batch_size: pairs per Df batch; each step also draws a Dr batch of the same size (of ``batch_size``
            pairs for a Df batch of fewer than 2 distinct items, see :meth:`Trainer.outside_negatives`).
        grad_clip: max global gradient norm (0 disables).
        selection: ``"calibrated"`` (stop and select against the calibration scores, see
            :mod:`graphdel.unlearning.selection`) or ``"last"`` (keep the final weights).
        early_stop: stop once the smoothed Df score reaches the smoothed calibration score.
        stop_margin: stop when smoothed Df <= smoothed reference + stop_margin.
        smooth: number of evaluations the stopping rule averages.
        select_tolerance: checkpoints whose |Df - reference| gap is within this of the best compete on
            the retain score.
        min_epochs: never stop before this many epochs.
        eval_every: evaluate (score, keep a candidate checkpoint, decide whether to stop) after every this
            many epochs and after the last; an evaluation scores Df, the calibration reference and a retain
            sample against the distractor set, which can cost more than an epoch of updates on a small Df.
        reference: ``"original"`` scores the reference split (calibration) once, on the untouched model,
            and keeps that target; ``"current"`` rescores it on the model being updated at every
            evaluation. Measured on the embedded corpus, the current model's calibration score falls
            with its Df score, so a moving target is never reached; the original's calibration score
            (0.727) matched Retrain's own Df/calibration scores (0.702 / 0.71) best.
        pool_size, eval_batch_size: the forget score (pool-k retrieval MRR, :mod:`graphdel.evaluation.retrieval`).
        dropout: dropout active in ``f'`` during updates (BatchNorm statistics stay frozen either way).
            Methods whose losses compare ``f'`` with the frozen ``f`` turn it off (MultiDelete): with
            dropout, a retention term is not zero at ``f' = f`` but the distance between a noisy and a
            clean forward pass, and Adam turns the gradients of that noise into full-size steps on every
            weight.
        anchor_teacher: when the request continues a chain of deletions (``ctx.anchor``), the frozen
            teacher every retention term compares with is the chain's original rather than the model being
            unlearned, so that the errors of earlier steps are not kept as if they were knowledge.
        anchor_reference: likewise, the calibration score the forgetting stops at is the chain's
            original's, not that of the model being unlearned (whose score on never-seen pairs has
            drifted with the earlier steps).
        stop_on: the pairs whose score stopping and selection compare with the calibration score:
            ``request`` (this request's Df) or ``union`` (this request's and every earlier request's of the
            chain, ``ctx.earlier_forget``; the same as ``request`` for a first request).
        trainable: comma-separated parameter-name prefixes (``graph_encoder.convs.4,x_projection``): only
            the parameters under them are updated, the rest of ``f'`` stays equal to ``f`` (and gets no
            backward pass, which is what makes a top-layers-only update cheap). Empty: every parameter
            but the temperature.
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.9
    epochs: int = 5
    batch_size: int = 32
    grad_clip: float = 1.0
    selection: Literal["calibrated", "last"] = "calibrated"
    early_stop: bool = True
    stop_margin: float = 0.0
    smooth: int = 2
    select_tolerance: float = 0.02
    min_epochs: int = 1
    eval_every: int = 1
    reference: Literal["original", "current"] = "original"
    pool_size: int = 64
    eval_batch_size: int = 256
    dropout: bool = True
    anchor_teacher: bool = False
    anchor_reference: bool = False
    stop_on: Literal["request", "union"] = "request"
    trainable: str = ""

    def __post_init__(self) -> None:
        check(self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        check(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        check(self.smooth >= 1, f"smooth must be >= 1, got {self.smooth}")
        check(self.pool_size >= 2, f"pool_size must be >= 2, got {self.pool_size}")
        check(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        check(self.min_epochs >= 0, f"min_epochs must be >= 0, got {self.min_epochs}")
        check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")


class Trainer:
    """The state of one gradient-based run: student, teacher, optimiser, generator, log.

    :meth:`step` is the only place parameters are updated: it checks the loss is finite, backpropagates,
    applies the optional gradient mask (SalUn), clips, steps the optimiser and logs.
    """

    def __init__(self, method: str, student: nn.Module, teacher: nn.Module, cfg: GradientConfig,
                 ctx: UnlearningContext, *, on_nonfinite: str = "raise") -> None:
        self.method, self.student, self.teacher, self.cfg, self.ctx = method, student, teacher, cfg, ctx
        self.device = ctx.device
        if cfg.trainable:
            restrict_updates(student, cfg.trainable)
        self.params = trainable_parameters(student)
        self.optimizer = make_optimizer([p for _, p in self.params], cfg.optimizer, cfg.lr, cfg.weight_decay,
                                        cfg.momentum)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        # The samplers updates draw from: ctx's own in a single process; under torchrun, this process's
        # shard of each global batch (every process consumes `generator` identically, so they stay in step).
        # Evaluation keeps using ctx.forget / ctx.retain whole.
        self.forget_sampler = distributed.shard(ctx.forget)
        self.retain_sampler = distributed.shard(ctx.retain)
        self.earlier_sampler = (distributed.shard(ctx.earlier_forget)
                                if ctx.earlier_forget is not None and len(ctx.earlier_forget) else None)
        self.log: list[dict] = []
        self.global_step = 0
        self.epoch = 0
        self.grad_mask: dict[str, Tensor] | None = None
        self.on_nonfinite = on_nonfinite
        self.stop_reason: str | None = None
        self.state_invalid = False

    @property
    def grad_mask(self) -> dict[str, Tensor] | None:
        """``{parameter name: 0/1 tensor}`` multiplied into the gradients at every :meth:`step`, or None."""
        return self._grad_mask

    @grad_mask.setter
    def grad_mask(self, mask: dict[str, Tensor] | None) -> None:
        """Set the gradient mask (None removes it); under torchrun every process takes rank 0's."""
        # A mask computed from gradients (SalUn's saliency, importance masks) would differ between
        # processes, each having seen its own shards; every process takes rank 0's so replicas stay equal.
        self._grad_mask = None if mask is None else distributed.broadcast_tensors(mask)

    def stop(self, reason: str, *, invalid: bool = False) -> None:
        """End the run after the current step; ``invalid``: the current weights must not be kept."""
        self.stop_reason = reason
        self.state_invalid = self.state_invalid or invalid

    def _diverged(self, what: str, value: float, phase: str, terms: dict) -> bool:
        msg = (f"{self.method}: non-finite {what} ({value}) at epoch {self.epoch}, step {self.global_step}"
               f" (phase {phase!r}); terms: " + ", ".join(f"{k}={v:.4g}" for k, v in terms.items()))
        if self.on_nonfinite == "stop":
            self.stop(msg, invalid=True)
            return False
        raise UnlearningDivergedError(msg, method=self.method, epoch=self.epoch, step=self.global_step)

    def step(self, loss: Tensor, terms: dict[str, float] | None = None, *, phase: str = "update") -> bool:
        """One optimiser step on ``loss``. Returns False when the run must stop."""
        terms = dict(terms or {})
        value = float(loss.detach())
        if distributed.is_distributed():
            # each process holds its shard's share: log and decide on the mean over processes (the
            # global batch's value), which is the same number everywhere
            numeric = {k: v for k, v in terms.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            reduced = distributed.reduce_metrics({"loss": value, **numeric})
            value = reduced.pop("loss")
            terms.update(reduced)
        if not math.isfinite(value):
            return self._diverged("loss", value, phase, terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients([p for _, p in self.params])  # what DDP does; no-op in one process
        if self.grad_mask is not None:
            for n, p in self.params:
                if p.grad is not None and n in self.grad_mask:
                    p.grad.mul_(self.grad_mask[n])
        grads = [p.grad for _, p in self.params if p.grad is not None]
        if grads:
            if self.cfg.grad_clip > 0:
                norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in self.params], self.cfg.grad_clip))
            else:
                norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
            if not math.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                return self._diverged("gradient norm", norm, phase, terms)
            terms["grad_norm"] = norm
        self.optimizer.step()
        self.global_step += 1
        self.log.append({"step": self.global_step, "epoch": self.epoch, "phase": phase, "loss": value,
                         **terms})
        return self.stop_reason is None

    # batches --------------------------------------------------------------------------------
    def forget_batches(self) -> Iterator[PairBatch]:
        """One shuffled pass over Df, every batch used, a batch of a single pair included.

        Why no batch is skipped: a request smaller than a batch (one pair, one molecule, a few named drugs)
        is the most common request, and skipping its only batch would hand back an unchanged copy. A loss
        that needs *other* pairs than the Df batch has (in-batch negatives, unrelated texts) takes them from
        Dr when the batch has fewer than 2 distinct items (:meth:`lacks_negatives`,
        :meth:`outside_negatives`).

        Under torchrun: this process's shard of each global batch. A global batch with fewer pairs than
        processes has no shard and is skipped by every process (:class:`graphdel.distributed.ShardedSampler`).

        Raises:
            ConfigError: Df is not empty but the pass yielded no batch (under torchrun, Df or ``batch_size``
                smaller than the number of processes): no update could ever act on Df.
        """
        yielded = False
        for b in self.forget_sampler.batches(self.cfg.batch_size, shuffle=True, generator=self.generator):
            yielded = True
            yield b.to(self.device)
        if not yielded and len(self.ctx.forget) > 0:
            world = getattr(self.forget_sampler, "world_size", distributed.world_size())
            raise ConfigError(f"{self.method}: no Df batch has a pair for each of the {world} "
                              f"processes (Df {len(self.ctx.forget)} pairs, batch_size {self.cfg.batch_size}), so "
                              f"nothing would be unlearned; run in a single process or with fewer processes")

    def retain_batches(self) -> Iterator[PairBatch]:
        """One shuffled pass over Dr in batches whose (global) batch has at least 2 pairs; shards under
        torchrun.

        Why a 1-pair Dr batch is skipped (unlike Df): it is only the remainder of a pass over a large Dr
        (that pair is in a full batch of another pass), and the in-batch contrastive loss of one pair is
        constant, so a step on it would only replay the optimiser's momentum. The size is the global
        batch's under torchrun (a shard of one pair still ranks against the other shards' pairs).

        Raises:
            ConfigError: Dr is not empty but has no batch of 2 pairs (Dr of a single pair).
        """
        yielded = False
        for b in self.retain_sampler.batches(self.cfg.batch_size, shuffle=True, generator=self.generator):
            if (b.shard.global_size if b.shard is not None else len(b)) >= 2:
                yielded = True
                yield b.to(self.device)
        if not yielded and len(self.ctx.retain) > 0:
            raise ConfigError(f"{self.method}: Dr has no batch of 2 pairs to train on (Dr {len(self.ctx.retain)} "
                              f"pair(s), {distributed.world_size()} process(es))")

    def retain_sample(self, n: int) -> PairBatch:
        """``n`` Dr pairs drawn uniformly (the Dr batch matched to a Df batch). Under torchrun ``n`` counts
        this process's pairs: its shard of a global sample of ``n`` times the number of processes."""
        return self.retain_sampler.sample(n, self.generator).to(self.device)

    def earlier_sample(self, n: int) -> PairBatch | None:
        """``min(n, |earlier|)`` pairs drawn uniformly from those the chain's earlier requests deleted
        (``ctx.earlier_forget``), or ``None`` when there are none (a first request). Under torchrun ``n``
        counts this process's pairs, as in :meth:`retain_sample`."""
        if self.earlier_sampler is None:
            return None
        return self.earlier_sampler.sample(min(n, len(self.ctx.earlier_forget)), self.generator).to(self.device)

    def lacks_negatives(self, df: PairBatch, *, per_process: bool = False) -> bool:
        """True when the Df batch has fewer than 2 distinct items (a lone pair, or the captions of one
        molecule): it holds no negative or unrelated text for its own pairs, so in-batch losses on it are
        constant and the methods take those from a Dr batch (:meth:`outside_negatives`).

        Counted on the global batch under torchrun (the same answer on every process); with
        ``per_process`` on this process's shard, for a loss computed per shard (SCRUB's KL), and True
        everywhere when it is True on some process, so that every process draws the same Dr batches."""
        if not per_process:
            return distinct_items(df) < 2
        lacking = float(distinct_items(df, whole=False) < 2)
        return bool(distributed.all_reduce_max(torch.tensor([lacking]))[0] > 0)

    def outside_negatives(self, df: PairBatch, *, per_process: bool = False) -> PairBatch | None:
        """A Dr sample of ``batch_size`` (global) pairs when ``df`` :meth:`lacks_negatives`, else ``None``
        (and the generator is not used, so runs on normal batches are unchanged).

        Why ``batch_size`` pairs, not ``len(df)``: the Df pairs are then ranked against as many other pairs
        as in a full batch, so their loss has the scale of a full batch's (NegGrad's default loss bound,
        ``2 ln(batch_size)``, is twice that chance level), and a Dr term computed on the same sample is not
        the constant loss of a single pair."""
        if not self.lacks_negatives(df, per_process=per_process):
            return None
        return self.full_retain_sample()

    def full_retain_sample(self) -> PairBatch:
        """A Dr sample of ``batch_size`` pairs (global under torchrun: this process's shard of it)."""
        return self.retain_sample(max(1, self.cfg.batch_size // distributed.world_size()))

    def paired_batches(self) -> Iterator[tuple[PairBatch, PairBatch]]:
        """One pass over Df, each Df batch with a Dr batch: of the same size, or, for a Df batch of fewer
        than 2 distinct items, the :meth:`outside_negatives` sample, whose pairs the method also uses as the
        Df pairs' negatives / unrelated texts."""
        for df in self.forget_batches():
            extra = self.outside_negatives(df)
            yield df, (extra if extra is not None else self.retain_sample(len(df)))


class GradientMethod(UnlearningMethod):
    """A method that updates ``f'`` by gradient steps, evaluates after each epoch and keeps a checkpoint
    by the calibrated selection rule (or the last one).

    Subclasses implement :meth:`loss` (Df batch, matched Dr batch -> loss and logged terms) or override
    :meth:`train_epoch`; :meth:`setup` runs once before the first update.
    """

    Config: ClassVar[type] = GradientConfig
    #: "raise" (default) or "stop": what a non-finite loss does.
    on_nonfinite: ClassVar[str] = "raise"

    def setup(self, trainer: Trainer, cfg: Any) -> None:
        """Hook run once before the first update."""

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: Any
             ) -> tuple[Tensor, dict[str, float]] | None:
        """The loss of one step, or ``None`` to stop the run (after calling ``trainer.stop``)."""
        raise NotImplementedError

    def finish(self, trainer: Trainer, cfg: Any) -> bool:
        """Hook run on the selected weights before they are returned; True if it changed them (a final
        evaluation is then logged)."""
        return False

    def train_epoch(self, trainer: Trainer, cfg: Any) -> None:
        """Default epoch: one pass over Df, one matched Dr batch per step."""
        for df, dr in trainer.paired_batches():
            out = self.loss(trainer, df, dr, cfg)
            if out is None or not trainer.step(*out):
                return

    def _update_loop(self, trainer: Trainer, selector: CalibratedSelector, cfg: Any) -> None:
        """Evaluate the untouched copy, run :meth:`setup`, then epochs of updates and evaluations until the
        budget is used, the run stops itself or the selector's stopping rule fires."""
        student = trainer.student
        trainer.log.append(selector.evaluate(student, epoch=0, step=0))
        self.setup(trainer, cfg)
        bar = tqdm(range(1, cfg.epochs + 1), desc=self.name,
                   disable=not (trainer.ctx.progress and distributed.is_main()), leave=False)
        for epoch in bar:
            trainer.epoch = epoch
            set_update_mode(student, dropout=cfg.dropout)
            self.train_epoch(trainer, cfg)
            if trainer.state_invalid:
                break
            if epoch % cfg.eval_every and epoch != cfg.epochs and trainer.stop_reason is None:
                continue  # not an evaluation epoch: no score, no checkpoint, no stopping decision
            rec = selector.evaluate(student, epoch=epoch, step=trainer.global_step)
            trainer.log.append(rec)
            bar.set_postfix(forget=f"{rec['forget']:.3f}", ref=f"{rec['reference']:.3f}",
                            retain=f"{rec['retain']:.3f}")
            if trainer.stop_reason is not None:
                break
            if selector.should_stop(epoch):
                trainer.stop_reason = (f"smoothed Df score reached the {selector.reference_name} score "
                                       f"(margin {cfg.stop_margin}) after epoch {epoch}")
                break
        bar.close()

    def execute(self, original: nn.Module, ctx: UnlearningContext, cfg: Any
                ) -> tuple[nn.Module, list[dict], dict]:
        """Copy ``original`` into a frozen teacher ``f`` and a student ``f'``, run :meth:`setup`, then up to
        ``cfg.epochs`` of :meth:`train_epoch`, each followed by an evaluation; load the checkpoint the
        calibrated selector picks, apply :meth:`finish`, and return ``(model, log, selected)``."""
        anchor = ctx.anchor() if ctx.anchor is not None and (cfg.anchor_teacher or cfg.anchor_reference) else None
        teacher = frozen_copy(anchor if anchor is not None and cfg.anchor_teacher else original, ctx.device)
        if anchor is not None and cfg.anchor_reference:  # scored on the run's device, like the student
            anchor = teacher if cfg.anchor_teacher else frozen_copy(anchor, ctx.device)
        student = make_student(original, ctx.device, ctx.forget)
        trainer = Trainer(self.name, student, teacher, cfg, ctx, on_nonfinite=self.on_nonfinite)
        selector = CalibratedSelector(ctx, selection=cfg.selection, early_stop=cfg.early_stop, smooth=cfg.smooth,
                                      margin=cfg.stop_margin, tolerance=cfg.select_tolerance,
                                      min_epochs=cfg.min_epochs, pool_size=cfg.pool_size,
                                      batch_size=cfg.eval_batch_size, seed=ctx.seed,
                                      fixed_reference=cfg.reference == "original",
                                      reference_model=anchor if cfg.anchor_reference else None,
                                      earlier=ctx.earlier_forget if cfg.stop_on == "union" else None)
        # A model may reuse what its frozen parts compute across the run (e.g. the bottom layers of a graph
        # encoder left out by `trainable`), shared with the teacher; only until the selected state is loaded.
        share = getattr(student, "share_frozen_states", None)
        with share(teacher) if share is not None else contextlib.nullcontext():
            self._update_loop(trainer, selector, cfg)
        state, selected = selector.select()
        if state is not None:
            student.load_state_dict(state)
        if self.finish(trainer, cfg):
            rec = selector.evaluate(student, epoch=trainer.epoch, step=trainer.global_step)
            rec["final"] = True
            trainer.log.append(rec)
            selected["final_scores"] = {k: rec[k] for k in ("forget", "reference", "retain")}
        selected["stop_reason"] = trainer.stop_reason or "epoch budget used"
        selected["epochs_run"] = trainer.epoch
        selected["steps"] = trainer.global_step
        return finalize(student, original), trainer.log, selected
