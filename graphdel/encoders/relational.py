"""Relational graph encoders for knowledge graphs: CompGCN layers and a DistMult decoder.

CompGCN (Vashishth et al., "Composition-based Multi-Relational Graph Convolutional Networks", ICLR 2020)
with the multiplicative (DistMult) composition. For node ``v`` with incoming typed edges ``(u, r, v)``:

.. math::

    h_v' = \\tanh\\Big( W_O \\sum_{(u,r,v),\\,r\\ \\text{orig}} c_{uv}\\, h_u \\circ z_r
                  + W_I \\sum_{(u,r,v),\\,r\\ \\text{inv}} c_{uv}\\, h_u \\circ z_r
                  + W_S\\, h_v \\circ z_{\\text{self}} \\Big) / 3, \\qquad z_r' = W_R z_r

with ``c_uv = 1/sqrt(deg(u) deg(v))``. Inverse edges ``(t, r + R, h)`` are added for every triple
``(h, r, t)`` so messages flow both ways. Chosen over R-GCN because its cost is one elementwise product
per edge plus three ``d x d`` matmuls per node (R-GCN with bases costs ``R`` aggregations per node): on two
CPU cores a 2-layer, 128-wide encoder over WordNet (15k entities, 88k directed edges) runs a full-graph
forward in tens of milliseconds. Only ``torch`` ops are used (no pyg-lib / torch-scatter).

Shapes: entity states ``[N, d]``, relation states ``[2R + extra, d]`` (original relations, inverses, and
any extra pseudo-relations the caller appends, e.g. "is described by"), ``edge_index [2, E]``,
``edge_type [E]`` (values in ``[0, 2R)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass
class RelationalEncoderConfig:
    """Hyperparameters of :class:`RelationalEncoder`.

    Attributes:
        num_entities: ``N``.
        num_relations: ``R`` original relations (inverses are added internally).
        extra_relations: pseudo-relations appended after the ``2R`` graph relations (not used in the graph).
        dim: width ``d`` of entity and relation states.
        layers: CompGCN layers; 0 gives plain embeddings (a text-free DistMult when decoded).
        dropout: dropout on entity states between layers.
        feature_dim: width of optional fixed input features per entity (e.g. sentence embeddings of the
            entity descriptions), projected to ``dim`` and added to the learnt embeddings; 0 = none.
    """

    num_entities: int
    num_relations: int
    extra_relations: int = 1
    dim: int = 128
    layers: int = 1
    dropout: float = 0.1
    feature_dim: int = 0

    def to_dict(self) -> dict:
        """The constructor arguments as a plain dict (saved in ``model_config.json``)."""
        return asdict(self)


def add_inverse_edges(triples: Tensor, num_relations: int) -> tuple[Tensor, Tensor]:
    """``[T, 3]`` long ``(h, r, t)`` -> ``edge_index [2, 2T]`` (``h->t`` then ``t->h``) and
    ``edge_type [2T]`` (``r`` then ``r + num_relations``)."""
    triples = triples.reshape(-1, 3).long()
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    edge_index = torch.stack([torch.cat([h, t]), torch.cat([t, h])])
    return edge_index, torch.cat([r, r + num_relations])


class CompGCNConv(nn.Module):
    """One CompGCN layer with multiplicative composition (see the module docstring).

    Args:
        dim: input and output width.
        num_relations: ``R`` original relations; edge types ``>= R`` are inverse edges.
        dropout: dropout on the output.

    Shapes: ``x [N, d]``, ``rel [K, d]``, ``edge_index [2, E]``, ``edge_type [E]`` -> ``([N, d], [K, d])``.
    """

    def __init__(self, dim: int, num_relations: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_relations = num_relations
        self.w_out = nn.Linear(dim, dim, bias=False)
        self.w_in = nn.Linear(dim, dim, bias=False)
        self.w_self = nn.Linear(dim, dim, bias=False)
        self.w_rel = nn.Linear(dim, dim, bias=False)
        self.self_rel = nn.Parameter(torch.empty(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform linear maps, self-loop relation of ones, zero bias, fresh layer norm."""
        for lin in (self.w_out, self.w_in, self.w_self, self.w_rel):
            nn.init.xavier_uniform_(lin.weight)
        nn.init.ones_(self.self_rel)
        nn.init.zeros_(self.bias)
        self.norm.reset_parameters()

    def forward(self, x: Tensor, rel: Tensor, edge_index: Tensor, edge_type: Tensor) -> tuple[Tensor, Tensor]:
        """``x [N, d]``, ``rel [K, d]``, ``edge_index [2, E]``, ``edge_type [E]`` ->
        ``(x' [N, d], rel' [K, d])``.

        Messages ``x_src * rel[type]`` are degree-normalised and summed separately over original and inverse
        edges; ``rel' = W_rel rel`` and
        ``x' = Dropout(tanh(LayerNorm((W_self(x * r_self) + W_out(agg_out) + W_in(agg_in)) / 3 + b)))``."""
        n = x.size(0)
        src, dst = edge_index[0], edge_index[1]
        out = self.w_self(x * self.self_rel)
        if src.numel():
            deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(
                0, dst, torch.ones_like(dst, dtype=x.dtype))
            norm = (deg[src].clamp(min=1) * deg[dst].clamp(min=1)).rsqrt().unsqueeze(1)
            msg = x[src] * rel[edge_type] * norm
            inverse = (edge_type >= self.num_relations).unsqueeze(1)
            agg_out = torch.zeros_like(x).index_add_(0, dst, msg.masked_fill(inverse, 0.0))
            agg_in = torch.zeros_like(x).index_add_(0, dst, msg.masked_fill(~inverse, 0.0))
            out = out + self.w_out(agg_out) + self.w_in(agg_in)
        out = torch.tanh(self.norm(out / 3.0 + self.bias))
        return self.dropout(out), self.w_rel(rel)


