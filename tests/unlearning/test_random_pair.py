import pytest
import torch

from graphdel.unlearning import unlearn


def _df_similarity(model, sampler) -> float:
    """Mean cosine similarity of the deleted pairs (what RandomPair pulls down)."""
    with torch.no_grad():
        b = next(sampler.batches(len(sampler)))
        return float((model.encode_x(b.x) * model.encode_text(b.text)).sum(-1).mean())


@pytest.mark.parametrize("source", ["dr", "df"])
def test_random_pairs_lower_df_similarity(original, make_ctx, samplers, source):
    before = _df_similarity(original.eval(), samplers["forget"])
    res = unlearn(original, make_ctx(), "randompair", [f"text_source={source}", "lr=1e-2", "epochs=5",
                                                       "batch_size=8", "selection=last", "pool_size=8"])
    assert _df_similarity(res.model, samplers["forget"]) < before - 0.05
    steps = [r for r in res.log if r.get("phase") == "update"]
    assert {"random_pair_loss", "retain_loss"} <= set(steps[0])
