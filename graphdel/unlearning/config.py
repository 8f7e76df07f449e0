"""Method configs: ``--set key=value`` overrides parsed into config dataclasses (nested ones as dotted
keys), the common :class:`MethodConfig` and :class:`GradientConfig`, and :func:`check` for their
validation."""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from graphdel.errors import ConfigError

__all__ = ["GradientConfig", "MethodConfig", "check", "config_keys", "config_to_dict", "parse_overrides",
           "record_overrides"]


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


def record_overrides(record: dict[str, Any]) -> dict[str, Any]:
    """The overrides that rebuild a recorded method config (a run's ``config.json`` ``method_config``:
    :func:`config_to_dict` plus the ``method`` name): nested dicts become dotted keys (``terms.md``), the
    ``method`` name is left out. ``parse_overrides(cls.Config, record_overrides(record))`` equals the
    config that was recorded."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "method":
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in record_overrides(value).items()})
        else:
            out[key] = value
    return out


def check(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` (for configs' ``__post_init__``)."""
    if not cond:
        raise ConfigError(message)


@dataclass
class MethodConfig:
    """Settings common to all methods (none)."""


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
            sample against the distractor set, about as long as an epoch of updates on a 250-pair Df (0.75 s each
            for MultiDelete's molecule recommendation, one CPU core).
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
