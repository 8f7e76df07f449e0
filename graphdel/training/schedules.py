"""Per-step learning-rate schedules of the training loop and the fusion stage (one definition of each)."""

from __future__ import annotations

import math

import torch

__all__ = ["SCHEDULES", "lr_factor", "lr_schedule"]

#: The schedules a config may name: ``constant`` (the configured rate throughout) and ``cosine`` (from the
#: rate down to 0 at the last step, the half cosine of Loshchilov & Hutter's SGDR without restarts).
SCHEDULES = ("constant", "cosine")


def lr_factor(kind: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """The factor on the configured rate at ``step`` (0-based): a linear warm-up from
    ``1 / (warmup_steps + 1)`` to 1 over the first ``warmup_steps`` steps, then ``kind`` over the remaining
    steps (``cosine`` reaches 0 at ``total_steps`` and stays there)."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r} (one of {', '.join(SCHEDULES)})")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def lr_schedule(optimiser: torch.optim.Optimizer, kind: str, total_steps: int, warmup_steps: int = 0
                ) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler (call ``step()`` after each optimiser step) applying :func:`lr_factor`."""
    lr_factor(kind, 0, total_steps, warmup_steps)  # refuses an unknown kind now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: lr_factor(kind, s, total_steps, warmup_steps))
