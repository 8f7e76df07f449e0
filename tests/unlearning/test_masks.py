import torch
from torch import nn

import graphdel.unlearning.multidelete as multidelete
from graphdel.unlearning import unlearn

from .conftest import assert_moved_only_inside
from graphdel.unlearning.masks import fisher_diagonal, importance_ratio, summed_gradients, top_fraction_mask


def test_top_fraction_mask_is_global_and_keeps_ties():
    scores = {"a": torch.tensor([0.1, 0.9, 0.5]), "b": torch.tensor([[0.7, 0.2], [0.9, 0.0]])}
    mask = top_fraction_mask(scores, 3 / 7)
    assert mask["a"].tolist() == [0.0, 1.0, 0.0] and mask["b"].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    ties = top_fraction_mask({"a": torch.tensor([1.0, 1.0, 0.0])}, 1 / 3)   # both tied maxima kept
    assert ties["a"].tolist() == [1.0, 1.0, 0.0]


class Quadratic(nn.Module):
    """training_loss(batch) = sum_i w_i * batch_i: the gradient per batch is the batch itself."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def training_loss(self, batch):
        return (self.w * batch).sum()


def test_fisher_is_the_mean_squared_batch_gradient_and_the_ratio_prefers_df_specific_weights():
    model = Quadratic()
    params = list(model.named_parameters())
    df = [torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])]
    dr = [torch.tensor([0.0, 1.0, 1.0])]
    f_df, f_dr = fisher_diagonal(model, params, df), fisher_diagonal(model, params, dr)
    assert f_df["w"].tolist() == [2.0, 0.0, 1.0] and f_dr["w"].tolist() == [0.0, 1.0, 1.0]
    assert summed_gradients(model, params, df)["w"].tolist() == [2.0, 0.0, 2.0]
    ratio = importance_ratio(f_df, f_dr, lam=0.5)        # eps = 0.5 * mean(F_dr) = 1/3
    assert torch.allclose(ratio["w"], torch.tensor([6.0, 0.0, 0.75]))
    assert top_fraction_mask(ratio, 1 / 3)["w"].tolist() == [1.0, 0.0, 0.0]
    assert model.w.grad is None                         # no gradient left behind


def test_multidelete_mask_keeps_the_highest_ratios_and_only_they_move(original, make_ctx, monkeypatch):
    ratios, masks = [], []
    real_ratio, real_mask = multidelete.importance_ratio, multidelete.top_fraction_mask
    monkeypatch.setattr(multidelete, "importance_ratio",
                        lambda *a, **kw: ratios.append(real_ratio(*a, **kw)) or ratios[-1])
    monkeypatch.setattr(multidelete, "top_fraction_mask",
                        lambda *a, **kw: masks.append(real_mask(*a, **kw)) or masks[-1])
    res = unlearn(original, make_ctx(), "multidelete", ["lr=1e-2", "epochs=2", "batch_size=8",
                                                        "selection=last", "mask_fraction=0.2", "pool_size=8"])
    (ratio,), (mask,) = ratios, masks
    rec = [r for r in res.log if r.get("phase") == "mask"][0]
    assert rec["masked_in_weights"] == sum(int(m.sum()) for m in mask.values())
    assert abs(rec["masked_in_weights"] / rec["total_weights"] - 0.2) < 0.01
    # the kept weights are exactly those of the largest ratios: every kept ratio >= every dropped one
    kept = torch.cat([ratio[n][mask[n] == 1] for n in mask])
    dropped = torch.cat([ratio[n][mask[n] == 0] for n in mask])
    assert kept.min() >= dropped.max() and kept.min() > dropped.min()
    assert_moved_only_inside(res.model, original, mask)
