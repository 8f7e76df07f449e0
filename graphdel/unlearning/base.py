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

import dataclasses
import math
import time
from typing import Any, ClassVar, Iterator

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
from graphdel.unlearning.losses import distinct_items
from graphdel.unlearning.registry import available_methods, get_method, register_method, unlearn
from graphdel.unlearning.selection import CalibratedSelector

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
        if selector.should_stop(0):  # only with min_epochs = 0
            # e.g. a KG request whose relation or entities the student no longer stores: removing them
            # already brought Df to the reference, and an update could only move other knowledge
            trainer.stop_reason = (f"Df score at the {selector.reference_name} score before any update "
                                   "(min_epochs 0)")
            return
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
        with student.share_frozen_states(teacher):
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
