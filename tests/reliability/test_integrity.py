"""Run integrity: a run's weights and config.json are checked against the hashes recorded when it was
written (``integrity.json`` of a trained run, ``certificate.json`` of an unlearned one) by every command that
reads it; a change is refused in one line naming the file, unless ``--accept-modified``, which ``forget``
records so that the certificate carries it. Runs written before the record existed are accepted with a
warning.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from graphdel import api
from graphdel.cli import main
from graphdel.errors import GraphdelWarning, IntegrityError
from graphdel.evaluation.certificate import canonical_json_sha256, verify_certificate
from graphdel.io import sha256_file
from graphdel.runs import INTEGRITY_FILE, Run

from tests.reliability.conftest import one_line_error, tree_digest


def _targets(run: Run) -> list[str]:
    """Two trained pairs of ``run`` (a Df batch needs two)."""
    return [p for p in ("ethanol#0", "benzene#0", "aspirin#0") if p not in run.calibration_ids][:2]


@pytest.fixture(scope="module")
def neggrad(tiny_run, tmp_path_factory):
    """A NegGrad run of two pairs of the shared tiny run (never modified), and the id file of its request."""
    root = tmp_path_factory.mktemp("integrity")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        run = api.forget(tiny_run, api.make_request(tiny_run, ids=_targets(tiny_run), by="pair"), method="neggrad",
                         overrides=["epochs=1"], out=root / "neggrad", progress=False)
    (root / "ids.txt").write_text(_targets(tiny_run)[0] + "\n")
    return run, root / "ids.txt"


def _edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj, indent=2))


def _flip_weight_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    header = struct.unpack("<Q", raw[:8])[0]
    raw[8 + header + (len(raw) - 8 - header) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_trained_run_records_the_hashes_of_its_weights_and_config(tiny_run):
    record = json.loads((tiny_run.path / INTEGRITY_FILE).read_text())
    assert record["sha256"] == {"model.safetensors": sha256_file(tiny_run.path / "model.safetensors"),
                                "config.json": sha256_file(tiny_run.path / "config.json")}
    assert Run.load(tiny_run.path).accepted_modifications == []


def test_swapped_weights_are_refused_and_accepted_only_when_asked(tiny_run, neggrad, tmp_path, capsys):
    """Another model's weights in an original's folder are not certified as "the original" silently."""
    other, ids = neggrad
    orig = tmp_path / "orig"
    shutil.copytree(tiny_run.path, orig)
    shutil.copy(other.path / "model.safetensors", orig / "model.safetensors")  # same architecture, loads fine
    before = tree_digest(orig)
    cmd = ["forget", "--model", str(orig), "--forget", str(ids), "--method", "neggrad", "--set", "epochs=1",
           "--out", str(tmp_path / "f")]
    assert main(cmd) == 2
    line = one_line_error(capsys)
    assert f"{orig / 'model.safetensors'} changed since the run was written" in line
    assert "config.json" not in line and "pass --accept-modified" in line
    assert not (tmp_path / "f").exists()
    assert main(["evaluate", "--model", str(orig), "--out", str(tmp_path / "e.json")]) == 2
    assert "model.safetensors changed" in one_line_error(capsys)

    assert main(cmd + ["--accept-modified"]) == 0
    new = Run.load(tmp_path / "f")
    accepted = new.config["parent"]["accepted_modifications"]
    assert [(a["file"], a["sha256"]) for a in accepted] == [("model.safetensors",
                                                             sha256_file(orig / "model.safetensors"))]
    # the certificate hashes this config, acceptance included
    cert = json.loads((new.path / "certificate.json").read_text())
    assert cert["config_sha256"] == canonical_json_sha256(new.config)
    assert tree_digest(orig) == before
    result = verify_certificate(new.path / "certificate.json", metrics=False)
    assert result.holds
    check = next(c for c in result.checks if c[0] == "original_integrity")
    assert check[1] is True and "accepted exactly this" in check[2]


def test_an_edited_lr_is_refused_then_accepted_and_recorded(tiny_run, neggrad, tmp_path, capsys):
    """Retrain would silently use an edited training recipe."""
    _, ids = neggrad
    orig = tmp_path / "orig"
    shutil.copytree(tiny_run.path, orig)
    _edit_json(orig / "config.json", lambda c: c["train"].update(lr=2e-3))
    cmd = ["forget", "--model", str(orig), "--forget", str(ids), "--method", "retrain", "--out", str(tmp_path / "f")]
    assert main(cmd) == 2
    line = one_line_error(capsys)
    assert f"{orig / 'config.json'} changed since the run was written" in line
    assert "model.safetensors" not in line
    with pytest.raises(IntegrityError, match="config.json changed"):
        Run.load(orig)

    assert main(cmd + ["--accept-modified"]) == 0
    new = Run.load(tmp_path / "f")
    assert [a["file"] for a in new.config["parent"]["accepted_modifications"]] == ["config.json"]
    assert new.config["train"]["lr"] == 2e-3  # what Retrain used, said in the certified config
    assert verify_certificate(new.path / "certificate.json", metrics=False).holds

    # an original edited again after the forget: verify's lookup of the original says so
    _edit_json(orig / "config.json", lambda c: c["train"].update(lr=5e-4))
    result = verify_certificate(new.path / "certificate.json", metrics=False)
    assert {name for name, _, _ in result.failed} == {"original_integrity"}
    assert main(["verify", "--no-metrics", str(new.path / "certificate.json")]) == 1
    assert "FAIL        original_integrity:" in capsys.readouterr().out


def test_an_unlearned_run_is_checked_against_its_certificate(neggrad, tmp_path, capsys):
    run, ids = neggrad
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    _flip_weight_byte(copy / "model.safetensors")
    assert main(["evaluate", "--model", str(copy), "--out", str(tmp_path / "e.json")]) == 2
    line = one_line_error(capsys)
    assert f"{copy / 'model.safetensors'} changed since the run was written" in line
    assert "certificate.json records" in line
    assert main(["forget", "--model", str(copy), "--forget", str(ids), "--method", "neggrad",
                 "--out", str(tmp_path / "f")]) == 2
    assert "model.safetensors changed" in one_line_error(capsys)
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "f").exists()
    assert Run.load(copy, accept_modified=True).accepted_modifications[0]["file"] == "model.safetensors"


def test_report_refuses_a_modified_original(tiny_run, tmp_path, capsys):
    """The original a report reads through its runs' parent is checked too."""
    orig = tmp_path / "orig"
    shutil.copytree(tiny_run.path, orig)
    run = Run.load(orig)
    api.forget(run, api.make_request(run, ids=_targets(run), by="pair"), method="neggrad", overrides=["epochs=1"],
               out=tmp_path / "neggrad", progress=False)
    _edit_json(orig / "config.json", lambda c: c["train"].update(lr=2e-3))
    assert main(["report", str(tmp_path / "neggrad"), "--out", str(tmp_path / "r"), "--no-probes"]) == 2
    line = one_line_error(capsys)
    assert f"{orig / 'config.json'} changed since the run was written" in line
    assert not (tmp_path / "r").exists()
    assert main(["report", str(tmp_path / "neggrad"), "--out", str(tmp_path / "r"), "--no-probes",
                 "--accept-modified"]) == 0


