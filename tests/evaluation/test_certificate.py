"""Deletion certificates: evaluated certificates in a report folder, and `graphdel verify`."""

import json
import shutil
import struct

import pytest

from graphdel.cli import main
from graphdel.errors import RunError
from graphdel.evaluation.certificate import (canonical_json_sha256, retrieval_only,
                                             verify_certificate)
from graphdel.evaluation.suite import evaluate_runs, write_audit


@pytest.fixture
def forgotten(tiny_runs):
    """``(original, retrain, multidelete)`` of the shared tiny request."""
    original, _, _, (retrain, md) = tiny_runs
    return original, retrain, md


def _flip_data_byte(path):
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    pos = 8 + header_len + (len(raw) - 8 - header_len) // 2  # inside the tensor data
    raw[pos] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_forget_certificate_holds(forgotten, capsys):
    _, _, md = forgotten
    result = verify_certificate(md.path / "certificate.json")
    assert result.holds, result.checks
    names = [c[0] for c in result.checks]
    assert names[:4] == ["weights", "config", "request", "original_weights"]
    assert dict((n, ok) for n, ok, _ in result.checks)["metrics"] is True
    assert main(["verify", str(md.path / "certificate.json")]) == 0
    assert "certificate holds" in capsys.readouterr().out


def test_verify_fails_after_one_weight_byte_changes(forgotten, tmp_path, capsys):
    _, _, md = forgotten
    copy = tmp_path / "copy"
    shutil.copytree(md.path, copy)
    assert main(["verify", str(copy / "certificate.json")]) == 0
    capsys.readouterr()
    _flip_data_byte(copy / "model.safetensors")
    assert main(["verify", str(copy / "certificate.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL weights:" in out
    assert "does NOT hold" in out and "weights" in out.splitlines()[-1]


def test_verify_fails_when_config_or_request_change(forgotten, tmp_path):
    _, _, md = forgotten
    copy = tmp_path / "copy"
    shutil.copytree(md.path, copy)
    config = json.loads((copy / "config.json").read_text())
    config["method"] = "retrain"
    (copy / "config.json").write_text(json.dumps(config))
    request = json.loads((copy / "request.json").read_text())
    request["pairs"] = request["pairs"][:1]
    (copy / "request.json").write_text(json.dumps(request))
    failed = {name for name, _, _ in verify_certificate(copy / "certificate.json", metrics=False).failed}
    assert failed == {"config", "request"}


def test_evaluated_certificate_in_report_folder(forgotten, tmp_path, capsys):
    original, retrain, md = forgotten
    audit = evaluate_runs([retrain.path, md.path], progress=False, log=lambda s: None)
    write_audit(tmp_path / "rep", audit)
    cert_path = tmp_path / "rep" / "certificates" / f"{md.path.name}.json"
    cert = json.loads(cert_path.read_text())
    assert cert["unlearned_path"] == str(md.path.resolve())
    assert cert["original_path"] == str(original.path.resolve())
    assert cert["request_sha256"] == canonical_json_sha256(json.loads((md.path / "request.json").read_text()))
    assert cert["evaluation"]["metrics"]["splits"]["forget"] == retrieval_only(md.metrics["splits"])["forget"]
    assert cert["evaluation"]["all_thresholds_passed"] in (True, False)
    assert main(["verify", str(cert_path)]) == 0
    # a tampered certified metric is caught by the re-evaluation
    cert["evaluation"]["metrics"]["splits"]["test"]["pool64"]["g2t_mrr"] += 1e-3
    cert_path.write_text(json.dumps(cert))
    result = verify_certificate(cert_path)
    assert [c[0] for c in result.failed] == ["metrics"]
    assert "splits.test.pool64.g2t_mrr" in result.failed[0][2] or "test.pool64.g2t_mrr" in result.failed[0][2]


def test_unreadable_certificate_is_a_user_error(tmp_path, capsys):
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(RunError):
        verify_certificate(tmp_path / "c.json")
    assert main(["verify", str(tmp_path / "c.json")]) == 2
    assert "graphdel: error:" in capsys.readouterr().err


def test_missing_run_fails_weights(forgotten, tmp_path):
    _, _, md = forgotten
    cert = json.loads((md.path / "certificate.json").read_text())
    (tmp_path / "lonely.json").write_text(json.dumps(cert))
    result = verify_certificate(tmp_path / "lonely.json")
    assert not result.holds and result.failed[0][0] == "weights"
