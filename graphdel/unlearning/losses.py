"""The three MultiDelete loss terms (Cheng & Amiri, ECCV 2024; docs/design.md) as standalone
functions, plus the helpers every method shares: distances, and the loss of Df pairs ranked against Dr
pairs for a Df batch too small to hold negatives of its own (:func:`forget_loss`). The *unrelated* texts
(the item-aware derangement, a Df batch's negatives) are in :mod:`graphdel.unlearning.negatives`, re-exported
here.

``student`` is ``f'`` (updated), ``teacher`` is the frozen original ``f``; every teacher output is
computed under ``torch.no_grad()`` and is a constant target. Similarity-matrix variants use the
protocol's cosine ``sim`` (no temperature): temperature-scaled logits make the terms ~1/T^2 larger and
let the decoupling term dominate (measured on the embedded corpus).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch, TextFeatures
# re-exported: the unrelated texts and the global batch lived here first
from graphdel.unlearning.negatives import (_sharded, all_rows, derangement, distinct_items, item_derangement,
                                           negative_texts, own_positions)

__all__ = ["StepEncodings", "all_rows", "derangement", "distance", "distinct_items", "exceedance", "forget_loss",
           "item_derangement", "link_forgetting", "link_margins", "modality_decoupling", "multimodal_retention",
           "negative_texts", "own_positions", "pair_losses_against", "pair_similarity_retention",
           "quantile_matched_targets", "similarity_at_share", "unimodal_retention"]

Distance = Literal["mse", "cosine", "l1"]
Representation = Literal["fused", "similarity", "both"]


def distance(a: Tensor, b: Tensor, kind: str = "mse", parts: tuple[int, ...] = ()) -> Tensor:
    """Mean distance between ``a`` and ``b`` (same shape ``[B, ...]``; ``b`` is the target).

    * ``mse``: mean of squared differences over all elements;
    * ``part_mse``: the mean over ``parts`` (widths of consecutive slices of the last dimension that sum to
      its size; ``()``: one part) of each slice's mean squared difference divided by the target slice's
      mean square: every part weighs the same whatever its scale (a KG model's fused representation is a
      fusion output of RMS ~1 beside a DistMult interaction of RMS ~0.1-0.2, which plain MSE all but ignores);
    * ``l1``: mean of absolute differences;
    * ``cosine``: mean over rows of ``1 - cos(a_i, b_i)`` (rows = the last dimension; for a similarity
      matrix, each row's profile over texts).
    """
    if a.shape != b.shape:
        raise ValueError(f"distance: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if kind == "mse":
        return F.mse_loss(a, b)
    if kind == "part_mse":
        widths = list(parts) or [a.shape[-1]]
        if sum(widths) != a.shape[-1]:
            raise ValueError(f"distance: parts {widths} do not sum to the width {a.shape[-1]}")
        terms = [F.mse_loss(pa, pb) / pb.pow(2).mean().clamp_min(1e-12)
                 for pa, pb in zip(a.split(widths, dim=-1), b.split(widths, dim=-1))]
        return torch.stack(terms).mean()
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)).mean()
    raise ConfigError(f"unknown distance {kind!r}; valid: mse, part_mse, cosine, l1")


def pair_losses_against(model: nn.Module, batch: PairBatch, extra: PairBatch) -> Tensor:
    """``[b]`` symmetric InfoNCE of each pair of ``batch``, ranked against the pairs of ``batch`` *and* of
    ``extra`` (``[m]`` more pairs that serve only as negatives), on the model's ``logits``.

    Why: the in-batch contrastive loss of a batch of one pair (or of one item's captions) is constant:
    the pair is ranked against itself only, so an update on it has no gradient. An unlearning request of
    one pair is common, so the methods rank such a batch against the matched Dr batch instead
    (:func:`forget_loss`). Positives are the pairs of ``batch`` sharing the row's item (the pair itself
    when ``items`` is ``None``), the same targets as the models' own contrastive loss; a pair of ``extra``
    of the row's own item (another caption of it, in Dr) is left out rather than counted as a negative.

    Under ``torchrun`` the rows are this process's pairs and the columns the global batches of both
    (:func:`all_rows`, gradients flowing back to their owners), so the mean over processes is the global
    batch's loss, as for the models' own sharded contrastive loss.
    """
    zx, zt = model.encode_x(batch.x), model.encode_text(batch.text)  # [b, d]
    ex, et = model.encode_x(extra.x), model.encode_text(extra.text)  # [m, d]
    cols_x = torch.cat([all_rows(zx, batch, grad=True), all_rows(ex, extra, grad=True)])  # [B + M, d]
    cols_t = torch.cat([all_rows(zt, batch, grad=True), all_rows(et, extra, grad=True)])
    b, device = zx.size(0), zx.device
    n_batch = batch.shard.global_size if _sharded(batch) else b  # the first n_batch columns are batch's
    positives = torch.zeros(b, cols_x.size(0), dtype=torch.bool, device=device)
    keep = torch.ones_like(positives)
    if batch.items is None:
        positives[own_positions(batch, b, device)] = True
    else:
        items = batch.items.to(device)
        positives[:, :n_batch] = items[:, None] == all_rows(items, batch)[None, :]
        if extra.items is not None:
            keep[:, n_batch:] = items[:, None] != all_rows(extra.items.to(device), extra)[None, :]
    out = []
    for logits in (model.logits(zx, cols_t), model.logits(zt, cols_x)):  # x -> text, text -> x: [b, B + M]
        logp = torch.log_softmax(logits.float().masked_fill(~keep, float("-inf")), dim=1)
        out.append(-torch.where(positives, logp, torch.zeros_like(logp)).sum(1) / positives.sum(1))
    return 0.5 * (out[0] + out[1])


def forget_loss(model: nn.Module, df: PairBatch, negatives: PairBatch | None = None) -> Tensor:
    """Scalar: the training loss of the Df pairs, what ascent/saliency methods differentiate.

    ``model.training_loss(df)``, plus, when ``negatives`` (Dr pairs) are given, the mean of
    :func:`pair_losses_against` ``(df, negatives)``. The methods pass ``negatives`` only for a Df batch of
    fewer than 2 distinct items (:meth:`~graphdel.unlearning.base.Trainer.lacks_negatives`): there the
    model's in-batch contrastive and matching terms are constant, and the Dr pairs supply the contrast
    a full batch would have; what the model's loss still has per pair (a KG model's link prediction against
    every entity) is kept. On any other batch this is ``training_loss(df)`` exactly.
    """
    loss = model.training_loss(df)
    if negatives is None:
        return loss
    return loss + pair_losses_against(model, df, negatives).mean()



class StepEncodings:
    """``model`` for the duration of one optimisation step, with ``encode_x`` / ``encode_text`` computed
    once per input object; every other attribute is the model's own.

    Why: the MultiDelete terms are standalone functions, so one step asks for the same embeddings several
    times (the Df items in L_MD and L_UKR, the Dr items in L_MKR and L_UKR; the teacher's as well). The
    item encoder (a GNN) dominates the step, and its forward *and* backward passes were repeated for each
    term. Reusing the output is exact when the forward pass is deterministic (no dropout, as MultiDelete
    runs ``f'``); with dropout on, the terms share one dropout mask instead of drawing one each.

    Inputs are keyed by identity and held until the wrapper is dropped, so an id is never reused while
    the cache lives. Make a new wrapper for every step: the student's weights change between steps.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._cache: dict[tuple[str, int], tuple[object, Tensor]] = {}

    def _memo(self, kind: str, inp: object, encode) -> Tensor:
        key = (kind, id(inp))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not inp:
            hit = (inp, encode(inp))
            self._cache[key] = hit
        return hit[1]

    def provide_x(self, x, z: Tensor) -> None:
        """Use ``z [B, d]`` as ``encode_x(x)`` (an output already known, e.g. a frozen teacher's)."""
        self._cache[("x", id(x))] = (x, z)

    def encode_x(self, x) -> Tensor:
        """``[B, d]``: ``model.encode_x(x)``, computed once for this ``x``."""
        return self._memo("x", x, self.model.encode_x)

    def encode_text(self, text: TextFeatures) -> Tensor:
        """``[B, d]``: ``model.encode_text(text)``, computed once for this ``text``."""
        return self._memo("text", text, self.model.encode_text)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def _check_repr(representation: str) -> None:
    if representation not in ("fused", "similarity", "both"):
        raise ConfigError(f"unknown representation {representation!r}; valid: fused, similarity, both")


def modality_decoupling(student: nn.Module, teacher: nn.Module, df: PairBatch, *, negatives: str = "df",
                        dr: PairBatch | None = None, representation: str = "fused", distance: str = "mse",
                        generator: torch.Generator | None = None,
                        similarity_target: str = "permuted", pair_targets: Tensor | None = None) -> Tensor:
    """Modality decoupling L_MD: a deleted pair must look like an *unrelated* pair to ``f``.

    * ``fused``: ``mean_i d(f'.fuse(x_i, t_i), f.fuse(x_i, t_j))``, ``t_j`` the text of a pair of another
      item (:func:`negative_texts`: an item-aware derangement of the Df batch, or Dr texts with
      ``negatives="dr"``; ``dr``'s texts also when the Df batch has fewer than 2 distinct items);
    * ``similarity``: ``d(S'(X_f, T_f), S(X_f, T_pi))`` on cosine similarities, ``T_pi`` the permuted
      text set (``similarity_target="permuted"``, docs/design.md). With ``similarity_target="pairwise"``
      the target is ``S(X_f, T_f)`` with its diagonal replaced by ``s(x_i, t_pi(i))``: only the true
      pairs are moved, the unrelated Df pairs keep their similarities (the permuted target also pulls
      ``s'(x_i, t_{pi^-1(i)})`` up to the old true-pair similarity). With ``similarity_target="calibrated"``
      the diagonal is replaced by ``pair_targets`` ``[B]`` instead: per pair, the similarity at which it
      would rank among distractor texts the way a never-seen pair ranks (:func:`similarity_at_share`), so
      that the deleted pairs end up ranked like the calibration pairs, not all at one unrelated-pair
      level.
    * ``both``: the sum of the two.
    """
    _check_repr(representation)
    neg, _ = negative_texts(df, source=negatives, dr=dr, generator=generator)
    total = None
    if representation in ("fused", "both"):
        with torch.no_grad():
            target = teacher.fuse(df.x, neg)
        total = _distance(student.fuse(df.x, df.text), target, distance, student.fused_parts())
    if representation in ("similarity", "both"):
        with torch.no_grad():
            tz_x = teacher.encode_x(df.x)
            if similarity_target == "permuted":
                target = teacher.sim(tz_x, all_rows(teacher.encode_text(neg), df))
            elif similarity_target == "pairwise":
                target = teacher.sim(tz_x, all_rows(teacher.encode_text(df.text), df)).clone()
                unrelated = teacher.sim(tz_x, teacher.encode_text(neg)).diagonal()
                target[own_positions(df, tz_x.size(0), tz_x.device)] = unrelated
            elif similarity_target == "calibrated":
                if pair_targets is None or pair_targets.shape != (tz_x.size(0),):
                    raise ConfigError("similarity_target='calibrated' needs one target similarity per Df pair "
                                      f"(pair_targets of shape [{tz_x.size(0)}])")
                target = teacher.sim(tz_x, all_rows(teacher.encode_text(df.text), df)).clone()
                target[own_positions(df, tz_x.size(0), tz_x.device)] = pair_targets.to(target)
            else:
                raise ConfigError(f"unknown similarity_target {similarity_target!r}; "
                                  "valid: permuted, pairwise, calibrated")
        s = student.sim(student.encode_x(df.x), all_rows(student.encode_text(df.text), df, grad=True))
        if similarity_target == "calibrated":
            # The true pairs' targets lie close to where they are (a few hundredths of cosine): averaged
            # with the B^2 - B unrelated entries they would weigh 1/B of the term, so the diagonal and the
            # rest are averaged apart and added.
            own = torch.zeros_like(s, dtype=torch.bool)
            own[own_positions(df, s.size(0), s.device)] = True
            term = _distance(s[own], target[own], distance)
            if (~own).any():
                term = term + _distance(s[~own], target[~own], distance)
        else:
            term = _distance(s, target, distance)
        total = term if total is None else total + term
    return total


def link_margins(rows: Tensor, scores: Tensor, corrupted: Tensor) -> tuple[Tensor, Tensor]:
    """``(pairs [P] long, margins [P])``: how far each pair's facts stand above random answers, as a link
    predictor ranks them, from a model's :meth:`~graphdel.models.protocol.ModalityModule.link_scores`.

    A fact's margin is ``score - (logsumexp(corrupted) - log k)``: its logit over the log of the mean
    exponentiated logit of ``k`` random answers, the estimate of ``log(N p(answer))`` under the decoder's
    softmax over ``N`` answers, which is what its rank follows (a few high random answers outweigh the mass
    of low ones, as they do in a rank). ``rows [F]``: the pair position of each fact; ``scores [F]``;
    ``corrupted [F, k]``. A pair's margin is the mean over its facts (a KG triple: both directions);
    ``pairs`` are the distinct ``rows``, sorted."""
    k = corrupted.shape[1]
    fact = scores - (torch.logsumexp(corrupted, dim=1) - math.log(k))
    pairs, inverse = torch.unique(rows, return_inverse=True)
    total = fact.new_zeros(pairs.numel()).index_add(0, inverse, fact)
    count = fact.new_zeros(pairs.numel()).index_add(0, inverse, torch.ones_like(fact))
    return pairs, total / count


def link_forgetting(margins: Tensor, targets: Tensor) -> Tensor:
    """Scalar: ``mean_i max(0, margins_i - targets_i)`` (both ``[P]``; 0 when ``P = 0``).

    The deleted facts' margins (:func:`link_margins`) are pushed down to their targets, the margins
    never-trained facts have, and no further: a hinge, because a fact a never-trained model would still
    rank well (inferable from the rest of the graph) must not be pushed under that."""
    if margins.numel() == 0:
        return margins.new_zeros(())
    return F.relu(margins - targets.to(margins)).mean()


def quantile_matched_targets(scores: Tensor, reference: Tensor, weights: Tensor | None = None) -> Tensor:
    """``[N]`` targets for ``scores`` ``[N]``: the ``reference`` ``[M]`` quantiles at the scores' own ranks.

    The entry with the ``k``-th lowest score (of ``N``) gets the reference's ``(k + 0.5) / N`` quantile
    (linear interpolation; ties keep their order of appearance). This is the monotone matching of the
    two samples, the one that moves the scores least in total while making them distributed like the
    reference. ``weights`` ``[M]`` (non-negative, not all 0) weigh the reference's entries
    (:func:`weighted_quantile`); ``None``: all alike."""
    if scores.dim() != 1 or reference.dim() != 1:
        raise ConfigError(f"scores and reference must be 1-D, got {tuple(scores.shape)} and {tuple(reference.shape)}")
    if reference.numel() == 0:
        raise ConfigError("quantile-matched targets need a non-empty reference sample")
    n = scores.numel()
    order = torch.argsort(scores, stable=True)
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / max(n, 1)
    if weights is None:
        quantiles = torch.quantile(reference.double().cpu(), levels)
    else:
        quantiles = weighted_quantile(reference.double().cpu(), weights.double().cpu(), levels)
    targets = torch.empty_like(scores)
    targets[order.to(scores.device)] = quantiles.to(scores.dtype).to(scores.device)
    return targets


def weighted_quantile(values: Tensor, weights: Tensor, levels: Tensor) -> Tensor:
    """``[L]`` quantiles of ``values`` ``[M]``, weighted by ``weights`` ``[M]``, at ``levels`` ``[L]``.

    Entries of weight 0 are left out. The sorted values sit at the positions ``(C_i - w_i) / (W - w_last)``
    (``C_i`` the cumulative weight, ``W`` the total), interpolated linearly: with equal weights these are
    ``i / (M - 1)``, the positions of :func:`torch.quantile`'s linear rule, so equal weights give its
    quantiles."""
    if values.shape != weights.shape or values.dim() != 1:
        raise ConfigError(f"values {tuple(values.shape)} and weights {tuple(weights.shape)} must be 1-D, one "
                          "weight per value")
    if bool((weights < 0).any()) or not float(weights.sum()) > 0:
        raise ConfigError("quantile weights must be non-negative and not all 0")
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    order = torch.argsort(values, stable=True)
    values, weights = values[order], weights[order]
    if values.numel() == 1:
        return values.expand(levels.numel()).clone()
    cumulative = torch.cumsum(weights, 0)
    positions = (cumulative - weights) / (cumulative[-1] - weights[-1])
    return torch.from_numpy(np.interp(levels.numpy(), positions.numpy(), values.numpy()))


def exceedance(positive: Tensor, others: Tensor, valid: Tensor | None = None) -> Tensor:
    """``[N]`` share of each row's other scores strictly above its positive score.

    Args:
        positive: ``[N]`` the true pair's similarity.
        others: ``[N, M]`` the same item's similarities with ``M`` texts it must out-rank.
        valid: ``[N, M]`` bool, which of ``others`` count (default: all).

    It is the expected share of distractors ranked above the true text, so in a pool of ``k`` drawn from
    them the true text's expected rank is ``1 + (k - 1) * exceedance``."""
    valid = torch.ones_like(others, dtype=torch.bool) if valid is None else valid
    above = ((others > positive[:, None]) & valid).sum(1).to(positive.dtype)
    return above / valid.sum(1).clamp(min=1).to(positive.dtype)


def similarity_at_share(positive: Tensor, others: Tensor, valid: Tensor, share: Tensor) -> Tensor:
    """``[N]`` the similarity at which each true pair would have ``share`` ``[N]`` of its valid ``others``
    above it: ``r = round(share * m)`` of its ``m`` valid others, midway between the ``r``-th and
    ``(r+1)``-th highest. A pair meant to be above every other keeps its similarity if it is already there
    (``max(positive, highest)``), likewise one meant to be below every other (``min(positive, lowest)``).

    Args:
        positive: ``[N]``; others: ``[N, M]``; valid: ``[N, M]`` bool; share: ``[N]`` in ``[0, 1]``.
    """
    counts = valid.sum(1)
    ranked = others.masked_fill(~valid, float("-inf")).sort(dim=1, descending=True).values  # invalid last
    r = torch.minimum((share * counts.to(share.dtype)).round().long().clamp(min=0), counts)
    rows = torch.arange(positive.numel(), device=positive.device)
    above = ranked[rows, (r - 1).clamp(min=0)]
    below = ranked[rows, r.clamp(max=others.size(1) - 1)]
    target = torch.where(r == 0, torch.maximum(positive, ranked[:, 0]), 0.5 * (above + below))
    lowest = ranked[rows, (counts - 1).clamp(min=0)]
    return torch.where(r >= counts, torch.minimum(positive, lowest), target)


def _distance(a: Tensor, b: Tensor, kind: str, parts: tuple[int, ...] = ()) -> Tensor:
    return distance(a.float(), b.float(), kind, parts)


def multimodal_retention(student: nn.Module, teacher: nn.Module, dr: PairBatch, *,
                         representation: str = "fused", distance: str = "mse") -> Tensor:
    """Multimodal knowledge retention L_MKR on Dr: ``d(f'.fuse(x, t), f.fuse(x, t))`` (``fused``),
    ``d(S'(X_r, T_r), S(X_r, T_r))`` on cosine similarities (``similarity``), or their sum (``both``)."""
    _check_repr(representation)
    total = None
    if representation in ("fused", "both"):
        with torch.no_grad():
            target = teacher.fuse(dr.x, dr.text)
        total = _distance(student.fuse(dr.x, dr.text), target, distance, student.fused_parts())
    if representation in ("similarity", "both"):
        with torch.no_grad():
            target = teacher.sim(teacher.encode_x(dr.x), all_rows(teacher.encode_text(dr.text), dr))
        s = student.sim(student.encode_x(dr.x), all_rows(student.encode_text(dr.text), dr, grad=True))
        term = _distance(s, target, distance)
        total = term if total is None else total + term
    return total


def pair_similarity_retention(student: nn.Module, teacher: nn.Module, dr: PairBatch, *,
                              distance: str = "mse") -> Tensor:
    """L_MKR on the retained pairs' own similarities only: ``d(s'(x_i, t_i), s(x_i, t_i))``, ``[B]`` cosine
    similarities of each Dr pair's graph and text. Why a term of its own: in the matrix form of
    :func:`multimodal_retention` these B of B² entries weigh 1/B of the term, so retention on the matrix
    holds how pairs rank against other texts while every retained pair's own similarity may fall."""
    with torch.no_grad():
        target = (teacher.encode_x(dr.x) * teacher.encode_text(dr.text)).sum(-1)
    return _distance((student.encode_x(dr.x) * student.encode_text(dr.text)).sum(-1), target, distance)


def unimodal_retention(student: nn.Module, teacher: nn.Module, batch: PairBatch, *,
                       distance: str = "mse") -> Tensor:
    """Unimodal knowledge retention L_UKR: ``d(f'.encode_x(x), f.encode_x(x)) +
    d(f'.encode_text(t), f.encode_text(t))`` (normalised, projected embeddings)."""
    with torch.no_grad():
        tx, tt = teacher.encode_x(batch.x), teacher.encode_text(batch.text)
    return (_distance(student.encode_x(batch.x), tx, distance)
            + _distance(student.encode_text(batch.text), tt, distance))
