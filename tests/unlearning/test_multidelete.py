
import pytest
import torch

from graphdel.unlearning import unlearn
from graphdel.unlearning.base import GradientConfig, frozen_copy, make_student, set_update_mode
from graphdel.unlearning.losses import distance, negative_texts, unimodal_retention
from graphdel.unlearning.multidelete import MultiDelete, MultiDeleteConfig, multidelete_loss
from graphdel.unlearning.selection import sampler_score

from tests.unlearning.toy import ToyModel


def _shuffled_gap(student, teacher, df, seed):
    """d(S'(Df true pairs), S(Df shuffled pairs)) with a fixed derangement."""
    neg, _ = negative_texts(df, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        s_student = student.sim(student.encode_x(df.x), student.encode_text(df.text))
        s_teacher = teacher.sim(teacher.encode_x(df.x), teacher.encode_text(neg))
        return distance(s_student, s_teacher, "mse").item()


@pytest.mark.parametrize("representation", ["similarity", "fused", "both"])
def test_one_step_moves_df_towards_shuffled_pairs(original, samplers, representation):
    teacher, student = frozen_copy(original), make_student(original)
    g = torch.Generator().manual_seed(0)
    df, dr = samplers["forget"].sample(8, g), samplers["retain"].sample(8, g)
    cfg = MultiDeleteConfig(representation=representation, lr=1e-2)
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=cfg.lr)
    before = _shuffled_gap(student, teacher, df, seed=5)
    set_update_mode(student)
    loss, terms = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(5))
    assert terms["md"] > 0 and terms["mkr"] == pytest.approx(0, abs=1e-6) and terms["ukr"] == pytest.approx(0, abs=1e-6)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = _shuffled_gap(student, teacher, df, seed=5)
    assert after < before


def _moved_student(original, samplers):
    """``(teacher, student, df, dr)``: a frozen teacher, a student whose weights moved a little off it (so
    that the retention terms are not zero), and a Df and a Dr batch of 8 pairs."""
    teacher, student = frozen_copy(original), make_student(original)
    g = torch.Generator().manual_seed(1)
    df, dr = samplers["forget"].sample(8, g), samplers["retain"].sample(8, g)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return teacher, student, df, dr


def test_term_switches_and_weights(original, samplers):
    teacher, student, df, dr = _moved_student(original, samplers)
    cfg = MultiDeleteConfig()
    cfg.terms.md = False
    loss, terms = multidelete_loss(student, teacher, df, dr, cfg)
    assert set(terms) == {"mkr", "ukr"}
    assert loss.item() == pytest.approx(terms["mkr"] + terms["ukr"], rel=1e-5)
    cfg2 = MultiDeleteConfig(alpha=2.0, beta=0.5, ukr_split="both")
    cfg2.terms.md = False
    loss2, terms2 = multidelete_loss(student, teacher, df, dr, cfg2)
    assert loss2.item() == pytest.approx(2 * terms2["mkr"] + 0.5 * terms2["ukr"], rel=1e-5)


def test_unimodal_term_reads_the_chosen_split(original, samplers):
    # the molecule recommendation holds the Dr batch alone: with only the text projection trained, the Df
    # half held the very caption embeddings the decoupling moves
    # (docs/experiments/2026-12-06-molecule-unimodal-split.md)
    teacher, student, df, dr = _moved_student(original, samplers)
    ukr = {}
    for split in ("df", "dr", "both"):
        cfg = MultiDeleteConfig(ukr_split=split)
        cfg.terms.md = cfg.terms.mkr = False
        ukr[split] = multidelete_loss(student, teacher, df, dr, cfg)[1]["ukr"]
    assert ukr["dr"] == pytest.approx(unimodal_retention(student, teacher, dr).item(), rel=1e-6)
    assert ukr["df"] == pytest.approx(unimodal_retention(student, teacher, df).item(), rel=1e-6)
    assert ukr["df"] != pytest.approx(ukr["dr"], rel=1e-3)
    assert ukr["both"] == pytest.approx(0.5 * (ukr["df"] + ukr["dr"]), rel=1e-6)


