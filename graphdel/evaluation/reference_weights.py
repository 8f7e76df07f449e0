"""A calibration reference weighted to look like the request it judges.

The calibration hold-out is drawn like a random molecule request, so some of its molecules keep relatives of
their chemical series (Murcko scaffold) in the training data and some have none. A request of whole
scaffolds deletes every relative of its molecules: after it, none of the deleted molecules has a relative
left, and a model that never saw them (Retrain) ranks them the way it ranks never-seen molecules without
relatives, which it ranks lower (default original, calibration pairs, mean of 10 distractor draws: 0.773
without a relative against 0.813 with one). Weighing the calibration pairs so that the share without a
relative equals the request's makes the reference "never seen, drawn like this request".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from graphdel.data.requests import get_granularity

__all__ = ["ReferenceWeights", "series_matched_weights"]


@dataclass(frozen=True)
class ReferenceWeights:
    """Per-pair weights of the calibration reference.

    Attributes:
        weights: calibration corpus row -> weight (summing to 1).
        request_share: share of the request's pairs with no relative left in the retained data.
        calibration_share: share of the calibration pairs with no relative in the original's training data.
    """

    weights: dict[int, float]
    request_share: float
    calibration_share: float

    def describe(self) -> str:
        """One line for a run's selection notes."""
        return (f"calibration reference weighted to the request's series: {self.request_share:.3f} of the "
                f"deleted pairs and {self.calibration_share:.3f} of the calibration pairs have no relative "
                "of their scaffold in training")


def series_matched_weights(prepared, df_rows: Sequence[int],
                           dr_rows: Sequence[int]) -> ReferenceWeights | None:
    """Weights of the calibration pairs (``prepared.calibration``) under which the share of pairs without a
    relative (another pair of the same series) in training equals the share of ``df_rows`` without one in
    ``dr_rows``: a deleted pair is judged against Dr, what a model trained without it sees; a calibration
    pair against the original's trained rows.

    Returns ``None`` where the weighting does not apply: a corpus without chemical series (not molecules),
    no calibration or deleted pairs, or a share the calibration cannot match (the request has pairs of a
    kind, with or without relatives, that the calibration lacks).
    """
    corpus = prepared.corpus
    df_rows, dr_rows = [int(r) for r in df_rows], [int(r) for r in dr_rows]
    if corpus.modality != "molecule" or not prepared.calibration or not df_rows:
        return None
    units = get_granularity("scaffold", corpus).units(corpus)
    series = {row: key for key, rows in units.items() for row in rows}
    in_dr = Counter(series[r] for r in dr_rows)
    in_trained = Counter(series[r] for r in prepared.trained_rows())
    request_alone = sum(in_dr[series[r]] == 0 for r in df_rows) / len(df_rows)
    alone = [r for r in prepared.calibration if in_trained[series[r]] == 0]
    related = [r for r in prepared.calibration if in_trained[series[r]] > 0]
    if (request_alone > 0 and not alone) or (request_alone < 1 and not related):
        return None
    weights = {r: request_alone / len(alone) for r in alone}
    weights.update({r: (1.0 - request_alone) / len(related) for r in related})
    return ReferenceWeights(weights, request_alone, len(alone) / len(prepared.calibration))
