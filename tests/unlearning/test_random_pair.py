import pytest

from graphdel.unlearning import unlearn
from graphdel.unlearning.selection import sampler_score


@pytest.mark.parametrize("source", ["dr", "df"])
def test_random_pairs_lower_df_score(original, make_ctx, samplers, source):
    before = sampler_score(original, samplers["forget"], pool_size=8)
    res = unlearn(original, make_ctx(), "randompair", [f"text_source={source}", "lr=1e-2", "epochs=5",
                                                       "batch_size=8", "selection=last", "pool_size=8"])
    assert sampler_score(res.model, samplers["forget"], pool_size=8) < before
    steps = [r for r in res.log if r.get("phase") == "update"]
    assert {"random_pair_loss", "retain_loss"} <= set(steps[0])
