"""A request smaller than a batch is unlearned: every gradient method that acts on Df takes real update
steps on a Df of 1 pair and of 3 pairs (batch_size 8), and the forgotten pairs' scores move.

Why this is tested: batches of fewer than 2 pairs used to be skipped, so a one-pair request ran zero
steps and handed back an unchanged copy. A lone pair has no in-batch negative (its InfoNCE is constant),
so the methods rank it against a Dr sample instead (Trainer.outside_negatives)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from graphdel.data.pairs import PairSet
from graphdel.distributed import ShardedSampler
from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch, TextFeatures
from graphdel.unlearning import Trainer, UnlearningContext, available_methods, unlearn
from graphdel.unlearning.base import GradientConfig, frozen_copy, make_student
from graphdel.unlearning.losses import forget_loss, pair_losses_against
from graphdel.unlearning.scrub import contrastive_kl

from .toy import X_DIM, ToyModel, ToySampler

#: Registered methods that never put Df in a loss, by design (so a tiny Df is no special case for them).
NOT_ON_DF = {
    "retrain": "no update at all: trains a fresh model on Dr",
    "ft": "fine-tunes on Dr only; forgetting is catastrophic forgetting",
    "dtd": "descent on Dr, then noise on the weights",
}
ON_DF = [name for name, _, _ in available_methods() if name not in NOT_ON_DF]

#: The phase name of a step that acts on the Df batch, per method (the others' steps are "update").
DF_PHASE = {"neggrad": "ascent", "scrub": "max"}
#: The logged term of a step that is computed on the Df batch (a lone pair ranked against itself only
#: would make it 0).
DF_TERM = {"multidelete": "md", "neggrad": "forget_loss", "neggrad+": "forget_loss", "randompair": "random_pair_loss",
           "salun": "random_pair_loss", "scrub": "forget_kl", "gnndelete": "dec"}

EPOCHS = 2


class OnePairToy(ToyModel):
    """The toy model with the real joint model's behaviour on a batch of one pair: its matching term needs
    a second pair for a negative and is 0 (graphdel.models.joint), so the whole training loss of a lone
    pair is its InfoNCE against itself: 0, with zero gradient. (The plain toy pairs a lone pair with itself
    as its "negative", which would give ascent methods a gradient that has nothing to do with Dr.)"""

    def training_loss(self, batch: PairBatch) -> torch.Tensor:
        if len(batch) < 2:
            return self.pair_losses(batch).mean()
        return super().training_loss(batch)


class ToyWithOperator(OnePairToy):
    """The toy model with a GNNDelete deletion operator: a linear map on x, the identity until trained."""

    def __init__(self) -> None:
        super().__init__()
        self.deletion_operator = nn.Linear(X_DIM, X_DIM)
        with torch.no_grad():
            self.deletion_operator.weight.copy_(torch.eye(X_DIM))
            self.deletion_operator.bias.zero_()

    def encode_x(self, x):
        return super().encode_x(self.deletion_operator(x))

    def deletion_parameters(self, sampler, kind: str = "per_layer") -> list[nn.Parameter]:
        return list(self.deletion_operator.parameters())


def as_model(original: ToyModel, cls: type[ToyModel]) -> ToyModel:
    """``original``'s weights in a model of class ``cls`` (new modules keep their own initial values)."""
    model = cls()
    missing, unexpected = model.load_state_dict(original.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("deletion_operator.") for k in missing)
    return model.eval()


def df_similarity(model: nn.Module, batch: PairBatch) -> torch.Tensor:
    """``[n]`` cosine similarity of each pair of ``batch``."""
    with torch.no_grad():
        return (model.encode_x(batch.x) * model.encode_text(batch.text)).sum(-1)


def small_ctx(toy_setup, n: int) -> tuple[UnlearningContext, PairBatch]:
    data, _, samplers = toy_setup
    rows = samplers["forget"].indices[:n].tolist()
    ctx = UnlearningContext(forget=ToySampler(data, rows), retain=samplers["retain"],
                            calibration=samplers["calibration"], val=samplers["val"], progress=False)
    return ctx, data.batch(torch.tensor(rows))


def test_the_methods_acting_on_df_are_known():
    """A method added to the registry is covered here unless it is named in NOT_ON_DF with a reason."""
    names = {name for name, _, _ in available_methods()}
    assert set(NOT_ON_DF) <= names
    assert set(DF_TERM) == set(ON_DF)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("method", ON_DF)
