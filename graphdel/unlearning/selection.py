"""Forget scores, stopping and checkpoint selection shared by every unlearning method.

Nothing here ever looks at test data. The reference for "never seen, but drawn like Df" is the
*calibration* sampler of the :class:`~graphdel.unlearning.base.UnlearningContext` (DESIGN.md section 1);
when it is absent the validation sampler is used instead and the result says so.

The score is the model's own ``selection_score(batches)`` when it defines one (a KG model: filtered
link-prediction MRR of the deleted facts), otherwise the **pool-based MRR** of true pairs (x -> text): the pairs of a split are embedded once
with ``encode_x`` / ``encode_text``, shuffled (seeded) into pools of ``pool_size`` (64 by default), and in
each pool every x ranks the texts of the pool by the protocol's cosine ``sim``; the reciprocal rank of its
own text is averaged over all pools of ``repeats`` independent shuffles. Chance level for a pool of 64 is
about 0.074. Only the protocol is used, so the same score serves every modality.

Stopping rule (:func:`reached_reference`): after each evaluation, the Df score and the reference score are
smoothed by the mean of the last ``smooth`` evaluations; the run stops once
``smoothed Df <= smoothed reference + margin`` (and at least ``min_epochs`` epochs were run).

Selection rule (:func:`select_index`): among the evaluated checkpoints after at least one update (the
untouched copy, epoch 0, is only a baseline: handing it back would claim a deletion that never happened),
take those whose gap ``|Df score - reference score|`` is within ``tolerance`` of the smallest
gap, and among them the one with the highest retain score (a sample of Dr of the size of Df); ties go to
the smaller gap. Over-forgetting (Df far *below* the reference) is penalised like under-forgetting.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from graphdel.models.protocol import PairBatch, PairSampler


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode, restoring each module's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@torch.no_grad()
def embed_pairs(model: nn.Module, batches: Iterable[PairBatch], device: str | torch.device = "cpu"
                ) -> tuple[Tensor, Tensor, Tensor]:
    """``(z_x, z_t, rows)`` of all pairs in ``batches``, one row per distinct corpus row (first kept)."""
    zx, zt, rows = [], [], []
    with eval_mode(model):
        for b in batches:
            b = b.to(device)
            zx.append(model.encode_x(b.x).float())
            zt.append(model.encode_text(b.text).float())
            rows.append(b.rows.reshape(-1).to(zx[-1].device))
    if not zx:
        empty = torch.empty(0, 0)
        return empty, empty, torch.empty(0, dtype=torch.long)
    z_x, z_t, r = torch.cat(zx), torch.cat(zt), torch.cat(rows)
    # keep the first occurrence of each row (a probe assembled from several samples may repeat pairs)
    order = torch.argsort(r, stable=True)
    rs = r[order]
    first = torch.ones_like(rs, dtype=torch.bool)
    first[1:] = rs[1:] != rs[:-1]
    keep = torch.sort(order[first]).values
    return z_x[keep], z_t[keep], r[keep]


@torch.no_grad()
def pool_mrr(model: nn.Module, z_x: Tensor, z_t: Tensor, *, pool_size: int = 64, repeats: int = 5,
             seed: int = 0) -> float:
    """Pool-based x -> text MRR of aligned embeddings ``z_x[i] <-> z_t[i]`` (see the module docstring).

    A pool smaller than ``pool_size`` is used only when the split itself is smaller; otherwise the
    remainder of each shuffle is left out (it is covered by the other shuffles). ``nan`` when fewer
    than 2 pairs.
    """
    n = z_x.size(0)
    if n < 2:
        return float("nan")
    pool = min(pool_size, n)
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(max(1, repeats)):
        perm = torch.randperm(n, generator=g).to(z_x.device)
        for start in range(0, n - pool + 1, pool):
            idx = perm[start:start + pool]
            s = model.sim(z_x[idx], z_t[idx]).float()
            true = s.diagonal().unsqueeze(1)
            rank = 1 + (s > true).sum(dim=1)
            total += (1.0 / rank.float()).sum().item()
            count += idx.numel()
    return total / count


def forget_score(model: nn.Module, batches: Iterable[PairBatch], *, pool_size: int = 64, repeats: int = 5,
                 seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Pool-based MRR of the true pairs in ``batches`` under ``model`` (higher = better remembered)."""
    z_x, z_t, _ = embed_pairs(model, batches, device)
    return pool_mrr(model, z_x, z_t, pool_size=pool_size, repeats=repeats, seed=seed)


