"""The unlearning engine's method classes: :class:`UnlearningMethod`, and for the gradient-based methods
:class:`Trainer` (the one place parameters are updated) and :class:`GradientMethod` (the loop of updates,
evaluations and calibrated selection). The context and result types (:mod:`.context`), configs
(:mod:`.config`), registry (:mod:`.registry`) and the teacher/student copies (:mod:`.copies`) live beside
it and are re-exported here, so ``from graphdel.unlearning.base import ...`` reaches every engine name.

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
  layers per molecule, and its item embeddings when the whole item side is frozen); the result must not
  depend on it.
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

import dataclasses
import time
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphdel import distributed
from graphdel.device import resolve_device, rng_devices
from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch
from graphdel.unlearning.config import (GradientConfig, MethodConfig, check, config_keys, config_to_dict,
                                        parse_overrides)
from graphdel.unlearning.context import UnlearningContext, UnlearningDivergedError, UnlearningResult
from graphdel.unlearning.copies import (FROZEN_PARAMETER_NAMES, finalize, frozen_copy, is_frozen_name,
                                        make_optimizer, make_student, restrict_updates, set_update_mode,
                                        trainable_parameters)
from graphdel.unlearning.registry import available_methods, get_method, register_method, unlearn
from graphdel.unlearning.selection import CalibratedSelector
from graphdel.unlearning.trainer import Trainer

__all__ = [
    "FROZEN_PARAMETER_NAMES", "GradientConfig", "GradientMethod", "MethodConfig", "Trainer", "UnlearningContext",
    "UnlearningDivergedError", "UnlearningMethod", "UnlearningResult", "available_methods", "check",
    "config_keys", "config_to_dict", "finalize", "frozen_copy", "get_method", "is_frozen_name",
    "make_optimizer", "make_student", "parse_overrides", "register_method", "restrict_updates",
    "set_update_mode", "trainable_parameters", "unlearn",
]


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


class GradientMethod(UnlearningMethod):
    """A method that updates ``f'`` by gradient steps, evaluates after each epoch (or every ``eval_steps``
    steps) and keeps a checkpoint by the calibrated selection rule (or the last one).

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

    def _update_loop(self, trainer: Trainer, selector: CalibratedSelector, cfg: Any) -> dict[str, float]:
        """Evaluate the untouched copy, run :meth:`setup`, then epochs of updates and evaluations until the
        budget (``epochs``, and at least ``min_steps`` steps) is used, the run stops itself or the selector's
        stopping rule fires. Evaluations follow every ``eval_every``-th epoch, or with ``eval_steps`` every
        that many steps, and always the last update. Returns the seconds spent in ``setup`` and in
        ``evaluations`` (the untouched copy's included); the rest of the loop is the updates."""
        student = trainer.student
        seconds = {"setup": 0.0, "evaluations": 0.0}
        clock = time.perf_counter()
        trainer.log.append(selector.evaluate(student, epoch=0, step=0))
        seconds["evaluations"] += time.perf_counter() - clock
        if selector.should_stop(0):  # only with min_epochs = 0
            # e.g. a KG request whose relation or entities the student no longer stores: removing them
            # already brought Df to the reference, and an update could only move other knowledge
            trainer.stop_reason = (f"Df score at the {selector.reference_name} score before any update "
                                   "(min_epochs 0)")
            return seconds
        clock = time.perf_counter()
        self.setup(trainer, cfg)
        seconds["setup"] = time.perf_counter() - clock
        bar = tqdm(total=cfg.epochs, desc=self.name, unit="epoch",
                   disable=not (trainer.ctx.progress and distributed.is_main()), leave=False)
        evaluated_at = 0  # the step of the latest evaluation

        def evaluate(complete_epochs: int) -> None:
            nonlocal evaluated_at
            started = time.perf_counter()
            rec = selector.evaluate(student, epoch=trainer.epoch, step=trainer.global_step)
            seconds["evaluations"] += time.perf_counter() - started
            trainer.log.append(rec)
            evaluated_at = trainer.global_step
            bar.set_postfix(forget=f"{rec['forget']:.3f}", ref=f"{rec['reference']:.3f}",
                            retain=f"{rec['retain']:.3f}")
            decide(complete_epochs)

        def decide(complete_epochs: int) -> None:
            if trainer.stop_reason is None and selector.should_stop(complete_epochs):
                trainer.stop_reason = (f"smoothed Df score reached the {selector.reference_name} score "
                                       f"(margin {cfg.stop_margin}) after step {trainer.global_step}, "
                                       f"epoch {trainer.epoch}")

        if cfg.eval_steps:
            def after_step() -> None:  # within an epoch, the epoch under way is not complete yet
                if trainer.stop_reason is None and trainer.global_step % cfg.eval_steps == 0:
                    evaluate(trainer.epoch - 1)
            trainer.after_step = after_step
        epoch = 0
        while epoch < cfg.epochs or trainer.global_step < cfg.min_steps:
            epoch += 1
            trainer.epoch = epoch
            steps_before = trainer.global_step
            set_update_mode(student, dropout=cfg.dropout)
            self.train_epoch(trainer, cfg)
            bar.update(1)
            if trainer.state_invalid:
                break
            # an epoch without a step (nothing to update on) ends the budget, whatever min_steps asks
            budget_used = epoch >= cfg.epochs and trainer.global_step >= cfg.min_steps
            last = budget_used or trainer.global_step == steps_before
            epoch_evaluation = not cfg.eval_steps and epoch % cfg.eval_every == 0
            if cfg.eval_steps and evaluated_at == trainer.global_step:
                decide(epoch)  # its last step was evaluated while the epoch still counted as under way
            elif trainer.stop_reason is not None or last or epoch_evaluation:
                evaluate(epoch)
            # otherwise no evaluation at this epoch's end: no score, no checkpoint, no stopping decision
            if trainer.stop_reason is not None or last:
                break
        trainer.after_step = None
        bar.close()
        return seconds

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
                                      rule=cfg.select_rule,
                                      min_epochs=cfg.min_epochs, pool_size=cfg.pool_size,
                                      batch_size=cfg.eval_batch_size, seed=ctx.seed,
                                      fixed_reference=cfg.reference == "original",
                                      reference_model=anchor if cfg.anchor_reference else None,
                                      earlier=ctx.earlier_forget if cfg.stop_on == "union" else None,
                                      draws=cfg.eval_draws, match_reference=cfg.match_reference,
                                      probe=cfg.select_probe)
        # A model may reuse what its frozen parts compute across the run (e.g. the bottom layers of a graph
        # encoder left out by `trainable`), shared with the teacher; only until the selected state is loaded.
        started = time.perf_counter()
        # The item embeddings such a run computes are kept for the next run on the same frozen item side
        # (the molecule model's item index, when GRAPHDEL_ITEM_INDEX=on).
        with student.share_frozen_states(teacher, save_index=True):
            seconds = self._update_loop(trainer, selector, cfg)
            # how many items' embeddings an earlier run computed for this one (a molecule model's item
            # index): a run that reads them is faster than the first on its model, and says so
            table = getattr(student, "item_table", None)
            reused = sum(table.read_from_index.values()) if table is not None else None
        loop = time.perf_counter() - started
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
        if reused is not None:
            selected["items_from_index"] = reused
        # where the loop's time went (a user asking why a run is slow; the GPU benchmark's MultiDelete lines)
        seconds["updates"] = loop - seconds["setup"] - seconds["evaluations"]
        selected["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        return finalize(student, original), trainer.log, selected
