import copy

import pytest
import torch

from graphdel.unlearning import Trainer, unlearn
from graphdel.unlearning.base import frozen_copy, make_student, set_update_mode
from graphdel.unlearning.scrub import Scrub, ScrubConfig, contrastive_kl

T = 4.0


def test_kl_zero_for_identical_and_positive_otherwise(original, samplers):
    b = samplers["forget"].sample(8, torch.Generator().manual_seed(0))
    assert contrastive_kl(original, original, b, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    other = copy.deepcopy(original)
    with torch.no_grad():
        other.text_proj[0].weight.add_(0.3)
    assert contrastive_kl(other, original, b, 4.0).item() > 0


def max_phase_trainer(original, make_ctx, samplers, *, lr: float, epoch: int = 1):
    """A SCRUB trainer whose student already differs from the teacher (at ``f' = f`` the KL is at its
    minimum and its gradient is zero, so no direction could be seen), plain SGD (a step is ``lr`` times the
    gradient, nothing else), one Df batch of all 8 forget pairs and no Dr batch: an epoch is exactly one
    max step (or none after ``max_epochs``)."""
    cfg = ScrubConfig(optimizer="sgd", lr=lr, momentum=0.0, grad_clip=0.0, epochs=1, max_epochs=1,
                      kd_temperature=T, dropout=False)
    student = make_student(original)
    with torch.no_grad():
        student.text_proj[0].weight.add_(0.05 * torch.randn(student.text_proj[0].weight.shape,
                                                            generator=torch.Generator().manual_seed(1)))
    trainer = Trainer("scrub", student, frozen_copy(original), cfg, make_ctx())
    set_update_mode(student, dropout=False)  # deterministic forward passes: BatchNorm on running statistics
    trainer.epoch = epoch
    df = next(samplers["forget"].batches(8))
    trainer.forget_batches = lambda: iter([df])
    trainer.retain_batches = lambda: iter(())  # the max phase alone
    return trainer, cfg, df


def test_a_max_step_is_gradient_ascent_on_the_df_kl(original, make_ctx, samplers):
    lr = 1e-3
    trainer, cfg, df = max_phase_trainer(original, make_ctx, samplers, lr=lr)
    params = [p for _, p in trainer.params]
    kl = contrastive_kl(trainer.student, trainer.teacher, df, T)
    # parameters the contrastive logits do not use (fusion, matching head) get no gradient and stay put
    grads = [torch.zeros_like(p) if g is None else g
             for p, g in zip(params, torch.autograd.grad(kl, params, allow_unused=True))]
    before = [p.detach().clone() for p in params]
    Scrub().train_epoch(trainer, cfg)
    assert [r["phase"] for r in trainer.log] == ["max"]
    assert trainer.log[0]["forget_kl"] == pytest.approx(float(kl), rel=1e-6)
    # theta <- theta + lr * grad KL (ascent); descent would be theta - lr * grad KL
    moved = 0
    for p, b, g in zip(params, before, grads):
        # atol: float32 rounding of weights below 1 (an ulp is 6e-8), far below the step (up to 3e-4 here)
        assert torch.allclose(p.detach() - b, lr * g, rtol=1e-4, atol=2e-7)
        moved += int((p.detach() != b).sum())
    assert moved > 0 and max(float((lr * g).abs().max()) for g in grads) > 1e-5


def test_the_max_phase_alone_raises_the_students_kl_from_the_teacher_on_df(original, make_ctx, samplers):
    trainer, cfg, df = max_phase_trainer(original, make_ctx, samplers, lr=1e-2)
    with torch.no_grad():
        before = float(contrastive_kl(trainer.student, trainer.teacher, df, T))
    assert before > 1e-4
    Scrub().train_epoch(trainer, cfg)
    with torch.no_grad():
        after = float(contrastive_kl(trainer.student, trainer.teacher, df, T))
    assert after > before * 1.01


def test_no_max_step_after_max_epochs(original, make_ctx, samplers):
    trainer, cfg, _ = max_phase_trainer(original, make_ctx, samplers, lr=1e-2, epoch=2)
    before = [p.detach().clone() for _, p in trainer.params]
    Scrub().train_epoch(trainer, cfg)
    assert trainer.log == [] and all(torch.equal(p, b) for (_, p), b in zip(trainer.params, before))


def test_epochs_start_with_the_max_pass_from_the_teacher(original, make_ctx):
    res = unlearn(original, make_ctx(), "scrub", ["lr=1e-2", "epochs=1", "max_epochs=1", "retain_steps=1",
                                                  "batch_size=8", "selection=last", "pool_size=8"])
    phases = [r["phase"] for r in res.log if r.get("phase") in ("max", "min")]
    assert phases == ["max", "min"]                                 # 8 Df pairs: one max step, then one min
    maxes = [r["forget_kl"] for r in res.log if r.get("phase") == "max"]
    assert maxes[0] == pytest.approx(0.0, abs=1e-6)                 # the student starts as the teacher
