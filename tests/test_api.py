"""The forget workflow of the Python API: what it reads, what it writes, what Retrain sees."""

import hashlib
import json

import pytest
import torch

import graphdel as gd
from graphdel import api
from graphdel.errors import InvalidInputError, RequestError, RunError
from graphdel.training.loop import TrainConfig
from tests.conftest import spy_training_sets


@pytest.fixture
def original(tiny_csv, tmp_path):
    return gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig", quick=True,
                    progress=False)


def _tree_digest(folder):
    """SHA-256 of every file's relative path and bytes under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_forget_leaves_the_original_run_byte_for_byte(original, tmp_path):
    before = _tree_digest(original.path)
    request = api.make_request(original, ids=["aspirin#0"], by="pair")
    api.forget(original, request, method="neggrad", overrides=["epochs=1"], out=tmp_path / "f", progress=False)
    assert _tree_digest(original.path) == before


def test_retrain_never_sees_a_deleted_id(original, tmp_path, monkeypatch):
    seen = spy_training_sets(monkeypatch)
    request = api.make_request(original, ids=["aspirin#0", "caffeine#0"], by="pair")
    run = api.forget(original, request, method="retrain", out=tmp_path / "r", progress=False)
    assert len(seen) == 1
    assert not seen[0] & {"aspirin#0", "caffeine#0"}
    assert not seen[0] & set(original.calibration_ids)
    assert {"aspirin#0", "caffeine#0"} <= set(run.excluded_ids)


def test_retrain_at_another_seed_replays_the_recipe_with_that_seed_alone(original, tmp_path, monkeypatch):
    """``seed`` changes the training seed and nothing else: the recipe's own seed gives the default Retrain's
    weights exactly, another seed other weights, and the run records the seed it was trained with."""
    import graphdel.forget_run as forget_run
    from graphdel.errors import ConfigError

    configs, trained = [], []
    real = forget_run.retrain_model
    monkeypatch.setattr(forget_run, "retrain_model", lambda p, dr, m, t, **kw: configs.append(t)
                        or trained.append(real(p, dr, m, t, **kw)) or trained[-1])
    request = api.make_request(original, ids=["aspirin#0", "caffeine#0"], by="pair")
    recipe_seed = original.config["train"]["seed"]
    runs = {name: api.forget(original, request, method="retrain", overrides=over, out=tmp_path / name,
                             progress=False)
            for name, over in (("default", []), ("same", [f"seed={recipe_seed}"]),
                               ("other", [f"seed={recipe_seed + 1}"]))}
    assert [c.seed for c in configs] == [recipe_seed, recipe_seed, recipe_seed + 1]
    assert [c.to_dict() for c in configs[:2]] == [configs[0].to_dict()] * 2
    assert {k: v for k, v in configs[2].to_dict().items() if k != "seed"} == \
        {k: v for k, v in configs[0].to_dict().items() if k != "seed"}
    default, same, other = (runs[n].model.state_dict() for n in ("default", "same", "other"))
    assert all(torch.equal(default[k], same[k]) for k in default)
    assert not all(torch.equal(default[k], other[k]) for k in default)
    assert runs["other"].config["method_config"]["seed"] == recipe_seed + 1
    assert runs["default"].config["method_config"]["seed"] is None
    # the recipe recorded with each run is the one its weights were trained with
    assert [runs[n].config["train"]["seed"] for n in ("default", "same", "other")] == \
        [recipe_seed, recipe_seed, recipe_seed + 1]
    assert {k: v for k, v in runs["other"].config["train"].items() if k != "seed"} == \
        {k: v for k, v in original.config["train"].items() if k != "seed"}
    assert "training seed" in runs["other"].metrics["selected"]["reason"]
    # each run records which of its training epochs early stopping kept
    assert [runs[n].metrics["selected"]["epoch"] for n in ("default", "same", "other")] == \
        [t.best_epoch for t in trained]
    again = gd.replay(runs["other"].path, tmp_path / "again", progress=False)  # the seed is replayed too
    assert configs[-1].seed == recipe_seed + 1 and again.config["method_config"]["seed"] == recipe_seed + 1
    assert all(torch.equal(other[k], again.model.state_dict()[k]) for k in other)
    # a caller's own Retrain (the demo's shared one) has its own recipe: a seed is refused
    with pytest.raises(ConfigError, match="Retrain seed"):
        api.forget(original, request, method="retrain", overrides=["seed=3"], out=tmp_path / "shared",
                   progress=False, retrain_fn=lambda p, dr: None)


def test_sequential_requests_accumulate_in_history(original, tmp_path):
    first = api.forget(original, api.make_request(original, ids=["aspirin#0"], by="pair"), method="ft",
                       overrides=["epochs=1"], out=tmp_path / "one", progress=False)
    second = api.forget(first, api.make_request(first, ids=["ethanol#0"], by="pair"), method="ft",
                        overrides=["epochs=1"], out=tmp_path / "two", progress=False)
    assert [h["request"]["pairs"][0]["pair_id"] for h in second.history] == ["aspirin#0", "ethanol#0"]
    assert {"aspirin#0", "ethanol#0"} <= set(second.excluded_ids)
    # an already deleted pair cannot be deleted again from the unlearned model
    with pytest.raises(RequestError, match="aspirin#0"):
        api.make_request(second, ids=["aspirin#0"], by="pair")


def test_forget_refuses_an_existing_output_folder(original, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="already exists"):
        api.forget(original, api.make_request(original, ids=["aspirin#0"], by="pair"), method="ft",
                   out=tmp_path / "taken", progress=False)


def test_a_chebi20_folder_trains_and_evaluates_unchanged(tmp_path):
    rows = {"train": [("241", "c1ccccc1", "The molecule is benzene, an aromatic hydrocarbon."),
                      ("702", "CCO", "The molecule is ethanol, a primary alcohol."),
                      ("2244", "CC(=O)Oc1ccccc1C(=O)O", "The molecule is aspirin, a benzoic acid."),
                      ("2519", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "The molecule is caffeine, a purine alkaloid."),
                      ("180", "CC(C)=O", "The molecule is acetone, a methyl ketone.")],
            "validation": [("1049", "c1ccncc1", "The molecule is pyridine, an azaarene.")],
            "test": [("931", "c1ccc2ccccc2c1", "The molecule is naphthalene, a fused arene.")]}
    folder = tmp_path / "chebi"
    folder.mkdir()
    for name, items in rows.items():
        (folder / f"{name}.txt").write_text("CID\tSMILES\tdescription\n" + "".join(f"{c}\t{s}\t{d}\n" for c, s, d in items))
    run = gd.train(f"chebi20:{folder}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "run", quick=True,
                   progress=False)
    assert run.metrics["splits"]["test"]["n"] == 1 and run.metrics["splits"]["val"]["n"] == 1
    assert api.evaluate_retrieval(run)["splits"]["test"]["g2t"]["mrr"] == 1.0


def test_a_forget_that_changes_nothing_fails_and_writes_nothing(original, tmp_path):
    """Zero update steps leave the weights equal to the original's: no run folder, no certificate."""
    from graphdel.errors import UnlearningNoOpError

    request = api.make_request(original, ids=["aspirin#0"], by="pair")
    with pytest.raises(UnlearningNoOpError, match="unchanged"):
        api.forget(original, request, method="multidelete", overrides=["epochs=0"], out=tmp_path / "noop",
                   progress=False)
    assert not (tmp_path / "noop").exists()


