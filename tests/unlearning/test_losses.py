import copy

import pytest
import torch

from graphdel.errors import ConfigError
from graphdel.unlearning.base import frozen_copy, make_student
from graphdel.unlearning.losses import (StepEncodings, derangement, distance, exceedance, modality_decoupling,
                                       quantile_matched_targets, similarity_at_share,
                                        multimodal_retention, negative_texts, pair_similarity_retention,
                                        unimodal_retention)


def pair(original):
    teacher = copy.deepcopy(original).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(original).eval()
    return student, teacher


def test_distance_kinds():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert distance(a, b, "mse").item() == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert distance(a, b, "l1").item() == pytest.approx(3 / 4)
    assert distance(a, b, "cosine").item() == pytest.approx(((1 - 0) + (1 - 1)) / 2)
    assert distance(a, a, "cosine").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ConfigError, match="unknown distance"):
        distance(a, b, "hamming")
    with pytest.raises(ValueError, match="shapes differ"):
        distance(a, b[:1], "mse")


def test_part_mse_weighs_each_part_alike_whatever_its_scale():
    # part 1 (width 2): target RMS 1, squared error 0.25 per element; part 2 (width 1): target RMS 0.1,
    # squared error 0.01 per element (the same *relative* error)
    b = torch.tensor([[1.0, -1.0, 0.1], [1.0, 1.0, -0.1]])
    a = b + torch.tensor([[0.5, -0.5, 0.1], [-0.5, 0.5, 0.1]])
    assert distance(a, b, "part_mse", (2, 1)).item() == pytest.approx((0.25 / 1 + 0.01 / 0.01) / 2)
    assert distance(a, b, "mse").item() == pytest.approx((4 * 0.25 + 2 * 0.01) / 6)
    # no parts: one part, the whole width
    assert distance(a, b, "part_mse").item() == pytest.approx(((4 * 0.25 + 2 * 0.01) / 6) / ((4 + 0.02) / 6))
    with pytest.raises(ValueError, match="do not sum"):
        distance(a, b, "part_mse", (2, 2))


def test_derangement_never_fixed_point_and_is_permutation():
    for seed in range(300):
        g = torch.Generator().manual_seed(seed)
        n = 2 + seed % 30
        p = derangement(n, g)
        assert sorted(p.tolist()) == list(range(n))
        assert not (p == torch.arange(n)).any()


@pytest.mark.parametrize("n", [0, 1])
def test_derangement_needs_two(n):
    with pytest.raises(ValueError, match="n >= 2"):
        derangement(n)


def test_negatives_never_the_true_pair(samplers):
    df_s, dr_s = samplers["forget"], samplers["retain"]
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        df = df_s.sample(2 + seed % 7, g)
        texts, idx = negative_texts(df, source="df", generator=g)
        assert not (df.rows[idx] == df.rows).any()
        assert torch.equal(texts.hidden, df.text.hidden[idx])
        dr = dr_s.sample(len(df), g)
        texts, idx = negative_texts(df, source="dr", dr=dr, generator=g)
        assert not torch.isin(dr.rows[idx], df.rows).any()
    with pytest.raises(ConfigError):
        negative_texts(df, source="dr", dr=None)


