"""Graph encoders for molecules: GIN (default), GINE, GCN and GAT, built from PyG message-passing layers.

Every encoder maps a PyG ``Batch`` of molecules (OGB-style categorical features, see
:mod:`graphdel.data.molecules`) to node states ``[num_nodes, hidden]`` and a pooled graph embedding
``[num_graphs, hidden]``. The default follows MoMu / Hu et al. 2020: 5 layers, hidden 300, batch
normalisation, ReLU, sum pooling.
"""

from __future__ import annotations

from collections import OrderedDict
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
        # set by MoleculeTextModel.share_frozen_states while an unlearning run shares frozen bottom layers
        self.trunk_cache: FrozenTrunkCache | None = None

    def reset_parameters(self) -> None:
        """Re-initialise the atom (and bond) encoders, every convolution and every batch norm."""
        self.atom_encoder.reset_parameters()
        for conv, norm in zip(self.convs, self.norms):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        """``batch`` (a PyG ``Batch`` of ``B`` molecules, ``N`` atoms) -> ``(node_states [N, hidden],
        graph_embedding [B, hidden])``, the graph embedding pooled (sum or mean) over each molecule's
        atoms. With a :class:`FrozenTrunkCache` attached (``trunk_cache``), a deterministic forward pass
        starts from the cached states of the cache's frozen bottom layers."""
        cache, start, h = self.trunk_cache, 0, None
        if cache is not None and (not self.training or self.config.dropout == 0):
            h = cache.states(batch, lambda part: self.layers(part, 0, cache.depth))
            start = cache.depth if h is not None else 0
        h = self.layers(batch, start, h=h)
        return h, self.pool(h, batch.batch, size=batch.num_graphs)

    def layers(self, batch, start: int = 0, stop: int | None = None, h: Tensor | None = None) -> Tensor:
        """Node states ``[N, hidden]`` after layers ``start:stop`` (``stop=None``: all), from ``h [N, hidden]``
        (the states after ``start`` layers; ``start == 0`` embeds the atoms instead)."""
        stop = len(self.convs) if stop is None else stop
        if start == 0:
            h = self.atom_encoder(batch.x)
        for layer in range(start, stop):
            conv, norm = self.convs[layer], self.norms[layer]
            if self.uses_edges:
                h = conv(h, batch.edge_index, self.bond_encoders[layer](batch.edge_attr))
            else:
                h = conv(h, batch.edge_index)
            h = norm(h)
            if layer < len(self.convs) - 1:
                h = torch.relu(h)
            h = nn.functional.dropout(h, self.config.dropout, self.training)
        return h

    def _layer_modules(self, layer: int) -> list[nn.Module]:
        """The modules that make up message-passing layer ``layer``: convolution, norm (and bond encoder)."""
        return [self.convs[layer], self.norms[layer]] + ([self.bond_encoders[layer]] if self.uses_edges else [])

    def frozen_depth(self) -> int:
        """How many bottom layers (the atom encoder and layers ``0..k-1`` with their bond encoders and
        norms) have no trainable parameter: the part of the encoder whose output cannot change."""
        if any(p.requires_grad for p in self.atom_encoder.parameters()):
            return 0
        depth = 0
        while depth < len(self.convs) and not any(
                p.requires_grad for m in self._layer_modules(depth) for p in m.parameters()):
            depth += 1
        return depth

    def bottom_state(self, depth: int) -> list[Tensor]:
        """Parameters and buffers of the atom encoder and the first ``depth`` layers, in a fixed order."""
        modules = [self.atom_encoder] + [m for layer in range(depth) for m in self._layer_modules(layer)]
        return [t for m in modules for t in list(m.parameters()) + list(m.buffers())]


