"""The molecule joint model: a molecule graph encoder as the item encoder of a :class:`~graphdel.models.base.
JointModel`, the model class of the ``"molecule"`` modality (:data:`graphdel.modalities.MODALITIES`)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from graphdel.encoders.graph import FrozenTrunkCache, GraphEncoderConfig, MoleculeGNN
from graphdel.data.molecule_graphs import tensor_digest
from graphdel.encoders.text import TextEncoderConfig
from graphdel.models.base import JointModel
from graphdel.models.config import ModelConfig
from graphdel.models.frozen_items import FrozenItemEmbeddings, index_enabled
from graphdel.models.protocol import ItemRows, PairSampler


#: The most atoms a frozen-state cache sized to the pairs it serves (``share_frozen_states(reads=...)``) may
#: hold: 2,000,000 node states of the default width 300 are 2.4 GB (float32), in the model's device memory.
MAX_SIZED_CACHE_ATOMS = 2_000_000


def _atoms_read(sampler) -> int | None:
    """Atoms of the distinct molecules of ``sampler``'s pairs (a :class:`~graphdel.data.pairs.PairSet` over
    molecule graphs); ``None`` for a sampler that does not say which molecules it holds."""
    data, rows = getattr(sampler, "data", None), getattr(sampler, "rows", None)
    node_ptr = getattr(getattr(data, "items", None), "node_ptr", None)
    if node_ptr is None or rows is None or getattr(data, "item_index", None) is None:
        return None
    items = data.item_index[torch.as_tensor(rows, dtype=torch.long)].unique()
    return int((node_ptr[items + 1] - node_ptr[items]).sum())


class MoleculeTextModel(JointModel):
    """Joint model over molecule graphs and text: a :class:`~graphdel.encoders.graph.MoleculeGNN` gives
    node states (the item tokens for fusion) and the pooled graph embedding."""

    modality = "molecule"

    #: How the matching head re-ranks pool-64 retrieval (:func:`graphdel.evaluation.matching.rerank_settings`):
    #: the top 8 by the head's logit plus the contrastive logit, as BLIP ranks. Chosen on ``drugs``'
    #: validation split with the fusion module of :meth:`default_configs`: hits@1 0.5435 at 8 and at 16
    #: (the smaller kept), 0.540 at 4, 0.531 at 2, against 0.489 by similarity alone; by the head's logit
    #: alone 0.460 at best (docs/experiments/2026-12-05-fusion-readout.md).
    rerank_settings = ("head+similarity", 8)

    @classmethod
    def default_configs(cls, quick: bool = False) -> tuple[dict, dict]:
        """The molecule recipe's defaults ``(model fields, training fields)``, applied by
        :func:`graphdel.api.train` to the fields a caller left at the generic defaults.

        The main loop trains the encoders and projections on the contrastive loss alone
        (``matching_weight`` 0) for 20 epochs, its learning rate on a cosine decay (validation pool-64 MRR
        0.629 against 0.604 at a constant rate, 15 epochs), with the bond features in the graph encoder's
        messages (GINE): validation 0.667 against 0.636 for 15 epochs of GIN, chosen among seven main-loop
        recipes on validation (docs/experiments/2026-12-05-stronger-original.md); then the fusion stage
        (:mod:`graphdel.training.fusion`) trains the fusion module and matching head on the frozen encoders
        for 6 epochs (4 in the quick recipe) with half random, half hardest negatives. Trained jointly on
        in-batch hard negatives the head stayed at its prior on
        ``drugs`` (balanced accuracy 0.5; docs/experiments/2026-12-04-fusion-stage.md).

        The fusion module reads the first 64 caption tokens (median caption length 92) through 2 layers,
        its output is the mean of every caption position (``fusion_readout``) and its attention has a
        learned slot beside the atoms (``fusion_sink``); the head reads the fusion module alone. Chosen on
        validation by the hardest-partner accuracy (docs/experiments/2026-12-05-fusion-readout.md): 0.582
        against 0.324 for the earlier module (first position, no slot, 1 layer, the head also reading
        ``z_x * z_t``), random-partner accuracy 0.811 against 0.724, both after 4 stage epochs.

        The fusion module layer-normalises the atom states it attends to (``fusion_item_norm``): validation
        hardest-partner accuracy 0.673 against 0.590 after the same 4 stage epochs, random-partner accuracy
        0.865 against 0.875, re-ranked hits@1 0.618 against 0.575; a higher stage learning rate, smaller
        batches or other layers' atom states did not beat 0.590
        (docs/experiments/2026-12-05-fusion-stage-steps.md).

        The fusion module trains without dropout (``fusion_dropout`` 0): on 2 CPU cores drawing its dropout
        masks took a quarter of the stage's time, and without them 4 stage epochs fit the 8-minute training
        budget (141 s against 208 s) with validation hardest-partner accuracy 0.592 against 0.575
        (docs/experiments/2026-12-05-fusion-stage-cost.md). Since the frozen-state cache serves each molecule
        it holds, and a step fuses its pairs in one call (each caption and molecule mapped once), a stage
        epoch takes about 26 s and the same budget rule keeps 8 stage epochs: validation hardest-partner
        accuracy 0.684 against 0.668 at 6 and 0.657 at 4 (longer stages score higher still, 0.732 at 16,
        but do not fit the budget on 2 CPU cores; docs/experiments/2026-12-07-fusion-stage-length.md,
        docs/experiments/2026-12-07-fusion-stage-pairs.md)."""
        text = {**asdict(TextEncoderConfig()), "fusion_tokens": 64}
        model = {"matching_weight": 0.0, "fusion_product": False, "fusion_layers": 2, "fusion_readout": "mean",
                 "fusion_sink": True, "fusion_item_norm": True, "fusion_dropout": 0.0, "text": text}
        train = {"fusion_epochs": 4, "fusion_lr": 1e-3, "fusion_hard_fraction": 0.5,
                 "fusion_hard_pool": 1, "lr_schedule": "cosine"}
        if not quick:  # the quick recipe keeps its small GIN, 4 epochs and 4 stage epochs (tests, smoke runs)
            model["graph"] = {**asdict(GraphEncoderConfig()), "name": "gine"}
            train["epochs"], train["fusion_epochs"] = 20, 8
        return model, train

    @property
    def unlearning_defaults(self) -> dict:
        """Recommended MultiDelete settings (see :func:`graphdel.api.with_model_defaults`).

        Retrieval reads only the cosine similarities (the fusion module does not rank), so decoupling and
        retention act on them: each deleted pair's similarity moves to where it would rank among
        never-trained distractor texts the way a calibration pair of the same standing ranks
        (``calibrated``: the deleted pairs' ranks are matched to the calibration pairs' by quantile), so
        that the deleted pairs end up distributed like never-seen pairs rather than all at the level of an
        unrelated text (``pairwise``, which forgot some pairs far more than Retrain does); the retained
        pairs' unimodal embeddings are held with weight 2.5 and their similarities with weight 1. Only the
        text projection is updated: the text projection alone separated the development request's
        deleted pairs as far as the top graph layer with both projections did (calibration gap 0.024
        against 0.025) for a quarter of the validation loss (0.004 against 0.016) in two-thirds of the time,
        since the whole graph encoder is then frozen and its node states are computed once per molecule and
        shared with the teacher (:meth:`share_frozen_states`); chosen by the rule below
        (docs/experiments/2026-12-05-molecule-trainable-side.md; the graph side alone: gap 0.050).
        Each retained pair's own similarity is held too (``pair_weight`` 0.5): without it the update
        lowered the retained pairs' similarities with the deleted ones' (development request, mean of 2,000
        retained pairs: 0.705 -> 0.673; with it 0.694), where a retrained model keeps them, in 15.7 s against
        15.5 s; the smallest of 0.5, 1, 2 that halved that drop within 0.01 of the criterion below and 3%
        of Retrain's time (docs/experiments/2026-12-06-retained-pairs-text-projection.md).
        Stopping and selection read every score as the mean of 8 distractor draws (``eval_draws``; one draw
        moved the reference by 0.02) against a calibration reference weighted to the request's share of
        molecules without a relative of their scaffold left in training (``match_reference``; such
        molecules score 0.04 lower, and a request of whole scaffolds has only them): both measurement
        corrections, kept because they fit 3% of Retrain's time and cost no validation MRR on the
        development requests; the calibrated target is weighted the same way (``match_target``), which
        brought the scaffold request's kept checkpoint 0.022 nearer its reference at the same cost
        (docs/experiments/2026-12-06-reference-draws-and-series.md). The checkpoint kept is the one with
        the smallest gap + retain drop (``select_rule`` ``sum``, as on KGs): the retain sample barely moves
        under the retention terms (0.9395-0.9432 over a run), so the ``tolerance`` rule picked among the
        last checkpoints by its noise; ``sum`` kept a checkpoint 0.006-0.012 nearer the reference for
        0.003-0.004 of validation MRR (docs/experiments/2026-12-06-molecule-selection-rule.md).
        The unimodal term holds the Dr batch alone (``ukr_split`` ``dr``, ``beta`` 2.5: the weight the Dr
        half had inside the mean of both splits at ``beta`` 5): with only the text projection trained, the
        Df half held the very caption embeddings the decoupling moves; without it the kept checkpoint lay
        0.006 nearer the reference on both development requests at no cost in validation MRR, and on
        fourteen requests against their Retrains Df ended +0.037 above Retrain's on the mean against
        +0.041, test unchanged (docs/experiments/2026-12-06-molecule-unimodal-split.md).
        The retained pairs' similarities are held with ``alpha`` 1 (it was 2, chosen when more of the
        model was updated): the update then settles where the decoupling term balances them, and the
        lighter hold took the kept checkpoint 0.006-0.010 nearer the reference on both development
        requests, criterion 0.019 against 0.032 and 0.055 against 0.062; on the same fourteen requests
        Df ended +0.030 above Retrain's on the mean against +0.037, test -0.012 against -0.014
        (docs/experiments/2026-12-06-molecule-retention-weight.md).
        The budget is 48 epochs (it was 24, set when a run took 14% of Retrain's time; one now takes
        1.4-2%): past 24 epochs the deleted pairs' gap wanders around a level a little below the 24-epoch
        one and the checkpoint rule keeps its lowest point, criterion 0.016 against 0.019 and 0.048 against
        0.055 on the development requests, in 16.6 s and 15.8 s; 36 epochs gained less than 0.005 on each,
        and lr 3e-4 over 48 epochs none (docs/experiments/2026-12-07-molecule-longer-budget.md).

        Measured on ``drugs`` (docs/experiments/2026-12-04-per-pair-parity.md; the requests no setting was
        chosen on in docs/results.md, "Per-pair parity with Retrain"): on the development request
        (5% of the training molecules, seed 0) ``calibrated`` took Df-vs-Dr AUC from 0.765 (``pairwise``)
        to 0.640 against Retrain's 0.649 with Df within 0.011 of Retrain's, at 14% of Retrain's time (24
        epochs, against 5% for ``pairwise``); evaluating every 3rd epoch (``eval_every``) instead of every
        one gave the same scores (Df 0.789, validation within 0.001) for a third of the evaluations. The
        requests it was then run on without changes are in the same section. Learning rate 6e-4 and stopping
        at the reference itself (``stop_margin`` 0; it was 3e-4 and 0.02, which stopped every demo request
        0.010-0.020 above the reference) were chosen on the default original's development request by the
        rule of ``forget --tune`` (calibration gap + validation drop, within 3% of Retrain's time:
        0.034 against 0.061; docs/experiments/2026-12-05-molecule-stop-margin.md), as was the text projection
        alone (0.028 against 0.041, on an original trained again). Earlier choices
        (``pairwise`` era, more of the model updated): updating every weight did as well in as many
        epochs at 18% of Retrain's time; alpha 1 lost up to 0.018 test MRR then (under the text projection
        alone it lost none on the mean of fourteen requests, above); a higher lr, a smaller batch, beta
        1-2 or an lr warm-up lost 0.015-0.045 test MRR; the engine's defaults (fused representation, lr
        1e-4, every weight) barely move the similarities."""
        return {"multidelete": {"representation": "similarity", "similarity_target": "calibrated", "lr": 6e-4,
                                "epochs": 48, "alpha": 1.0, "beta": 2.5, "ukr_split": "dr", "smooth": 1,
                                "stop_margin": 0.0, "eval_every": 3, "trainable": "text_projection",
                                "pair_weight": 0.5, "eval_draws": 8, "match_reference": True,
                                "match_target": True, "select_rule": "sum"}}

    reads_item_rows = True  # encode_x reads them from its item table, or builds them (item_states too)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, config.graph.hidden)
        self.graph_encoder = MoleculeGNN(config.graph)
        # set by share_frozen_states while the whole item side is frozen
        self.item_table: FrozenItemEmbeddings | None = None
        # the item side's dropout and BatchNorm modules, gathered while a table is attached
        self._stochastic_item_modules: list[nn.Module] | None = None

    def encode_x(self, x: Any) -> Tensor:
        """``[B, embed_dim]`` normalised molecule embeddings (the pooled graph embedding, projected; the
        padded atom tokens only the fusion module needs are not built). With an item table attached
        (:meth:`share_frozen_states`) and a deterministic item side, the molecules it holds are read from
        it."""
        table = self.item_table
        if table is not None and self._item_side_deterministic():
            served = table.embeddings(x, self._embed_items)
            if served is not None:
                return served
        return self._embed_items(x)

    def _embed_items(self, x: Any) -> Tensor:
        return self.x_projection(self.graph_encoder(_graphs(x))[1])

    def _item_side_deterministic(self) -> bool:
        """Whether :meth:`encode_x` gives the same embedding every time: no dropout active and every
        BatchNorm reading its running statistics."""
        if self.graph_encoder.training and self.graph_encoder.config.dropout > 0:
            return False
        # the list gathered once while a table is attached: walking every module on each call took 0.9 s
        # of a 20% request's run (docs/experiments/2026-12-08-molecule-step-inputs.md)
        modules = self._stochastic_item_modules
        return not any(m.training for m in (self._item_side_stochastic() if modules is None else modules))

    def _item_side_stochastic(self) -> list[nn.Module]:
        """The dropout and BatchNorm modules of the item side (the graph encoder and the item projection)."""
        stochastic = (nn.Dropout, nn.modules.batchnorm._BatchNorm)
        return [m for m in (*self.graph_encoder.modules(), *self.x_projection.modules())
                if isinstance(m, stochastic)]

    def _item_side_state(self) -> list[Tensor]:
        """Parameters and buffers of the whole item side (every graph layer and the item projection)."""
        return (self.graph_encoder.bottom_state(len(self.graph_encoder.convs))
                + list(self.x_projection.parameters()) + list(self.x_projection.buffers()))

    @contextmanager
    def share_frozen_states(self, *others: nn.Module, reads: PairSampler | None = None,
                            save_index: bool = False) -> Iterator[None]:
        """While active, the graph encoders of this model and of ``others`` compute the node states of the
        bottom layers that are frozen in this model (no trainable parameter) once per molecule and share
        them (:class:`~graphdel.encoders.graph.FrozenTrunkCache`). A model of ``others`` joins only if its
        bottom layers are equal to this model's. Nothing is cached when no bottom layer is frozen. When the
        whole item side is frozen (every graph layer and the item projection), the models whose item sides
        are equal also share one table of item embeddings (:class:`~graphdel.models.frozen_items.
        FrozenItemEmbeddings`), from which :meth:`encode_x` reads the molecules it holds
        (docs/experiments/2026-12-08-molecule-item-table.md). That table starts from the item-embedding
        index of the same item side and store when there is one (with ``GRAPHDEL_ITEM_INDEX=on``), and
        with ``save_index`` is written back to it when the block ends without an error
        (docs/experiments/2026-12-08-molecule-item-index.md).

        ``reads`` (the fusion stage's training pairs, read once per epoch in random batches) sizes the cache
        to all their atoms, so that it holds them from the second epoch on; when they have more than
        :data:`MAX_SIZED_CACHE_ATOMS`, nothing is cached. Why: a batch is served from the cache only when
        every molecule of it is there, so a cache smaller than the set it serves (the default 250,000 atoms
        against 728,000 for the stage's pairs of a 25,000-pair corpus) never serves a random batch and only
        adds copying (docs/experiments/2026-12-06-fusion-stage-cache.md).

        The unlearning engine holds this around a run whose ``trainable`` setting leaves the bottom of the
        graph encoder frozen: the student and its teacher then share those states. Nested in an active one
        (the fusion stage's, and the evaluation it runs after an epoch) it keeps the active cache, which
        checks by itself that its layers are unchanged."""
        with self._shared_trunk(others, reads), self._shared_item_table(others, save_index):
            yield

    def item_side_digest(self) -> str:
        """SHA-256 (hex) of the item side: the model class, the graph encoder's config, the item projection's
        layout and every parameter and buffer of both (the key of its item-embedding index,
        :class:`~graphdel.models.frozen_items.FrozenItemEmbeddings`)."""
        layout = f"{type(self).__name__};{asdict(self.graph_encoder.config)};{self.x_projection}"
        return tensor_digest([torch.frombuffer(bytearray(layout.encode()), dtype=torch.uint8),
                              *self._item_side_state()])

    @contextmanager
    def _shared_item_table(self, others: tuple[nn.Module, ...], save_index: bool) -> Iterator[None]:
        """The item table part of :meth:`share_frozen_states`."""
        frozen = (self.graph_encoder.frozen_depth() == len(self.graph_encoder.convs)
                  and not any(p.requires_grad for p in self.x_projection.parameters()))
        if not frozen or self.item_table is not None:
            yield
            return
        mine = self._item_side_state()
        models = [self]
        for other in others:
            if (isinstance(other, MoleculeTextModel) and other is not self
                    and other.graph_encoder.config == self.graph_encoder.config):
                theirs = other._item_side_state()
                if len(theirs) == len(mine) and all(a.shape == b.shape and torch.equal(a, b.to(a.device))
                                                    for a, b in zip(mine, theirs)):
                    models.append(other)
        table = FrozenItemEmbeddings([t for m in models for t in m._item_side_state()],
                                     index_key=self.item_side_digest() if index_enabled() else None)
        for m in models:
            m.item_table, m._stochastic_item_modules = table, m._item_side_stochastic()
        try:
            yield
            if save_index:
                table.save()
        finally:
            for m in models:
                m.item_table, m._stochastic_item_modules = None, None

    @contextmanager
    def _shared_trunk(self, others: tuple[nn.Module, ...], reads: PairSampler | None) -> Iterator[None]:
        """The node-state part of :meth:`share_frozen_states`."""
        depth = self.graph_encoder.frozen_depth()
        capacity = None if reads is None else _atoms_read(reads)
        too_many = capacity is not None and capacity > MAX_SIZED_CACHE_ATOMS
        if depth == 0 or self.graph_encoder.trunk_cache is not None or too_many:
            yield
            return
        mine = self.graph_encoder.bottom_state(depth)
        encoders = [self.graph_encoder]
        for other in others:
            enc = getattr(other, "graph_encoder", None)
            same_shape = isinstance(enc, MoleculeGNN) and enc.config == self.graph_encoder.config
            if same_shape and enc is not self.graph_encoder:
                theirs = enc.bottom_state(depth)
                if all(a.shape == b.shape and torch.equal(a, b.to(a.device)) for a, b in zip(mine, theirs)):
                    encoders.append(enc)
        watched = [t for enc in encoders for t in enc.bottom_state(depth)]
        cache = (FrozenTrunkCache(depth, watched) if capacity is None
                 else FrozenTrunkCache(depth, watched, max_nodes=capacity))
        for enc in encoders:
            enc.trunk_cache = cache
        try:
            yield
        finally:
            for enc in encoders:
                enc.trunk_cache = None

    def item_states(self, x) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (a batch of ``B`` molecules) -> ``(tokens [B, N, hidden], mask [B, N], pooled [B, hidden])``:
        the atom states padded per molecule (at most ``fusion_max_item_tokens`` atoms each) for the fusion
        module, and the pooled graph embedding."""
        from torch_geometric.utils import to_dense_batch

        x = _graphs(x)
        nodes, pooled = self.graph_encoder(x)
        largest = int((x.ptr[1:] - x.ptr[:-1]).max()) if x.num_graphs else 0
        tokens, mask = to_dense_batch(nodes, x.batch, batch_size=x.num_graphs,
                                      max_num_nodes=min(largest, self.config.fusion_max_item_tokens))
        return tokens, mask, pooled


def _graphs(x: Any) -> Any:
    """A batch of molecule graphs: ``x`` itself, or built when it names its molecules (:class:`ItemRows`)."""
    return x.build() if isinstance(x, ItemRows) else x
