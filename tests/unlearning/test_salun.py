
from graphdel.unlearning import unlearn


def test_only_salient_weights_move(original, make_ctx):
    res = unlearn(original, make_ctx(), "salun", ["lr=1e-2", "epochs=2", "batch_size=8", "selection=last",
                                                  "saliency_fraction=0.3", "pool_size=8"])
    sal = [r for r in res.log if r.get("phase") == "saliency"][0]
    assert abs(sal["salient_weights"] / sal["total_weights"] - 0.3) < 0.01
    orig = dict(original.named_parameters())
    moved = total = 0
    for n, p in res.model.named_parameters():
        if n == "logit_scale":
            continue
        moved += int((p != orig[n]).sum())
        total += p.numel()
    assert 0 < moved <= sal["salient_weights"]
