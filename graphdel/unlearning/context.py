"""What a method is given and what it returns: :class:`UnlearningContext` (the samplers, the device, the
seed, Retrain), :class:`UnlearningResult`, and :class:`UnlearningDivergedError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from graphdel.errors import GraphdelError
from graphdel.evaluation.reference_weights import ReferenceWeights
from graphdel.models.protocol import PairSampler

__all__ = ["UnlearningContext", "UnlearningDivergedError", "UnlearningResult"]


class UnlearningDivergedError(GraphdelError):
    """The unlearning loss or gradient became NaN/Inf. Attributes: ``method``, ``epoch``, ``step``."""

    def __init__(self, message: str, *, method: str = "", epoch: int | None = None,
                 step: int | None = None) -> None:
        super().__init__(message)
        self.method, self.epoch, self.step = method, epoch, step


@dataclass
class UnlearningContext:
    """Everything a method may use besides the original model.

    Attributes:
        forget: Df, the pairs to delete.
        retain: Dr, the remaining training pairs.
        calibration: pairs drawn the way deletions are drawn but never trained on: the stand-in for
            "never seen" used for stopping and selection (docs/design.md).
        calibration_hidden: retained pairs the model must not read while the calibration pairs are scored
            (:meth:`~graphdel.models.protocol.ModalityModule.facts_hidden`), or ``None``. A request closed
            over its mirror facts (a KG's ``close``) leaves Df with no retained fact stating it backwards;
            hiding the calibration pairs' mirrors makes "never seen" mean the same thing there.
        calibration_weights: per-pair weights of the calibration reference that make it look like this
            request (:func:`~graphdel.evaluation.reference_weights.series_matched_weights`), read when a
            method's ``match_reference`` asks for them; ``None``: every calibration pair alike.
        val: validation pairs; used for selection only when ``calibration`` is ``None``.
        distractors: pairs never trained on that every scored pair is ranked against (pool-k retrieval,
            :mod:`graphdel.evaluation.retrieval`; a run's calibration and validation pairs); ``None``:
            the calibration (else validation) pairs.
        retrain: trains a fresh model on Dr with the original recipe (used by the Retrain method); called
            with ``seed=S`` it trains with seed ``S`` instead of the recipe's. It returns the
            :class:`~graphdel.training.loop.TrainResult` (so the run records Retrain's epochs and the one it
            kept) or, from a caller's own function, the model alone.
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
    calibration_hidden: PairSampler | None = None
    calibration_weights: ReferenceWeights | None = None
    val: PairSampler | None = None
    distractors: PairSampler | None = None
    retrain: Callable[..., Any] | None = None
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