class FrozenTrunkCache:
    """Node states after the frozen bottom ``depth`` layers, per molecule, shared by encoders whose bottom
    layers are equal (an unlearning run's student with frozen bottom layers and its teacher).

    Why: when only the top of the graph encoder is updated, the bottom layers give the same node states
    every time a molecule is seen, and both models see each retained molecule of a step. Computing them
    once per molecule removes most of the forward cost of such a run.

    A molecule is identified by its position in the item store that built the batch
    (``batch.item_index`` and ``batch.item_store``, set by :meth:`graphdel.data.molecules.MoleculeGraphs.batch`);
    batches without them are computed in full. The cache checks on every use that no bottom parameter
    was changed in place (tensor versions), and keeps at most ``max_nodes`` node states (least recently
    used dropped first): ``max_nodes * hidden * 4`` bytes, 300 MB for the default 250,000 atoms of width
    300. The embedded corpus has 212,687 atoms in all; a recommended MultiDelete run on a 5% request cached
    3,751 and 3,884 molecules (110,558 and 113,218 atoms, about 130 MB; requests of seeds 0 and 1, 22 and
    24 epochs). Entries are copies, so dropping one frees it.

    Args:
        depth: number of bottom layers cached (``>= 1``).
        watched: the bottom parameters and buffers of every encoder sharing the cache.
        max_nodes: capacity in atoms.
    """

    def __init__(self, depth: int, watched: list[Tensor], max_nodes: int = 250_000) -> None:
        self.depth, self.max_nodes = depth, max_nodes
        self._watched = watched
        self._versions = [t._version for t in watched]
        self._states: OrderedDict[tuple[int, int], Tensor] = OrderedDict()
        self._stores: dict[int, object] = {}
        self._nodes = 0
        self.hits = self.misses = 0

    def states(self, batch, compute) -> Tensor | None:
        """``[N, hidden]`` states of ``batch``'s atoms after ``depth`` layers; ``None`` when the batch does
        not say which molecules it holds.

        The molecules the cache holds are served from it; ``compute(part)`` (a batch -> its node states)
        runs on a batch of the others alone, built by the item store, and their states are stored. Why per
        molecule: a run's random batches of retained pairs mostly hold molecules an earlier step cached, yet
        almost never all of them, and serving only whole batches recomputed nearly every such batch (10.8 s
        of a 17.9-s molecule MultiDelete run; docs/experiments/2026-12-07-molecule-partial-cache.md)."""
        items, store = getattr(batch, "item_index", None), getattr(batch, "item_store", None)
        if items is None or store is None:
            return None
        if [t._version for t in self._watched] != self._versions:
            raise RuntimeError("a frozen bottom layer of the graph encoder was modified while its states were "
                               "cached; the cache must be dropped before the bottom layers change")
        self._stores[id(store)] = store  # keeps the id valid while the cache lives
        keys = [(id(store), int(i)) for i in items.tolist()]
        found = [self._states.get(k) for k in keys]
        missing = [k for k, f in zip(keys, found) if f is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        for k, f in zip(keys, found):
            if f is not None:
                self._states.move_to_end(k)
        if not missing:
            return torch.cat(found) if found else compute(batch)
        if len(missing) == len(keys):  # nothing cached: the batch itself is computed
            part, part_keys = batch, keys
        else:
            part_keys = list(dict.fromkeys(missing))  # distinct, in the batch's order
            part = store.batch(torch.tensor([k[1] for k in part_keys])).to(batch.x.device)
        with torch.no_grad():
            h = compute(part)
        computed = dict(zip(part_keys, h.split((part.ptr[1:] - part.ptr[:-1]).tolist())))
        for k, states in computed.items():
            if k not in self._states:
                self._states[k] = states.clone()  # a view would keep the whole batch's states alive
                self._nodes += states.size(0)
        while self._nodes > self.max_nodes and self._states:
            _, old = self._states.popitem(last=False)
            self._nodes -= old.size(0)
        if part is batch:
            return h
        return torch.cat([f if f is not None else computed[k] for k, f in zip(keys, found)])


GRAPH_ENCODERS = {
    "gin": lambda c: GINConv(_mlp(c.hidden, c.mlp_ratio), train_eps=True),
    "gine": lambda c: GINEConv(_mlp(c.hidden, c.mlp_ratio), train_eps=True),
    "gcn": lambda c: GCNConv(c.hidden, c.hidden),
    "gat": lambda c: GATConv(c.hidden, c.hidden // c.heads, heads=c.heads),
}
"""Registry of molecule convolutions by name; each entry builds one layer from a config."""
