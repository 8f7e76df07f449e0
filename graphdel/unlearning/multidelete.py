"""MultiDelete (Cheng & Amiri, "MultiDelete: Multimodal Machine Unlearning", ECCV 2024,
arXiv:2311.12047), as specified in docs/design.md.

Update: ``f'`` starts as a copy of ``f``; each step draws one Df batch and one Dr batch of the same size
and minimises

    L = L_MD + alpha * L_MKR + beta * L_UKR

with the standalone terms of :mod:`graphdel.unlearning.losses`:

* L_MD  (modality decoupling) on the Df batch: ``d(f'.fuse(x_i, t_i), f.fuse(x_i, t_j))``, ``t_j`` from a
  derangement of the Df batch (``negatives="df"``; item-aware: never another caption of the pair's own
  item) or from the Dr batch (``"dr"``); or its similarity matrix form on cosine ``sim``
  (``representation="similarity"``) for fusion-free models. A Df batch of fewer than 2 distinct items (a
  one-pair request) has no unrelated text of its own: ``t_j`` then comes from the Dr batch, which for such a
  batch has ``batch_size`` pairs (:meth:`~graphdel.unlearning.base.Trainer.paired_batches`);
* L_MKR (multimodal knowledge retention) on the Dr batch: ``d(f'.fuse(x, t), f.fuse(x, t))``;
* L_UKR (unimodal knowledge retention) on the Df batch (``ukr_split="df"``, the paper's choice), the Dr
  batch (``"dr"``) or the mean of both (``"both"``).

Engine defaults (the paper's form): alpha = beta = 1, d = MSE, Adam lr 1e-4, batch 32, up to 8 epochs over
Df, gradient norm clipped at 1, BatchNorm statistics and ``logit_scale`` frozen. Stopping and checkpoint
selection use the calibration split (never test): stop when the Df score (pool-64 MRR), averaged over the
last 2 evaluations, has come down to the calibration score; keep the checkpoint closest to calibration,
ties (within 0.02) broken by the retain score. See :mod:`graphdel.unlearning.selection`.

Model recommendations: a model may recommend its own settings (``unlearning_defaults``, applied by
:func:`graphdel.api.with_model_defaults`; the caller's ``--set`` wins): the molecule and image models
decouple on cosine similarities (``representation="similarity"``) and move each deleted pair to a rank
drawn from the calibration pairs' (``similarity_target="calibrated"``), both with beta 2.5 on the Dr batch
alone, the molecule model with alpha 1 and only its text projection updated (``trainable``), the image model
with alpha 4 at lr 1e-3; the KG model takes 2 epochs of 128-triple batches.
Dropout is off in ``f'`` during updates (``dropout=False``) so that every term is exactly zero at f' = f.

Cost of a step: each model encodes each batch once (:class:`~graphdel.unlearning.losses.StepEncodings`;
the terms are standalone functions and would otherwise re-encode the same items up to four times), the
teacher's Df item embeddings are computed once per run, and a model whose frozen bottom layers can be
shared with the teacher (``share_frozen_states``, the molecule model under ``trainable``) computes them
once per molecule (and, when its whole item side is frozen, each molecule's item embedding once, kept for
the next run on the same item side in its item-embedding index with ``GRAPHDEL_ITEM_INDEX=on``,
:mod:`graphdel.models.frozen_items`).

What was measured on the embedded corpus (5% of the training molecules, seed 0;
docs/experiments/2026-11-28-multidelete-molecule-recommendation.md): with the engine's defaults the Df, retain, calibration and test scores fall
together whatever the distance, negatives, optimiser, Dr batch size, gradient projection (PCGrad on one
Dr batch, or the span of 64 Dr batch gradients) or Fisher-ratio mask (``mask_fraction``); dropout noise in
the retention terms was part of that. The molecule model's recommendation separates them (on three
requests Df within 0.026-0.044 of Retrain's, test within 0.009-0.020 of the original's) in 16-24 epochs of
Df, about 4% of Retrain's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from graphdel.models.protocol import PairBatch
from graphdel.unlearning.base import GradientConfig, GradientMethod, Trainer, check, register_method, set_update_mode
from graphdel.errors import ConfigError
from graphdel.unlearning.link_term import LinkForgetting
from graphdel.unlearning.losses import (StepEncodings, exceedance, forget_loss, modality_decoupling,
                                       multimodal_retention, pair_similarity_retention,
                                       quantile_matched_targets, similarity_at_share, unimodal_retention)
from graphdel.unlearning.masks import fisher_diagonal, importance_ratio, top_fraction_mask
from graphdel.evaluation.embed import embed_pairs


@dataclass
class Terms:
    """Ablation switches: which MultiDelete terms are used (``terms.md=false`` etc.).

    Attributes:
        md: use L_MD, modality decoupling (the forgetting term).
        mkr: use L_MKR, multimodal knowledge retention.
        ukr: use L_UKR, unimodal knowledge retention.
    """

    md: bool = True
    mkr: bool = True
    ukr: bool = True


@dataclass
class MultiDeleteConfig(GradientConfig):
    """MultiDelete hyperparameters (see the module docstring); the fields of
    :class:`~graphdel.unlearning.base.GradientConfig` (lr, epochs, batch_size, selection...) apply.

    Attributes:
        alpha: weight of L_MKR.
        near_weight: weight, relative to ``alpha``, of a second L_MKR on a batch of the retained pairs the model
            names nearest the deleted data (:meth:`~graphdel.models.protocol.ModalityModule.retain_neighbourhood`:
            a KG's retained triples that share an entity with a deleted one); 0 (default) or a model without
            such pairs: none.
        pair_weight: weight, relative to ``alpha``, of a second L_MKR on the Dr batch's own pairs only, the
            cosine similarity of each retained pair's graph and text
            (:func:`~graphdel.unlearning.losses.pair_similarity_retention`; ``representation`` ``similarity``
            or ``both``). Why: the matrix form of L_MKR weighs these B of its B² entries 1/B of the term, and
            under it MultiDelete lowered the retained pairs' own similarities with the deleted ones', where a
            retrained model keeps them (docs/experiments/2026-12-05-per-pair-against-calibration.md). 0
            (default): none.
        beta: weight of L_UKR.
        link_weight: weight of a forgetting term on the model's own link decoder
            (:meth:`~graphdel.models.protocol.ModalityModule.link_scores`; a KG's DistMult score): each
            deleted pair's margin over ``link_negatives`` random answers
            (:func:`~graphdel.unlearning.losses.link_margins`) is pushed down, by a hinge, to a target matched
            by quantile to the margins of the calibration pairs (validation when there is none; with their
            hidden mirror facts out of the graph, as the reference is scored), measured on ``f'`` before the
            first update (:func:`~graphdel.unlearning.losses.link_forgetting`). Why: L_MD moves the fused
            representation, which on a KG did not lower the decoder's score of the deleted facts. Use it
            with ``trainable`` restricted to the parameters each fact owns (the KG recommendation: the entity
            embeddings): through shared weights it lowered every fact's score with the deleted ones'. 0
            (default), or a model without a link decoder: no term.
        link_negatives: random answers each deleted fact's margin is measured against (the targets too).
        distance: ``mse`` | ``part_mse`` (each part of the fused representation the model declares,
            :meth:`~graphdel.models.protocol.ModalityModule.fused_parts`, weighted alike) | ``cosine`` | ``l1``.
        negatives: where the unrelated texts of L_MD come from: ``df`` (item-aware derangement of the Df
            batch; the matched Dr batch's texts for a Df batch of fewer than 2 distinct items) or ``dr``
            (texts of the matched Dr batch).
        ukr_split: the batch L_UKR is computed on: ``df``, ``dr`` or ``both`` (mean of the two).
        representation: ``fused`` (fusion module output), ``similarity`` (cosine similarity matrices,
            for fusion-free models) or ``both``; used by L_MD and L_MKR.
        similarity_target: L_MD similarity target, ``permuted`` (docs/design.md: ``S(X_f, T_pi)``),
            ``pairwise`` (only the diagonal moves, to the similarity of an unrelated text) or ``calibrated``
            (only the diagonal moves, each deleted pair to its own target: the similarity at which it would
            rank among never-trained distractor texts the way the calibration pairs rank, matched by
            quantile, :func:`~graphdel.unlearning.losses.rank_calibrated_targets`; the validation pairs
            stand in when there is no calibration split). See :func:`~graphdel.unlearning.losses.modality_decoupling`.
        terms: ``terms.md``, ``terms.mkr``, ``terms.ukr`` switch each term on/off.
        project_shared: remove from the L_MD gradient its component along the gradient of the same
            decoupling loss on the Dr batch (when they point the same way), so that the update acts on
            what is specific to Df rather than lowering every pair alike. Motivation measured on the
            embedded corpus: without it the Df and Dr-sample scores fall together.
        mask_fraction: if > 0, only this share of the weights is updated: those with the largest
            Df/Dr importance ratio ``F_df / (F_dr + mask_lambda * mean F_dr)`` (empirical diagonal Fisher of
            the training loss; :mod:`graphdel.unlearning.masks`), computed once on the original weights
            over all of Df and ``mask_retain_batches`` Dr batches. 0 (default) updates every weight.
        anchor_teacher: on (unlike the other gradient methods) because a stream of requests drifts without
            it: each request retained against the model the previous one produced, so every step's damage
            became the next step's knowledge. Chosen on validation data at the quick scale (20 requests,
            seed-0 stream): mean |Df gap to Retrain| + val drop over steps 5, 10, 20 of 0.113 against 0.241
            with the parent as teacher (docs/experiments/2026-12-03-stream-retention-teacher.md).
        replay: for a request that continues a chain of deletions, this many pairs of the earlier
            requests (``ctx.earlier_forget``) are drawn at every step and decoupled again (L_MD on them, added
            to the Df batch's); 0 turns it off. Why: retaining Dr towards the chain's original, which still
            knows the earlier requests' pairs, pulls some of them back, and without replay nothing pushes
            them away again. 32 was chosen on the default recipe's seed-2 stream (validation: mean over
            requests 10 and 20 of |union Df gap to Retrain| + val drop, 0.087 against 0.117 without replay,
            0.114 with 128) and then run on the seed-0 stream: union Df gap after 20 requests −0.003
            against +0.056 without (docs/experiments/2026-12-04-stream-replay.md and
            2026-12-04-stream-default-recipe.md). A first request is unchanged.
        target_distractors: with ``similarity_target="calibrated"``, the distractor texts drawn at every step
            that a deleted pair's target rank is counted among.
        match_target: with ``similarity_target="calibrated"``, quantile-match the deleted pairs to the
            calibration pairs weighted like the request (``UnlearningContext.calibration_weights``, as
            ``match_reference`` weighs the stopping reference); no weights for the request: all alike.
        mask_lambda: the damping of the importance ratio above (times the mean Dr Fisher).
        mask_retain_batches: Dr batches the Dr Fisher of the mask is estimated on.
    """

    lr: float = 1e-4
    epochs: int = 8
    batch_size: int = 32
    alpha: float = 1.0
    beta: float = 1.0
    distance: Literal["mse", "part_mse", "cosine", "l1"] = "mse"
    negatives: Literal["df", "dr"] = "df"
    ukr_split: Literal["df", "dr", "both"] = "df"
    representation: Literal["fused", "similarity", "both"] = "fused"
    similarity_target: Literal["permuted", "pairwise", "calibrated"] = "permuted"
    terms: Terms = field(default_factory=Terms)
    project_shared: bool = False
    anchor_teacher: bool = True
    replay: int = 32
    near_weight: float = 0.0
    pair_weight: float = 0.0
    link_weight: float = 0.0
    link_negatives: int = 256
    target_distractors: int = 256
    match_target: bool = False
    mask_fraction: float = 0.0
    mask_lambda: float = 0.1
    mask_retain_batches: int = 32
    dropout: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.mask_fraction <= 1, f"mask_fraction must be in [0, 1], got {self.mask_fraction}")
        check(self.mask_lambda >= 0, f"mask_lambda must be >= 0, got {self.mask_lambda}")
        check(self.mask_retain_batches >= 1, f"mask_retain_batches must be >= 1, got {self.mask_retain_batches}")
        check(self.link_weight >= 0, f"link_weight must be >= 0, got {self.link_weight}")
        check(self.pair_weight >= 0, f"pair_weight must be >= 0, got {self.pair_weight}")
        check(self.link_negatives >= 1, f"link_negatives must be >= 1, got {self.link_negatives}")
        check(self.replay >= 0, f"replay must be >= 0, got {self.replay}")
        check(self.target_distractors >= 2, f"target_distractors must be >= 2, got {self.target_distractors}")
        check(self.alpha >= 0 and self.beta >= 0, f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        check(self.terms.md or self.terms.mkr or self.terms.ukr, "at least one of terms.md/mkr/ukr must be on")


def multidelete_loss(student: Any, teacher: Any, df: PairBatch, dr: PairBatch, cfg: MultiDeleteConfig,
                     generator: Any = None, earlier: PairBatch | None = None,
                     pair_targets: Callable[[PairBatch], Tensor] | None = None,
                     near: PairBatch | None = None, link: Tensor | None = None) -> tuple[Any, dict[str, float]]:
    """``L_MD + alpha L_MKR + beta L_UKR`` on one Df batch and one Dr batch, and the terms as floats.

    ``earlier``: pairs of the chain's earlier requests (``cfg.replay``); their L_MD is added to the Df
    batch's (logged as ``md_replay``). ``pair_targets``: ``batch -> [B]`` target similarity of each of its
    pairs (``similarity_target="calibrated"``). ``near``: retained pairs near the deleted data, held by a
    second L_MKR of weight ``alpha * near_weight`` (logged as ``mkr_near``). With ``pair_weight``, L_MKR on
    the Dr pairs' own similarities is added with weight ``alpha * pair_weight`` (logged as ``mkr_pairs``).
    ``link``: the Df batch's link-forgetting term (scalar,
    :func:`~graphdel.unlearning.losses.link_forgetting`), added with weight ``link_weight`` (logged as
    ``link``); ``None``: no such term."""
    total, terms = 0.0, {}
    if link is not None and cfg.link_weight > 0:
        total = total + cfg.link_weight * link
        terms["link"] = float(link.detach())
    if cfg.terms.md:
        targets_of = pair_targets if cfg.similarity_target == "calibrated" else (lambda batch: None)
        md = modality_decoupling(student, teacher, df, negatives=cfg.negatives, dr=dr,
                                 representation=cfg.representation, distance=cfg.distance, generator=generator,
                                 similarity_target=cfg.similarity_target, pair_targets=targets_of(df))
        terms["md"] = float(md.detach())
        if earlier is not None:
            replayed = modality_decoupling(student, teacher, earlier, negatives=cfg.negatives, dr=dr,
                                           representation=cfg.representation, distance=cfg.distance,
                                           generator=generator, similarity_target=cfg.similarity_target,
                                           pair_targets=targets_of(earlier))
            terms["md_replay"] = float(replayed.detach())
            md = md + replayed
        if cfg.project_shared:
            md_dr = modality_decoupling(student, teacher, dr, negatives="df", representation=cfg.representation,
                                        distance=cfg.distance, generator=generator,
                                        similarity_target=cfg.similarity_target)
            md = df_specific_surrogate(student, md, md_dr)
        total = total + md
    if cfg.terms.mkr:
        mkr = multimodal_retention(student, teacher, dr, representation=cfg.representation, distance=cfg.distance)
        if near is not None and cfg.near_weight > 0:
            mkr_near = multimodal_retention(student, teacher, near, representation=cfg.representation,
                                            distance=cfg.distance)
            total = total + cfg.alpha * cfg.near_weight * mkr_near
            terms["mkr_near"] = float(mkr_near.detach())
        total = total + cfg.alpha * mkr
        terms["mkr"] = float(mkr.detach())
        if cfg.pair_weight > 0:
            mkr_pairs = pair_similarity_retention(student, teacher, dr, distance=cfg.distance)
            total = total + cfg.alpha * cfg.pair_weight * mkr_pairs
            terms["mkr_pairs"] = float(mkr_pairs.detach())
    if cfg.terms.ukr:
        if cfg.ukr_split == "df":
            ukr = unimodal_retention(student, teacher, df, distance=cfg.distance)
        elif cfg.ukr_split == "dr":
            ukr = unimodal_retention(student, teacher, dr, distance=cfg.distance)
        else:
            ukr = 0.5 * (unimodal_retention(student, teacher, df, distance=cfg.distance)
                         + unimodal_retention(student, teacher, dr, distance=cfg.distance))
        total = total + cfg.beta * ukr
        terms["ukr"] = float(ukr.detach())
    return total, terms


def df_specific_surrogate(model: Any, loss_df: Any, loss_dr: Any) -> Any:
    """A scalar whose gradient is ``g_df - max(0, <g_df, g_dr>) / |g_dr|^2 * g_dr``.

    ``g_df`` and ``g_dr`` are the gradients of the same loss on a Df and a Dr batch over the trainable
    parameters: the part of the Df update that would move retained pairs alike is projected out (as in
    PCGrad, Yu et al. 2020). The surrogate's value is not a loss; log ``loss_df`` instead.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    # retain_graph: the other terms of the step may reuse these embeddings (StepEncodings)
    g_df = torch.autograd.grad(loss_df, params, allow_unused=True, retain_graph=True)
    g_dr = torch.autograd.grad(loss_dr, params, allow_unused=True, retain_graph=True)
    g_df = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_df)]
    g_dr = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_dr)]
    dot = sum((a * b).sum() for a, b in zip(g_df, g_dr))
    norm = sum((b * b).sum() for b in g_dr)
    coef = (dot / norm).clamp(min=0.0) if float(norm) > 0 else dot.new_zeros(())
    return sum((p * (a - coef * b).detach()).sum() for p, a, b in zip(params, g_df, g_dr))