@pytest.mark.parametrize("ids", [["aspirin#0"], ["aspirin#0", "ethanol#0", "caffeine#0"]])
def test_a_one_and_a_three_pair_request_change_the_weights(tiny_csv, tmp_path, ids):
    """The most common request, a pair or a few, is unlearned for real and certified with its change."""
    import json

    # trained longer than the shared original, so that it clearly remembers the pairs: after 2 epochs the
    # deleted pair scored so near the calibration pairs that under torch 2.6's rounding the selection kept
    # the untouched model, a no-op (which the method then reports, as it should)
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=6, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    request = api.make_request(original, ids=ids, by="pair")
    run = api.forget(original, request, method="multidelete", overrides=["epochs=2"], out=tmp_path / "f",
                     progress=False)
    cert = json.loads((run.path / "certificate.json").read_text())
    assert run.metrics["selected"]["steps"] >= 1
    assert cert["procedure"]["param_change_norm"] > 0
    assert run.metrics["splits"]["forget"]["n"] == len(ids)
    # the Df score is on the scale of every other split: the same k, the same chance level
    k = {s["pool64"]["k"] for s in run.metrics["splits"].values()}
    assert k == {original.metrics["splits"]["test"]["pool64"]["k"]}


@pytest.fixture(scope="module")
def mirror_kg_run(tmp_path_factory):
    """A tiny KG model on tests/data/test_kg_facts.py's graph, whose "sim" relation is symmetric."""
    from tests.data.test_kg_facts import train_mirror_kg

    root = tmp_path_factory.mktemp("mirror_kg")
    return root, train_mirror_kg(root)