def test_run_forgets_and_selects_against_calibration(original, make_ctx, samplers):
    ctx = make_ctx()
    df_before = sampler_score(original, samplers["forget"], samplers["calibration"], pool_size=8)
    cal = sampler_score(original, samplers["calibration"], samplers["calibration"], pool_size=8)
    assert df_before > cal  # the toy memorises
    res = unlearn(original, ctx, "multidelete", ["lr=3e-2", "epochs=30", "batch_size=8", "pool_size=8"])
    sel = res.selected
    assert sel["reference"] == "calibration" and sel["rule"] == "calibrated"
    evals = [r for r in res.log if r.get("eval")]
    assert evals[0]["epoch"] == 0 and len(evals) == sel["epochs_run"] + 1
    assert "reached the calibration score" in sel["stop_reason"]
    assert sel["epochs_run"] < 30
    df_after = sampler_score(res.model, samplers["forget"], samplers["calibration"], pool_size=8)
    assert df_after < df_before
    # the kept checkpoint is the one the rule names, and its gap is the smallest within tolerance
    gaps = [abs(r["forget"] - r["reference"]) for r in evals]
    assert gaps[sel["index"]] <= min(gaps) + 0.02
    assert sel["scores"]["forget"] == pytest.approx(df_after, abs=1e-6)
    steps = [r for r in res.log if r.get("phase") == "update"]
    assert steps and {"md", "mkr", "ukr", "loss", "grad_norm"} <= set(steps[0])


def test_without_calibration_uses_val_and_says_so(original, make_ctx):
    res = unlearn(original, make_ctx(calibration=None), "multidelete", ["epochs=1", "batch_size=8", "pool_size=8"])
    assert res.selected["reference"] == "val"
    assert any("validation" in n for n in res.selected["notes"])


def test_without_any_reference_keeps_last(original, make_ctx):
    res = unlearn(original, make_ctx(calibration=None, val=None), "multidelete",
                  ["epochs=2", "batch_size=8", "pool_size=8"])
    assert res.selected["reference"] is None and res.selected["epochs_run"] == 2
    assert res.selected["index"] == 2


def test_dr_negatives_and_similarity_run(original, make_ctx):
    res = unlearn(original, make_ctx(), "multidelete",
                  {"negatives": "dr", "representation": "similarity", "distance": "cosine", "epochs": "1",
                   "batch_size": "8", "pool_size": "8"})
    assert res.config["negatives"] == "dr" and res.config["terms"] == {"md": True, "mkr": True, "ukr": True}


def test_df_specific_surrogate_projects_out_the_shared_direction():
    import torch

    from graphdel.unlearning.multidelete import df_specific_surrogate

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    x_df, x_dr = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    loss_df, loss_dr = model(x_df).sum(), model(x_dr).sum()   # gradients (1, 1) and (1, 0)
    surrogate = df_specific_surrogate(model, loss_df, loss_dr)
    surrogate.backward()
    assert torch.allclose(model.weight.grad, torch.tensor([[0.0, 1.0]]))  # (1,1) minus its part along (1,0)

    model.weight.grad = None
    loss_df, loss_dr = model(x_df).sum(), -model(x_dr).sum()  # opposed directions are left alone
    df_specific_surrogate(model, loss_df, loss_dr).backward()
    assert torch.allclose(model.weight.grad, torch.tensor([[1.0, 1.0]]))


