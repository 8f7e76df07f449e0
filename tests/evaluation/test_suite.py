"""The evaluation suite end to end on the tiny CSV corpus, plus its pure helpers on hand-made arrays."""

import json

import numpy as np
import pytest
import torch

import graphdel as gd
from graphdel import api
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.report import SMOKE_BANNER
from graphdel.evaluation.suite import (SuiteConfig, _derangement, compare_to_references, evaluate_model,
                                       evaluate_runs, pair_signals, retrieval_metrics, suite_sets,
                                       short_table, train_shadows, write_audit)
from graphdel.training.loop import TrainConfig


def test_derangement_never_pairs_an_item_with_itself():
    items = np.array([0, 0, 1, 2, 2, 3])
    j = _derangement(items, seed=0)
    assert (items[j] != items).all()
    assert _derangement(np.array([5, 5, 5]), 0) is None
    assert _derangement(np.array([1]), 0) is None


def test_compare_to_references_signs():
    method = {"splits": {"forget": {"pool64": {"g2t_mrr": 0.5}}, "test": {"pool64": {"g2t_mrr": 0.6}}},
              "membership": {"attack_auc": 0.9}, "wall_time_s": 2.0}
    retrain = {"splits": {"forget": {"pool64": {"g2t_mrr": 0.4}}, "test": {"pool64": {"g2t_mrr": 0.7}}},
               "membership": {"attack_auc": 0.55}, "wall_time_s": 20.0}
    original = {"splits": {"forget": {"pool64": {"g2t_mrr": 0.9}}, "test": {"pool64": {"g2t_mrr": 0.65}}}}
    out = compare_to_references(method, retrain=retrain, original=original)
    assert out["vs_retrain"]["splits.forget.pool64.g2t_mrr"] == pytest.approx(0.1)
    assert out["vs_retrain"]["membership.attack_auc"] == pytest.approx(0.35)
    assert "splits.test.pool64.g2t_mrr" not in out["vs_retrain"]  # test is judged against the original
    assert out["vs_original"] == {"splits.test.pool64.g2t_mrr": pytest.approx(-0.05)}
    assert out["speedup_vs_retrain"] == pytest.approx(10.0)
    assert out["leak"] == "remembers"


def test_distinguishability_against_the_calibration_pairs_exact():
    from graphdel.evaluation.suite_attacks import distinguishability
    from graphdel.evaluation.suite_signals import PairSignals

    def signals(similarity):
        n = len(similarity)
        return PairSignals(None, np.array(similarity), None, None, np.zeros(n), np.zeros(n))

    df, dr, cal = signals([0.1, 0.2]), signals([0.9, 0.8, 0.7, 0.6]), signals([0.15, 0.3])
    out = distinguishability(df, dr, chunks=2, seed=0, calibration=cal)
    assert out["mean"] == 1.0                        # every retained pair above every deleted one
    # calibration above Df in 3 of the 4 (Df, calibration) pairs: 0.1 < 0.15, 0.1 < 0.3, 0.2 < 0.3
    assert out["vs_calibration"]["mean"] == 0.75
    # and their spread: sd 0.05 against 0.075; the CDFs part by 1/2 at x = 0.2 (Df 1, calibration 1/2)
    assert out["vs_calibration"]["sd_ratio"] == pytest.approx(0.05 / 0.075)
    assert out["vs_calibration"]["ks"] == pytest.approx(0.5)
    assert "vs_calibration" not in distinguishability(df, dr, chunks=2, seed=0)