def test_a_run_without_an_integrity_record_is_accepted_with_a_warning(tiny_run, neggrad, tmp_path):
    """Runs written before graphdel recorded hashes still work; the warning says they are not checked."""
    _, ids = neggrad
    old = tmp_path / "old"
    shutil.copytree(tiny_run.path, old)
    (old / INTEGRITY_FILE).unlink()
    with pytest.warns(GraphdelWarning, match=re.escape(f"{old} has no integrity record")):
        run = Run.load(old)
    new = api.forget(run, api.make_request(run, ids=_targets(run)[:1], by="pair"), method="neggrad",
                     overrides=["epochs=1"], out=tmp_path / "f", progress=False)
    assert "accepted_modifications" not in new.config["parent"]
    result = verify_certificate(new.path / "certificate.json", metrics=False)
    assert result.holds and ("original_integrity", None) in {(n, ok) for n, ok, _ in result.checks}


def test_the_demo_refuses_a_modified_cached_original(tiny_csv, tmp_path):
    from graphdel.demo import cached_train

    data, model, train = api.quick_configs(f"csv:{tiny_csv}")
    cache = tmp_path / "cache"
    first, _, _ = cached_train(data, model, train, cache=cache, progress=False, log=lambda s: None)
    _flip_weight_byte(first.path / "model.safetensors")
    weights = re.escape(str(first.path / "model.safetensors"))
    with pytest.raises(IntegrityError, match=rf"cached original: {weights} changed .* or delete "
                                             rf"{re.escape(str(first.path))} to train it again"):
        cached_train(data, model, train, cache=cache, progress=False, log=lambda s: None)
    again, _, reused = cached_train(data, model, train, cache=cache, progress=False, log=lambda s: None,
                                    accept_modified=True)
    assert reused and again.path == first.path and again.accepted_modifications
