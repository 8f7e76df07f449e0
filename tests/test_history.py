"""Requests applied one after another: the union stays deleted, Retrain of step k trains on Dr minus the
union, an already deleted pair is refused naming its request, and `graphdel history` lists the chain and
checks every link of it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import graphdel as gd
from graphdel import api
from graphdel.cli import main
from graphdel.errors import GraphdelWarning, InvalidInputError, RequestError
from graphdel.history import deletion_history
from graphdel.io import sha256_file
from graphdel.training.loop import TrainConfig
from tests.conftest import spy_training_sets


@pytest.fixture
def chain(tiny_csv, tmp_path):
    """The original and two unlearned runs in a row: aspirin#0 (ft), then ethanol#0 (multidelete)."""
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    first = api.forget(original, api.make_request(original, ids=["aspirin#0"], by="pair"), method="ft",
                       overrides=["epochs=1"], out=tmp_path / "one", progress=False)
    second = api.forget(first, api.make_request(first, ids=["ethanol#0"], by="pair"), method="multidelete",
                        overrides=["epochs=1"], out=tmp_path / "two", progress=False)
    return original, first, second


def test_the_union_stays_deleted_and_retrain_of_step_two_trains_without_it(chain, tmp_path, monkeypatch):
    original, first, second = chain
    assert set(second.excluded_ids) - set(original.excluded_ids) == {"aspirin#0", "ethanol#0"}
    assert [p["pair_id"] for p in json.loads((second.path / "request.json").read_text())["pairs"]] == ["ethanol#0"]
    seen = spy_training_sets(monkeypatch)
    third = api.forget(second, api.make_request(second, ids=["benzene#0"], by="pair"), method="retrain",
                       out=tmp_path / "three", progress=False)
    prepared = api.load_run_data(original, progress=False)
    trained = {prepared.corpus.pair_ids[r] for r in prepared.trained_rows()}
    assert seen == [trained - {"aspirin#0", "ethanol#0", "benzene#0"}]
    # a random request draws only from what is still trained on
    rest = api.make_request(third, random_amount=0.5, by="pair", seed=3)
    assert not set(rest.pair_ids) & {"aspirin#0", "ethanol#0", "benzene#0"}