def sampler_score(model: nn.Module, sampler: PairSampler, *, batch_size: int = 256, **kw: Any) -> float:
    """:func:`forget_score` over every pair of ``sampler``."""
    return forget_score(model, sampler.batches(batch_size, shuffle=False), **kw)


def _mean_last(values: list[float], k: int) -> float:
    tail = [v for v in values[-max(1, k):]]
    return sum(tail) / len(tail)


def reached_reference(forget: list[float], reference: list[float], *, smooth: int = 2,
                      margin: float = 0.0) -> bool:
    """True when the smoothed Df score has come down to the smoothed reference score (plus ``margin``)."""
    if not forget or not reference:
        return False
    f, r = _mean_last(forget, smooth), _mean_last(reference, smooth)
    if math.isnan(f) or math.isnan(r):
        return False
    return f <= r + margin


def select_index(records: list[dict], *, tolerance: float = 0.02) -> tuple[int, str]:
    """Index of the checkpoint to keep among evaluation ``records`` (keys ``forget``, ``reference``,
    ``retain``), and the reason in words. See the module docstring for the rule."""
    gaps = [abs(r["forget"] - r["reference"]) for r in records]
    finite = [i for i, g in enumerate(gaps) if not math.isnan(g)]
    # The untouched copy (epoch 0) is scored as a baseline but never handed back while an updated
    # checkpoint exists: returning the original model would report a deletion that did not happen
    # (measured on the embedded corpus: ties on the gap made the retain tie-break pick it).
    updated = [i for i in finite if records[i].get("epoch", 1) != 0]
    finite = updated or finite
    if not finite:
        return len(records) - 1, "no finite Df/reference scores: last checkpoint kept"
    best_gap = min(gaps[i] for i in finite)
    cands = [i for i in finite if gaps[i] <= best_gap + tolerance]

    def key(i: int) -> tuple[float, float]:
        ret = records[i].get("retain", float("nan"))
        return (-(ret if not math.isnan(ret) else -math.inf), gaps[i])

    chosen = min(cands, key=key)
    return chosen, (f"smallest |Df - reference| gap was {best_gap:.4f}; {len(cands)} checkpoint(s) within "
                    f"tolerance {tolerance}; kept the one with the highest retain score "
                    f"({records[chosen].get('retain', float('nan')):.4f}, gap {gaps[chosen]:.4f})")


