"""The training loop shared by original training, Retrain and fine-tuning.

One recipe: Adam on the model's :meth:`~graphdel.models.joint.JointModel.training_loss` over shuffled
batches of training pairs, early stopping on validation pool-64 graph->text MRR (the scaffold validation
split -- never test), keeping the best epoch's weights. Retrain is this same function on Dr.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from graphdel.errors import GraphdelError
from graphdel.models.protocol import PairSampler


class TrainingDivergedError(GraphdelError):
    """The loss became NaN or infinite; nothing is written as finished."""


@dataclass
class TrainConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GraphdelError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


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


def train_model(model: torch.nn.Module, train: PairSampler, val: PairSampler | None, config: TrainConfig,
                *, progress: bool = True, validate: Callable | None = None) -> TrainResult:
    """Train ``model`` on ``train`` with early stopping on ``val``.

    Args:
        model: a freshly built (or copied) joint model; trained in place and returned. If it has
            ``fit_structure(train)`` (a model that stores training data, like a KG model's graph) that is
            called first; if it has ``validation_score(val)`` that is the default ``validate``.
        train: the training pairs (Dr for Retrain).
        val: validation pairs for early stopping, or ``None`` (then every epoch runs and the last is kept).
        config: the recipe.
        validate: ``(model, val) -> float`` score to maximise; default pool-64 graph->text MRR.

    Raises:
        TrainingDivergedError: a non-finite loss; the partial model is discarded.
    """
    from graphdel.evaluation.embed import pool_mrr

    if validate is None and hasattr(model, "validation_score"):
        validate = lambda m, v: m.validation_score(v)  # noqa: E731  (the model's own metric, e.g. KG link prediction)
    validate = validate or (lambda m, v: pool_mrr(m, v, pool_size=config.eval_pool, seed=0))
    if hasattr(model, "fit_structure"):
        model.fit_structure(train)  # models that hold training data (a KG's graph) build it from `train` only
    device = resolve_device(config.device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    best_score, best_state, best_epoch, stale = -math.inf, None, 0, 0
    start = time.perf_counter()
    steps_per_epoch = max(1, len(train) // config.batch_size)
    for epoch in range(1, config.epochs + 1):
        model.train()
        sums = {"loss": 0.0, "contrastive": 0.0, "matching": 0.0}
        t0 = time.perf_counter()
        bar = tqdm(train.batches(config.batch_size, shuffle=True, generator=generator, drop_last=len(train) > config.batch_size),
                   total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        steps = 0
        for batch in bar:
            terms = model.loss_terms(batch.to(device), generator=generator)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"non-finite training loss at epoch {epoch}, step {steps + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            for k in sums:
                sums[k] += float(terms[k].detach())
            steps += 1
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        record = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                  "train_seconds": time.perf_counter() - t0}
        if val is not None and len(val):
            score = float(validate(model, val))
            record["val_pool_g2t_mrr"] = score
            if score > best_score:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        else:
            best_epoch, best_state = epoch, None
        history.append(record)
        if progress:
            tqdm.write(f"epoch {epoch}: loss {record['loss']:.3f}"
                       + (f", val pool-{config.eval_pool} g2t MRR {record['val_pool_g2t_mrr']:.3f}" if "val_pool_g2t_mrr" in record else ""))
        if val is not None and config.patience and stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval().cpu()
    return TrainResult(model, history, best_epoch, time.perf_counter() - start)
