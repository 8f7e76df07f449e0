"""SCRUB (Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS 2023, arXiv:2302.09880).

Teacher = the original model ``f`` (frozen); student = ``f'``. Distillation is on the temperature-scaled
contrastive ``logits`` of a batch, in both directions: x -> text (rows) and text -> x (columns),

    KL_T(f || f') = T^2 / 2 * [ KL(softmax(Z/T) || softmax(Z'/T))_rows + KL(...)_columns ]   (batch mean)

Update, per epoch: if ``epoch <= max_epochs`` a *max* pass over Df (``theta <- theta + lr * grad KL_T``
on each Df batch, i.e. descent on ``-KL_T``), then a *min* pass over Dr
(``theta <- theta - lr * grad[ alpha * KL_T(Dr) + gamma * L_train(Dr) ]``, ``retain_steps`` batches,
0 = a full pass). Defaults follow the authors' released code: kd temperature T = 4, alpha = 0.001,
gamma = 0.99, max steps in the first 2 of 3 epochs; the optimiser is Adam lr 1e-4 (their SGD 5e-4 was
tuned for CIFAR ResNets), batch 32, calibrated selection. The paper's "rewinding" variant is not
implemented.

A Df batch of fewer than 2 distinct items (a one-pair request) has in-batch distributions over itself
only, whose KL is always 0: its rows are then given the texts / items of a Dr sample of ``batch_size``
pairs as further candidates (:func:`contrastive_kl` with ``extra``). Under ``torchrun`` the KL is each
process's block of the global matrix (not exact, :mod:`graphdel.distributed`), so that test is made per
shard, and every process draws the Dr sample when one shard needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, check, register_method


@dataclass
class ScrubConfig(GradientConfig):
    """SCRUB hyperparameters.

    Attributes:
        kd_temperature: distillation temperature T (applied on top of the model's own logit scale).
        alpha: weight of the KL term in min steps.
        gamma: weight of the training loss in min steps.
        max_epochs: epochs (from the first) that start with a max pass over Df.
        retain_steps: Dr batches per min pass (0: all of Dr).
    """

    lr: float = 1e-4
    epochs: int = 3
    kd_temperature: float = 4.0
    alpha: float = 0.001
    gamma: float = 0.99
    max_epochs: int = 2
    retain_steps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.kd_temperature > 0, f"kd_temperature must be > 0, got {self.kd_temperature}")
        check(self.max_epochs >= 0 and self.retain_steps >= 0, "max_epochs and retain_steps must be >= 0")


def contrastive_kl(student: Any, teacher: Any, batch: PairBatch, temperature: float,
                   extra: PairBatch | None = None) -> Tensor:
    """``KL_T(teacher || student)`` of the batch's x->text and text->x distributions (see module doc).

    ``extra``: more pairs (Dr) whose texts / items are added as candidates of the batch's rows (rows stay the
    batch's pairs): ``[b, b + m]`` logits. Why: the distributions of a batch of one pair are over that pair
    only (probability 1), so their KL is 0 whatever the weights and the max pass would not move; a Df batch
    of fewer than 2 distinct items is given the Dr candidates a full batch would have. Candidates of
    ``extra`` of the row's own item are left out. ``None``: the in-batch ``[b, b]`` form."""
    def logits(model: Any) -> tuple[Tensor, Tensor]:
        zx, zt = model.encode_x(batch.x), model.encode_text(batch.text)
        if extra is None:
            lg = model.logits(zx, zt).float()
            return lg, lg.t()
        ex, et = model.encode_x(extra.x), model.encode_text(extra.text)
        return (model.logits(zx, torch.cat([zt, et])).float(),    # [b, b + m]: x -> texts
                model.logits(zt, torch.cat([zx, ex])).float())    # [b, b + m]: text -> items

    with torch.no_grad():
        t_rows, t_cols = (lg / temperature for lg in logits(teacher))
    s_rows, s_cols = (lg / temperature for lg in logits(student))
    if extra is not None and batch.items is not None and extra.items is not None:
        own = batch.items.to(s_rows.device)[:, None] == extra.items.to(s_rows.device)[None, :]  # [b, m]
        drop = torch.cat([torch.zeros(len(batch), len(batch), dtype=torch.bool, device=own.device), own], 1)
        t_rows, t_cols, s_rows, s_cols = (lg.masked_fill(drop, -1e4) for lg in (t_rows, t_cols, s_rows, s_cols))
    rows = F.kl_div(F.log_softmax(s_rows, dim=1), F.log_softmax(t_rows, dim=1), log_target=True,
                    reduction="batchmean")
    cols = F.kl_div(F.log_softmax(s_cols, dim=1), F.log_softmax(t_cols, dim=1), log_target=True,
                    reduction="batchmean")
    return 0.5 * (rows + cols) * temperature ** 2


@register_method
class Scrub(GradientMethod):
    __doc__ = __doc__
    name = "scrub"
    summary = "Teacher-student: maximise KL to the original on Df, minimise KL + task loss on Dr."
    citation = "Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023"
    Config = ScrubConfig

    def train_epoch(self, trainer: Trainer, cfg: ScrubConfig) -> None:
        """A max pass over Df (while ``epoch <= max_epochs``), then a min pass over Dr (``retain_steps`` batches)."""
        s, t = trainer.student, trainer.teacher
        if trainer.epoch <= cfg.max_epochs:
            for df in trainer.forget_batches():
                # per_process: the KL is computed on each process's own shard (module docstring)
                kl = contrastive_kl(s, t, df, cfg.kd_temperature, trainer.outside_negatives(df, per_process=True))
                if not trainer.step(-kl, {"forget_kl": float(kl.detach())}, phase="max"):
                    return
        for i, dr in enumerate(trainer.retain_batches()):
            if cfg.retain_steps and i >= cfg.retain_steps:
                break
            kl = contrastive_kl(s, t, dr, cfg.kd_temperature)
            task = s.training_loss(dr)
            loss = cfg.alpha * kl + cfg.gamma * task
            if not trainer.step(loss, {"retain_kl": float(kl.detach()), "task_loss": float(task.detach())},
                                phase="min"):
                return
