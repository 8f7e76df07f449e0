"""The teacher and the student: frozen and trainable copies of the original model, which parameters
update (``trainable``, the frozen temperature), the update mode (BatchNorm statistics frozen, dropout
optional), and the optimiser."""

from __future__ import annotations

import copy

import torch
from torch import nn

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairSampler

__all__ = ["FROZEN_PARAMETER_NAMES", "finalize", "frozen_copy", "is_frozen_name", "make_optimizer", "make_student",
           "restrict_updates", "set_update_mode", "trainable_parameters"]


#: Substrings of parameter names that are never updated in ``f'`` (the learnt temperature).
FROZEN_PARAMETER_NAMES: tuple[str, ...] = ("logit_scale", "temperature")


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

    If ``forget`` is given, the copy drops it from the training data the model stores, if any
    (:meth:`~graphdel.models.protocol.ModalityModule.forget_structure`, e.g. the graph a KG model passes
    messages on) before any update, so ``f'`` never uses deleted data as input; ``f`` keeps it.
    """
    out = copy.deepcopy(model).to(device)
    for n, p in out.named_parameters():
        p.requires_grad_(not is_frozen_name(n))
    if forget is not None:
        out.forget_structure(forget)
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
