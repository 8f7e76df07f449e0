"""MultiDelete's link-forgetting term (``link_weight``): the deleted facts' margins under the model's own link
decoder pushed down to what never-trained facts of the same standing have.

:meth:`LinkForgetting.prepare` measures, before the first update, each deleted pair's margin
(:func:`~graphdel.unlearning.losses.link_margins`: its facts' logit over random answers, from
:meth:`~graphdel.models.protocol.ModalityModule.link_scores`) and quantile-matches the margins to the
calibration pairs' (validation's when there is none), scored with the calibration's hidden mirror facts out
of the model, as the stopping reference is; :meth:`LinkForgetting.term` is the hinge of one Df batch
(:func:`~graphdel.unlearning.losses.link_forgetting`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch, PairSampler
from graphdel.unlearning.losses import link_forgetting, link_margins, quantile_matched_targets

__all__ = ["LinkForgetting", "sampler_link_margins"]


def sampler_link_margins(model: Any, sampler: PairSampler, *, negatives: int, generator: torch.Generator,
                         device: torch.device, batch_size: int) -> tuple[Tensor, Tensor] | None:
    """``(corpus rows [P], margins [P])`` of the pairs of ``sampler`` that state a fact ``model``'s link
    decoder scores (:func:`~graphdel.unlearning.losses.link_margins`); ``None`` when it has no decoder."""
    rows, margins = [], []
    for b in sampler.batches(batch_size):
        b = b.to(device)
        out = model.link_scores(b, negatives, generator)
        if out is None:
            return None
        pairs, m = link_margins(*out)
        rows.append(b.rows[pairs])
        margins.append(m)
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(rows), torch.cat(margins)


class LinkForgetting:
    """The link-forgetting term of one run: ``{corpus row: target margin}`` of every Df pair it moves, and
    the generator of the random answers (its own, so the batch order is the same with and without the
    term)."""

    def __init__(self, targets: dict[int, float], negatives: int, generator: torch.Generator) -> None:
        self.targets, self.negatives, self.generator = targets, negatives, generator

    @classmethod
    def prepare(cls, trainer: Any, negatives: int, batch_size: int) -> "LinkForgetting | None":
        """The term for ``trainer``'s run (module docstring), measured on its student before any update;
        ``None`` (logged as one ``phase="link"`` record, as the targets are) when the model has no link
        decoder or Df states no fact it scores.

        Raises:
            ConfigError: the context has neither calibration nor validation pairs.
        """
        ctx = trainer.ctx
        reference, hidden = (ctx.calibration, ctx.calibration_hidden) if ctx.calibration is not None else (ctx.val, None)
        if reference is None or len(reference) == 0:
            raise ConfigError("link_weight > 0 needs a calibration (or validation) split to draw the deleted "
                              "facts' target margins from; none was given")
        generator = torch.Generator().manual_seed(ctx.seed + 1)
        student = trainer.student
        measure = dict(negatives=negatives, generator=generator, device=trainer.device, batch_size=batch_size)
        was = student.training
        student.eval()  # no dropout in the measured margins
        try:
            with torch.no_grad():
                df = sampler_link_margins(student, ctx.forget, **measure)
                with student.facts_hidden(hidden):
                    ref = sampler_link_margins(student, reference, **measure) if df is not None else None
        finally:
            student.train(was)
        if df is None or ref is None or df[0].numel() == 0 or ref[0].numel() == 0:
            trainer.log.append({"phase": "link", "note": "the model scores no fact of Df or of the reference: "
                                                         "no link term"})
            return None
        targets = quantile_matched_targets(df[1], ref[1])
        trainer.log.append({"phase": "link", "pairs": int(df[0].numel()), "margin_mean": float(df[1].mean()),
                            "target_mean": float(targets.mean()), "reference_pairs": int(ref[0].numel())})
        return cls({int(r): float(t) for r, t in zip(df[0].tolist(), targets.tolist())}, negatives, generator)

    def term(self, student: Any, df: PairBatch) -> Tensor:
        """Scalar: the hinge of the Df batch ``df``'s margins down to their targets."""
        rows, scores, corrupted = student.link_scores(df, self.negatives, self.generator)
        # The random answers' logits are a fixed bar: with gradients through them the margin fell fastest
        # by raising a few random entities over every query (WordNet, seed 0: validation 0.26 -> 0.16).
        pairs, margins = link_margins(rows, scores, corrupted.detach())
        targets = torch.tensor([self.targets[int(r)] for r in df.rows[pairs].tolist()], device=margins.device)
        return link_forgetting(margins, targets)
