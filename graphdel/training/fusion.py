"""The fusion stage: the fusion module and matching head trained on frozen encoders.

Why a stage of its own. Trained jointly with the contrastive loss on ALBEF's in-batch hard negatives
(drawn by similarity), the matching head learnt nothing on ``drugs``: the matching loss sat at 0.637, the
entropy of its 1:2 prior, from the second epoch on, and ``match_bal_acc`` was 0.5 on every split
(docs/results.md, "The fusion stage and the molecule recipe"). The hardest in-batch captions differ from the true one in little the fusion
module could check, and with only hard negatives the head never gets the easy examples that start
learning. After the main loop has chosen its best epoch, this stage freezes every encoder and projection
and trains only the fusion module and the matching head (:meth:`~graphdel.models.joint.JointModel.
fusion_modules`) with *mixed* negatives:

* each true pair ``(x_i, t_i)`` (label 1) is scored against one negative text ``(x_i, t_j)`` and, unless
  ``fusion_item_negatives`` is off, one negative item ``(x_j', t_i)`` (label 0); the true pairs weigh as
  much as their negatives so the two classes weigh alike and the head's 0.5 threshold is the balanced one;
* a negative is *hard* with probability ``fusion_hard_fraction``: drawn uniformly among the
  ``fusion_hard_pool`` most similar texts (items) of *other* items over the whole training set
  (:func:`~graphdel.evaluation.retrieval.hardest_of_other_items`), under the frozen model's cosine similarity; otherwise it is a uniformly
  random pair of another item.

The encoders are frozen, so the embeddings, every similarity and every retrieval number stay exactly those
of the main loop's best epoch; the hard negatives are mined once from them.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from graphdel.device import autocast, resolve_device
from graphdel.errors import ConfigError, TrainingDivergedError
from graphdel.evaluation.retrieval import hardest_of_other_items
from graphdel.training.schedules import lr_schedule

__all__ = ["random_of_other_items", "stage_pairs", "fusion_stage_loss", "balanced_matching_loss",
           "train_fusion_stage"]


def random_of_other_items(positions: Tensor, items: Tensor, generator: torch.Generator) -> Tensor:
    """``[B]`` long: for each position ``p`` of ``positions`` a uniformly random position ``j`` with
    ``items[j] != items[p]`` (redrawn until it holds). ``items``: ``[N]`` item of every position (at least two
    distinct items)."""
    if items.unique().numel() < 2:
        raise ValueError("random negatives need pairs of at least two distinct items")
    out = torch.randint(items.numel(), (positions.numel(),), generator=generator)
    clash = items[out] == items[positions]
    while bool(clash.any()):
        out[clash] = torch.randint(items.numel(), (int(clash.sum()),), generator=generator)
        clash = items[out] == items[positions]
    return out


def stage_pairs(b: int, item_negatives: bool) -> Tensor:
    """``[P, 2]`` long (item, text) positions of what a fusion-stage step scores, in a batch of ``2b`` (``3b``
    with ``item_negatives``) pairs laid out as ``b`` true pairs, then ``b`` pairs holding the negative texts,
    then ``b`` pairs holding the negative items: the true pairs ``(i, i)``, the text negatives ``(i, b + i)``
    and the item negatives ``(2b + i, i)``, in that order (``P`` = ``2b`` or ``3b``)."""
    i = torch.arange(b)
    parts = [(i, i), (i, b + i)] + ([(2 * b + i, i)] if item_negatives else [])
    return torch.cat([torch.stack(p, dim=1) for p in parts])


def fusion_stage_loss(model, batch, b: int) -> Tensor:
    """Balanced matching loss of a step (scalar): binary cross-entropy of the matching head over the ``b``
    true pairs ``(x_i, t_i)`` (label 1, weight 2), ``(x_i, t'_i)`` and ``(x'_i, t_i)`` (label 0, weight 1),
    where ``batch`` holds ``2b`` or ``3b`` pairs laid out as :func:`stage_pairs` reads them (``t'`` the texts
    of the second ``b``, ``x'`` the items of the third). With ``2b`` pairs (no negative items) the true pairs
    weigh 1 against the ``b`` negative texts alone. One ``fuse`` call for every pair of the step, so each
    caption and molecule is encoded once (``fuse``'s ``pairs``)."""
    if len(batch) not in (2 * b, 3 * b):
        raise ValueError(f"a fusion-stage batch holds 2 or 3 times its {b} true pairs, "
                         f"not {len(batch)} pairs")
    pairs = stage_pairs(b, len(batch) == 3 * b).to(batch.rows.device)
    return balanced_matching_loss(model.match_logits(model.fuse(batch.x, batch.text, pairs)), b)


def balanced_matching_loss(logits: Tensor, b: int) -> Tensor:
    """Binary cross-entropy (scalar) of matching logits ``[P]`` laid out as :func:`stage_pairs` lays them out:
    the ``b`` true pairs first (label 1), then ``P - b`` negatives (label 0); the true pairs weigh as much
    as the negatives together, so the two classes weigh alike."""
    negatives = logits.numel() // b - 1
    labels = torch.cat([torch.ones(b), torch.zeros(negatives * b)]).to(logits.device)
    weight = torch.cat([torch.full((b,), float(negatives)), torch.ones(negatives * b)]).to(logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), labels, weight=weight,
                                              reduction="sum") / weight.sum()


def _freeze_all_but(model, modules) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` off for every parameter outside ``modules``; return those inside."""
    inside = {id(p) for m in modules for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in inside)
    return [p for p in model.parameters() if id(p) in inside]


def train_fusion_stage(model, train, config, *, progress: bool = True,
                       after_epoch: Callable[[int], None] | None = None) -> list[dict]:
    """Train ``model``'s fusion module and matching head on its frozen encoders (see the module docstring).

    Every other parameter keeps its value and every buffer too: the encoders run in eval mode (BatchNorm
    statistics are read, never updated; no dropout), and only the modules of ``model.fusion_modules()``
    are in train mode and updated. ``requires_grad`` flags are restored afterwards.

    Args:
        model: a :class:`~graphdel.models.joint.JointModel` (or anything with ``fusion_modules``, ``fuse``,
            ``match_logits``, ``encode_x``, ``encode_text``), already on the device it trains on.
        train: the training pairs (a :class:`~graphdel.data.pairs.PairSet`: negatives are built from its rows
            with ``make_batch``).
        config: the :class:`~graphdel.training.loop.TrainConfig` (``fusion_epochs``, ``fusion_lr``,
            ``fusion_lr_schedule``, ``fusion_warmup_epochs``, ``fusion_hard_fraction``, ``fusion_hard_pool``,
            ``fusion_item_negatives``, ``batch_size``, ``seed``, ``grad_clip``, ``device``, ``bf16`` are read).
        after_epoch: called with the epoch number after each stage epoch (benchmarks score the head there).

    Returns:
        One record per stage epoch: ``{"stage": "fusion", "epoch", "matching", "train_seconds"}``.
    """
    if config.fusion_epochs < 1 or len(train) < 2:
        return []
    modules = list(model.fusion_modules())
    if not modules:
        raise ConfigError(f"fusion_epochs is {config.fusion_epochs} but the model has no fusion module "
                          "(fusion_layers 0) to train: set fusion_epochs to 0")
    flags = {id(p): p.requires_grad for p in model.parameters()}
    params = _freeze_all_but(model, modules)
    # With every encoder frozen, a model that can (molecules: share_frozen_states) computes each item's
    # states once and reuses them: the graph encoder's forward pass took 3/4 of a step's time. Sized to
    # the stage's pairs: a smaller cache serves no random batch once the corpus outgrows it.
    try:
        with model.share_frozen_states(reads=train):
            return _stage_epochs(model, train, config, modules, params, resolve_device(config.device),
                                 progress, after_epoch)
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
        model.eval()


def _mine_hard_negatives(model, train, config, device: torch.device
                         ) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """The stage's hard negatives, mined once from the frozen encoders' embeddings of ``train``'s ``N`` pairs:
    ``(items [N], hard_text [N, pool], hard_item [N, pool])``, for each pair the ``pool`` texts (items) of other
    items closest to its item (text), ``pool`` at most ``config.fusion_hard_pool`` (``hard_item`` None without
    ``config.fusion_item_negatives``); None when the pairs hold fewer than two items."""
    from graphdel.evaluation.embed import embed_pairs

    emb = embed_pairs(model, train, device=device)  # the encoders are frozen: mined once
    items = emb.items
    if items.unique().numel() < 2:
        return None
    pool = min(config.fusion_hard_pool, int(items.numel() - torch.bincount(items).max()))
    # scored where the model computes: N x N similarities, a GPU's work on a corpus of ChEBI-20's size
    z_x, z_t, on = emb.z_x.to(device), emb.z_t.to(device), items.to(device)
    hard_text = hardest_of_other_items(z_x, z_t, on, on, pool).cpu()  # [N, pool] texts per item
    hard_item = (hardest_of_other_items(z_t, z_x, on, on, pool).cpu()  # [N, pool] items per text
                 if config.fusion_item_negatives else None)
    return items, hard_text, hard_item


def _stage_epochs(model, train, config, modules: list, params: list, device: torch.device, progress: bool,
                  after_epoch: Callable[[int], None] | None) -> list[dict]:
    """The stage's epochs on a model whose encoders are already frozen (:func:`train_fusion_stage`)."""
    generator = torch.Generator().manual_seed(config.seed)
    mined = _mine_hard_negatives(model, train, config, device)
    if mined is None:
        return []
    items, hard_text, hard_item = mined
    rows = torch.as_tensor(train.rows).long()

    def negatives(positions: Tensor, hard: Tensor) -> Tensor:
        """Positions of the negatives of ``positions``: hard with probability ``fusion_hard_fraction``."""
        pick_hard = torch.rand(positions.numel(), generator=generator) < config.fusion_hard_fraction
        which = torch.randint(hard.size(1), (positions.numel(),), generator=generator)
        return torch.where(pick_hard, hard[positions, which], random_of_other_items(positions, items, generator))

    optimiser = torch.optim.Adam(params, lr=config.fusion_lr)
    history = []
    n = items.numel()
    steps_per_epoch = max(1, n // config.batch_size)
    schedule = lr_schedule(optimiser, config.fusion_lr_schedule, config.fusion_epochs * steps_per_epoch,
                           config.fusion_warmup_epochs * steps_per_epoch)
    for epoch in range(1, config.fusion_epochs + 1):
        model.eval()  # encoders: no dropout, BatchNorm statistics read only
        for m in modules:
            m.train()
        t0, total, steps = time.perf_counter(), 0.0, 0
        order = torch.randperm(n, generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"fusion {epoch}/{config.fusion_epochs}", disable=not progress,
                   leave=False)
        for s in bar:
            positions = order[s * config.batch_size:(s + 1) * config.batch_size]
            if positions.numel() < 2:
                break
            parts = [positions, negatives(positions, hard_text)]
            if hard_item is not None:
                parts.append(negatives(positions, hard_item))
            batch = train.make_batch(rows[torch.cat(parts)]).to(device)  # laid out as stage_pairs reads it
            with autocast(device, config.bf16):
                loss = fusion_stage_loss(model, batch, positions.numel())
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDivergedError(f"non-finite matching loss in fusion epoch {epoch}, step {s + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimiser.step()
            schedule.step()
            total += value
            steps += 1
            bar.set_postfix(matching=f"{value:.3f}")
        record = {"stage": "fusion", "epoch": epoch, "matching": total / max(steps, 1),
                  "train_seconds": time.perf_counter() - t0}
        history.append(record)
        if progress:
            tqdm.write(f"fusion epoch {epoch}: matching loss {record['matching']:.3f}", file=sys.stderr)
        if after_epoch is not None:
            after_epoch(epoch)
    return history
