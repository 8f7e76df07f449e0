"""The training loop shared by original training, Retrain and fine-tuning.

One recipe: Adam on the model's :meth:`~graphdel.models.joint.JointModel.training_loss` over shuffled
batches of training pairs, early stopping on validation pool-64 graph->text MRR (the scaffold validation
split -- never test), keeping the best epoch's weights. Retrain is this same function on Dr.

Scale (:mod:`graphdel.distributed`): under ``torchrun`` each process trains on its shard of every global
batch of ``batch_size`` pairs inside :class:`~torch.nn.parallel.DistributedDataParallel`, with BatchNorm
statistics of the global batch; validation runs on every process on identical replicas, so early stopping
agrees everywhere. On CUDA the forward pass runs under bf16 autocast (``TrainConfig.bf16``) and batches
are prefetched into pinned memory (:mod:`graphdel.data.loading`). A single CPU process runs exactly the
loop it always ran.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from graphdel import distributed
from graphdel.config import ConfigMixin, check_types
from graphdel.data.loading import prefetch, use_prefetch
# resolve_device and autocast live in graphdel.device (the one place device decisions are made);
# imported here under their old names, which benches and tests use
from graphdel.device import autocast, is_device_name, resolve_device  # noqa: F401
# TrainingDivergedError lives with the other errors, below the fusion stage that raises it too; importable
# from here as before
from graphdel.errors import ConfigError, InvalidInputError, TrainingDivergedError
from graphdel.models.protocol import PairSampler
from graphdel.training.schedules import SCHEDULES, lr_schedule


@dataclass
class TrainConfig(ConfigMixin):
    """The training recipe (saved in a run's ``config.json``; Retrain replays it).

    Attributes:
        epochs: maximum epochs.
        batch_size: pairs per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: seeds weights, batch order and negative sampling.
        patience: epochs without validation improvement before stopping (0 = never stop early).
        eval_pool: pool size of the validation metric.
        grad_clip: gradient-norm clip (0 = off).
        device: ``auto``, ``cpu`` or ``cuda``.
        bf16: on CUDA, run the forward pass under bfloat16 autocast (matrix products in bf16, softmax,
            losses and normalisation in float32; weights and optimiser state stay float32). Ignored on
            CPU. The unlearning engine never uses it: its losses compare two nearly equal models, whose
            differences bf16 would round away.
        lr_schedule: ``constant`` (``lr`` throughout) or ``cosine`` (per step, from ``lr`` down to 0 at the
            end of ``epochs``, the half cosine of Loshchilov & Hutter's SGDR without restarts; early
            stopping may end it sooner).
        fusion_epochs: epochs of the fusion stage after the main loop (0 = none): the fusion module and
            matching head trained alone on the frozen encoders of the best epoch, with mixed random and
            hard negatives (:mod:`graphdel.training.fusion`). It changes no embedding.
        fusion_lr: Adam learning rate of the fusion stage (its peak under a warm-up).
        fusion_lr_schedule: the fusion stage's schedule after its warm-up, ``constant`` or ``cosine``
            (down to 0 at the stage's last step), as ``lr_schedule``.
        fusion_warmup_epochs: stage epochs over which the fusion stage's rate rises linearly to
            ``fusion_lr`` (0 = none; at most ``fusion_epochs``).
        fusion_hard_fraction: share of the fusion stage's negatives that are hard (the others are random
            pairs of other items).
        fusion_hard_pool: a hard negative is drawn among this many most similar texts (items) of other
            items (1 = always the most similar).
        fusion_item_negatives: score each true pair against a negative item too (``(x'_i, t_i)``) besides
            its negative text; off, a stage step fuses two pairs per true pair instead of three. Every
            score that reads the head (matching accuracies, re-ranking) pairs an item with other texts.
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    patience: int = 4
    eval_pool: int = 64
    grad_clip: float = 5.0
    device: str = "auto"
    bf16: bool = True
    lr_schedule: str = "constant"
    fusion_epochs: int = 0
    fusion_lr: float = 1e-3
    fusion_lr_schedule: str = "constant"
    fusion_warmup_epochs: int = 0
    fusion_hard_fraction: float = 0.5
    fusion_hard_pool: int = 1
    fusion_item_negatives: bool = True

    config_name = "training config"  # how messages name it: "training config key 'lr': ..."

    def __post_init__(self) -> None:
        # A recipe read back from a run folder (or built by hand) is checked here, naming the key, so that a
        # mistyped value fails now rather than as a TypeError in the middle of a training. Types come from the
        # annotations (graphdel.config), so a field added later is checked too (bool is not an int here).
        check_types(self)
        for key, ok in (("epochs", self.epochs >= 1), ("batch_size", self.batch_size >= 1),
                        ("lr", 0 < self.lr < math.inf), ("weight_decay", self.weight_decay >= 0),
                        ("patience", self.patience >= 0), ("eval_pool", self.eval_pool >= 1),
                        ("grad_clip", self.grad_clip >= 0), ("fusion_epochs", self.fusion_epochs >= 0),
                        ("fusion_lr", 0 < self.fusion_lr < math.inf),
                        ("lr_schedule", self.lr_schedule in SCHEDULES),
                        ("fusion_lr_schedule", self.fusion_lr_schedule in SCHEDULES),
                        ("fusion_warmup_epochs", 0 <= self.fusion_warmup_epochs <= self.fusion_epochs),
                        ("fusion_hard_fraction", 0 <= self.fusion_hard_fraction <= 1),
                        ("fusion_hard_pool", self.fusion_hard_pool >= 1),
                        ("device", is_device_name(self.device))):
            if not ok:
                raise ConfigError(f"training config key {key!r}: value {getattr(self, key)!r} is out of range")
        if not isinstance(self.bf16, bool):
            raise ConfigError(f"training config key 'bf16': expected bool, got {self.bf16!r}")

    # from_dict (strict: unknown keys and wrong types refused, naming the key), to_dict and with_overrides
    # come from ConfigMixin: graphdel.config, the one config kernel.


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        model: the best epoch's model (eval mode, on CPU).
        history: one dict per epoch (loss parts, validation MRR, seconds).
        best_epoch: 1-based epoch whose weights were kept.
        wall_time_s: seconds spent in the loop, evaluation included.
    """

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    wall_time_s: float = 0.0


def _check_training_data(train: PairSampler) -> None:
    """Refuse to train on nothing: with zero steps per epoch the loop would report a loss of 0.0 and save an
    untrained model as if it were a result. A sampler over a corpus (a
    :class:`~graphdel.data.pairs.PairSet`) also has its corpus's splits checked."""
    corpus = getattr(getattr(train, "data", None), "corpus", None)
    if corpus is not None:
        corpus.check_splits()
    if len(train) == 0:
        name = getattr(train, "name", "") or "train"
        where = ""
        if corpus is not None:
            n = len(corpus.rows("train"))
            where = (f": all {n} training pair{'s' if n != 1 else ''} of {corpus.source} are excluded "
                     "(--exclude), held out for calibration or being forgotten")
        raise InvalidInputError(f"nothing to train on: the training set {name!r} is empty{where}")


def _validator(model: torch.nn.Module, validate: Callable | None, distractors: PairSampler | None,
               config: TrainConfig, device: torch.device) -> Callable:
    """The ``(model, val) -> float`` score early stopping maximises: ``validate`` when given, else the model's
    own ``validation_score`` (e.g. KG link prediction), else pool-``eval_pool`` graph->text MRR against
    ``distractors`` (``val`` itself when ``None``)."""
    from graphdel.evaluation.embed import pool_score

    if validate is None and hasattr(model, "validation_score"):
        validate = lambda m, v: m.validation_score(v)  # noqa: E731  (the model's own metric, e.g. KG link prediction)
    return validate or (lambda m, v: pool_score(m, v, distractors if distractors is not None else v,
                                                pool_size=config.eval_pool, seed=0, device=device))


@dataclass
class _Stepper:
    """What one training's optimisation steps share: the model, ``step(fn)`` (``fn(model)`` inside
    DistributedDataParallel, :func:`graphdel.distributed.data_parallel`), the optimiser and its per-step
    schedule, the generator of batch order and negatives, the recipe and the device."""

    model: torch.nn.Module
    step: Callable
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    config: TrainConfig
    device: torch.device

    def epoch(self, epoch: int, batches, n_train: int, steps_per_epoch: int, progress: bool) -> dict:
        """Train one epoch over shuffled ``batches`` (this process's shard of every global batch of
        ``config.batch_size`` pairs; the last partial batch dropped unless the whole set is one batch).
        Returns the epoch's record ``{"epoch", "loss", "contrastive", "matching", "train_seconds"}`` (loss
        parts averaged over steps)."""
        config = self.config
        sums = {"loss": 0.0, "contrastive": 0.0, "matching": 0.0}
        t0 = time.perf_counter()
        epoch_batches = batches.batches(config.batch_size, shuffle=True, generator=self.generator,
                                        drop_last=n_train > config.batch_size)
        if use_prefetch(self.device):
            epoch_batches = prefetch(epoch_batches, pin_memory=True)
        bar = tqdm(epoch_batches, total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}",
                   disable=not progress, leave=False)
        steps = 0
        for batch in bar:
            values = self.optimise(batch, sums, epoch, steps)
            for k in sums:
                sums[k] += values[k]
            steps += 1
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        return {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                "train_seconds": time.perf_counter() - t0}

    def optimise(self, batch, keys, epoch: int, steps: int) -> dict[str, float]:
        """One optimisation step on ``batch`` (a batch of training pairs, moved to the device here): the loss
        terms under autocast, a finiteness check, backward, gradient clipping, the optimiser and the schedule.
        Returns the global batch's value of each loss term named in ``keys`` (floats).

        Raises:
            TrainingDivergedError: a non-finite loss (at 1-based step ``steps + 1`` of ``epoch``).
        """
        batch = batch.to(self.device)
        with autocast(self.device, self.config.bf16):
            terms = self.step(lambda m: m.loss_terms(batch, generator=self.generator))
        loss = terms["loss"]
        # the mean over processes of each process's share = the global batch's value, the same
        # on every process, so all of them stop on a non-finite loss together
        values = distributed.reduce_metrics({k: float(terms[k].detach()) for k in keys})
        if not math.isfinite(values["loss"]):
            raise TrainingDivergedError(f"non-finite training loss at epoch {epoch}, step {steps + 1}")
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimiser.step()
        self.schedule.step()
        return values


@dataclass
class _BestEpoch:
    """Validation and early-stopping bookkeeping: the best validation score so far, its 1-based epoch and a
    copy of its weights, and how many epochs have passed without improving on it."""

    score: float = -math.inf
    state: dict | None = None
    epoch: int = 0
    stale: int = 0

    def update(self, record: dict, model: torch.nn.Module, val: PairSampler | None,
               validate: Callable) -> None:
        """Score the epoch just trained (``record["epoch"]``) on ``val``, record the score in ``record`` and
        keep the weights if they are the best so far; without validation pairs, the epoch is simply the last
        one (its weights are the model's own, nothing is copied)."""
        if val is not None and len(val):
            # every process scores the whole validation set on an identical replica: same decision
            score = float(validate(model, val))
            record["val_pool_g2t_mrr"] = score
            if score > self.score:
                self.score, self.epoch, self.stale = score, record["epoch"], 0
                self.state = copy.deepcopy(model.state_dict())
            else:
                self.stale += 1
        else:
            self.epoch, self.state = record["epoch"], None

    def should_stop(self, val: PairSampler | None, patience: int) -> bool:
        """Whether ``patience`` epochs passed without improvement (never without validation pairs or with
        ``patience`` 0)."""
        return bool(val is not None and patience and self.stale >= patience)


def _log_epoch(record: dict, config: TrainConfig) -> None:
    """The epoch's line on stderr (progress, like the bars: stdout is the command's result)."""
    score = (f", val pool-{config.eval_pool} g2t MRR {record['val_pool_g2t_mrr']:.3f}"
             if "val_pool_g2t_mrr" in record else "")
    tqdm.write(f"epoch {record['epoch']}: loss {record['loss']:.3f}" + score,
               file=sys.stderr)  # progress, like the bars: stdout is the command's result


def _finish(model: torch.nn.Module, best: _BestEpoch, train: PairSampler, config: TrainConfig,
            progress: bool) -> list[dict]:
    """The end of training: the best epoch's weights back into ``model``, then the fusion stage if the recipe
    has one (its per-epoch records are returned), and the model left in eval mode on the CPU."""
    if best.state is not None:
        model.load_state_dict(best.state)
    history: list[dict] = []
    if config.fusion_epochs:
        # after the best epoch is chosen, on its frozen encoders: the embeddings stay those of that epoch.
        # Under torchrun every process runs the same stage on the whole training set (rank 0's is saved).
        from graphdel.training.fusion import train_fusion_stage

        history = train_fusion_stage(model, train, config, progress=progress)
    model.eval().cpu()
    return history


def train_model(model: torch.nn.Module, train: PairSampler, val: PairSampler | None, config: TrainConfig,
                *, progress: bool = True, validate: Callable | None = None,
                distractors: PairSampler | None = None) -> TrainResult:
    """Train ``model`` on ``train`` with early stopping on ``val``.

    Args:
        model: a freshly built (or copied) joint model; trained in place and returned. If it has
            ``fit_structure(train)`` (a model that stores training data, like a KG model's graph) that is
            called first; if it has ``validation_score(val)`` that is the default ``validate``.
        train: the training pairs (Dr for Retrain).
        val: validation pairs for early stopping, or ``None`` (then every epoch runs and the last is kept).
        config: the recipe.
        validate: ``(model, val) -> float`` score to maximise; default pool-``eval_pool`` graph->text MRR
            (:func:`graphdel.evaluation.embed.pool_score`) against ``distractors``.
        distractors: the pairs each validation pair is ranked against (never trained on: the run's
            distractor set, :meth:`graphdel.evaluation.run_data.Prepared.distractor_rows`); ``None``: ``val``
            itself.

    Raises:
        InvalidInputError: ``train`` is empty (everything excluded, held out or forgotten), or the corpus
            behind ``train`` has an empty train, val or test split
            (:meth:`~graphdel.data.corpus.Corpus.check_splits`, which also warns when val or test is tiny).
        TrainingDivergedError: a non-finite loss; the partial model is discarded.
    """
    _check_training_data(train)

    if hasattr(model, "fit_structure"):
        model.fit_structure(train)  # models that hold training data (a KG's graph) build it from `train` only
    device = resolve_device(config.device)
    validate = _validator(model, validate, distractors, config, device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    # Data parallelism (a no-op in a single process): `batches` yields this process's shard of each global
    # batch, `step(fn)` runs `fn(model)` inside DistributedDataParallel so that backward averages gradients.
    batches = distributed.shard(train)
    step = distributed.data_parallel(model, device)
    progress = progress and distributed.is_main()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    best = _BestEpoch()
    start = time.perf_counter()
    steps_per_epoch = max(1, len(train) // config.batch_size)
    schedule = lr_schedule(optimiser, config.lr_schedule, config.epochs * steps_per_epoch)
    stepper = _Stepper(model, step, optimiser, schedule, generator, config, device)
    with distributed.synchronized_batch_norm(model):
        for epoch in range(1, config.epochs + 1):
            model.train()
            record = stepper.epoch(epoch, batches, len(train), steps_per_epoch, progress)
            best.update(record, model, val, validate)
            history.append(record)
            if progress:
                _log_epoch(record, config)
            if best.should_stop(val, config.patience):
                break
    history += _finish(model, best, train, config, progress)
    return TrainResult(model, history, best.epoch, time.perf_counter() - start)
