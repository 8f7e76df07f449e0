"""The :class:`Trainer`: the state of one gradient-based unlearning run and the one place its parameters are
updated (:meth:`Trainer.step`), with the batches it draws of Df, Dr and the chain's earlier requests.

The conventions it keeps (frozen temperature, gradient masks, divergence, seeding, one-pair Df batches,
``torchrun`` shards) are listed in :mod:`graphdel.unlearning.base`, which re-exports it.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from graphdel import distributed
from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch
from graphdel.unlearning.config import GradientConfig
from graphdel.unlearning.context import UnlearningContext, UnlearningDivergedError
from graphdel.unlearning.copies import make_optimizer, restrict_updates, trainable_parameters
from graphdel.unlearning.losses import distinct_items
from graphdel.unlearning.subspace import RetainedSubspace

__all__ = ["Trainer"]


class Trainer:
    """The state of one gradient-based run: student, teacher, optimiser, generator, log.

    :meth:`step` is the only place parameters are updated: it checks the loss is finite, backpropagates,
    applies the optional gradient mask (SalUn), clips, steps the optimiser, keeps the change outside the
    retained pairs' span (``retain_subspace``) and logs.
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
        self.subspace: RetainedSubspace | None = None
        if cfg.retain_subspace > 0:
            # its own generator: the span is the same in every process and the update batches are those
            # of a run without the constraint
            span_generator = torch.Generator().manual_seed(ctx.seed)
            self.subspace = RetainedSubspace(student, teacher, ctx.retain, cfg.retain_subspace,
                                             pairs=cfg.subspace_pairs, generator=span_generator,
                                             batch_size=cfg.eval_batch_size)
            self.log.append({"phase": "subspace", "pairs": self.subspace.pairs,
                             "kept": {n: list(v) for n, v in self.subspace.sizes.items()}})
        self.global_step = 0
        self.epoch = 0
        self.grad_mask: dict[str, Tensor] | None = None
        self.on_nonfinite = on_nonfinite
        self.stop_reason: str | None = None
        self.state_invalid = False
        #: called after every optimiser step (the update loop's evaluations within an epoch, ``eval_steps``)
        self.after_step: Callable[[], None] | None = None

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
        if self.subspace is not None:
            self.subspace.project()
        self.global_step += 1
        self.log.append({"step": self.global_step, "epoch": self.epoch, "phase": phase, "loss": value,
                         **terms})
        if self.after_step is not None:
            self.after_step()
        return self.stop_reason is None

    # batches --------------------------------------------------------------------------------
    def draw_without_tokens(self) -> None:
        """From now on, draw the Df, Dr and earlier-request batches without the captions' token states where
        their pooled states are cached (:meth:`graphdel.data.pairs.PairSet.without_tokens`; a sampler
        without that view is kept as it is), and, for a student that accepts them
        (``reads_item_rows``), with their items named by row, not built. For a method whose steps encode
        texts and items and never fuse them; the batches draw the same rows with the same generator.
        Evaluations read ``ctx``'s own samplers."""
        item_rows = bool(getattr(self.student, "reads_item_rows", False))

        def view(sampler):
            without = getattr(sampler, "without_tokens", None)
            return distributed.shard(sampler if without is None else without(item_rows=item_rows))
        self.forget_sampler, self.retain_sampler = view(self.ctx.forget), view(self.ctx.retain)
        if self.earlier_sampler is not None:
            self.earlier_sampler = view(self.ctx.earlier_forget)

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