@pytest.mark.parametrize("representation", ["fused", "similarity", "both"])
@pytest.mark.parametrize("kind", ["mse", "cosine", "l1"])
def test_retention_terms_zero_with_zero_gradient_at_start(original, samplers, representation, kind):
    student, teacher = pair(original)
    g = torch.Generator().manual_seed(0)
    dr = samplers["retain"].sample(8, g)
    for loss in (multimodal_retention(student, teacher, dr, representation=representation, distance=kind),
                 unimodal_retention(student, teacher, dr, distance=kind)):
        assert loss.item() == pytest.approx(0.0, abs=1e-6)
        student.zero_grad()
        loss.backward()
        for n, p in student.named_parameters():
            if p.grad is not None:
                assert p.grad.abs().max().item() < 1e-5, n
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("representation", ["fused", "similarity", "both"])
@pytest.mark.parametrize("negatives", ["df", "dr"])
def test_decoupling_positive_at_start(original, samplers, representation, negatives):
    student, teacher = pair(original)
    g = torch.Generator().manual_seed(1)
    df = samplers["forget"].sample(8, g)
    dr = samplers["retain"].sample(8, g)
    loss = modality_decoupling(student, teacher, df, negatives=negatives, dr=dr, representation=representation,
                               generator=g)
    assert loss.item() > 1e-3
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_decoupling_pairwise_target_only_moves_diagonal(original, samplers):
    student, teacher = pair(original)
    g = torch.Generator().manual_seed(2)
    df = samplers["forget"].sample(8, g)
    loss = modality_decoupling(student, teacher, df, representation="similarity",
                               similarity_target="pairwise", generator=torch.Generator().manual_seed(3))
    s = student.sim(student.encode_x(df.x), student.encode_text(df.text))
    _, idx = negative_texts(df, generator=torch.Generator().manual_seed(3))
    unrelated = s[torch.arange(8), idx]
    expected = ((s.diagonal() - unrelated) ** 2).sum() / 64
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_decoupling_calibrated_target_weighs_diagonal_and_rest_apart(original, samplers):
    student, teacher = pair(original)
    df = samplers["forget"].sample(8, torch.Generator().manual_seed(2))
    targets = torch.linspace(-0.5, 0.5, 8)
    loss = modality_decoupling(student, teacher, df, representation="similarity", similarity_target="calibrated",
                               pair_targets=targets)
    s = student.sim(student.encode_x(df.x), student.encode_text(df.text))
    # f' = f: the unrelated entries sit on their targets, so only the diagonal's mean counts (not / 64)
    assert loss.item() == pytest.approx(((s.diagonal() - targets) ** 2).mean().item(), rel=1e-5)
    assert modality_decoupling(student, teacher, df, representation="similarity", similarity_target="calibrated",
                               pair_targets=s.diagonal().detach()).item() == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ConfigError, match=r"pair_targets of shape \[8\]"):
        modality_decoupling(student, teacher, df, representation="similarity", similarity_target="calibrated")