def test_a_request_smaller_than_a_batch_is_unlearned(toy_setup, method, n):
    ctx, df = small_ctx(toy_setup, n)
    original = as_model(toy_setup[1], ToyWithOperator if method == "gnndelete" else OnePairToy)
    overrides = ["lr=1e-2", f"epochs={EPOCHS}", "batch_size=8", "selection=last", "pool_size=8"]
    overrides += {"neggrad": ["loss_bound=inf"], "neggrad+": ["loss_bound=inf"],
                  "scrub": ["retain_steps=1", f"max_epochs={EPOCHS}"]}.get(method, [])
    res = unlearn(original, ctx, method, overrides)

    # exactly one step on the Df batch per epoch (Df fits in one batch of 8)
    phase = DF_PHASE.get(method, "update")
    df_steps = [r for r in res.log if r.get("phase") == phase and "step" in r]
    assert len(df_steps) == EPOCHS, [r.get("phase") for r in res.log]
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in df_steps)
    # the Df term is not the constant of a lone pair ranked against itself (SCRUB's KL is 0 at f' = f, so
    # from its second step on)
    assert all(r[DF_TERM[method]] > 1e-6 for r in df_steps[1 if method == "scrub" else 0:]), df_steps
    assert res.selected["steps"] >= EPOCHS
    if method == "salun":  # the saliency mask keeps its share of weights (a zero gradient would keep all)
        sal = next(r for r in res.log if r.get("phase") == "saliency")
        assert sal["salient_weights"] / sal["total_weights"] == pytest.approx(0.5, abs=0.01)

    # the weights changed
    before = original.state_dict()
    changed = [k for k, v in res.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{method} returned the original weights for a {n}-pair request"

    # the forgotten pairs' scores moved
    sim_before, sim_after = df_similarity(original, df), df_similarity(res.model, df)
    if method == "scrub":
        # SCRUB maximises the KL between f and f' on Df (in either direction of the similarity): the Df
        # pairs' distributions over their own and Dr candidates now differ from the original's
        dr = ctx.retain.sample(8, torch.Generator().manual_seed(0))
        assert contrastive_kl(res.model, original, df, 4.0, extra=dr).item() > 1e-3
        assert (sim_after - sim_before).abs().max().item() > 1e-3
    else:
        # every forgotten pair's similarity decreased
        assert (sim_after < sim_before - 1e-3).all(), (sim_before.tolist(), sim_after.tolist())


def test_a_lone_pair_has_no_in_batch_gradient_but_one_against_dr(original, samplers):
    """Why the Dr negatives: the InfoNCE of a batch of one pair is 0 with zero gradient."""
    model = make_student(as_model(original, OnePairToy)).eval()
    lone = samplers["forget"].sample(1, torch.Generator().manual_seed(0))
    dr = samplers["retain"].sample(8, torch.Generator().manual_seed(1))
    alone = model.pair_losses(lone)
    assert alone.item() == 0.0
    encoders = [p for n, p in model.named_parameters() if n.startswith(("x_encoder", "text_proj"))]
    assert all(g is None or g.abs().max() == 0
               for g in torch.autograd.grad(alone.sum(), encoders, allow_unused=True))
    against = pair_losses_against(model, lone, dr)
    assert against.shape == (1,) and against.item() > 0
    grads = torch.autograd.grad(against.sum(), encoders)
    assert all(g.abs().max() > 0 for g in grads)
    # forget_loss adds exactly that term to the model's own loss, and is the training loss without it
    assert forget_loss(model, lone, dr).item() == pytest.approx(model.training_loss(lone).item() + against.item(),
                                                                rel=1e-6)
    assert torch.equal(forget_loss(model, lone), model.training_loss(lone))


def test_pair_losses_against_is_the_infonce_of_the_joined_batch(original, samplers):
    """On the toy (whose x is a tensor) the batches can be joined: the first rows of the joined batch's
    InfoNCE are exactly the loss of the Df pairs ranked against Df and Dr."""
    df = samplers["forget"].sample(3, torch.Generator().manual_seed(2))
    dr = samplers["retain"].sample(5, torch.Generator().manual_seed(3))
    joined = PairBatch(torch.cat([df.x, dr.x]), TextFeatures(torch.cat([df.text.hidden, dr.text.hidden]),
                                                             torch.cat([df.text.mask, dr.text.mask])),
                       torch.cat([df.rows, dr.rows]))
    with torch.no_grad():
        expected = original.pair_losses(joined)[:3]
        assert torch.allclose(pair_losses_against(original, df, dr), expected, atol=1e-6)
        # a Dr pair of a Df pair's own item is left out of its candidates, not counted as a negative
        df_i = PairBatch(df.x, df.text, df.rows, items=torch.tensor([0, 1, 2]))
        dr_i = PairBatch(dr.x, dr.text, dr.rows, items=torch.tensor([0, 10, 11, 12, 13]))
        out = pair_losses_against(original, df_i, dr_i)
        keep = [0, 1, 2, 4, 5, 6, 7]  # without the Dr pair of item 0 (position 3)
        sub = PairBatch(joined.x[keep], joined.text.select(torch.tensor(keep)), joined.rows[keep])
        assert out[0].item() == pytest.approx(original.pair_losses(sub)[0].item(), abs=1e-6)
        assert torch.allclose(out[1:], expected[1:], atol=1e-6)


def test_an_epoch_uses_its_last_lone_pair(original, toy_setup):
    """9 pairs in batches of 8: the 1-pair remainder is a batch too, and it alone gets a Dr sample."""
    data, _, samplers = toy_setup
    rows = samplers["forget"].indices.tolist() + samplers["calibration"].indices[:1].tolist()
    ctx = UnlearningContext(forget=ToySampler(data, rows), retain=samplers["retain"], progress=False)
    trainer = Trainer("t", make_student(original), frozen_copy(original), GradientConfig(batch_size=8), ctx)
    pairs = list(trainer.paired_batches())
    assert [len(df) for df, _ in pairs] == [8, 1]
    assert [len(dr) for _, dr in pairs] == [8, 8]  # the same size as Df, and batch_size for the lone pair
    assert [trainer.outside_negatives(df) is None for df, _ in pairs] == [True, False]


class _RowData:
    """Stands in for PairData in a PairSet: a batch carries its rows."""

    def batch(self, rows: torch.Tensor) -> PairBatch:
        return PairBatch(rows, TextFeatures(torch.zeros(len(rows), 1, 1), torch.ones(len(rows), 1, dtype=torch.bool)),
                         rows)


def test_no_df_batch_for_any_process_is_an_error_not_a_silent_copy(original, toy_setup):
    """Under torchrun a Df smaller than the number of processes has no shard on any process: the run
    must say so rather than return the original weights."""
    ctx, _ = small_ctx(toy_setup, 1)
    trainer = Trainer("neggrad", make_student(original), frozen_copy(original), GradientConfig(batch_size=8), ctx)
    trainer.forget_sampler = ShardedSampler(PairSet(_RowData(), [0], "forget"), rank=0, world_size=2)
    with pytest.raises(ConfigError, match="no Df batch has a pair for each of the 2 processes"):
        list(trainer.forget_batches())


def test_multidelete_importance_mask_of_a_lone_pair_keeps_its_share(toy_setup):
    """The Df/Dr Fisher ratio of a 1-pair Df comes from the pair ranked against Dr: with the lone pair's own
    (zero) gradient every ratio would be 0 and the mask would keep every weight."""
    ctx, _ = small_ctx(toy_setup, 1)
    res = unlearn(as_model(toy_setup[1], OnePairToy), ctx, "multidelete",
                  ["epochs=1", "batch_size=8", "selection=last", "pool_size=8", "mask_fraction=0.3",
                   "mask_retain_batches=2"])
    mask = next(r for r in res.log if r.get("phase") == "mask")
    assert mask["masked_in_weights"] / mask["total_weights"] == pytest.approx(0.3, abs=0.01)


def test_retain_passes_skip_only_a_lone_remainder(original, toy_setup):
    """Dr batches: a 1-pair remainder of a pass is skipped (constant loss); a Dr of one pair is an error."""
    data, _, samplers = toy_setup
    rows = samplers["retain"].indices[:9].tolist()
    ctx = UnlearningContext(forget=samplers["forget"], retain=ToySampler(data, rows), progress=False)
    trainer = Trainer("ft", make_student(original), frozen_copy(original), GradientConfig(batch_size=8), ctx)
    assert [len(b) for b in trainer.retain_batches()] == [8]
    ctx = UnlearningContext(forget=samplers["forget"], retain=ToySampler(data, rows[:1]), progress=False)
    trainer = Trainer("ft", make_student(original), frozen_copy(original), GradientConfig(batch_size=8), ctx)
    with pytest.raises(ConfigError, match="Dr has no batch of 2 pairs"):
        list(trainer.retain_batches())