def test_a_kg_request_is_audited_for_inferable_facts(mirror_kg_run, tmp_path):
    from graphdel.errors import GraphdelWarning
    from tests.data.test_kg_facts import REQUEST

    _, run = mirror_kg_run
    request = api.make_request(run, ids=REQUEST, by="triple")
    with pytest.warns(GraphdelWarning, match=r"inferable: 2 of 3 deleted triples .*mirrored 1, path <= 2 hops 1, "
                                             r"not inferable 1\); close=True \(--close\) also deletes"):
        out = api.forget(run, request, method="retrain", out=tmp_path / "open", progress=False)
    record = out.metrics["inferable"]
    assert record["counts"] == {"mirrored": 1, "path": 1, "not_inferable": 1} and "closure" not in record
    assert [p["relation"] for p in record["mirror_relations"]["pairs"]] == ["sim"]
    assert out.history[-1]["request"]["count"] == 3 and "added" not in out.history[-1]["request"]
    by = out.metrics["splits"]["forget"]["lp"]["by_inference"]
    assert {k: v["triples"] for k, v in by.items()} == {"mirrored": 1, "path": 1, "not_inferable": 1}


def test_close_extends_a_kg_request_with_its_mirrors(mirror_kg_run, tmp_path):
    import json

    from tests.data.test_kg_facts import REQUEST

    _, run = mirror_kg_run
    request = api.make_request(run, ids=REQUEST, by="triple")
    out = api.forget(run, request, method="retrain", out=tmp_path / "closed", progress=False, close=True)
    saved = json.loads((out.path / "request.json").read_text())
    assert [p["pair_id"] for p in saved["pairs"]] == ["tri:e0|sim|e1", "tri:e1|sim|e0", "tri:e2|up|e4",
                                                      "tri:e4|up|e6"]
    assert [(a["pair_id"], a["of"]) for a in saved["added"]] == [("tri:e1|sim|e0", "tri:e0|sim|e1")]
    assert saved["by"] == "triple" and saved["selected"] == REQUEST
    cert = json.loads((out.path / "certificate.json").read_text())
    assert cert["request"] == saved                                        # certified with the request
    assert "tri:e1|sim|e0" in out.excluded_ids
    store = api.load_run_data(run, progress=False).data.items
    e = {x: i for i, x in enumerate(store.entities)}
    sim = store.relations.index("sim")
    graph = {tuple(t) for t in out.model.graph.triples.tolist()}
    assert (e["e0"], sim, e["e1"]) not in graph and (e["e1"], sim, e["e0"]) not in graph
    record = out.metrics["inferable"]
    assert record["counts"] == {"mirrored": 1, "path": 1, "not_inferable": 1}
    assert record["closure"]["added"] == 1
    assert record["closure"]["counts"] == {"mirrored": 0, "path": 1, "not_inferable": 3}
    by = out.metrics["splits"]["forget"]["lp"]["by_inference"]
    assert {k: v["triples"] for k, v in by.items()} == record["closure"]["counts"]


def test_a_closed_request_scores_the_calibration_reference_without_its_mirrors(tmp_path, monkeypatch):
    """With close, the methods' calibration reference is scored with the retained mirrors of the calibration
    triples out of the graph (never-seen facts then get no help Df no longer has); without, nothing is hidden."""
    from graphdel.data.kg_facts import learn_mirror_relations, mirror_rows
    from graphdel.models.kg import KGTextModel
    from tests.data.test_kg_facts import KG_TRAIN, REQUEST, train_mirror_kg

    run = train_mirror_kg(tmp_path, calibration_fraction=0.25, calibration_seed=4)
    prepared = api.load_run_data(run, progress=False)
    corpus = prepared.corpus
    hidden: list = []
    real = KGTextModel.facts_hidden
    monkeypatch.setattr(KGTextModel, "facts_hidden",
                        lambda self, s: hidden.append(None if s is None else s.rows.tolist()) or real(self, s))
    request = api.make_request(run, ids=REQUEST, by="triple")
    closed = api.forget(run, request, method="multidelete", out=tmp_path / "closed", progress=False, close=True,
                        overrides=["epochs=1"])
    df = set(closed.excluded_ids)
    dr = [r for r in prepared.trained_rows() if corpus.pair_ids[r] not in df]
    expected = mirror_rows(corpus, prepared.calibration, dr, learn_mirror_relations(KG_TRAIN))
    assert {corpus.pair_ids[r] for r in prepared.calibration if corpus.pair_ids[r].startswith("tri:")} == \
        {"tri:e0|up|e2", "tri:e2|sim|e3", "tri:e3|up|e4"}
    assert [corpus.pair_ids[r] for r in expected] == ["tri:e3|sim|e2"]
    assert hidden and all(h == expected for h in hidden)   # the reference scored once, on the untouched model
    hidden.clear()
    api.forget(run, request, method="multidelete", out=tmp_path / "open", progress=False, overrides=["epochs=1"])
    assert hidden and all(h is None for h in hidden)