def test_quantile_matched_targets_keep_the_order_of_the_scores():
    # levels 1/6, 1/2, 5/6 of [0, 1, 2, 3] are 0.5, 1.5, 2.5; the lowest score gets the lowest
    out = quantile_matched_targets(torch.tensor([0.3, 0.1, 0.2]), torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert out.tolist() == pytest.approx([2.5, 0.5, 1.5])
    with pytest.raises(ConfigError, match="non-empty reference"):
        quantile_matched_targets(torch.tensor([0.3]), torch.tensor([]))


def test_exceedance_counts_valid_others_strictly_above():
    others = torch.tensor([[0.6, 0.4, 0.7, 0.1], [0.1, 0.2, -0.1, 0.3]])
    valid = torch.tensor([[True, True, False, True], [True, True, True, True]])
    assert exceedance(torch.tensor([0.5, 0.0]), others, valid).tolist() == pytest.approx([1 / 3, 3 / 4])


def test_similarity_at_share_sits_between_the_others_it_must_rank_between():
    others = torch.tensor([[0.6, 0.4, 0.7, 0.1], [0.1, 0.2, -0.1, 0.3], [0.1, 0.2, -0.1, 0.3],
                           [0.1, 0.2, -0.1, 0.3], [0.1, 0.2, -0.1, 0.3]])
    valid = torch.ones_like(others, dtype=torch.bool)
    valid[0, 2] = False  # row 0 ranks among 0.6, 0.4, 0.1
    positive = torch.tensor([0.5, 0.0, 0.9, 0.9, -0.5])
    share = torch.tensor([2 / 3, 0.0, 0.0, 1.0, 1.0])
    out = similarity_at_share(positive, others, valid, share)
    # 2 of 3 above: midway between 0.4 and 0.1; none above: lifted to the top (0.3) or kept (0.9);
    # all above: lowered to the bottom (-0.1) or kept (-0.5)
    assert out.tolist() == pytest.approx([0.25, 0.3, 0.9, -0.1, -0.5])
    assert exceedance(out[:1], others[:1], valid[:1]).item() == pytest.approx(2 / 3)


def test_similarity_terms_use_unscaled_sim(original, samplers):
    # the scaled logits would be exp(logit_scale)^2 = 100x larger in MSE
    student, teacher = pair(original)
    g = torch.Generator().manual_seed(4)
    df = samplers["forget"].sample(8, g)
    loss = modality_decoupling(student, teacher, df, representation="similarity", generator=g)
    assert loss.item() <= 4.0  # cosine similarities differ by at most 2


class _Counting:
    """Wraps a model and counts its encoder calls."""

    def __init__(self, model):
        self.model, self.calls = model, {"x": 0, "text": 0}

    def encode_x(self, x):
        self.calls["x"] += 1
        return self.model.encode_x(x)

    def encode_text(self, text):
        self.calls["text"] += 1
        return self.model.encode_text(text)

    def __getattr__(self, name):
        return getattr(self.model, name)


def test_step_encodings_encode_each_input_once_and_change_no_term(original, samplers):
    from graphdel.unlearning.multidelete import MultiDeleteConfig, multidelete_loss

    teacher, student = frozen_copy(original), make_student(original)
    student.eval()
    g = torch.Generator().manual_seed(0)
    df, dr = samplers["forget"].sample(8, g), samplers["retain"].sample(8, g)
    cfg = MultiDeleteConfig(representation="similarity", similarity_target="pairwise", ukr_split="both")
    plain, terms = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(3))
    counted_s, counted_t = _Counting(student), _Counting(teacher)
    memo, memo_terms = multidelete_loss(StepEncodings(counted_s), StepEncodings(counted_t), df, dr, cfg,
                                        torch.Generator().manual_seed(3))
    assert torch.equal(plain, memo) and terms == memo_terms
    # student: Df and Dr items, Df and Dr texts; teacher: the same plus the negative texts of L_MD
    assert counted_s.calls == {"x": 2, "text": 2}
    assert counted_t.calls == {"x": 2, "text": 3}
    # an output given in advance is used instead of encoding
    known = StepEncodings(counted_t)
    z = torch.zeros(len(df), 16)
    known.provide_x(df.x, z)
    assert known.encode_x(df.x) is z and counted_t.calls["x"] == 2