def test_suite_on_the_tiny_corpus(tiny_runs):
    original, prepared, request, (retrain, multidelete) = tiny_runs
    df_rows = request.rows(prepared.corpus)
    sets = suite_sets(prepared, df_rows, chunks=5, seed=0)
    assert set(sets) == {"forget", "retain", "calibration", "val", "test", "dr", "distractors"}
    assert sets["distractors"].rows.tolist() == prepared.distractor_rows()
    assert len(sets["forget"]) == 2 and len(sets["retain"]) == 2
    assert not set(sets["dr"].rows.tolist()) & set(df_rows)
    # retrieval of the suite equals what `forget` recorded (same sets, same seeds)
    entry_o, sig_o = evaluate_model(original.model, sets, corpus=prepared.corpus)
    entry, _ = evaluate_model(multidelete.model, sets, corpus=prepared.corpus, original_signals=sig_o)
    for split in ("forget", "retain", "test"):
        assert entry["splits"][split]["pool64"] == multidelete.metrics["splits"][split]["pool64"]
        assert 0.0 <= entry["splits"][split]["match_acc"] <= 1.0
        assert 0.0 <= entry["splits"][split]["match_bal_acc"] <= 1.0
    assert 0.0 <= entry["distinguishability"]["mean"] <= 1.0
    assert entry["distinguishability"]["score"] == "similarity"
    assert 0.0 <= entry["distinguishability"]["matching"]["mean"] <= 1.0
    assert "vs_calibration" in entry["distinguishability"]  # the suite scores a calibration split
    m = entry["membership"]
    assert 0.0 <= m["attack_auc"] <= 1.0 and 0.0 <= m["member_rate"] <= 1.0
    assert set(entry["probes"]) == {"logp", "tpsa", "aromatic"}
    assert set(entry["drift"]) == {"forget", "test"}
    assert entry_o.get("drift") is None
    # the original's own drift is 1
    e2, _ = evaluate_model(original.model, sets, corpus=prepared.corpus, original_signals=sig_o)
    assert e2["drift"]["test"]["graph"] == pytest.approx(1.0)
    sig = pair_signals(original.model, sets["test"], embed_pairs(original.model, sets["distractors"]))
    assert sig.features().shape == (len(sets["test"]), 4)
    assert np.allclose(sig.similarity, sig_o["test"].similarity)


def test_probes_skip_for_other_modalities(tiny_runs):
    original, prepared, request, _ = tiny_runs
    sets = suite_sets(prepared, request.rows(prepared.corpus))

    class NotMolecules:
        modality = "kg"

    entry, _ = evaluate_model(original.model, sets, corpus=NotMolecules())
    assert "need molecules" in entry["probes"]["note"]


def test_a_callers_memory_figures_replace_what_the_run_recorded(tiny_runs):
    original, prepared, request, runs = tiny_runs
    name = runs[1].path.name
    audit = evaluate_runs([p.path for p in runs], config=SuiteConfig(probes=False), progress=False,
                          log=lambda s: None, measurements={name: {"peak_mem_mb": 12.5}})
    entry = audit["results"]["models"]["multidelete"]
    assert entry["peak_mem_mb"] == 12.5 and entry["start_mem_mb"] == runs[1].metrics["start_mem_mb"]


def test_the_original_data_a_caller_prepared_is_used_and_checked(tiny_runs, monkeypatch):
    """The demo passes the data it prepared once: the audit is the one of a fresh load, without loading; a
    preparation of another run of the chain is refused."""
    from graphdel.errors import InvalidInputError
    from graphdel.evaluation import suite_runs

    original, prepared, request, runs = tiny_runs
    cfg = SuiteConfig(probes=False)
    loaded = evaluate_runs([p.path for p in runs], config=cfg, progress=False, log=lambda s: None)
    monkeypatch.setattr(suite_runs, "load_run_data", lambda *a, **k: pytest.fail("loaded the data again"))
    given = evaluate_runs([p.path for p in runs], config=cfg, progress=False, log=lambda s: None,
                          prepared=prepared)
    assert given["results"]["models"] == loaded["results"]["models"]
    with pytest.raises(InvalidInputError, match="excludes other pairs"):
        evaluate_runs([p.path for p in runs], config=cfg, progress=False, log=lambda s: None,
                      prepared=prepared.for_run(runs[1]))


