"""The joint model's building blocks: the projection into the shared contrastive space and the fusion
module in which text tokens cross-attend to item tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Projection(nn.Module):
    """Two-layer MLP into the shared space followed by L2 normalisation: ``[B, d_in] -> [B, d_out]``."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_in, d_out))

    def forward(self, h: Tensor) -> Tensor:
        """``h [B, d_in]`` -> ``[B, d_out]``, unit L2 norm."""
        return F.normalize(self.net(h), dim=-1)


FUSION_READOUTS = ("first", "mean")


class FusionModule(nn.Module):
    """Text tokens cross-attend to item tokens; a readout of the text positions is the fused representation.

    Each layer is a pre-norm transformer decoder layer: self-attention over text tokens, cross-attention
    from text tokens to item tokens, feed-forward.

    Two options change what the module can check (docs/experiments/2026-12-05-fusion-readout.md):

    * ``readout="first"`` reads the first text position after the last layer. In a one-layer module that
      position's own cross-attention is the only one that reaches the output (self-attention runs before
      cross-attention in a layer), so one query must check every fact of the caption. ``"mean"`` reads the
      masked mean of every text position, so each caption token's cross-attention (its own fact checked
      against the item) reaches the output.
    * ``sink=True`` adds one learned item token that every query can attend to. Softmax attention over
      the atoms alone averages them, and an average cannot count ("5 alkenes" and "2 alkenes" attend to
      alike-looking atoms); with a fixed slot beside them the weight that falls on the matching atoms
      grows with their number.
    * ``item_norm=True`` layer-normalises the item tokens after their input map. The pre-norm decoder
      layers normalise the text stream, never the memory it attends to, so without it the scale of the
      cross-attention logits is whatever the item encoder's states have; normalised, the molecule head
      learnt faster (validation hardest-partner accuracy 0.673 against 0.590 after the same 4 stage
      epochs; docs/experiments/2026-12-05-fusion-stage-steps.md).

    Shapes: ``text [B, T, d_t]``, ``text_mask [B, T]``, ``item [B, N, d_x]``, ``item_mask [B, N]``
    -> ``[B, d]``.
    """

    def __init__(self, d_text: int, d_item: int, d: int, layers: int, heads: int, dropout: float,
                 readout: str = "first", sink: bool = False, item_norm: bool = False) -> None:
        super().__init__()
        if readout not in FUSION_READOUTS:
            raise ValueError(f"fusion readout {readout!r} is not one of {', '.join(FUSION_READOUTS)}")
        self.readout = readout
        self.text_in = nn.Linear(d_text, d)
        self.item_in = nn.Linear(d_item, d)
        self.item_norm = nn.LayerNorm(d) if item_norm else None
        self.sink = nn.Parameter(torch.zeros(1, 1, d)) if sink else None
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d, heads, dim_feedforward=2 * d, dropout=dropout, batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, text: Tensor, text_mask: Tensor, item: Tensor, item_mask: Tensor,
                pairs: Tensor | None = None) -> Tensor:
        """``text [U, T, d_t]``, ``text_mask [U, T]``, ``item [V, N, d_x]``, ``item_mask [V, N]`` (True at
        real positions) -> the fused representation (the readout of the text positions after the last
        layer): ``[P, d]`` for ``pairs [P, 2]`` long, item ``pairs[k, 0]`` fused with text ``pairs[k, 1]``;
        without ``pairs``, ``[U, d]`` for item ``i`` with text ``i`` (``U == V``).

        Why ``pairs``: the fusion stage scores each caption against its own molecule and a negative one,
        and each molecule against its own caption and a negative one. The input maps act on each text and
        each item alone, and the first layer's self-attention reads the text alone, so they run once per
        distinct text or item that a pair names, and only the rest runs per pair (a stage epoch 1.13-1.14x
        faster; bench/fusion_pairs.py). With dropout active the first layer runs per pair, so each pair
        still draws its own dropout masks.

        Rows whose items end well before ``N`` are computed apart, with their memory cut to their own
        extent (:func:`length_groups`): a padded position is masked out of every attention, so a row's
        output is the same either way up to float rounding, while a batch of molecules padded to its
        largest one (``N`` 96 where the median molecule has 22 atoms) spends most of its memory arithmetic
        on padding: a fusion-stage epoch takes 1.12-1.19x less time (bench/fusion_groups.py)."""
        attended = False
        if pairs is None:
            h, memory = self.text_in(text), self._memory(item, item_mask)
        else:  # the input maps (and the first self-attention) once per text and item the pairs name
            texts, text_of = pairs[:, 1].unique(return_inverse=True)
            items, item_of = pairs[:, 0].unique(return_inverse=True)
            text_mask, item_mask = text_mask[texts], item_mask[items]
            h, memory = self.text_in(text[texts]), self._memory(item[items], item_mask)
            first = self.layers[0]
            if not self.training or first.dropout1.p == 0:
                h = h + first._sa_block(first.norm1(h), None, ~text_mask)
                attended = True
            h, text_mask = h[text_of], text_mask[text_of]
            memory, item_mask = memory[item_of], item_mask[item_of]
        groups = length_groups(item_mask)
        if groups is None:
            return self._forward(h, text_mask, memory, item_mask, attended)
        parts, order = [], []
        for rows, extent in groups:
            parts.append(self._forward(h[rows], text_mask[rows], memory[rows, :extent],
                                       item_mask[rows, :extent], attended))
            order.append(rows)
        return torch.cat(parts)[torch.argsort(torch.cat(order))]

    def _memory(self, item: Tensor, item_mask: Tensor) -> Tensor:
        """``[B, N, d]``: the item tokens ``item [B, N, d_x]`` mapped (and normalised) at their real positions
        (``item_mask [B, N]``); padded positions stay zero, as every attention masks them out. Mapping only
        the real positions: a batch of molecules is mostly padding."""
        if bool(item_mask.all()):  # nothing to skip (a KG triple's three positions): no gather and scatter
            return self.map_items(item)
        real = self.map_items(item[item_mask])
        return real.new_zeros(*item_mask.shape, real.size(-1)).index_put((item_mask,), real)

    def map_items(self, item: Tensor) -> Tensor:
        """``[..., d]``: item tokens ``[..., d_x]`` through the input map (and the item norm), each alone."""
        memory = self.item_in(item)
        return memory if self.item_norm is None else self.item_norm(memory)

    def _forward(self, h: Tensor, text_mask: Tensor, memory: Tensor, item_mask: Tensor,
                 attended: bool = False) -> Tensor:
        """The layers and the readout on one padded batch of mapped text ``h [B, T, d]`` and memory ``[B, N,
        d]``; ``attended``: the first layer's self-attention block has already been applied to ``h``."""
        if self.sink is not None:
            memory = torch.cat([self.sink.expand(memory.size(0), 1, -1).to(memory.dtype), memory], dim=1)
            item_mask = torch.cat([item_mask.new_ones(item_mask.size(0), 1), item_mask], dim=1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            done = attended and i == 0
            if i == last and self.readout == "first" and not layer.training:
                return self.norm(_first_position(layer, h, memory, text_mask, item_mask, attended=done))
            if done:
                h = _after_self_attention(layer, h, memory, item_mask)
            else:
                h = layer(h, memory, tgt_key_padding_mask=~text_mask, memory_key_padding_mask=~item_mask)
        if self.readout == "first":
            return self.norm(h[:, 0])
        weights = text_mask.to(h.dtype).unsqueeze(-1)
        return self.norm((h * weights).sum(1) / weights.sum(1).clamp(min=1.0))


def length_groups(item_mask: Tensor, *, min_saving: float = 0.25) -> list[tuple[Tensor, int]] | None:
    """Split a batch's rows in two by how far their items extend, when that saves memory positions.

    ``item_mask [B, N]`` (True at real positions, anywhere in the row) -> ``[(rows, extent), ...]``: each
    group's row indices (ascending) and the number of leading positions that hold every real position of
    its rows; or ``None`` when no split saves at least ``min_saving`` of the ``B x N`` positions the fusion
    module would otherwise attend over (equal lengths, a single row). The split point is the one that
    minimises ``sum(rows x extent)`` over the two groups.
    """
    b, n = item_mask.shape
    if b < 2 or n < 2:
        return None
    positions = torch.arange(1, n + 1, device=item_mask.device)
    extent = (item_mask * positions).amax(dim=1)  # [B] one past each row's last real position
    sorted_extent = extent.sort().values
    # splitting after the i-th shortest row: i + 1 rows cut to sorted_extent[i], the rest to the longest
    kept = torch.arange(1, b + 1, device=item_mask.device)
    cost = kept * sorted_extent + (b - kept) * sorted_extent[-1]
    best = int(cost[:-1].argmin())
    if float(cost[best]) > (1.0 - min_saving) * b * n:
        return None
    cut = int(sorted_extent[best])
    short, long = (extent <= cut).nonzero().squeeze(1), (extent > cut).nonzero().squeeze(1)
    if long.numel() == 0:
        return [(short, max(cut, 1))]
    return [(short, max(cut, 1)), (long, int(sorted_extent[-1]))]


def _after_self_attention(layer: nn.TransformerDecoderLayer, h: Tensor, memory: Tensor,
                          item_mask: Tensor) -> Tensor:
    """A pre-norm decoder ``layer`` on ``h [B, T, d]`` whose self-attention block (with its residual) has
    already been applied: the cross-attention and feed-forward blocks, as ``layer.forward`` runs them."""
    h = h + layer._mha_block(layer.norm2(h), memory, None, ~item_mask)
    return h + layer._ff_block(layer.norm3(h))


def _first_position(layer: nn.TransformerDecoderLayer, h: Tensor, memory: Tensor, text_mask: Tensor,
                    item_mask: Tensor, *, attended: bool = False) -> Tensor:
    """The first text position's output ``[B, d]`` of a pre-norm decoder ``layer`` on ``h [B, T, d]``: the
    same numbers as ``layer(h, memory, ...)[:, 0]`` when its dropout is off. ``attended``: ``h`` already
    holds the layer's self-attention block (shared by the pairs of one text, :meth:`FusionModule.forward`).

    Why: with ``readout="first"`` the last layer's other positions are never read. Self-attention still
    needs every position's keys and values, but cross-attention and the feed-forward block act on each
    position alone, so computing them for the first position only halves a KG fusion call (6.4 against
    13.5 ms for 128 captions of 16 tokens, one thread). With dropout on, the full layer runs instead: its
    dropout draws over every position are part of what a training run's random stream reproduces.
    """
    # the layer's own blocks (torch's _mha_block and _ff_block) after its own self-attention with one
    # query, so the shortcut computes what the layer computes; tests/models/test_layers.py compares the two
    if attended:  # the self-attention block already ran on every position (shared by pairs of one text)
        first = h[:, :1]
    else:
        x = layer.norm1(h)
        first = h[:, :1] + layer.dropout1(
            layer.self_attn(x[:, :1], x, x, key_padding_mask=~text_mask, need_weights=False)[0])
    return _after_self_attention(layer, first, memory, item_mask)[:, 0]
