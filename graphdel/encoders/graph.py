"""Graph encoders for molecules: GIN (default), GINE, GCN and GAT, built from PyG message-passing layers.

Every encoder maps a PyG ``Batch`` of molecules (OGB-style categorical features, see
:mod:`graphdel.data.molecules`) to node states ``[num_nodes, hidden]`` and a pooled graph embedding
``[num_graphs, hidden]``. The default follows MoMu / Hu et al. 2020: 5 layers, hidden 300, batch
normalisation, ReLU, sum pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, GINEConv, global_add_pool, global_mean_pool

from graphdel.data.molecules import ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS


class CategoricalEncoder(nn.Module):
    """Sum of one embedding table per categorical column (the OGB atom/bond encoder design).

    Args:
        dims: vocabulary size of each column.
        hidden: embedding width.

    Shapes: ``[N, len(dims)]`` long -> ``[N, hidden]``.
    """

    def __init__(self, dims: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(d, hidden) for d in dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw every embedding table (Xavier uniform)."""
        for table in self.tables:
            nn.init.xavier_uniform_(table.weight)

    def forward(self, features: Tensor) -> Tensor:
        """``features [N, len(dims)]`` long -> ``[N, hidden]``: the sum of each column's embedding."""
        out = 0
        for col, table in enumerate(self.tables):
            out = out + table(features[:, col])
        return out


@dataclass
class GraphEncoderConfig:
    """Hyperparameters of a molecule graph encoder.

    Attributes:
        name: registry name: ``gin``, ``gine``, ``gcn`` or ``gat``.
        layers: number of message-passing layers.
        hidden: width of node states.
        dropout: dropout after each layer.
        pooling: ``sum`` or ``mean`` readout.
        heads: attention heads (GAT only).
        mlp_ratio: width of the GIN/GINE update MLP's hidden layer, in multiples of ``hidden`` (Hu et al.
            2020 use 2; 1 halves the dominant cost of a training step on CPU).
    """

    name: str = "gin"
    layers: int = 5
    hidden: int = 300
    dropout: float = 0.1
    pooling: str = "sum"
    heads: int = 4
    mlp_ratio: int = 2


def _mlp(hidden: int, ratio: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, ratio * hidden), nn.BatchNorm1d(ratio * hidden), nn.ReLU(),
                         nn.Linear(ratio * hidden, hidden))


class MoleculeGNN(nn.Module):
    """A stack of message-passing layers over a molecule batch.

    Each layer computes ``h <- Dropout(ReLU(BN(conv(h))))`` (no ReLU after the last layer, as in Hu et al.
    2020), with the convolution chosen by ``config.name``:

    * ``gin``  -- :class:`torch_geometric.nn.GINConv` (Xu et al. 2019), ``h_i' = MLP((1+eps) h_i + sum_j h_j)``;
    * ``gine`` -- :class:`torch_geometric.nn.GINEConv` (Hu et al. 2020), messages ``ReLU(h_j + e_ji)`` use
      the bond features;
    * ``gcn``  -- :class:`torch_geometric.nn.GCNConv` (Kipf & Welling 2017);
    * ``gat``  -- :class:`torch_geometric.nn.GATConv` (Velickovic et al. 2018), ``heads`` heads concatenated.

    Args:
        config: :class:`GraphEncoderConfig`.

    Shapes:
        input: ``Batch`` with ``x [N, 9]``, ``edge_index [2, E]``, ``edge_attr [E, 3]``, ``batch [N]``;
        output: ``(node_states [N, hidden], graph_embedding [B, hidden])``.
    """

    def __init__(self, config: GraphEncoderConfig) -> None:
        super().__init__()
        if config.name not in GRAPH_ENCODERS:
            raise ValueError(f"unknown graph encoder {config.name!r}; known: {sorted(GRAPH_ENCODERS)}")
        self.config = config
        h = config.hidden
        self.atom_encoder = CategoricalEncoder(ATOM_FEATURE_DIMS, h)
        self.uses_edges = config.name == "gine"
        self.bond_encoders = nn.ModuleList(
            CategoricalEncoder(BOND_FEATURE_DIMS, h) for _ in range(config.layers)) if self.uses_edges else None
        self.convs = nn.ModuleList(GRAPH_ENCODERS[config.name](config) for _ in range(config.layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for _ in range(config.layers))
        self.pool = global_add_pool if config.pooling == "sum" else global_mean_pool

    def reset_parameters(self) -> None:
        """Re-initialise the atom (and bond) encoders, every convolution and every batch norm."""
        self.atom_encoder.reset_parameters()
        for conv, norm in zip(self.convs, self.norms):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        """``batch`` (a PyG ``Batch`` of ``B`` molecules, ``N`` atoms) -> ``(node_states [N, hidden],
        graph_embedding [B, hidden])``, the graph embedding pooled (sum or mean) over each molecule's
        atoms."""
        h = self.atom_encoder(batch.x)
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if self.uses_edges:
                h = conv(h, batch.edge_index, self.bond_encoders[layer](batch.edge_attr))
            else:
                h = conv(h, batch.edge_index)
            h = norm(h)
            if layer < len(self.convs) - 1:
                h = torch.relu(h)
            h = nn.functional.dropout(h, self.config.dropout, self.training)
        return h, self.pool(h, batch.batch, size=batch.num_graphs)


GRAPH_ENCODERS = {
    "gin": lambda c: GINConv(_mlp(c.hidden, c.mlp_ratio), train_eps=True),
    "gine": lambda c: GINEConv(_mlp(c.hidden, c.mlp_ratio), train_eps=True),
    "gcn": lambda c: GCNConv(c.hidden, c.hidden),
    "gat": lambda c: GATConv(c.hidden, c.hidden // c.heads, heads=c.heads),
}
"""Registry of molecule convolutions by name; each entry builds one layer from a config."""