def test_close_refuses_a_corpus_without_triples(original, tmp_path):
    from graphdel.errors import InvalidInputError

    request = api.make_request(original, ids=["aspirin#0"], by="pair")
    with pytest.raises(InvalidInputError, match="close .--close. adds the mirrored triples of a knowledge-graph"):
        api.forget(original, request, method="ft", out=tmp_path / "f", progress=False, close=True)
    assert not (tmp_path / "f").exists()


def test_forget_with_tune_keeps_the_rules_choice_and_its_replay_reproduces_it(original, tmp_path):
    """``tune``: every candidate learning rate is recorded with its calibration gap and validation drop, the run
    keeps the smallest criterion, its time counts the whole search, and its recorded settings are the kept
    candidate's, so a replay gives the same weights without searching."""
    from graphdel.unlearning.tuning import TuneConfig

    request = api.make_request(original, ids=["aspirin#0", "ibuprofen#0"], by="pair")
    run = gd.forget(original, request, method="neggrad", overrides=["epochs=2", "lr=3e-4"], out=tmp_path / "t",
                    progress=False, tune=TuneConfig(lr_factors=[1.0, 10.0]))
    table = run.metrics["selected"]["tuning"]
    rows = table["candidates"]
    assert [r["lr"] for r in rows] == pytest.approx([3e-4, 3e-3])
    kept = min(range(2), key=lambda i: rows[i]["criterion"])
    assert table["kept"] == kept and run.config["method_config"]["lr"] == pytest.approx(rows[kept]["lr"])
    assert run.metrics["wall_time_s"] >= sum(r["wall_time_s"] for r in rows)
    again = gd.replay(run.path, tmp_path / "again", progress=False)
    assert (again.path / "model.safetensors").read_bytes() == (run.path / "model.safetensors").read_bytes()
    assert "tuning" not in again.metrics["selected"]


def test_replay_rebuilds_an_unlearned_run_from_its_records(original, tmp_path):
    """Replaying a run takes its request, its resolved method settings and its seed from the run folder: the
    replay's weights equal the run's, and a parent whose weights changed is refused."""
    request = api.make_request(original, ids=["aspirin#0", "ibuprofen#0"], by="pair")
    first = gd.forget(original, request, method="neggrad", overrides=["epochs=2", "lr=3e-4"], seed=3,
                      out=tmp_path / "first", progress=False)
    again = gd.replay(first.path, tmp_path / "again", progress=False)
    assert again.config["method_config"] == first.config["method_config"] and again.config["seed"] == 3
    assert (again.path / "model.safetensors").read_bytes() == (first.path / "model.safetensors").read_bytes()
    assert (json.loads((again.path / "request.json").read_text())["pairs"]
            == json.loads((first.path / "request.json").read_text())["pairs"])
    with pytest.raises(InvalidInputError, match="not an unlearned one"):
        gd.replay(original.path, tmp_path / "nothing", progress=False)


def test_match_reference_weighs_the_calibration_by_the_requests_series(tiny_csv, tmp_path):
    """A molecule request's context carries the calibration weights of its series; a method asked to match
    scores its reference with them, and says so in the run's selection."""
    from graphdel.evaluation.reference_weights import series_matched_weights

    # a calibration of 2 of the 8 training molecules: ethanol (no relative) and ibuprofen (a benzene)
    data = api.DataConfig(source=f"csv:{tiny_csv}", calibration_fraction=0.25, calibration_seed=5)
    original = gd.train(data, TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig", quick=True,
                        progress=False)
    prepared = api.load_run_data(original, progress=False)
    # aspirin keeps benzene and paracetamol in Dr; caffeine (a purine) has no relative
    request = api.make_request(original, ids=["aspirin#0", "caffeine#0"], by="pair", prepared=prepared)
    run = api.forget(original, request, method="multidelete", out=tmp_path / "m", progress=False,
                     prepared=prepared, overrides=["epochs=1", "match_reference=true"])
    df = sorted(prepared.corpus.index_of(p) for p in request.pair_ids)
    expected = series_matched_weights(prepared, df, prepared.retained_rows(df))
    assert sorted(prepared.corpus.item_ids[r] for r in prepared.calibration) == ["ethanol", "ibuprofen"]
    assert (expected.request_share, expected.calibration_share) == (0.5, 0.5)
    assert expected.describe() in run.metrics["selected"]["notes"]
