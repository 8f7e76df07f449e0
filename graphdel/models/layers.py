"""The joint model's building blocks: the projection into the shared contrastive space and the fusion
module in which text tokens cross-attend to item tokens."""

from __future__ import annotations

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


class FusionModule(nn.Module):
    """Text tokens cross-attend to item tokens; the first text position is the fused representation.

    Each layer is a pre-norm transformer decoder layer: self-attention over text tokens, cross-attention
    from text tokens to item tokens, feed-forward.

    Shapes: ``text [B, T, d_t]``, ``text_mask [B, T]``, ``item [B, N, d_x]``, ``item_mask [B, N]``
    -> ``[B, d]``.
    """

    def __init__(self, d_text: int, d_item: int, d: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.text_in = nn.Linear(d_text, d)
        self.item_in = nn.Linear(d_item, d)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d, heads, dim_feedforward=2 * d, dropout=dropout, batch_first=True,
                                       norm_first=True) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, text: Tensor, text_mask: Tensor, item: Tensor, item_mask: Tensor) -> Tensor:
        """``text [B, T, d_t]``, ``text_mask [B, T]``, ``item [B, N, d_x]``, ``item_mask [B, N]`` (True at
        real positions) -> the fused representation ``[B, d]`` (the first text position after the last
        layer)."""
        h = self.text_in(text)
        memory = self.item_in(item)
        for layer in self.layers:
            h = layer(h, memory, tgt_key_padding_mask=~text_mask, memory_key_padding_mask=~item_mask)
        return self.norm(h[:, 0])

