from types import SimpleNamespace

import torch
from torch import nn

import graphdel.unlearning.salun as salun
from graphdel.unlearning import unlearn

from .conftest import assert_moved_only_inside
from graphdel.unlearning.salun import saliency_mask


class Linear2(nn.Module):
    """training_loss(batch) = sum(a * batch.a) + sum(b * batch.b): the gradient of a batch is the batch."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(3))
        self.b = nn.Parameter(torch.zeros(2, 2))

    def training_loss(self, batch):
        return (self.a * batch.a).sum() + (self.b * batch.b).sum()


def batch(a, b):
    return SimpleNamespace(a=torch.tensor(a), b=torch.tensor(b))


def test_saliency_mask_keeps_exactly_the_largest_summed_gradients():
    model = Linear2()
    df = [batch([2.0, -5.0, 0.5], [[1.0, 0.0], [0.0, -3.0]]),
          batch([1.0, 5.0, -1.0], [[1.0, 0.0], [0.0, 1.0]])]
    # saliency = |sum of the Df gradients|: a -> [3, 0, 0.5], b -> [[2, 0], [0, 2]]; the gradients of a[1]
    # cancel (|5| twice), so a[1] is not salient although each batch's gradient there is the largest
    # a stand-in for the Trainer: the student, its parameters, one pass over Df (batches standing for full
    # ones, so no Dr negatives are needed)
    trainer = SimpleNamespace(student=model, params=list(model.named_parameters()),
                              forget_batches=lambda: iter(df), outside_negatives=lambda b, **kw: None)
    top1 = saliency_mask(trainer, 1 / 7)                   # 1 of 7 weights: a[0] (3)
    assert top1["a"].tolist() == [1.0, 0.0, 0.0] and top1["b"].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    top3 = saliency_mask(trainer, 3 / 7)                   # one threshold over both tensors: 3, 2, 2
    assert top3["a"].tolist() == [1.0, 0.0, 0.0] and top3["b"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    top4 = saliency_mask(trainer, 4 / 7)                   # then a[2] (0.5)
    assert top4["a"].tolist() == [1.0, 0.0, 1.0] and top4["b"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert model.a.grad is None and model.b.grad is None  # no gradient left behind


def test_only_the_weights_of_the_saliency_mask_move(original, make_ctx, monkeypatch):
    masks = []
    real = salun.saliency_mask
    monkeypatch.setattr(salun, "saliency_mask",
                        lambda trainer, fraction: masks.append(real(trainer, fraction)) or masks[-1])
    res = unlearn(original, make_ctx(), "salun", ["lr=1e-2", "epochs=2", "batch_size=8", "selection=last",
                                                  "saliency_fraction=0.3", "pool_size=8"])
    (mask,) = masks
    sal = [r for r in res.log if r.get("phase") == "saliency"][0]
    assert sal["salient_weights"] == sum(int(m.sum()) for m in mask.values())
    assert abs(sal["salient_weights"] / sal["total_weights"] - 0.3) < 0.01
    assert_moved_only_inside(res.model, original, mask)
