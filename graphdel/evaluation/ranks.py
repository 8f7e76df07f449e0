"""What a rank is (the module docstring of :mod:`graphdel.evaluation.retrieval` defines it, ties included):
:class:`Ranks`, their summary (MRR and hits@k, expected values under the random tie-break) and the chance MRR
of a pool, and the standard error of a mean over pairs. :mod:`graphdel.evaluation.retrieval`, which ranks,
imports every name from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_EULER_GAMMA = 0.5772156649015329


def check_2d(name: str, t: Tensor) -> None:
    """Refuse ``t`` unless it is a 2-D tensor ``[n, d]`` (:class:`ValueError` naming ``name``)."""
    if not isinstance(t, Tensor) or t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor [n, d], got {getattr(t, 'shape', type(t))}")


def _harmonic(n: Tensor) -> Tensor:
    """``H(n) = 1 + 1/2 + ... + 1/n`` (``H(0) = 0``) of a float64 tensor of whole numbers."""
    return torch.digamma(n + 1.0) + _EULER_GAMMA


@dataclass(frozen=True)
class Ranks:
    """Where each query's target stands among its candidates (see the module docstring for ties).

    Attributes:
        above: ``[Q]`` long, candidates scored strictly higher than the target (other correct answers of
            the query's group excluded).
        tied: ``[Q]`` long, candidates scored exactly as high as the target (the target itself and other
            correct answers excluded).
    """

    above: Tensor
    tied: Tensor

    def __len__(self) -> int:
        return int(self.above.numel())

    def reciprocal(self) -> Tensor:
        """``[Q]`` float64 expected reciprocal rank: ``(H(above + tied + 1) - H(above)) / (tied + 1)``."""
        a, t = self.above.double(), self.tied.double()
        # 1 / (above + 1) exactly where nothing ties (the digamma difference is off by a rounding error)
        return torch.where(t == 0, 1.0 / (a + 1.0), (_harmonic(a + t + 1.0) - _harmonic(a)) / (t + 1.0))

    def hits(self, k: int) -> Tensor:
        """``[Q]`` float64 probability that the rank is at most ``k``."""
        a, t = self.above.double(), self.tied.double()
        return torch.minimum((k - a).clamp(min=0.0), t + 1.0) / (t + 1.0)

    def expected(self) -> Tensor:
        """``[Q]`` float64 expected rank ``1 + above + tied / 2``."""
        return 1.0 + self.above.double() + self.tied.double() / 2.0

    @staticmethod
    def cat(parts: list["Ranks"]) -> "Ranks":
        """The ranks of several query blocks, in order."""
        return Ranks(torch.cat([p.above for p in parts]), torch.cat([p.tied for p in parts]))

    @staticmethod
    def of_scores(scores: Tensor) -> "Ranks":
        """Ranks of column 0 (the target) among the columns of ``scores [Q, k]``."""
        target = scores[:, :1]
        return Ranks((scores[:, 1:] > target).sum(1), (scores[:, 1:] == target).sum(1))


def rank_summary(ranks: Ranks) -> dict[str, float]:
    """MRR and hits@k of :class:`Ranks` (expected values under the random tie-break).

    Returns:
        ``{"mrr": mean expected reciprocal rank, "hits@1": mean P(rank <= 1), "hits@10": mean P(rank <= 10)}``.
    """
    if not isinstance(ranks, Ranks):
        raise TypeError(f"rank_summary takes Ranks, got {type(ranks).__name__}")
    if len(ranks) == 0:
        raise ValueError("rank_summary needs at least one rank")
    return {"mrr": float(ranks.reciprocal().mean()), "hits@1": float(ranks.hits(1).mean()),
            "hits@10": float(ranks.hits(10).mean())}


def weighted_mean_error(values: Tensor, weights: Tensor) -> float:
    """Standard error of the weighted mean ``sum(w * x) / sum(w)`` of ``values [N]`` under ``weights [N]``
    (non-negative; pairs of weight 0 take no part), by linearisation: with ``w`` normalised to sum 1 and
    ``n`` pairs of positive weight, ``sqrt(n / (n - 1) * sum(w^2 * (x - mean)^2))``, which for equal weights
    is the familiar ``sd / sqrt(n)``. ``nan`` for fewer than two pairs of positive weight."""
    x, w = values.double().reshape(-1), weights.double().reshape(-1)
    used = w > 0
    n = int(used.sum())
    if n < 2:
        return float("nan")
    x, w = x[used], w[used] / w[used].sum()
    mean = (w * x).sum()
    return float((n / (n - 1) * (w * w * (x - mean) ** 2).sum()).sqrt())


def chance_mrr(k: int) -> float:
    """Expected MRR of a query ranked at random among ``k`` candidates: ``H_k / k``."""
    return float(_harmonic(torch.tensor(float(k), dtype=torch.float64)) / k)