def test_a_further_retrain_shows_its_gaps_to_the_reference_unranked_and_unjudged(tiny_runs, tmp_path):
    """A Retrain of the same request at another seed is role ``spread``: its gaps to the reference Retrain
    are in the headline table and the terminal table, and it is neither ranked nor judged."""
    original, prepared, request, runs = tiny_runs
    other = api.forget(original, request, method="retrain", overrides=["seed=1"], out=tmp_path / "retrain_s1",
                       progress=False, prepared=prepared)
    audit = evaluate_runs([runs[0].path, runs[1].path, other.path], config=SuiteConfig(probes=False),
                          progress=False, log=lambda s: None)
    models = audit["results"]["models"]
    name = "retrain (retrain_s1)"
    assert [models[n]["role"] for n in ("original", "retrain (retrain)", "multidelete", name)] == \
        ["original", "reference", "method", "spread"]
    assert audit["results"]["summary"]["scores"]["ranking"] == ["multidelete"]
    df = lambda n: models[n]["splits"]["forget"]["pool64"]["g2t_mrr"]
    gap = df(name) - df("retrain (retrain)")
    line = next(ln for ln in short_table(audit).splitlines() if " spread " in ln)
    assert f"{gap:+.3f}" in line.split()
    write_audit(tmp_path / "report", audit)
    md = (tmp_path / "report" / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| retrain (retrain\\_s1) | spread |"))
    assert f"| {df(name):.3f} ({'+' if gap >= 0 else '−'}{abs(gap):.3f}) |" in row
    assert row.rstrip().endswith("|  |  |")  # no score, no verdict
    # its certificate records the gaps and no targets, and verifies as such
    from graphdel.evaluation.certificate import verify_certificate

    cert = tmp_path / "report" / "certificates" / "retrain_s1.json"
    evaluation = json.loads(cert.read_text())["evaluation"]
    assert evaluation["thresholds"] == {} and evaluation["verdict"] is None and evaluation["vs_retrain"]
    result = verify_certificate(cert)
    assert result.holds, result.failed


def test_evaluate_runs_and_report(tiny_runs, tmp_path):
    original, prepared, request, runs = tiny_runs
    audit = evaluate_runs([p.path for p in runs], config=SuiteConfig(), progress=False, log=lambda s: None)
    models = audit["results"]["models"]
    assert models["original"]["role"] == "original"
    assert models["retrain"]["role"] == "reference"
    assert models["multidelete"]["role"] == "method"
    assert "vs_retrain" in models["multidelete"] and "vs_original" in models["multidelete"]
    assert models["multidelete"]["speedup_vs_retrain"] > 0
    # the runs' own records: forget measured the method's memory; a quick original makes a smoke audit
    assert models["multidelete"]["peak_mem_mb"] == runs[1].metrics["peak_mem_mb"] > 30
    assert models["multidelete"]["start_mem_mb"] == runs[1].metrics["start_mem_mb"]
    assert audit["results"]["smoke"] is True and audit["results"]["title"].endswith("(smoke run: not judged)")
    assert short_table(audit).splitlines()[0] == SMOKE_BANNER
    files = write_audit(tmp_path / "report", audit)
    for rel in ("report.md", "report.html", "metrics.json", "plots/attack_roc.png", "plots/metrics_vs_retrain.png",
                "plots/similarity_multidelete.png", "plots/embedding_multidelete.png",
                "certificates/multidelete.json", "certificates/retrain.json"):
        assert rel in files and files[rel].is_file(), rel
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["summary"]["scores"]["ranking"] == ["multidelete"]
    cert = json.loads((tmp_path / "report" / "certificates" / "multidelete.json").read_text())
    assert cert["evaluation"]["reference"] == str(runs[0].path.resolve())
    assert set(cert["evaluation"]["thresholds"]) == {"forget_mrr_vs_retrain", "test_mrr_drop", "time_vs_retrain"}
    # the run folders were not written
    assert not (runs[1].path / "report.html").exists()
    assert sorted(p.name for p in runs[1].path.iterdir()) == sorted(
        ["certificate.json", "config.json", "history.json", "log.json", "metrics.json", "model.safetensors",
         "model_config.json", "request.json"])


def test_evaluate_runs_refuses_mixed_requests(tiny_runs, tmp_path):
    original, prepared, _, runs = tiny_runs
    other = api.make_request(original, ids=["caffeine#0"], by="pair", prepared=prepared)
    odd = api.forget(original, other, method="multidelete", overrides=["epochs=1"], out=tmp_path / "odd",
                     progress=False, prepared=prepared)
    with pytest.raises(gd.api.InvalidInputError, match="different deletion requests"):
        evaluate_runs([runs[0].path, odd.path], progress=False, log=lambda s: None)


def test_lira_with_real_shadow_models(tiny_runs):
    original, prepared, request, (retrain, multidelete) = tiny_runs
    df_rows = request.rows(prepared.corpus)
    sets = suite_sets(prepared, df_rows)
    shadows = train_shadows(prepared, df_rows, original.model.config, TrainConfig(epochs=1, batch_size=4),
                            shadows=4, seed=0)
    assert shadows["keep"].shape[0] == 4
    assert (shadows["keep"].sum(0) == 2).all()  # every row is "in" for exactly half the shadows
    assert shadows["signals"]["forget"].shape == (4, len(df_rows))
    entry, _ = evaluate_model(multidelete.model, sets, config=SuiteConfig(lira_shadows=4), corpus=prepared.corpus,
                              shadows=shadows)
    assert 0.0 <= entry["membership"]["lira_auc"] <= 1.0
    assert entry["membership"]["lira_shadows"] == 4
    with pytest.raises(ValueError, match=">= 4"):
        SuiteConfig(lira_shadows=2)


def test_retrieval_metrics_still_works(tiny_runs):
    original, prepared, _, _ = tiny_runs
    out = retrieval_metrics(original.model, {"test": prepared.sets()["test"], "empty": prepared.data.subset([])},
                            prepared.distractors())
    assert set(out) == {"test"}
    # the run's metrics also hold the matching head's entry (written at training, not a retrieval number)
    assert out["test"] == {k: v for k, v in original.metrics["splits"]["test"].items() if k != "matching"}


def test_a_closed_kg_request_compares_df_with_calibration_pairs_scored_without_their_mirrors(tmp_path,
                                                                                           monkeypatch):
    """For a request closed over its mirrors, ``vs_calibration`` reads the calibration pairs with their own
    retained mirrors out of the graph (as Df's are), for every model, and says how many were hidden; an open
    request's reads them as they are."""
    import graphdel.evaluation.metrics as metrics
    from graphdel.evaluation.distinguishability import df_vs_dr_auc
    from graphdel.evaluation.run_data import calibration_mirrors
    from tests.data.test_kg_facts import REQUEST, train_mirror_kg

    run = train_mirror_kg(tmp_path, calibration_fraction=0.25, calibration_seed=4)
    request = api.make_request(run, ids=REQUEST, by="triple")
    closed = api.forget(run, request, method="retrain", out=tmp_path / "closed", progress=False, close=True)
    opened = api.forget(run, request, method="retrain", out=tmp_path / "open", progress=False)
    seen = []  # the calibration similarities each model's vs_calibration was computed on
    real = metrics.distinguishability
    monkeypatch.setattr(metrics, "distinguishability",
                        lambda df, dr, calibration=None, **kw: seen.append(calibration.similarity.copy())
                        or real(df, dr, calibration=calibration, **kw))
    cfg = SuiteConfig(chunks=1, probes=False, membership=False)
    out_closed = evaluate_runs([closed], config=cfg, progress=False, log=lambda *_: None)

    prepared = api.load_run_data(run, progress=False)
    df_rows = sorted(prepared.corpus.index_of(p) for p in closed.excluded_ids)
    hidden = calibration_mirrors(prepared, prepared.retained_rows(df_rows))
    assert [prepared.corpus.pair_ids[r] for r in hidden.rows.tolist()] == ["tri:e3|sim|e2"]
    sets = suite_sets(prepared, df_rows, chunks=1, seed=cfg.seed)

    def similarity(model, pairs):
        e = embed_pairs(model, pairs)
        return (e.z_x * e.z_t).sum(1).double().numpy()

    for k, (name, model) in enumerate((("original", run.model), ("retrain", closed.model))):
        model.eval()
        with torch.no_grad():
            df = similarity(model, sets["forget"])
            as_is = similarity(model, sets["calibration"])
            with model.facts_hidden(hidden):
                without = similarity(model, sets["calibration"])
        assert not np.allclose(as_is, without)  # the mirror moves the calibration pairs' scores
        np.testing.assert_allclose(seen[k], without, rtol=0, atol=1e-6)
        section = out_closed["entries"][name]["distinguishability"]["vs_calibration"]
        assert section["mean"] == pytest.approx(df_vs_dr_auc(df, without, chunks=1, seed=cfg.seed)["mean"])
        assert section["mirrors_hidden"] == 1
    # the closed request forgotten again without --close: closed as long as one run says so, in any order
    again = api.forget(run, closed.path / "request.json", method="retrain",
                       out=tmp_path / "again", progress=False)
    original_closed = seen[0]  # the original's calibration similarities, read as closed
    seen.clear()
    evaluate_runs([again, closed], config=cfg, progress=False, log=lambda *_: None)
    np.testing.assert_allclose(seen[0], original_closed, rtol=0, atol=1e-6)
    seen.clear()
    out_open = evaluate_runs([opened], config=cfg, progress=False, log=lambda *_: None)
    with torch.no_grad():
        np.testing.assert_allclose(seen[0], similarity(run.model, sets["calibration"]), rtol=0, atol=1e-6)
    assert "mirrors_hidden" not in out_open["entries"]["original"]["distinguishability"]["vs_calibration"]


def test_the_suite_reuses_each_molecules_states_within_a_model_and_scores_as_without(tiny_runs, monkeypatch):
    import contextlib

    import graphdel.evaluation.matching as matching
    import graphdel.evaluation.suite_model as suite_model
    from graphdel.encoders.graph import FrozenTrunkCache

    original, prepared, request, (_, multidelete) = tiny_runs
    sets = suite_sets(prepared, request.rows(prepared.corpus), chunks=5, seed=0)
    served, states = [], FrozenTrunkCache.states
    monkeypatch.setattr(FrozenTrunkCache, "states", lambda self, *a: served.append(self) or states(self, *a))
    cached, _ = evaluate_model(multidelete.model, sets, corpus=prepared.corpus)
    # embedding, fusing and deranged pairs share the states
    assert served and sum(c.hits for c in set(served)) > 0
    assert all(p.requires_grad for p in multidelete.model.parameters())  # flags restored
    served.clear()
    for where in (suite_model, matching):  # the suite's cache and the matching scores' own
        monkeypatch.setattr(where, "item_states_cached", lambda model: contextlib.nullcontext())
    plain, _ = evaluate_model(multidelete.model, sets, corpus=prepared.corpus)
    assert not served
    cached.pop("_arrays"), plain.pop("_arrays")
    assert json.dumps(cached, sort_keys=True, default=str) == json.dumps(plain, sort_keys=True, default=str)


def test_deranged_probabilities_fuse_each_item_with_its_partners_text(tiny_runs):
    from graphdel.evaluation.suite_signals import _deranged_probs

    original, prepared, _, _ = tiny_runs
    model, pairs = original.model.eval(), prepared.sets()["train"]
    emb = embed_pairs(model, pairs)
    j = _derangement(emb.items.numpy(), 0)
    got = _deranged_probs(model, pairs, j, batch_size=3)  # chunks smaller than the set
    rows = pairs.rows
    with torch.no_grad():  # the pairs written out: item i's batch with text j[i]'s batch
        x, text = pairs.data.batch(rows).x, pairs.data.batch(rows[torch.as_tensor(j)]).text
        expected = torch.sigmoid(model.match_logits(model.fuse(x, text))).double().numpy()
    assert got.shape == (len(rows),) and np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, torch.sigmoid(model.match_logits(model.fuse(x, pairs.data.batch(rows).text)))
                           .detach().double().numpy(), atol=1e-3)  # the true pairs score otherwise
