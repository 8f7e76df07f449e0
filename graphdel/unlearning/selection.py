"""Stopping and checkpoint selection shared by every unlearning method.

Nothing here ever looks at test data. The reference for "never seen, but drawn like Df" is the
*calibration* sampler of the :class:`~graphdel.unlearning.base.UnlearningContext` (docs/design.md);
when it is absent the validation sampler is used instead and the result says so.

The score is the model's own ``selection_score(batches)`` when it defines one (a KG model: filtered
link-prediction MRR of the deleted facts), otherwise graphdel's one retrieval score, pool-k graph->text
MRR (:func:`graphdel.evaluation.embed.pool_score`; defined in :mod:`graphdel.evaluation.retrieval`): each
pair ranked against its own text and ``pool_size - 1`` distractor texts drawn, per pair, from the
context's distractor set (pairs never trained on). It is the same number ``metrics.json`` and the report
call ``pool64``, with the same chance level (0.0741 for 64) for a Df of any size, one pair included.

Stopping rule (:func:`reached_reference`): after each evaluation, the Df score and the reference score are
smoothed by the mean of the last ``smooth`` evaluations; the run stops once
``smoothed Df <= smoothed reference + margin`` (and at least ``min_epochs`` epochs were run).

Selection rule (:func:`select_index`): among the evaluated checkpoints after at least one update (the
untouched copy, epoch 0, is only a baseline: handing it back would claim a deletion that never happened),
take those whose gap ``|Df score - reference score|`` is within ``tolerance`` of the smallest
gap, and among them the one with the highest retain score (a sample of Dr of the size of Df, or with
``probe="val"`` of the validation pairs: what the update costs pairs never trained on); ties go to
the smaller gap. Over-forgetting (Df far *below* the reference) is penalised like under-forgetting.
With ``rule="sum"`` the kept checkpoint is the one with the smallest ``gap + retain drop`` (the drop from
the best retain score evaluated), so that a checkpoint is never kept for a retain gain smaller than the
gap it gives up (the same sum :mod:`graphdel.unlearning.tuning` ranks settings by).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from graphdel.device import model_device
from graphdel.evaluation.embed import PairEmbeddings, embed_pairs, pool_score, pool_score_error
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


def sampler_score(model: nn.Module, sampler: PairSampler, distractors: PairSampler | PairEmbeddings, *,
                  pool_size: int = 64, seed: int = 0, batch_size: int = 256,
                  device: str | torch.device | None = None) -> float:
    """Pool-``pool_size`` graph->text MRR of every pair of ``sampler`` under ``model`` (higher = better
    remembered): :func:`graphdel.evaluation.embed.pool_score` (``device=None``: where ``model`` is)."""
    return pool_score(model, sampler, distractors, pool_size=pool_size, seed=seed, batch_size=batch_size,
                      device=device)


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


SELECTION_RULES = ("tolerance", "sum")


def _retain(record: dict) -> float:
    ret = record.get("retain", float("nan"))
    return -math.inf if math.isnan(ret) else ret


def selection_candidates(records: list[dict], *, tolerance: float = 0.02, rule: str = "tolerance"
                         ) -> tuple[list[int], float]:
    """Indices of the records :func:`select_index` chooses among, and the smallest gap.

    The candidates are the records with a finite gap ``|forget - reference|`` within ``tolerance`` of the
    smallest such gap (``rule="sum"``: those no other record beats on both gap and retain score, the only
    ones a later record cannot rule out), counted over the updated checkpoints only (``epoch != 0``) when
    there is one. The selector prunes its stored states with this same function, so it never drops a state
    the rule may pick.
    """
    if rule not in SELECTION_RULES:
        raise ValueError(f"selection rule {rule!r} is not one of {', '.join(SELECTION_RULES)}")
    gaps = [abs(r["forget"] - r["reference"]) for r in records]
    finite = [i for i, g in enumerate(gaps) if not math.isnan(g)]
    # The untouched copy (epoch 0) is scored as a baseline but never handed back while an updated
    # checkpoint exists: returning the original model would report a deletion that did not happen.
    updated = [i for i in finite if records[i].get("epoch", 1) != 0]
    finite = updated or finite
    if not finite:
        return [], math.nan
    best_gap = min(gaps[i] for i in finite)
    if rule == "sum":
        dominated = lambda i: any(gaps[j] <= gaps[i] and _retain(records[j]) >= _retain(records[i])  # noqa: E731
                                  and (gaps[j], _retain(records[j])) != (gaps[i], _retain(records[i]))
                                  for j in finite)
        return [i for i in finite if not dominated(i)], best_gap
    return [i for i in finite if gaps[i] <= best_gap + tolerance], best_gap


def select_index(records: list[dict], *, tolerance: float = 0.02, rule: str = "tolerance") -> tuple[int, str]:
    """Index of the checkpoint to keep among evaluation ``records`` (keys ``forget``, ``reference``,
    ``retain``), and the reason in words. See the module docstring for the rules."""
    cands, best_gap = selection_candidates(records, tolerance=tolerance, rule=rule)
    if not cands:
        return len(records) - 1, "no finite Df/reference scores: last checkpoint kept"
    gap = lambda i: abs(records[i]["forget"] - records[i]["reference"])  # noqa: E731
    if rule == "sum":
        best_retain = max(_retain(records[i]) for i in cands)
        chosen = min(cands, key=lambda i: (gap(i) + best_retain - _retain(records[i]), gap(i)))
        return chosen, (f"kept the smallest |Df - reference| gap + retain drop among {len(cands)} checkpoint(s): "
                        f"gap {gap(chosen):.4f}, retain {records[chosen].get('retain', float('nan')):.4f} "
                        f"(best {best_retain:.4f})")

    def key(i: int) -> tuple[float, float]:
        return (-_retain(records[i]), gap(i))

    chosen = min(cands, key=key)
    return chosen, (f"smallest |Df - reference| gap was {best_gap:.4f}; {len(cands)} checkpoint(s) within "
                    f"tolerance {tolerance}; kept the one with the highest retain score "
                    f"({records[chosen].get('retain', float('nan')):.4f}, gap {gap(chosen):.4f})")


class CalibratedSelector:
    """Evaluates a model during unlearning and keeps the checkpoints the selection rule may pick.

    Args:
        ctx: the unlearning context (forget, retain, calibration, val and distractor samplers).
        selection: ``"calibrated"`` (stop/select against the reference) or ``"last"`` (keep the last
            state; scores are still logged).
        early_stop: stop when :func:`reached_reference` fires (calibrated selection only).
        smooth, margin, tolerance, rule, min_epochs: see :func:`reached_reference` / :func:`select_index`.
        pool_size, batch_size: scoring (see :func:`sampler_score`).
        seed: seeds the distractor draw and the retain probe.
        probe: where the retain probe is drawn (as many pairs as Df has): ``"retain"``, Dr; ``"val"``, the
            validation pairs (Dr when there are none, with a note).
        draws: every score (Df, the reference, the retain probe) is the mean over this many distractor draws
            (:func:`~graphdel.evaluation.embed.pool_score`), which steadies the stopping decision.
        match_reference: score the calibration reference with the context's ``calibration_weights`` (the
            calibration pairs weighted to look like the request); without them, every pair alike.
        fixed_reference: score the reference once, on the first (untouched) model, and keep it as the
            target; otherwise rescore it on every evaluated model.
        reference_model: with ``fixed_reference``, score the reference on this model instead of the first
            evaluated one (a chain of deletions' original: ``UnlearningContext.anchor``).
        earlier: the pairs earlier requests of a chain deleted (``UnlearningContext.earlier_forget``): the
            Df score is then that of this request's pairs and these together (the mean of the two scores
            weighted by their pair counts, exact for a mean over pairs), the set Retrain on the union is
            judged on; each part is logged (``forget_request``, ``forget_earlier``).
    """

    def __init__(self, ctx: Any, *, selection: str = "calibrated", early_stop: bool = True, smooth: int = 2,
                 margin: float = 0.0, tolerance: float = 0.02, rule: str = "tolerance", min_epochs: int = 1,
                 pool_size: int = 64,
                 batch_size: int = 256, seed: int = 0, fixed_reference: bool = True,
                 reference_model: nn.Module | None = None, earlier: Any = None, draws: int = 1,
                 match_reference: bool = False, probe: str = "retain") -> None:
        self.ctx = ctx
        self.draws = draws
        self.earlier = earlier if earlier is not None and len(earlier) > 0 else None
        self.selection = selection
        self.early_stop = early_stop
        self.smooth, self.margin, self.tolerance, self.min_epochs = smooth, margin, tolerance, min_epochs
        self.rule = rule
        self.pool_size, self.batch_size, self.seed = pool_size, batch_size, seed
        self.fixed_reference = fixed_reference
        self.reference_model = reference_model
        self.notes: list[str] = []
        if ctx.calibration is not None:
            self.reference, self.reference_name = ctx.calibration, "calibration"
        elif ctx.val is not None:
            self.reference, self.reference_name = ctx.val, "val"
            self.notes.append("no calibration sampler given: the validation sampler stands in for "
                              "'never seen'; it may score below what Retrain shows on Df (docs/design.md)")
        else:
            self.reference, self.reference_name = None, None
            if selection == "calibrated":
                self.notes.append("neither calibration nor val given: last checkpoint kept, no early stop")
        matched = getattr(ctx, "calibration_weights", None) if match_reference else None
        use = matched is not None and self.reference_name == "calibration"
        self.reference_weights = matched.weights if use else None
        if self.reference_weights is not None:
            self.notes.append(matched.describe())
        elif match_reference:
            self.notes.append("match_reference: no weights for this request (not a molecule corpus, or the "
                              "calibration lacks a kind of pair the request has): every calibration pair "
                              "alike")
        # The pairs every scored pair is ranked against (never trained on): the context's distractor set,
        # else the reference split itself (a query never meets a pair of its own item).
        self.distractors = getattr(ctx, "distractors", None) or self.reference
        # a fixed sample of the size of Df, drawn once, for the retain score
        probed = ctx.retain
        if probe == "val":
            if ctx.val is not None and len(ctx.val) > 0:
                probed = ctx.val
            else:
                self.notes.append("select_probe 'val': no validation pairs, "
                                  "the retain probe is drawn from Dr")
        g = torch.Generator().manual_seed(seed + 7919)
        want = min(len(ctx.forget), len(probed)) if len(ctx.forget) > 0 else 0
        if probed is not ctx.retain:
            self.notes.append(f"the retain score is read on {want} validation pairs (select_probe 'val')")
        self._retain_probe: list[PairBatch] = []
        while want > 0:
            k = min(batch_size, want)
            self._retain_probe.append(probed.sample(k, g))
            want -= k
        self.records: list[dict] = []
        # the reference's standard error over its pairs (``{"se", "pairs"}``) as last scored (for a fixed
        # reference, the default, the one every record keeps); None for a model's own score
        self.reference_error: dict[str, float] | None = None
        self._states: dict[int, dict[str, Tensor]] = {}
        self._last_state: dict[str, Tensor] | None = None

    def _scorer(self, model: nn.Module):
        """``batches -> (score, standard error, pairs)`` for ``model`` as it is now, computed where ``model``
        is (the batches follow it: the student and the chain's original both sit on the run's device)."""
        # A model may define how well it remembers a set of pairs in its own terms (higher = better
        # remembered), e.g. a model whose deletable facts are scored by a decoder rather than by
        # retrieval (ModalityModule.selection_score); pool-k retrieval MRR is the protocol-level default.
        device = model_device(model)
        embedded: list[PairEmbeddings] = []

        def score(batches: Iterable[PairBatch], weights: dict[int, float] | None = None
                  ) -> tuple[float, float, int]:
            """``(score, standard error, pairs)`` of ``batches``, as
            :func:`~graphdel.evaluation.embed.pool_score_error` gives it (no error for a model's own score)."""
            batches = [b.to(device) for b in batches]
            with eval_mode(model), torch.no_grad():
                own = model.selection_score(batches)
            if own is not None or self.distractors is None:
                return (float("nan") if own is None else float(own)), float("nan"), 0
            if not embedded:  # the distractors' texts, embedded once per evaluation by the model being scored
                embedded.append(embed_pairs(model, self.distractors, batch_size=self.batch_size,
                                            texts_only=True))
            return pool_score_error(model, batches, embedded[0], pool_size=self.pool_size, seed=self.seed,
                                    batch_size=self.batch_size, draws=self.draws, weights=weights)
        return score

    def score_of(self, model: nn.Module, pairs: PairSampler) -> float:
        """The selection score of every pair of ``pairs`` under ``model`` as it is now (higher = better
        remembered; the model's own ``selection_score`` or pool-k MRR, as :meth:`evaluate` scores)."""
        return self._scorer(model)(pairs.batches(self.batch_size))[0]

    def _reference_score(self, model: nn.Module, score) -> float:
        """``score`` of the reference pairs, with the calibration's hidden pairs out of ``model``'s stored
        data while it runs (:attr:`UnlearningContext.calibration_hidden`; the calibration only). Keeps the
        score's standard error and pair count in :attr:`reference_error` when the score is a pool score."""
        hidden = getattr(self.ctx, "calibration_hidden", None) if self.reference_name == "calibration" else None
        with model.facts_hidden(hidden):
            value, se, pairs = score(self.reference.batches(self.batch_size), self.reference_weights)
        self.reference_error = {"se": se, "pairs": pairs} if math.isfinite(se) else None
        return value

    def evaluate(self, model: nn.Module, *, epoch: int, step: int) -> dict:
        """Score ``model`` on Df, the reference and the retain probe; remember its state if it may be
        selected. Returns the record (also kept in ``self.records``)."""
        scored = self._scorer(model)

        def score(batches) -> float:
            return scored(batches)[0]

        if self.reference is None:
            reference = float("nan")
        elif self.fixed_reference and self.records:  # the untouched model's score, taken at epoch 0
            reference = self.records[0]["reference"]
        elif self.fixed_reference and self.reference_model is not None:  # a chain's original (anchor)
            reference = self._reference_score(self.reference_model, self._scorer(self.reference_model))
        else:
            reference = self._reference_score(model, scored)
        rec = {"eval": True, "epoch": epoch, "step": step,
               "forget": score(self.ctx.forget.batches(self.batch_size)),
               "reference": reference, "retain": score(self._retain_probe)}
        if self.earlier is not None:
            n_now, n_earlier = len(self.ctx.forget), len(self.earlier)
            rec["forget_request"] = rec["forget"]
            rec["forget_earlier"] = score(self.earlier.batches(self.batch_size))
            rec["forget"] = (n_now * rec["forget_request"] + n_earlier * rec["forget_earlier"]) / (n_now + n_earlier)
        if self.reference_name:
            rec["reference_name"] = self.reference_name
        self.records.append(rec)
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self._last_state = state
        if self.selection == "calibrated" and self.reference is not None:
            self._states[len(self.records) - 1] = state
            keep = set(selection_candidates(self.records, tolerance=self.tolerance, rule=self.rule)[0])
            for i in [i for i in self._states if i not in keep]:
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
        if self.reference_error is not None:  # how far the reference itself may lie from "never seen"
            info["reference_se"] = self.reference_error["se"]
            info["reference_pairs"] = self.reference_error["pairs"]
        if not self.records:
            info["reason"] = "no evaluation was run: final state kept"
            return None, info
        if self.selection == "calibrated" and self.reference is not None:
            idx, reason = select_index(self.records, tolerance=self.tolerance, rule=self.rule)
            # pruning keeps exactly the rule's candidates; with none (no finite score) the rule keeps the last
            state = self._states[idx] if idx in self._states else self._last_state
        else:
            idx, state = len(self.records) - 1, self._last_state
            reason = "last evaluated checkpoint kept (selection='last' or no reference)"
        rec = self.records[idx]
        info.update({"index": idx, "epoch": rec["epoch"], "step": rec["step"], "reason": reason,
                     "scores": {k: rec[k] for k in ("forget", "reference", "retain")}})
        return state, info
