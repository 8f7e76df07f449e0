"""The knowledge-graph joint model: a relational GNN over the training graph, the text encoder over entity
descriptions, one joint-model protocol, and a DistMult triple decoder.

Mapping a KG onto the engine's pairs (why it looks like this)
-------------------------------------------------------------
The engine (:mod:`graphdel.unlearning`) deletes *pairs* ``(x, t)`` and builds "unrelated" pairs by
deranging the texts of a batch. In a KG the deletable unit is a triple, so the KG training view
(:func:`graphdel.data.kg.with_triple_pairs`) has one pair per triple besides one per entity:

* a **triple** ``(h, r, t)`` is the pair ``x = (h, r)`` (the link-prediction query), text = *the tail
  entity*: its description, with the entity's index attached (:class:`KGText`);
* an **entity–text pair** ``ent:e`` is the pair ``x = (e, described_by)``, text = e's description: entity–text
  alignment is one more (pseudo-)relation.

Then the engine's derangement of texts *is* tail corruption: ``f.fuse((h, r), tail_j)`` is the original
model's view of ``(h, r, t_j)`` with a random tail and its description, exactly the target MultiDelete's
decoupling asks for ("a deleted triple must look to f' like a corrupted one looks to f"); for an entity
pair it is a random description. No KG code enters the engine and no protocol hook is needed for
negatives: :meth:`KGText.select` reorders the attached entity with the description, and the engine never
looks inside text features.

Protocol realisation (``S`` = entity states of the GNN over the model's graph, ``z_r`` = relation states):

* ``encode_x((h, r))`` = projection of the DistMult query ``S_h * z_r``;
* ``encode_text(t)`` = projection of the description's sentence embedding (text only: unimodal);
* ``fuse((h, r), t)`` = ``[cross-attention of the description's tokens to (S_h, z_r, S_t) ;
  S_h * z_r * S_t]``: the fusion module's output concatenated with the DistMult interaction vector,
  whose sum *is* the decoder's triple score. Distances on ``fuse`` (MultiDelete's L_MD and L_MKR) thus act
  on the link-prediction score directly.
* ``sim``/``logits``/``match_logits`` as in :class:`~graphdel.models.joint.JointModel`.

Training loss: 1-N link prediction (cross-entropy over all entities, tails of ``(h, r, ?)`` and heads via
the inverse relation, label smoothing) + ``text_weight`` x symmetric InfoNCE between ``encode_x`` and
``encode_text`` + ``matching_weight`` x matching (true tail vs a random in-batch tail).

The graph is state: the model holds its training triples as buffers (:class:`KGGraph`) and the GNN passes
messages only along them. :meth:`KGTextModel.fit_structure` builds the graph from the training pairs
(the training loop calls it; Retrain therefore builds it from Dr only); :meth:`KGTextModel.forget_structure`
removes the triples of a pair set (the engine calls it on ``f'`` before any update; ``api.forget`` calls it
again on the result), so no unlearned model ever passes messages along a deleted edge.

GNNDelete (:mod:`graphdel.unlearning.gnndelete`) adds one
:class:`~graphdel.encoders.relational.DeletionOperator` per request (:meth:`KGTextModel.deletion_parameters`):
a map per GNN layer on the states of the nodes within that many hops of the deleted data. The operators are saved with the weights and accumulate over
sequential requests; :meth:`KGTextModel.deletion_neighbourhood` gives the states its neighbourhood-influence
term keeps.

Config (``ModelConfig.extra``): ``num_entities``, ``num_relations`` (set from the data), ``dim`` (128),
``gnn_layers`` (1; 0 = a plain text-free DistMult when ``text_weight = matching_weight = 0``),
``gnn_dropout`` (0.1), ``lp_weight`` (1), ``text_weight`` (0.5), ``label_smoothing`` (0.1),
``lp_negatives`` (0 = full 1-N; the default recipe uses 2048, see :meth:`KGTextModel._lp_loss`),
``fusion_text_tokens`` (16: description tokens the fusion module reads), ``matching_rows`` (256: rows of a
training batch that get the matching loss; the fusion module is the costly part of a step on a CPU).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdel.data.kg_pairs import KGText, triples_of  # KGText: importable from here as before
from graphdel.encoders.relational import (DeletionOperator, DeletionOperators, RelationalEncoder,
                                          RelationalEncoderConfig, k_hop_masks)
from graphdel.models.joint import JointModel, ModelConfig, contrastive_loss
from graphdel.models.kg_structure import KGGraph, KGStructure  # KGGraph: importable from here as before
from graphdel.models.protocol import PairBatch


class KGTextModel(KGStructure, JointModel):
    """KG–text joint model (see the module docstring)."""

    modality = "kg"

    #: Recommended MultiDelete settings (see :func:`graphdel.api.with_model_defaults`). A step costs a
    #: full-graph GNN pass (student and teacher) whatever the batch size, so batches are 4x the engine's
    #: default. Measured on ``wordnet`` (2% of the training triples, seed 0; 2 CPU cores): removing Df's
    #: edges from the message passing (``forget_structure``, before any step) does most of the forgetting;
    #: the updates then barely move Df (0.518 after 1 epoch at lr 1e-4, 0.514 after 2 at lr 1e-3, against
    #: Retrain's 0.477) and never reach the calibration score, so with the engine's defaults (8 epochs of
    #: 27 steps) MultiDelete took 81% of Retrain's time for nothing more; 2 epochs of 7 steps take ~7%.
    #: ``min_epochs=0``: a request whose relation or entities the graph no longer holds is already at the
    #: calibration score once :meth:`forget_structure` has removed them and re-drawn their embeddings; an
    #: update could then only move what the remaining facts taught. ``distance="part_mse"``: plain MSE on
    #: :meth:`fuse` is ~5x dominated by the fusion module's part (RMS ~1) over the DistMult interaction (RMS
    #: ~0.1-0.2) that ranks the links; weighing the two alike, lr 3e-3 came closest to calibration for the least
    #: validation and collateral loss on the 2% request of ``wordnet`` (seed 0; calibration, validation and
    #: collateral only: |Df - calibration| + drops 0.033 against 0.038 for plain MSE at 1e-3 and 0.040 at
    #: 3e-3). ``near_weight=1``: a second L_MKR on retained triples that share an entity with a deleted one
    #: (:meth:`retain_neighbourhood`), 0.027 against 0.033 by the same criterion, validation up 0.005;
    #: docs/experiments/2026-12-04-kg-multidelete-lr.md. ``link_weight=1`` with ``trainable=encoder.entity``:
    #: the fused-representation terms alone left a closed request's Df above the calibration reference (they
    #: even raised its score), so a hinge on the decoder's own score (:meth:`link_scores`) pushes each deleted
    #: triple's margin over random tails down to a calibration triple's. Updating every weight, it lowered
    #: Df and everything else together at any weight tried (0.03-3: validation 0.26 -> 0.13-0.23); updating
    #: only the entity embeddings, it moved Df alone. On ``wordnet``'s seed-0 closed request (2% + mirrors;
    #: calibration, validation and collateral only): |Df - closed calibration| + validation and collateral
    #: drops 0.036 against 0.105 for the earlier recommendation and 0.086 for entity-only updates without
    #: the term (weights 0.3 / 3: 0.036 / 0.039); docs/experiments/2026-12-04-kg-link-forgetting.md.
    #: ``select_rule="sum"``: the tolerance rule kept a checkpoint 0.043 above the reference over one 0.026
    #: below it for 0.0015 of retain score (docs/experiments/2026-12-05-kg-selection.md). ``eval_steps=4``,
    #: ``min_steps=24``: one 11-step WordNet epoch moved Df by ~0.065, and HPO's 363 triples got 6 steps;
    #: evaluating every 4 steps with at least 24 steps, the kept checkpoint's calibration gap fell from
    #: 0.027 / 0.027 / 0.043 / 0.048 to 0.007 / 0.011 / 0.007 / 0.002 on the four requests that rule was
    #: checked on, no retain score below the untouched copy's
    #: (docs/experiments/2026-12-05-kg-step-evaluations.md).
    unlearning_defaults = {"multidelete": {"batch_size": 128, "epochs": 2, "lr": 3e-3, "min_epochs": 0,
                                           "distance": "part_mse", "near_weight": 1.0, "link_weight": 1.0,
                                           "trainable": "encoder.entity", "select_rule": "sum",
                                           "eval_steps": 4, "min_steps": 24}}

    def __init__(self, config: ModelConfig) -> None:
        e = config.extra
        if "num_entities" not in e or "num_relations" not in e:
            raise ValueError("a kg model needs model.extra num_entities and num_relations (set from the data)")
        dim = int(e.get("dim", 128))
        super().__init__(config, dim)
        self.num_entities, self.num_relations = int(e["num_entities"]), int(e["num_relations"])
        self.described_by = 2 * self.num_relations
        self.text_init = bool(e.get("text_init", True))
        self.encoder = RelationalEncoder(RelationalEncoderConfig(
            self.num_entities, self.num_relations, extra_relations=1, dim=dim,
            layers=int(e.get("gnn_layers", 1)), dropout=float(e.get("gnn_dropout", 0.1)),
            feature_dim=self.text_encoder.width if self.text_init else 0))
        # Sentence embeddings of the training entity descriptions, the entity encoder's fixed input (zeros
        # for entities without a description in the training pairs). Stored training data like the graph:
        # fit_structure fills it, forget_structure erases deleted descriptions. float16 halves the file.
        self.register_buffer("entity_text", torch.zeros(self.num_entities if self.text_init else 0,
                                                        self.text_encoder.width, dtype=torch.float16))
        self.match_head = nn.Linear(config.fusion_dim + dim, 1)
        self.graph = KGGraph()
        # GNNDelete's deletion operators, one per request applied by it (none until then)
        self.deletion = DeletionOperators()
        self._cache: tuple[Any, tuple[Tensor, Tensor]] | None = None
        self._step_memo: dict[Any, tuple[Tensor, Tensor]] | None = None  # set within step_states

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs saved before per-request operators held one operator on the final states
        # (``deletion_operator.weight [d, d]``) and its mask (``deletion_mask [N]``): the same map as a
        # "final" DeletionOperator, so it is read as one (and dropped when it never acted on a node).
        weight = state_dict.pop(prefix + "deletion_operator.weight", None)
        mask = state_dict.pop(prefix + "deletion_mask", None)
        legacy = weight is not None and mask is not None and bool(mask.any())
        if legacy and f"{prefix}deletion.0.weight" not in state_dict:
            state_dict[f"{prefix}deletion.0.weight"] = weight.unsqueeze(0)
            state_dict[f"{prefix}deletion.0.position"] = torch.tensor([len(self.encoder.convs)])
            state_dict[f"{prefix}deletion.0.mask"] = mask.bool().unsqueeze(0)
            state_dict[f"{prefix}deletion.0.seed"] = mask.bool()  # the seeds were not saved: the whole mask
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- recipe defaults (api.train applies them to fields left at the generic defaults) -----------
    @classmethod
    def default_configs(cls, quick: bool = False) -> tuple[dict, dict]:
        """The KG recipe's defaults ``(model fields, training fields)`` (``quick``: fewer epochs), applied by
        :func:`graphdel.api.train` to the fields a caller left at the generic defaults."""
        model = {"embed_dim": 128, "fusion_dim": 128, "fusion_heads": 4, "matching_weight": 0.5,
                 "extra": {"lp_negatives": 2048}}
        train = {"epochs": 6 if quick else 30, "batch_size": 1024, "lr": 5e-3, "patience": 3}
        return model, train

    def deletion_parameters(self, sampler, kind: str = "per_layer") -> list[nn.Parameter]:
        """GNNDelete hook: add a deletion operator for the request ``sampler`` (Df) and return its parameters.

        Its seeds are the deleted data's own entities: the endpoints of the deleted triples and the
        entities whose descriptions the request deletes. With ``kind="per_layer"`` (GNNDelete as published)
        it holds one map per GNN layer ``l = 1..L``, acting on the states after layer ``l`` of the entities
        within ``l`` hops of the seeds (a model without GNN layers gets one map on its input embeddings,
        acting on the seeds). ``kind="final"`` is the earlier adaptation, kept for comparison: one map on
        the final states of the entities within 1 hop. Hops are counted in the model's current graph
        (``f'`` has already dropped the deleted triples); the deleted edges join two seeds, so they would
        not change the sets. The operators of earlier requests stay, with their masks.

        Raises:
            ValueError: an unknown ``kind``.
        """
        layers = len(self.encoder.convs)
        if kind == "per_layer":
            positions = list(range(1, layers + 1)) or [0]
            hops = positions
        elif kind == "final":
            positions, hops = [layers], [1]
        else:
            raise ValueError(f"unknown deletion operator kind {kind!r}; valid: per_layer, final")
        seeds = self.request_entities(sampler)
        seed_mask = torch.zeros(self.num_entities, dtype=torch.bool)
        seed_mask[seeds] = True
        ei, _ = self.edges()
        masks = k_hop_masks(seeds, ei, self.num_entities, hops)
        device = self.entity_text.device
        op = DeletionOperator(torch.tensor(positions), masks, seed_mask, self.encoder.config.dim).to(device)
        self.deletion.append(op)
        return list(op.parameters())

    def deletion_neighbourhood(self) -> Tensor:
        """GNNDelete's neighbourhood-influence view ``[M, d]``: the states, with every operator applied, of
        the entities the newest operator acts on at each of its positions, except its seeds (their states
        are what the deleted-edge consistency term moves), positions in order. Gradients reach the
        operators.

        Raises:
            ValueError: the model has no deletion operator.
        """
        if len(self.deletion) == 0:
            raise ValueError("the model has no deletion operator (deletion_parameters installs one)")
        op = self.deletion[-1]
        ei, et = self.edges()
        _, _, states = self.encoder(ei, et, self.entity_text if self.text_init else None, self.deletion,
                                    positions=op.position.tolist())
        keep = op.mask & ~op.seed.unsqueeze(0)
        return torch.cat([h[k] for h, k in zip(states, keep)])

    # -- the protocol --------------------------------------------------------------------------------
    def item_states(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, 2]`` long ``(head, relation)`` -> ``(tokens [B, 3, d], mask [B, 3], pooled [B, d])``:
        tokens ``(h, r, h * r)`` for the fusion module and the pooled state ``h * r``."""
        s, z = self.entity_states()
        h, r = s[x[:, 0]], z[x[:, 1]]
        tokens = torch.stack([h, r, h * r], dim=1)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device), h * r

    def encode_x(self, x: Tensor) -> Tensor:
        """``x [B, 2]`` long ``(head, relation)`` -> ``[B, embed_dim]`` normalised item embeddings
        (projection of ``h * r``)."""
        s, z = self.entity_states()
        return self.x_projection(s[x[:, 0]] * z[x[:, 1]])

    def _fuse(self, s: Tensor, z: Tensor, x: Tensor, text: KGText) -> Tensor:
        h, r, t = s[x[:, 0]], z[x[:, 1]], s[text.entity]
        tokens = torch.stack([h, r, t], dim=1)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        text_tokens, text_mask, _ = self.text_encoder(text)
        k = int(self.config.extra.get("fusion_text_tokens", 16))
        fused = self.fusion(text_tokens[:, :k], text_mask[:, :k], tokens, mask)
        return torch.cat([fused, h * r * t], dim=1)

    def fused_parts(self) -> tuple[int, int]:
        """``(fusion_dim, dim)``: the fusion module's output, then the DistMult interaction ``h * r * t``."""
        return (self.config.fusion_dim, int(self.encoder.config.dim))

    def fuse(self, x: Tensor, text: KGText, pairs: Tensor | None = None) -> Tensor:
        """``x [B, 2]`` long and ``B`` texts -> the fused representation ``[B, fusion_dim]``; with ``pairs
        [P, 2]`` long, ``[P, fusion_dim]`` of (x of ``pairs[k, 0]``, text of ``pairs[k, 1]``) (a KG fusion
        call is three memory positions per pair, so nothing is shared)."""
        if pairs is not None:
            x, text = x[pairs[:, 0]], text.select(pairs[:, 1])
        s, z = self.entity_states()
        return self._fuse(s, z, x, text)

    # -- link prediction -----------------------------------------------------------------------------
    def score_queries(self, heads: Tensor, relations: Tensor) -> Tensor:
        """``[B, N]`` DistMult scores of ``(heads_i, relations_i, e)`` for every entity ``e``
        (``relations >= R`` are inverse relations: head prediction)."""
        s, z = self.entity_states()
        return (s[heads] * z[relations]) @ s.t()

    def score_triples(self, triples: Tensor) -> Tensor:
        """``[T]`` DistMult scores of ``(h, r, t)`` triples ``[T, 3]``."""
        s, z = self.entity_states()
        return (s[triples[:, 0]] * z[triples[:, 1]] * s[triples[:, 2]]).sum(-1)

    def link_scores(self, batch: PairBatch, negatives: int,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """DistMult logits of the batch's triples in both directions and of corrupted ones (MultiDelete's
        ``link_weight`` term; :meth:`~graphdel.models.protocol.ModalityModule.link_scores`).

        For each triple pair ``(h, r, t)`` of ``batch`` (entity-description pairs are skipped): the tail
        query ``(h, r, ?)`` and the head query ``(t, r + R, ?)``, as the filtered MRR ranks them. Returns
        ``(rows [F], scores [F], corrupted [F, negatives])`` with ``F = 2 x triples``: the true answer's
        logit, and those of ``negatives`` entities drawn uniformly with ``generator``, shared by the batch's
        queries (one matrix product; a draw hitting a true answer barely moves the estimate)."""
        s, z = self.entity_states()
        is_triple = batch.x[:, 1] < self.num_relations
        rows = is_triple.nonzero().flatten()
        heads, relations, tails = batch.x[rows, 0], batch.x[rows, 1], batch.text.entity[rows]
        queries = torch.cat([s[heads] * z[relations], s[tails] * z[relations + self.num_relations]])  # [F, d]
        answers = torch.cat([tails, heads])
        drawn = torch.randint(self.num_entities, (negatives,), generator=generator).to(s.device)
        scores = (queries * s[answers]).sum(-1)
        return torch.cat([rows, rows]), scores, queries @ s[drawn].t()

    def _lp_loss(self, s: Tensor, z: Tensor, x: Tensor, tails: Tensor, reduction: str = "mean") -> Tensor:
        """Cross-entropy of the true tail of ``(h, r, ?)`` and the true head (``(t, r + R, ?)``) among all
        entities, or, with ``extra["lp_negatives"] = k > 0`` during training, among the batch's true
        entities plus ``k`` entities drawn uniformly (a sampled softmax: ~N/k times cheaper on a CPU)."""
        smoothing = float(self.config.extra.get("label_smoothing", 0.1))
        k = int(self.config.extra.get("lp_negatives", 0))
        heads = x[:, 0]
        if self.training and 0 < k < self.num_entities:
            drawn = torch.randint(self.num_entities, (k,), device=s.device)
            cand, inv = torch.unique(torch.cat([tails, heads, drawn]), return_inverse=True)
            t_label, h_label = inv[:tails.numel()], inv[tails.numel():tails.numel() + heads.numel()]
            targets = s[cand]
        else:
            t_label, h_label, targets = tails, heads, s
        tail_logits = (s[heads] * z[x[:, 1]]) @ targets.t()
        head_logits = (s[tails] * z[x[:, 1] + self.num_relations]) @ targets.t()
        loss = 0.5 * (F.cross_entropy(tail_logits, t_label, label_smoothing=smoothing, reduction="none")
                      + F.cross_entropy(head_logits, h_label, label_smoothing=smoothing, reduction="none"))
        return loss.mean() if reduction == "mean" else loss

    def _positives(self, x: Tensor, text: KGText) -> Tensor:
        same_query = (x[:, None, :] == x[None, :, :]).all(-1)
        return same_query | (text.entity[:, None] == text.entity[None, :])

    def loss_terms(self, batch: PairBatch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The training loss of a batch and its parts: link prediction on the triple items (weight
        ``lp_weight``), the contrastive item–text loss (``text_weight``) and the matching loss on true and
        shuffled pairs (``matching_weight``).

        Returns ``{"loss", "lp", "contrastive", "matching"}`` (scalars; the parts detached)."""
        e = self.config.extra
        lp_w, text_w = float(e.get("lp_weight", 1.0)), float(e.get("text_weight", 0.5))
        match_w = self.config.matching_weight
        x, text = batch.x, batch.text
        s, z = self.entity_states()
        zero = s.new_zeros(())
        is_triple = x[:, 1] < self.num_relations
        lp = self._lp_loss(s, z, x[is_triple], text.entity[is_triple]) if bool(is_triple.any()) else zero
        contrastive = matching = zero
        if text_w > 0:
            z_x = self.x_projection(s[x[:, 0]] * z[x[:, 1]])
            z_t = self.text_projection(self.text_encoder.sentence(text))
            contrastive = contrastive_loss(self.logits(z_x, z_t), self._positives(x, text)).mean()
        m = min(len(batch), int(e.get("matching_rows", 256)))
        if match_w > 0 and m >= 2:
            x, text = x[:m], text.select(torch.arange(m, device=x.device))
            perm = torch.randperm(m, generator=generator).to(x.device)
            negative = ~self._positives(x, text)[torch.arange(m, device=x.device), perm]
            fused = torch.cat([self._fuse(s, z, x, text), self._fuse(s, z, x, text.select(perm))])
            labels = torch.cat([torch.ones(m), torch.zeros(m)]).to(fused.device)
            weight = torch.cat([torch.ones(m, device=x.device), negative.float()])
            matching = F.binary_cross_entropy_with_logits(self.match_logits(fused), labels, weight=weight)
        loss = lp_w * lp + text_w * contrastive + match_w * matching
        return {"loss": loss, "lp": lp.detach(), "contrastive": contrastive.detach(), "matching": matching.detach()}

    def pair_losses(self, batch: PairBatch) -> Tensor:
        """``[B]``: link-prediction cross-entropy (triple pairs) plus the pair's InfoNCE loss."""
        x, text = batch.x, batch.text
        s, z = self.entity_states()
        z_x = self.x_projection(s[x[:, 0]] * z[x[:, 1]])
        z_t = self.text_projection(self.text_encoder.sentence(text))
        out = contrastive_loss(self.logits(z_x, z_t), self._positives(x, text))
        is_triple = x[:, 1] < self.num_relations
        if bool(is_triple.any()):
            lp = self._lp_loss(s, z, x[is_triple], text.entity[is_triple], reduction="none")
            out = out.clone()
            out[is_triple] = out[is_triple] + lp
        return out

    # -- evaluation hooks --------------------------------------------------------------------------
    @torch.no_grad()
    def validation_score(self, val) -> float:
        """Filtered link-prediction MRR (both directions) on the triple pairs of ``val`` (early stopping);
        filtered against the model's graph and ``val`` itself."""
        was = self.training
        self.eval()
        out = self._graph_filtered_mrr(triples_of(val, self.num_relations))
        self.train(was)
        return out

    def _graph_filtered_mrr(self, triples: Tensor) -> float:
        """Filtered MRR of ``triples [T, 3]``, both directions, filtered against the graph and themselves."""
        from graphdel.evaluation.link_prediction import link_prediction

        if triples.numel() == 0:
            return float("nan")
        known = torch.cat([self.graph.triples.cpu(), triples.cpu()])
        return link_prediction(self, triples, known, self.num_entities, self.num_relations)["mrr"]

    @torch.no_grad()
    def selection_score(self, batches) -> float:
        """Filtered link-prediction MRR (both directions) of the triple pairs in ``batches`` (a list of
        :class:`PairBatch`), filtered against the model's graph and the batches' own triples: the engine's
        stopping and checkpoint selection then judge forgetting by the decoder that predicts the facts.
        NaN when the batches hold no triple."""
        class _Batches:  # the sampler interface triples_of reads
            def batches(self, _size):
                return batches

        return self._graph_filtered_mrr(triples_of(_Batches(), self.num_relations))

    def split_metrics(self, sets: dict) -> dict[str, dict]:
        """``{split: {"lp": {...}, "entity_text": {...}}}`` for the named pair sets (see
        :func:`graphdel.evaluation.link_prediction.kg_split_metrics`)."""
        from graphdel.evaluation.link_prediction import kg_split_metrics

        return kg_split_metrics(self, sets)