def test_a_request_naming_an_already_deleted_pair_names_the_request_that_deleted_it(chain, tmp_path):
    _, first, second = chain
    with pytest.raises(RequestError) as err:
        api.make_request(second, ids=["ethanol#0", "aspirin#0"], by="pair")
    assert str(err.value) == ("already deleted by an earlier request of this run (`graphdel history RUN` lists "
                              "them), by=pair: 2 ids: 'ethanol#0 (request 2)', 'aspirin#0 (request 1)'")
    # a request built against the original and applied to the unlearned run is refused too
    stale = api.make_request(first.path.parent / "orig", ids=["aspirin#0"], by="pair")
    with pytest.raises(InvalidInputError, match=r"1 requested pairs were already deleted by an earlier request "
                                                r".*\['aspirin#0 \(request 1\)'\]"):
        api.forget(second, stale, method="ft", overrides=["epochs=1"], out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_a_molecule_request_whose_other_caption_was_deleted_is_narrowed_with_a_warning(tmp_path):
    rows = ["id,smiles,text,split", "asp,CC(=O)Oc1ccccc1C(=O)O,Aspirin is an acetate ester.,train",
            "asp,CC(=O)Oc1ccccc1C(=O)O,Aspirin is a benzoic acid.,train"]
    rows += [f"m{i},{'C' * (i + 1)}O,Alcohol number {i}.,train" for i in range(8)]
    rows += ["v,c1ccncc1,Pyridine.,val", "t,c1ccccc1,Benzene.,test"]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    original = gd.train(f"csv:{tmp_path / 'd.csv'}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "o",
                        quick=True, progress=False)
    pairs = api.load_run_data(original, progress=False).corpus.pair_ids
    first_caption, second_caption = [p for p in pairs if p.startswith("asp")]
    one = api.forget(original, api.make_request(original, ids=[first_caption], by="pair"), method="ft",
                     overrides=["epochs=1"], out=tmp_path / "one", progress=False)
    with pytest.warns(GraphdelWarning, match=rf"already deleted by an earlier request; the rest are requested, "
                                             rf"by=molecule: 1 id: '{second_caption} \(request 1\)'"):
        request = api.make_request(one, ids=[second_caption], by="molecule")
    assert request.pair_ids == (second_caption,)


def test_history_lists_every_step_with_its_certificate_and_checks_the_chain(chain, capsys):
    original, first, second = chain
    steps = deletion_history(second.path)
    assert [(s.step, s.by, s.pairs, s.method, s.chain) for s in steps] == [
        (1, "pair", 1, "ft", "ok"), (2, "pair", 1, "multidelete", "ok")]
    assert [s.run for s in steps] == [str(first.path.resolve()), str(second.path)]
    assert [s.certificate_sha256 for s in steps] == [sha256_file(first.path / "certificate.json"),
                                                     sha256_file(second.path / "certificate.json")]
    assert all(s.applied_at and s.applied_at.endswith("+00:00") for s in steps)
    assert deletion_history(original.path) == []
    assert main(["history", str(second.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["step", "applied", "(UTC)", "by", "pairs", "method", "certificate", "chain"]
    assert lines[2].split()[:4] == ["2", steps[1].applied_at, "pair", "1"]
    assert lines[2].split()[4:] == ["multidelete", steps[1].certificate_sha256[:12], "ok"]
    assert lines[3] == f"  1: {steps[0].description}"
    assert main(["history", str(second.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["certificate_sha256"] == steps[1].certificate_sha256


def test_a_replaced_certificate_breaks_the_chain_and_a_moved_run_cannot_be_checked(chain, capsys):
    _, first, second = chain
    cert = json.loads((first.path / "certificate.json").read_text())
    cert["method"] = "retrain"  # a certificate rewritten after the next step was applied
    (first.path / "certificate.json").write_text(json.dumps(cert))
    steps = deletion_history(second.path)
    assert steps[0].chain == "ok"  # step 1's own links still hold
    assert steps[1].chain == "broken: its certificate does not name the previous step's certificate"
    assert main(["history", str(second.path)]) == 1
    capsys.readouterr()
    shutil.move(str(first.path), str(first.path.parent / "elsewhere"))
    steps = deletion_history(second.path)
    assert (steps[0].run, steps[0].chain) == (None, "not checked: the run that applied it was not found")
    assert steps[1].chain == "not checked: the previous step's run was not found"
    assert main(["history", str(second.path)]) == 0


def test_a_preparation_of_another_run_of_the_chain_is_refused_and_for_run_derives_the_right_one(chain, tmp_path):
    """Reusing the original's prepared data for step 2 would put the pair step 1 deleted back into Dr."""
    original, first, _ = chain
    prepared = api.load_run_data(original, progress=False)
    with pytest.raises(InvalidInputError, match=r"excludes other pairs than .*one \(1 differ"):
        api.forget(first, api.make_request(first, ids=["benzene#0"], by="pair"), method="ft",
                   overrides=["epochs=1"], out=tmp_path / "x", prepared=prepared, progress=False)
    derived = prepared.for_run(first)
    assert derived.excluded == api.load_run_data(first, progress=False).excluded
    assert prepared.corpus.index_of("aspirin#0") not in derived.trained_rows()
    assert api.make_request(first, ids=["benzene#0"], by="pair", prepared=derived).pair_ids == ("benzene#0",)


def test_a_request_to_an_unlearned_run_is_given_the_chains_original(chain, tmp_path, monkeypatch):
    original, first, second = chain
    assert "chain_original" not in first.config  # step 1's model being unlearned is the original itself
    assert second.config["chain_original"] == {"path": str(original.path.resolve()),
                                               "weights_sha256": sha256_file(original.path / "model.safetensors")}
    import graphdel.unlearning

    seen = []
    real = graphdel.unlearning.unlearn

    def spy(model, ctx, method, overrides=None):
        seen.append(ctx.anchor() if ctx.anchor is not None else None)
        return real(model, ctx, method, overrides)

    monkeypatch.setattr(graphdel.unlearning, "unlearn", spy)
    api.forget(second, api.make_request(second, ids=["benzene#0"], by="pair"), method="ft", overrides=["epochs=1"],
               out=tmp_path / "three", progress=False)
    expected = original.model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in seen[0].state_dict().items())
    # the chain's original moved away: the request still runs, retaining against its parent, with a warning
    shutil.move(str(original.path), str(tmp_path / "moved"))
    with pytest.warns(GraphdelWarning, match="the original of its chain of deletions was not found"):
        api.forget(second, api.make_request(second, ids=["caffeine#0"], by="pair"), method="ft",
                   overrides=["epochs=1"], out=tmp_path / "four", progress=False)
    assert seen[-1] is None


def test_the_report_of_a_later_run_shows_the_chain(chain, tmp_path):
    original, first, second = chain
    retrain = api.forget(first, api.make_request(first, ids=["ethanol#0"], by="pair"), method="retrain",
                         out=tmp_path / "retrain2", progress=False)
    audit = api.evaluate(second, reference=retrain)
    steps = audit.results["history"]
    assert [(s["step"], s["method"], s["chain"]) for s in steps] == [(1, "ft", "ok"), (2, "multidelete", "ok")]
    audit.save(tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    chain_part = md.split("## Verdicts")[0]
    assert "This is request 2 of a chain of deletions from the same original" in chain_part
    assert f"| 1 | {steps[0]['applied_at']} | pair | 1 | ft | {steps[0]['certificate_sha256'][:12]} | ok |" in chain_part


def test_the_anchor_is_loaded_only_when_used_and_without_the_earlier_requests_stored_facts(chain, tmp_path,
                                                                                         monkeypatch):
    """A model storing training facts (a KG's graph) has them removed by each forget; the chain's original
    must lose the earlier requests' facts too before anything retains towards it, or they are taught back."""
    import graphdel.unlearning
    from graphdel.models.joint import MoleculeTextModel

    removed, anchors, contexts = [], [], []
    monkeypatch.setattr(MoleculeTextModel, "forget_structure",
                        lambda self, sampler: removed.append(
                            sorted(sampler.data.corpus.pair_ids[r] for r in sampler.rows.tolist())) or 0,
                        raising=False)
    real = graphdel.unlearning.unlearn

    def spy(model, ctx, method, overrides=None):
        anchors.append(ctx.anchor)
        contexts.append(ctx)
        return real(model, ctx, method, overrides)

    monkeypatch.setattr(graphdel.unlearning, "unlearn", spy)
    _, _, second = chain
    api.forget(second, api.make_request(second, ids=["benzene#0"], by="pair"), method="ft", overrides=["epochs=1"],
               out=tmp_path / "ft", progress=False)
    earlier = ["aspirin#0", "ethanol#0"]
    assert removed and earlier not in removed  # FT never asks for the anchor: it is never loaded
    count = len(removed)
    api.forget(second, api.make_request(second, ids=["caffeine#0"], by="pair"), method="multidelete",
               overrides=["epochs=1"], out=tmp_path / "md", progress=False)
    assert removed[count] == earlier  # the anchor first, stripped of requests 1 and 2
    assert removed[count + 1:] and all(r == ["caffeine#0"] for r in removed[count + 1:])  # then the result
    assert callable(anchors[0]) and callable(anchors[1])
    # the pairs of the earlier requests reach the method (MultiDelete's replay, stop_on=union)
    for ctx in contexts:
        assert sorted(ctx.earlier_forget.data.corpus.pair_ids[r] for r in ctx.earlier_forget.rows.tolist()) == earlier
