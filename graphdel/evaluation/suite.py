"""The evaluation suite: connects models and pair sets to the metric functions."""

from __future__ import annotations

from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.retrieval import split_retrieval
from graphdel.models.protocol import PairSampler


def retrieval_metrics(model, sets: dict[str, PairSampler], *, pool_size: int = 64, seed: int = 0,
                      device="cpu") -> dict[str, dict]:
    """Retrieval in both directions, over the whole set and over pools, for each named pair set.

    Returns:
        ``{name: {"g2t": {mrr, hits@1, hits@10}, "t2g": {...}, "pool64": {g2t_mrr, t2g_mrr, g2t_acc,
        t2g_acc}, "n": N}}`` (empty sets are left out).
    """
    out = {}
    for name, pairs in sets.items():
        if pairs is None or len(pairs) == 0:
            continue
        emb = embed_pairs(model, pairs, device=device)
        out[name] = split_retrieval(emb.z_x, emb.z_t, groups=emb.items, pool_size=pool_size, seed=seed)
    return out