class CalibratedSelector:
    """Evaluates a model during unlearning and keeps the checkpoints the selection rule may pick.

    Args:
        ctx: the unlearning context (forget, retain, calibration, val samplers).
        selection: ``"calibrated"`` (stop/select against the reference) or ``"last"`` (keep the last
            state; scores are still logged).
        early_stop: stop when :func:`reached_reference` fires (calibrated selection only).
        smooth, margin, tolerance, min_epochs: see :func:`reached_reference` / :func:`select_index`.
        pool_size, repeats, batch_size: scoring (see :func:`pool_mrr`).
        seed: seeds the pools and the retain probe.
        fixed_reference: score the reference once, on the first (untouched) model, and keep it as the
            target; otherwise rescore it on every evaluated model.
    """

    def __init__(self, ctx: Any, *, selection: str = "calibrated", early_stop: bool = True, smooth: int = 2,
                 margin: float = 0.0, tolerance: float = 0.02, min_epochs: int = 1, pool_size: int = 64,
                 repeats: int = 5, batch_size: int = 256, seed: int = 0, fixed_reference: bool = True) -> None:
        self.ctx = ctx
        self.device = ctx.device
        self.selection = selection
        self.early_stop = early_stop
        self.smooth, self.margin, self.tolerance, self.min_epochs = smooth, margin, tolerance, min_epochs
        self.pool_size, self.repeats, self.batch_size, self.seed = pool_size, repeats, batch_size, seed
        self.fixed_reference = fixed_reference
        self.notes: list[str] = []
        if ctx.calibration is not None:
            self.reference, self.reference_name = ctx.calibration, "calibration"
        elif ctx.val is not None:
            self.reference, self.reference_name = ctx.val, "val"
            self.notes.append("no calibration sampler given: the validation sampler stands in for "
                              "'never seen'; it may score below what Retrain shows on Df (DESIGN.md s.1)")
        else:
            self.reference, self.reference_name = None, None
            if selection == "calibrated":
                self.notes.append("neither calibration nor val given: last checkpoint kept, no early stop")
        # a fixed sample of Dr of the size of Df, drawn once, for the retain score
        g = torch.Generator().manual_seed(seed + 7919)
        want = min(len(ctx.forget), len(ctx.retain)) if len(ctx.forget) > 0 else 0
        self._retain_probe: list[PairBatch] = []
        while want > 0:
            k = min(batch_size, want)
            self._retain_probe.append(ctx.retain.sample(k, g))
            want -= k
        self.records: list[dict] = []
        self._states: dict[int, dict[str, Tensor]] = {}
        self._last_state: dict[str, Tensor] | None = None

    def _score(self, model: nn.Module, batches: Iterable[PairBatch]) -> float:
        # A model may define how well it remembers a set of pairs in its own terms (higher = better
        # remembered), e.g. a model whose deletable facts are scored by a decoder rather than by
        # retrieval; the pool-based retrieval MRR is the protocol-level default.
        hook = getattr(model, "selection_score", None)
        if hook is not None:
            with eval_mode(model), torch.no_grad():
                return float(hook([b.to(self.device) for b in batches]))
        return forget_score(model, batches, pool_size=self.pool_size, repeats=self.repeats, seed=self.seed,
                            device=self.device)

    def evaluate(self, model: nn.Module, *, epoch: int, step: int) -> dict:
        """Score ``model`` on Df, the reference and the retain probe; remember its state if it may be
        selected. Returns the record (also kept in ``self.records``)."""
        if self.reference is None:
            reference = float("nan")
        elif self.fixed_reference and self.records:  # the untouched model's score, taken at epoch 0
            reference = self.records[0]["reference"]
        else:
            reference = self._score(model, self.reference.batches(self.batch_size))
        rec = {"eval": True, "epoch": epoch, "step": step,
               "forget": self._score(model, self.ctx.forget.batches(self.batch_size)),
               "reference": reference, "retain": self._score(model, self._retain_probe)}
        if self.reference_name:
            rec["reference_name"] = self.reference_name
        self.records.append(rec)
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self._last_state = state
        if self.selection == "calibrated" and self.reference is not None:
            idx = len(self.records) - 1
            self._states[idx] = state
            gaps = {i: abs(self.records[i]["forget"] - self.records[i]["reference"]) for i in self._states}
            finite = [g for g in gaps.values() if not math.isnan(g)]
            if finite:
                best = min(finite)
                for i, g in gaps.items():
                    if i != idx and (math.isnan(g) or g > best + self.tolerance):
                        del self._states[i]
        return rec

    def should_stop(self, epoch: int) -> bool:
        """Whether to stop after ``epoch``: calibrated early stopping is on, ``min_epochs`` have run and the
        smoothed Df score has reached the smoothed reference score plus ``margin``."""
        if self.selection != "calibrated" or self.reference is None or not self.early_stop:
            return False
        if epoch < self.min_epochs:
            return False
        return reached_reference([r["forget"] for r in self.records], [r["reference"] for r in self.records],
                                 smooth=self.smooth, margin=self.margin)

    def select(self) -> tuple[dict[str, Tensor] | None, dict]:
        """The state to load (``None``: keep the model as it is) and the ``selected`` description."""
        info: dict[str, Any] = {"rule": self.selection, "reference": self.reference_name,
                                "notes": list(self.notes)}
        if not self.records:
            info["reason"] = "no evaluation was run: final state kept"
            return None, info
        if self.selection == "calibrated" and self.reference is not None:
            idx, reason = select_index(self.records, tolerance=self.tolerance)
            state = self._states.get(idx)
            if state is None:  # cannot happen with the pruning above; be safe
                idx, state = len(self.records) - 1, self._last_state
                reason += " (state unavailable; last evaluated kept)"
        else:
            idx, state = len(self.records) - 1, self._last_state
            reason = "last evaluated checkpoint kept (selection='last' or no reference)"
        rec = self.records[idx]
        info.update({"index": idx, "epoch": rec["epoch"], "step": rec["step"], "reason": reason,
                     "scores": {k: rec[k] for k in ("forget", "reference", "retain")}})
        return state, info