class RelationalEncoder(nn.Module):
    """Learnt entity and relation embeddings refined by :class:`CompGCNConv` layers over a graph.

    Args:
        config: :class:`RelationalEncoderConfig`.

    Shapes: ``edge_index [2, E]``, ``edge_type [E]`` -> ``(entities [N, d], relations [2R + extra, d])``.
    The extra pseudo-relations get embeddings but no edges; they are transformed like the others.
    """

    def __init__(self, config: RelationalEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.entity = nn.Embedding(config.num_entities, config.dim)
        self.relation = nn.Embedding(2 * config.num_relations + config.extra_relations, config.dim)
        self.convs = nn.ModuleList(CompGCNConv(config.dim, config.num_relations, config.dropout)
                                   for _ in range(config.layers))
        self.input_dropout = nn.Dropout(config.dropout)
        # Fixed entity features (descriptions) enter through a linear map: entities that share words in
        # their descriptions start close, which a learnt embedding of a rarely seen entity cannot do.
        self.feature_projection = (nn.Linear(config.feature_dim, config.dim, bias=False)
                                   if config.feature_dim > 0 else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal entity and relation embeddings, and fresh layers and feature projection."""
        nn.init.xavier_normal_(self.entity.weight)
        nn.init.xavier_normal_(self.relation.weight)
        for conv in self.convs:
            conv.reset_parameters()
        if self.feature_projection is not None:
            nn.init.xavier_uniform_(self.feature_projection.weight)

    def forward(self, edge_index: Tensor, edge_type: Tensor, features: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """``features [N, feature_dim]`` (rows of zeros for entities without one) are required when the
        encoder was built with ``feature_dim > 0``."""
        x = self.entity.weight
        if self.feature_projection is not None:
            if features is None:
                raise ValueError("this encoder was built with feature_dim > 0: pass features [N, feature_dim]")
            x = x + self.feature_projection(features.to(x.dtype))
        x, rel = self.input_dropout(x), self.relation.weight
        for conv in self.convs:
            x, rel = conv(x, rel, edge_index, edge_type)
        return x, rel


def distmult(head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
    """DistMult score ``<h, r, t> = sum_k h_k r_k t_k`` (Yang et al., ICLR 2015); broadcasts over leading
    dimensions: ``[..., d]`` x3 -> ``[...]``."""
    return (head * rel * tail).sum(-1)


def distmult_all(head: Tensor, rel: Tensor, entities: Tensor) -> Tensor:
    """Scores of ``(h_i, r_i, e)`` for every entity ``e``: ``[B, d], [B, d], [N, d] -> [B, N]``."""
    return (head * rel) @ entities.t()
