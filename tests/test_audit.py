"""graphdel audit: M unlearned and M retrained models of one request, their signals on every deleted
pair, the per-example ε and U-LiRA against their floors; models cached and reused."""

from __future__ import annotations

import dataclasses
import json

import pytest

import graphdel as gd
from graphdel import api
from graphdel.audit import AuditConfig, run_audit, signal_matrices
from graphdel.cli import main
from graphdel.errors import InvalidInputError
from graphdel.evaluation.per_example import floor, per_example_epsilon
from graphdel.runs import Run
from graphdel.training.loop import TrainConfig

IDS = ["aspirin#0", "ethanol#0", "benzene#0"]


@pytest.fixture
def original(tiny_csv, tmp_path):
    return gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig", quick=True,
                    progress=False)


def test_the_audit_trains_both_populations_and_estimates_per_pair(original, tmp_path, monkeypatch):
    request = api.make_request(original, ids=IDS, by="pair")
    config = AuditConfig(method="ft", overrides=["epochs=1"], models=4, progress=False)
    result = run_audit(original, request, config, tmp_path / "audit")
    assert {p.name for p in (tmp_path / "audit").iterdir()} == {"audit.json", "epsilon.png", "ulira_roc.png"}
    assert json.loads((tmp_path / "audit" / "audit.json").read_text()) == json.loads(json.dumps(result))
    assert [e["pair_id"] for e in result["per_example"]] == sorted(IDS, key=lambda p: original_row(original, p))
    unlearned = [Run.load(p) for p in result["unlearned_runs"]]
    retrained = [Run.load(p) for p in result["retrained_runs"]]
    # M unlearned runs of the method with seeds 0..M-1, M Retrains with training seeds 0..M-1
    assert [r.config["method"] for r in unlearned] == ["ft"] * 4 and [r.config["seed"] for r in unlearned] == [0, 1, 2, 3]
    assert [r.config["method"] for r in retrained] == ["retrain"] * 4
    assert len({r.path.name for r in retrained}) == 4
    # the numbers are the estimators' on the signals of those runs, recomputed here
    prepared = api.load_run_data(original, progress=False)
    rows = sorted(request.rows(prepared.corpus))
    s_u, s_r = signal_matrices(unlearned, prepared, rows), signal_matrices(retrained, prepared, rows)
    assert s_u["similarity"].shape == (4, 3)
    eps = per_example_epsilon(s_u["similarity"], s_r["similarity"])
    assert [e["epsilon"] for e in result["per_example"]] == pytest.approx(eps.epsilon.tolist())
    assert result["signals"]["similarity"]["epsilon_floor"]["median"] == floor(s_r["similarity"]).summary()["median"]
    assert set(result["signals"]) >= {"similarity", "pool_reciprocal_rank", "pool_loss"}
    # a second audit of the same request trains nothing: every model comes from the cache
    monkeypatch.setattr(api, "forget", lambda *a, **k: pytest.fail("a cached model was trained again"))
    again = run_audit(original, request, config, tmp_path / "again")
    assert again["unlearned_runs"] == result["unlearned_runs"] and again["per_example"] == result["per_example"]
    # the same pairs in a request that reads otherwise (here its description) are another request, whose
    # models are trained anew: the report checks an audit against the runs' whole request
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        run_audit(original, dataclasses.replace(request, description="withdrawn by the licensor"), config,
                  tmp_path / "other")


def original_row(run, pair_id):
    return api.load_run_data(run, progress=False).corpus.index_of(pair_id)


def test_the_command_prints_each_signal_against_its_floor(original, tmp_path, capsys):
    (tmp_path / "ids.txt").write_text("\n".join(IDS) + "\n")
    argv = ["audit", "--model", str(original.path), "--forget", str(tmp_path / "ids.txt"), "--method", "ft",
            "--set", "epochs=1", "--models", "4", "--device", "cpu", "--out", str(tmp_path / "a")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"audit: {tmp_path / 'a'}/audit.json (ft, 3 deleted pairs, 4 models of each kind)"
    assert lines[1].split()[:4] == ["signal", "epsilon", "median", "/"]
    assert {line.split()[0] for line in lines[2:]} >= {"similarity", "pool_reciprocal_rank", "pool_loss"}
    assert main([*argv[:-1], str(tmp_path / "a")]) == 2  # an existing --out is refused without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*argv[:-2], "--out", str(tmp_path / "b"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == 4


def test_too_few_models_and_an_unlearned_model_are_refused(original, tmp_path, capsys):
    request = api.make_request(original, ids=IDS, by="pair")
    with pytest.raises(InvalidInputError, match="--models must be at least 4"):
        run_audit(original, request, AuditConfig(method="ft", models=3, progress=False), tmp_path / "x")
    forgotten = api.forget(original, request, method="ft", overrides=["epochs=1"], out=tmp_path / "f",
                           progress=False)
    assert main(["audit", "--model", str(forgotten.path), "--forget-random", "1", "--out", str(tmp_path / "y")]) == 2
    assert "give the trained original, not an unlearned run" in capsys.readouterr().err
