"""Method configs: the common :class:`MethodConfig` and :class:`GradientConfig` (and through them every
method's config) with ``from_dict``/``to_dict``/``with_overrides`` (:class:`graphdel.config.ConfigMixin`).

``--set key=value`` overrides are parsed into them (nested ones as dotted keys) by the package's one config
kernel, :mod:`graphdel.config`, whose names (:func:`parse_overrides`, :func:`config_keys`,
:func:`config_to_dict`, :func:`record_overrides`, :func:`check`) are importable from here as they always
were."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# The kernel lives at the bottom of the package, where every config (training, model, data, suite, audit)
# can use it; re-exported here for the method configs and their callers.
from graphdel.config import ConfigMixin, check, config_keys, config_to_dict, parse_overrides, record_overrides

__all__ = ["GradientConfig", "MethodConfig", "check", "config_keys", "config_to_dict", "parse_overrides",
           "record_overrides"]


@dataclass
class MethodConfig(ConfigMixin):
    """Settings common to all methods (none)."""


@dataclass
class GradientConfig(ConfigMixin):
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
        select_rule: ``"tolerance"`` (above) or ``"sum"``: keep the checkpoint with the smallest
            |Df - reference| gap plus retain drop (from the best retain score evaluated), which never gives
            up more gap than it gains in retain score (:mod:`graphdel.unlearning.selection`).
        select_probe: the pairs the selection's retain score is read on (a sample of the size of Df):
            ``"retain"``, Dr; ``"val"``, the validation pairs, so that the ``sum`` rule weighs the gap
            against what the update costs pairs never trained on.
        min_epochs: never stop before this many epochs (0: no update at all when the untouched copy, after
            the model's stored-fact removal, already scores Df at the reference).
        eval_every: evaluate (score, keep a candidate checkpoint, decide whether to stop) after every this
            many epochs and after the last; an evaluation scores Df, the calibration reference and a retain
            sample against the distractor set, about as long as an epoch of updates on a 250-pair Df (0.75 s each
            for MultiDelete's molecule recommendation, one CPU core).
        eval_steps: when > 0, evaluate after every this many optimiser steps instead (within an epoch too)
            and after the last: a run whose epoch moves the Df score further than the reference can be
            told apart from (the KG's 128-triple batches) is then stopped and selected at a finer grain.
        min_steps: the update budget is at least this many optimiser steps: epochs beyond ``epochs`` run
            until it is reached, so that a small request (a few batches per epoch) gets as many updates
            as a large one, not as many passes.
        reference: ``"original"`` scores the reference split (calibration) once, on the untouched model,
            and keeps that target; ``"current"`` rescores it on the model being updated at every
            evaluation. Measured on the embedded corpus, the current model's calibration score falls
            with its Df score, so a moving target is never reached; the original's calibration score
            (0.727) matched Retrain's own Df/calibration scores (0.702 / 0.71) best.
        pool_size, eval_batch_size: the forget score (pool-k retrieval MRR, :mod:`graphdel.evaluation.retrieval`).
        eval_draws: each score stopping and selection read is the mean over this many draws of the
            distractors (one draw moves a few hundred pairs' score by 0.01-0.02; the pairs are embedded
            once, so more draws cost only the ranking).
        match_reference: weigh the calibration pairs so that the reference looks like the request
            (``UnlearningContext.calibration_weights``: on molecules, as many pairs without a relative of
            their scaffold left in training as the request has).
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
        retain_subspace: when > 0, every updated linear layer the encoders reach changes only outside the
            span of the retained pairs' inputs to it (the basis holding this share of their squared norm,
            computed on ``subspace_pairs`` Dr pairs by the original), so that inputs inside that span, the
            retained pairs' and whatever never-seen pairs share with them, keep their outputs
            (:mod:`graphdel.unlearning.subspace`). 0: no constraint. Measured on the molecule
            recommendation it lost more validation MRR than it spared and left the deleted pairs further
            from the reference (docs/experiments/2026-12-07-molecule-retained-span.md).
        subspace_pairs: how many Dr pairs define that span.
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
    select_rule: Literal["tolerance", "sum"] = "tolerance"
    select_probe: Literal["retain", "val"] = "retain"
    min_epochs: int = 1
    eval_every: int = 1
    eval_steps: int = 0
    min_steps: int = 0
    reference: Literal["original", "current"] = "original"
    pool_size: int = 64
    eval_batch_size: int = 256
    eval_draws: int = 1
    match_reference: bool = False
    dropout: bool = True
    anchor_teacher: bool = False
    anchor_reference: bool = False
    stop_on: Literal["request", "union"] = "request"
    trainable: str = ""
    retain_subspace: float = 0.0
    subspace_pairs: int = 2048

    def __post_init__(self) -> None:
        check(self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        check(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        check(self.smooth >= 1, f"smooth must be >= 1, got {self.smooth}")
        check(self.pool_size >= 2, f"pool_size must be >= 2, got {self.pool_size}")
        check(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        check(self.eval_draws >= 1, f"eval_draws must be >= 1, got {self.eval_draws}")
        check(self.min_epochs >= 0, f"min_epochs must be >= 0, got {self.min_epochs}")
        check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        check(self.eval_steps >= 0, f"eval_steps must be >= 0, got {self.eval_steps}")
        check(self.min_steps >= 0, f"min_steps must be >= 0, got {self.min_steps}")
        check(0 <= self.retain_subspace < 1, f"retain_subspace must be in [0, 1), got {self.retain_subspace}")
        check(self.subspace_pairs >= 1, f"subspace_pairs must be >= 1, got {self.subspace_pairs}")