class _DroppyToy(ToyModel):
    """The toy model with dropout on its item embeddings (as the real encoders have)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)

    def encode_x(self, x):
        return self.drop(super().encode_x(x))


def test_update_mode_without_dropout_keeps_retention_terms_exact(original, samplers):
    model = _DroppyToy()
    model.load_state_dict(original.state_dict(), strict=False)
    teacher, student = frozen_copy(model), make_student(model)
    g = torch.Generator().manual_seed(3)
    df, dr = samplers["forget"].sample(8, g), samplers["retain"].sample(8, g)
    cfg = MultiDeleteConfig(representation="similarity", ukr_split="both")
    assert cfg.dropout is False and GradientConfig().dropout is True
    set_update_mode(student, dropout=True)    # the noisy forward pass: retention terms are not zero at f' = f
    _, noisy = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(0))
    assert noisy["ukr"] > 1e-3 and noisy["mkr"] > 1e-3
    set_update_mode(student, dropout=cfg.dropout)
    assert not student.training
    loss, exact = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(0))
    assert exact["ukr"] == 0 and exact["mkr"] == 0 and exact["md"] > 0
    loss.backward()     # gradients still flow in eval mode
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def _share_above(model, pairs, distractors):
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.unlearning.losses import exceedance
    q, d = embed_pairs(model, pairs), embed_pairs(model, distractors)
    return exceedance((q.z_x * q.z_t).sum(-1), q.z_x @ d.z_t.t(), q.items[:, None] != d.items[None, :])


def test_calibrated_target_ranks_deleted_pairs_like_calibration_pairs(original, make_ctx, samplers):
    ctx = make_ctx()
    distractors = ctx.distractors if ctx.distractors is not None else samplers["calibration"]
    reference = _share_above(original, samplers["calibration"], distractors)
    before = _share_above(original, samplers["forget"], distractors)
    res = unlearn(original, ctx, "multidelete",
                  {"representation": "similarity", "similarity_target": "calibrated", "lr": "3e-2", "epochs": "60",
                   "alpha": "0.1", "beta": "0.1", "batch_size": "8", "pool_size": "8", "early_stop": "false",
                   "selection": "last"})
    targets = [r for r in res.log if r.get("phase") == "targets"]
    assert len(targets) == 1 and targets[0]["reference"] == "calibration"
    assert targets[0]["pairs"] == len(samplers["forget"])
    after = _share_above(res.model, samplers["forget"], distractors)
    # the deleted pairs' ranks move from "trained on" (every one above every distractor) to "never seen":
    # as many of them are out-ranked by some distractor as of the calibration pairs (3 of 8), no more
    assert int((before > 0).sum()) == 0 and int((reference > 0).sum()) == 3
    assert int((after > 0).sum()) == 3


def test_match_target_draws_the_targets_from_the_weighted_calibration_pairs(original, make_ctx, samplers):
    from graphdel.evaluation.reference_weights import ReferenceWeights

    cal = samplers["calibration"]
    reference = _share_above(original, cal, cal)  # the toy context's distractors are its calibration pairs
    never_outranked = {int(r): 1.0 for r, s in zip(cal.indices.tolist(), reference.tolist()) if s == 0}
    assert 0 < len(never_outranked) < len(cal)
    ctx = make_ctx(calibration_weights=ReferenceWeights(never_outranked, 0.0, 0.0))
    config = {"representation": "similarity", "similarity_target": "calibrated", "epochs": "1",
              "batch_size": "8", "pool_size": "8"}

    def targets(**extra):
        log = unlearn(original, ctx, "multidelete", {**config, **extra}).log
        return next(r for r in log if r.get("phase") == "targets")

    weighted, plain = targets(match_target="true"), targets()
    # the weighted calibration pairs are never out-ranked: neither is any deleted pair's target
    assert weighted["weighted"] and weighted["target_share_mean"] == 0.0
    assert not plain["weighted"] and plain["target_share_mean"] > 0


def test_calibrated_target_without_reference_split_is_an_error(original, make_ctx):
    from graphdel.errors import ConfigError
    with pytest.raises(ConfigError, match="calibration \\(or validation\\) split"):
        unlearn(original, make_ctx(calibration=None, val=None), "multidelete",
                {"representation": "similarity", "similarity_target": "calibrated", "epochs": "1",
                 "batch_size": "8", "pool_size": "8"})


def test_a_model_without_a_link_decoder_gets_no_link_term(original, make_ctx, samplers):
    g = torch.Generator().manual_seed(0)
    assert original.link_scores(samplers["forget"].sample(4, g), 8, g) is None   # the protocol's default
    res = unlearn(original, make_ctx(), "multidelete",
                  ["link_weight=1", "epochs=1", "min_epochs=1", "batch_size=8", "pool_size=8"])
    notes = [r for r in res.log if r.get("phase") == "link"]
    assert len(notes) == 1 and "no link term" in notes[0]["note"]
    steps = [r for r in res.log if r.get("phase") == "update"]
    assert steps and not any("link" in r for r in steps)


def test_the_link_term_is_added_with_its_weight(original, samplers):
    teacher, student = frozen_copy(original), make_student(original)
    g = torch.Generator().manual_seed(1)
    df, dr = samplers["forget"].sample(8, g), samplers["retain"].sample(8, g)
    cfg = MultiDeleteConfig(link_weight=2.0)
    plain, _ = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(3))
    loss, terms = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(3),
                                   link=torch.tensor(0.25))
    assert terms["link"] == 0.25 and loss.item() == pytest.approx(plain.item() + 0.5, rel=1e-5)
    _, none = multidelete_loss(student, teacher, df, dr, MultiDeleteConfig(), link=torch.tensor(0.25))
    assert "link" not in none                                # weight 0: no term


def test_the_pair_similarity_term_is_added_with_alpha_times_its_weight(original, samplers):
    teacher, student, df, dr = _moved_student(original, samplers)
    plain_cfg = MultiDeleteConfig(representation="similarity", alpha=2.0)
    plain, plain_terms = multidelete_loss(student, teacher, df, dr, plain_cfg,
                                          torch.Generator().manual_seed(3))
    cfg = MultiDeleteConfig(representation="similarity", alpha=2.0, pair_weight=3.0)
    loss, terms = multidelete_loss(student, teacher, df, dr, cfg, torch.Generator().manual_seed(3))
    with torch.no_grad():
        own = lambda m: (m.encode_x(dr.x) * m.encode_text(dr.text)).sum(-1)  # noqa: E731
        expected = distance(own(student), own(teacher), "mse").item()
    assert "mkr_pairs" not in plain_terms and expected > 0
    assert terms["mkr_pairs"] == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(plain.item() + 2.0 * 3.0 * expected, rel=1e-5)


def test_pair_weight_on_the_fused_form_is_refused_when_the_run_starts(original, make_ctx):
    from graphdel.errors import ConfigError

    with pytest.raises(ConfigError, match="pair_weight .*'fused'"):
        unlearn(original, make_ctx(), "multidelete", ["pair_weight=1", "epochs=1"])
    # pair_weight given before the representation runs: --set applies one key at a time
    res = unlearn(original, make_ctx(), "multidelete",
                  ["pair_weight=1", "representation=similarity", "epochs=1"])
    assert any("mkr_pairs" in r for r in res.log if r.get("phase") == "update")


def test_update_batches_carry_token_states_only_when_a_term_fuses(tiny_csv, tmp_path, monkeypatch):
    import graphdel as gd
    from graphdel import api
    from graphdel.training.loop import TrainConfig
    from graphdel.unlearning.trainer import Trainer

    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    request = api.make_request(original, ids=["aspirin#0", "ethanol#0", "benzene#0"], by="pair")
    widths, items, loss = [], [], MultiDelete.loss

    def spy(self, trainer, df, dr, cfg):
        widths.append((df.text.hidden.size(1), dr.text.hidden.size(1)))
        items.append({type(df.x).__name__, type(dr.x).__name__})
        return loss(self, trainer, df, dr, cfg)

    monkeypatch.setattr(MultiDelete, "loss", spy)

    def run(name: str, representation: str):
        widths.clear()
        items.clear()
        settings = ["epochs=2", "batch_size=2", "selection=last", "lr=1e-2", "pair_weight=0",
                    f"representation={representation}", "trainable=text_projection,fusion"]
        return api.forget(original, request, overrides=settings, out=tmp_path / name, progress=False)

    bare = run("bare", "similarity")
    assert len(widths) == 4 and all(w == (0, 0) for w in widths)  # encoded from the pooled states alone
    assert all(kinds == {"ItemRows"} for kinds in items)  # the molecules named, read from the item table
    run("fused", "fused")
    assert len(widths) == 4 and all(a > 0 and b > 0 for a, b in widths)  # the fusion module reads the tokens
    assert all(kinds == {"DataBatch"} for kinds in items)  # and the atoms
    monkeypatch.setattr(Trainer, "draw_without_tokens", lambda self: None)
    full = run("full", "similarity")
    assert all(a > 0 for a, _ in widths) and all(kinds == {"DataBatch"} for kinds in items)
    a, b = bare.model.state_dict(), full.model.state_dict()
    assert any(not torch.equal(a[k], original.model.state_dict()[k]) for k in a)  # the run moved something
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same rows drawn, the same numbers