def test_fused_decoupling_and_retention_read_the_models_declared_parts(original, samplers):
    student, teacher = pair(original)
    student.fused_parts = lambda: (4, 12)  # a model that declares two parts in its 16-dim fused output
    df, dr = samplers["forget"].sample(8, torch.Generator().manual_seed(3)), samplers["retain"].sample(8, torch.Generator().manual_seed(4))
    neg, _ = negative_texts(df, source="df", dr=dr, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        md = modality_decoupling(student, teacher, df, dr=dr, distance="part_mse", generator=torch.Generator().manual_seed(5))
        expected = distance(student.fuse(df.x, df.text), teacher.fuse(df.x, neg), "part_mse", (4, 12))
        whole = distance(student.fuse(df.x, df.text), teacher.fuse(df.x, neg), "part_mse")
        mkr = multimodal_retention(student, teacher, dr, distance="part_mse")
    assert md.item() == pytest.approx(expected.item()) and md.item() != pytest.approx(whole.item())
    assert mkr.item() == pytest.approx(0.0, abs=1e-7)  # f' = f: nothing to retain yet


def test_link_margins_are_the_logit_over_the_log_mean_exp_of_random_answers_averaged_per_pair():
    import math

    from graphdel.unlearning.losses import link_margins

    rows = torch.tensor([1, 0, 1, 0])                       # pair 1 and pair 0, one fact each way
    scores = torch.tensor([1.0, 2.0, 3.0, 0.0])
    corrupted = torch.tensor([[math.log(3.0), 0.0]] * 4)    # log((3 + 1) / 2) = log 2 for every fact
    pairs, margins = link_margins(rows, scores, corrupted)
    assert pairs.tolist() == [0, 1]
    assert torch.allclose(margins, torch.tensor([1.0 - math.log(2.0), 2.0 - math.log(2.0)]))


def test_link_forgetting_is_a_hinge_down_to_the_targets_and_zero_without_facts():
    from graphdel.unlearning.losses import link_forgetting

    margins = torch.tensor([1.0, 2.0, -1.0], requires_grad=True)
    loss = link_forgetting(margins, torch.tensor([0.5, 3.0, -2.0]))
    assert loss.item() == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    loss.backward()
    # only the facts above their target are pushed, and only down
    assert torch.allclose(margins.grad, torch.tensor([1 / 3, 0.0, 1 / 3]))
    assert link_forgetting(torch.zeros(0), torch.zeros(0)).item() == 0.0


class _Embedded:
    """A stand-in model whose embeddings are its inputs: ``encode_x(x) = x``, ``encode_text(t) = t``."""

    def encode_x(self, x):
        return x

    def encode_text(self, text):
        return text


def test_pair_similarity_retention_reads_each_retained_pair_and_nothing_else():
    from types import SimpleNamespace

    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    dr_student = SimpleNamespace(x=x, text=torch.tensor([[0.6, 0.8], [0.0, 1.0]]))  # own similarities 0.6, 1
    dr_teacher = SimpleNamespace(x=x, text=torch.eye(2))                              # own similarities 1, 1

    class Split(_Embedded):  # the teacher reads the texts it was given, the student its own
        def __init__(self, texts):
            self.texts = texts

        def encode_text(self, text):
            return self.texts

    student, teacher = Split(dr_student.text), Split(dr_teacher.text)
    assert pair_similarity_retention(student, teacher, dr_student).item() == pytest.approx((0.4 ** 2 + 0) / 2)
    assert pair_similarity_retention(student, teacher, dr_student, distance="l1").item() == pytest.approx(0.2)
    # other pairs' texts do not count: graph 2 against text 1 at -0.8 instead of 0.8 changes nothing
    swapped = Split(torch.tensor([[0.6, -0.8], [0.0, 1.0]]))
    assert pair_similarity_retention(swapped, teacher, dr_student).item() == pytest.approx(0.08)


def test_weighted_quantiles_with_equal_weights_are_torchs():
    from graphdel.unlearning.losses import weighted_quantile

    values = torch.tensor([0.3, 0.1, 0.7, 0.2, 0.9], dtype=torch.float64)
    levels = torch.tensor([0.0, 0.1, 0.5, 0.73, 1.0], dtype=torch.float64)
    expected = torch.quantile(values, levels)
    equal = torch.full((5,), 2.0, dtype=torch.float64)
    assert torch.allclose(weighted_quantile(values, equal, levels), expected)


def test_weighted_quantiles_leave_out_zero_weights_and_follow_the_weights():
    from graphdel.unlearning.losses import quantile_matched_targets, weighted_quantile

    values = torch.tensor([0.0, 1.0, 2.0, 10.0], dtype=torch.float64)
    levels = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    # 10.0 weighs nothing: the quantiles of 0, 1, 2
    without_last = torch.tensor([1.0, 1.0, 1.0, 0.0]).double()
    assert weighted_quantile(values, without_last, levels).tolist() == [0.0, 1.0, 2.0]
    # positions (C_i - w_i) / (W - w_last) = 0, 3/4, 1 for weights 3, 1, 1: the median lies between 0 and 1
    got = weighted_quantile(values[:3], torch.tensor([3.0, 1.0, 1.0]).double(), levels)
    assert got.tolist() == pytest.approx([0.0, 2 / 3, 2.0])
    scores = torch.tensor([0.5, 0.1])
    targets = quantile_matched_targets(scores, values, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    assert targets.tolist() == pytest.approx([1.75, 1.25])  # levels 0.75 and 0.25 of {1, 2}, in score order
    with pytest.raises(ConfigError, match="non-negative and not all 0"):
        weighted_quantile(values, torch.zeros(4, dtype=torch.float64), levels)