@register_method
class MultiDelete(GradientMethod):
    __doc__ = __doc__
    name = "multidelete"
    summary = "Decouple deleted pairs towards unrelated pairs while keeping multimodal and unimodal knowledge."
    citation = "Cheng & Amiri, MultiDelete: Multimodal Machine Unlearning, ECCV 2024 (arXiv:2311.12047)"
    Config = MultiDeleteConfig

    def setup(self, trainer: Trainer, cfg: MultiDeleteConfig) -> None:
        """With ``mask_fraction > 0``: restrict updates to the ``mask_fraction`` of weights with the highest
        Df/Dr Fisher importance ratio (Df batches vs ``mask_retain_batches`` Dr samples); logs the mask size.
        With ``representation="similarity"`` (no term fuses) the update batches carry no token states
        (:meth:`~graphdel.unlearning.trainer.Trainer.draw_without_tokens`). Also embeds Df once with the
        frozen teacher (its item side is the costly encoder), so that steps
        look the teacher's Df embeddings up instead of recomputing them."""
        # checked here, not in the config: `--set` applies one key at a time, in any order
        if cfg.pair_weight > 0 and cfg.representation == "fused":
            raise ConfigError("pair_weight holds the retained pairs' cosine similarities: it needs "
                              "representation 'similarity' or 'both', got 'fused'")
        emb = embed_pairs(trainer.teacher, trainer.ctx.forget, batch_size=cfg.eval_batch_size, device=trainer.device)
        self._teacher_df_x = emb.z_x.to(trainer.device)
        self._teacher_df_pos = {int(r): i for i, r in enumerate(emb.rows.tolist())}
        if cfg.similarity_target == "calibrated":
            self._pair_target = self._calibrated_targets(trainer, cfg, emb)
        self._link = LinkForgetting.prepare(trainer, cfg.link_negatives, cfg.eval_batch_size) \
            if cfg.link_weight > 0 else None
        self._near = None
        if cfg.near_weight > 0 and cfg.terms.mkr:
            self._near = trainer.student.retain_neighbourhood(trainer.ctx.forget, trainer.ctx.retain)
            trainer.log.append({"phase": "near", "pairs": 0 if self._near is None else len(self._near)})
        if cfg.mask_fraction > 0:
            self._restrict_to_mask(trainer, cfg)  # before the view below: the mask's training loss fuses
        if cfg.representation == "similarity":  # no term fuses: the captions' token states go unread
            trainer.draw_without_tokens()

    def _restrict_to_mask(self, trainer: Trainer, cfg: MultiDeleteConfig) -> None:
        """The ``mask_fraction`` mask of :meth:`setup`, set on ``trainer`` and logged."""
        df_batches = list(trainer.forget_batches())
        if not df_batches:  # an empty Df: no importance to estimate, nothing masked
            trainer.log.append({"phase": "mask", "note": "Df is empty: every weight is updated"})
            return
        set_update_mode(trainer.student, dropout=cfg.dropout)
        # a Df batch of fewer than 2 distinct items is ranked against a Dr sample: its in-batch loss alone
        # has zero gradient, so its Fisher would be zero everywhere (forget_loss)
        f_df = fisher_diagonal(trainer.student, trainer.params, df_batches,
                               lambda b: forget_loss(trainer.student, b, trainer.outside_negatives(b)))
        f_dr = fisher_diagonal(trainer.student, trainer.params,
                               (trainer.retain_sample(cfg.batch_size) for _ in range(cfg.mask_retain_batches)))
        trainer.grad_mask = top_fraction_mask(importance_ratio(f_df, f_dr, cfg.mask_lambda), cfg.mask_fraction)
        kept = sum(int(m.sum()) for m in trainer.grad_mask.values())
        total = sum(m.numel() for m in trainer.grad_mask.values())
        trainer.log.append({"phase": "mask", "masked_in_weights": kept, "total_weights": total})

    def _calibrated_targets(self, trainer: Trainer, cfg: MultiDeleteConfig, df_emb: Any) -> dict[int, float]:
        """``{corpus row: target share}`` of every pair L_MD may decouple (Df, and the chain's earlier
        requests' pairs when they are replayed): under the teacher, each pair's share of distractor texts
        (the context's never-trained distractor set, other items only) ranked above its own text is
        quantile-matched to the same share of the calibration pairs (validation when there is none; never
        test; :func:`~graphdel.unlearning.losses.quantile_matched_targets`), weighted like the request with
        ``match_target`` (``UnlearningContext.calibration_weights``). Each step turns a pair's share
        back into a similarity against the student's own similarities to a fresh distractor sample
        (:meth:`_targets_of`), so that the target follows the item embedding as it moves. Logged as one
        ``phase="targets"`` record."""
        ctx = trainer.ctx
        reference, name = (ctx.calibration, "calibration") if ctx.calibration is not None else (ctx.val, "val")
        if reference is None or len(reference) == 0:
            raise ConfigError("similarity_target='calibrated' needs a calibration (or validation) split to "
                              "draw the deleted pairs' target ranks from; none was given")
        self._distractors = ctx.distractors if ctx.distractors is not None else reference
        embed = lambda pairs: embed_pairs(trainer.teacher, pairs, batch_size=cfg.eval_batch_size,  # noqa: E731
                                          device=trainer.device)
        distractors = embed(self._distractors)

        def share_above(emb: Any) -> Tensor:
            others = emb.z_x @ distractors.z_t.t()
            return exceedance((emb.z_x * emb.z_t).sum(-1), others, emb.items[:, None] != distractors.items[None, :])

        parts = [df_emb]
        if cfg.replay > 0 and ctx.earlier_forget is not None and len(ctx.earlier_forget) > 0:
            parts.append(embed(ctx.earlier_forget))
        rows = torch.cat([p.rows for p in parts])
        share = torch.cat([share_above(p) for p in parts])
        reference_emb = embed(reference)
        weights = None
        matched = ctx.calibration_weights if cfg.match_target and name == "calibration" else None
        if matched is not None:  # the target drawn like the request, as match_reference draws the reference
            weights = torch.tensor([matched.weights.get(int(r), 0.0) for r in reference_emb.rows.tolist()])
        targets = quantile_matched_targets(share, share_above(reference_emb), weights)
        trainer.log.append({"phase": "targets", "reference": name, "pairs": int(rows.numel()),
                            "weighted": weights is not None,
                            "share_above_mean": float(share.mean()), "target_share_mean": float(targets.mean())})
        return {int(r): float(t) for r, t in zip(rows.tolist(), targets.tolist())}

    def _targets_of(self, trainer: Trainer, student: StepEncodings, batch: PairBatch,
                    cfg: MultiDeleteConfig) -> Tensor:
        """``[B]`` target similarity of each pair of ``batch``: the similarity at which its item would have
        its target share (:meth:`_calibrated_targets`) of ``cfg.target_distractors`` distractor texts,
        drawn afresh and encoded by the student as it is now, above its own text."""
        share = torch.tensor([self._pair_target[int(r)] for r in batch.rows.tolist()], device=trainer.device)
        # texts only where the sampler can (PairSet.sample_texts): the distractors' items are never encoded
        draw = getattr(self._distractors, "sample_texts", self._distractors.sample)
        sample = draw(min(cfg.target_distractors, len(self._distractors)), trainer.generator)
        sample = sample.to(trainer.device)
        # encoded through the step's memo, with their graphs (L_MD reuses them), and detached here
        z_x, z_t = student.encode_x(batch.x).detach(), student.encode_text(batch.text).detach()
        with torch.no_grad():
            others = z_x @ student.model.encode_text(sample.text).t()
        items = batch.items if batch.items is not None else batch.rows
        sample_items = sample.items if sample.items is not None else sample.rows
        valid = items[:, None] != sample_items[None, :]
        return similarity_at_share((z_x * z_t).sum(-1), others, valid, share)

    def loss(self, trainer: Trainer, df: PairBatch, dr: PairBatch, cfg: MultiDeleteConfig):
        """``L_MD + alpha L_MKR + beta L_UKR`` of one step (:func:`multidelete_loss`); each model encodes
        each batch once per step (:class:`~graphdel.unlearning.losses.StepEncodings`)."""
        teacher = StepEncodings(trainer.teacher)
        index = torch.tensor([self._teacher_df_pos[int(r)] for r in df.rows.tolist()], device=trainer.device)
        teacher.provide_x(df.x, self._teacher_df_x[index])
        earlier = trainer.earlier_sample(cfg.replay) if cfg.replay > 0 and cfg.terms.md else None
        student = StepEncodings(trainer.student)
        near = None
        if self._near is not None and len(self._near) > 0:
            near = self._near.sample(min(cfg.batch_size, len(self._near)), trainer.generator).to(trainer.device)
        with trainer.student.step_states():  # one backward pass follows (Trainer.step)
            return multidelete_loss(student, teacher, df, dr, cfg, trainer.generator, earlier,
                                    pair_targets=lambda batch: self._targets_of(trainer, student, batch, cfg),
                                    near=near, link=self._link.term(trainer.student, df) if self._link else None)
