"""The contrastive objective and the batch arithmetic around it: symmetric multi-positive InfoNCE, which
pairs of a batch are positives of each other, ALBEF's hard negatives for the matching head, and the gathering
of token states across data-parallel processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from graphdel.models.protocol import PairBatch


def positive_mask(batch: PairBatch, b: int, device) -> Tensor:
    """``[B, B]`` bool: pairs sharing an item are positives of each other (the diagonal always is)."""
    if batch.items is None:
        return torch.eye(b, dtype=torch.bool, device=device)
    items = batch.items.to(device)
    return items[:, None] == items[None, :]


def hard_negatives(logits: Tensor, positives: Tensor, generator: torch.Generator | None
                    ) -> tuple[Tensor, Tensor]:
    """ALBEF hard negatives: for each item a text and for each text an item, drawn with probability
    softmax(similarity) over the non-positives. ``logits``, ``positives`` ``[B, B]`` -> ``(neg_text [B],
    neg_item [B])`` long, on the CPU (the seeded generator is a CPU generator: same draws on every device)."""
    if not bool(torch.isfinite(logits).all()):
        # Sampling needs finite weights; the non-finite contrastive loss is reported by the caller.
        logits = torch.zeros_like(logits)
    logits, positives = logits.detach().float().cpu(), positives.cpu()
    weights = torch.softmax(logits, dim=1).masked_fill(positives, 0.0) + (~positives) * 1e-6
    neg_text = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    weights_t = torch.softmax(logits.t(), dim=1).masked_fill(positives.t(), 0.0) + (~positives.t()) * 1e-6
    neg_item = torch.multinomial(weights_t, 1, generator=generator).squeeze(1)
    return neg_text, neg_item


def gather_tokens(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Token states ``[b, L, h]`` and mask ``[b, L]`` of every process, padded to the longest ``L`` and
    concatenated in rank order: ``[B, L_max, h]`` (with gradients to their owners) and ``[B, L_max]``."""
    from graphdel import distributed

    length = int(distributed.all_reduce_max(torch.tensor(float(tokens.size(1)))))
    if tokens.size(1) < length:
        pad = length - tokens.size(1)
        tokens = F.pad(tokens, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    return distributed.gather_with_grad(tokens), distributed.gather(mask)


def contrastive_loss(logits: Tensor, positives: Tensor) -> Tensor:
    """Per-pair symmetric InfoNCE with multi-positive soft targets.

    Args:
        logits: ``[B, B]`` item-vs-text logits.
        positives: ``[B, B]`` bool, true where item i and text j belong together.

    Returns:
        ``[B]``: for pair i, the mean of the item->text and text->item cross-entropies, each against the
        uniform distribution over i's positives.
    """
    targets = positives.float() / positives.float().sum(1, keepdim=True)
    g2t = -(targets * F.log_softmax(logits, dim=1)).sum(1)
    t2g = -(targets.t() * F.log_softmax(logits.t(), dim=1)).sum(1)
    return 0.5 * (g2t + t2g)

