from graphdel.unlearning import unlearn


def test_ft_steps_over_retain_only(original, make_ctx, samplers):
    res = unlearn(original, make_ctx(), "ft", ["epochs=2", "batch_size=8", "pool_size=8"])
    steps = [r for r in res.log if r.get("phase") == "retain"]
    assert len(steps) == 2 * (len(samplers["retain"]) // 8)
    assert res.selected["rule"] == "last" and res.selected["epochs_run"] == 2
