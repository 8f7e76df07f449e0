"""Deletion certificates: what they record, and `graphdel verify` checking every field of them.

One module-wide set of tiny runs (an original, Retrain and MultiDelete of one request, MultiDelete again on
the MultiDelete run for a chain) and a report with evaluated certificates. Tests only read them; a test
that tampers with a run works on a copy, or restores the file it changed before it ends.
"""

import copy
import csv
import json
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file

import graphdel as gd
from graphdel import api
from graphdel.cli import main
from graphdel.errors import InvalidInputError, RunError
from graphdel.evaluation.certificate import (CERTIFICATE_VERSION, NOT_JUDGED, REQUIRED_FIELDS,
                                             canonical_json_sha256, evaluated_certificate, retrieval_only,
                                             verify_certificate)
from graphdel.evaluation.suite import evaluate_runs, write_audit
from graphdel.io import sha256_file
from graphdel.runs import parameter_change_norm
from graphdel.training.loop import TrainConfig
from tests.conftest import TINY_MOLECULES

FORGET_FIELDS = REQUIRED_FIELDS[CERTIFICATE_VERSION]["forget"]
EVALUATED_FIELDS = REQUIRED_FIELDS[CERTIFICATE_VERSION]["evaluated"]
#: Evaluation settings: inputs of the re-evaluation, so an edited one shows as metrics not reproduced.
SETTINGS = ("evaluation.seed", "evaluation.pool_size", "evaluation.chunks")
#: What the re-evaluation checks (not made with metrics=False).
RECOMPUTED_FORGET = ["procedure.structural_change", "metrics.splits"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``original``, ``retrain``, ``md`` (MultiDelete) of one request, ``md2`` (MultiDelete of another
    pair, unlearned from ``md``) and ``report`` (a report folder of retrain + md with its certificates)."""
    root = tmp_path_factory.mktemp("certified")
    source = root / "tiny.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "smiles", "text", "split"])
        for name, smiles, text, split in TINY_MOLECULES:
            w.writerow([name.replace(" ", "_"), smiles, text, split])
    # Module fixtures run before the function-scoped cache isolation of tests/conftest.py: isolate here too.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        original = gd.train(f"csv:{source}", TrainConfig(epochs=2, batch_size=4), out=root / "orig", quick=True,
                            progress=False)
        prepared = api.load_run_data(original, progress=False)
        request = api.make_request(original, ids=["aspirin#0", "ethanol#0"], by="pair", prepared=prepared)
        retrain, md = [api.forget(original, request, method=m, out=root / m, progress=False, prepared=prepared,
                                  overrides=None if m == "retrain" else ["epochs=1"])
                       for m in ("retrain", "multidelete")]
        md_prepared = api.load_run_data(md, progress=False)
        second = api.make_request(md, ids=["caffeine#0"], by="pair", prepared=md_prepared)
        md2 = api.forget(md, second, method="multidelete", out=root / "md2", progress=False, prepared=md_prepared,
                         overrides=["epochs=1"])
        audit = evaluate_runs([retrain.path, md.path], progress=False, log=lambda s: None)
        write_audit(root / "report", audit)
    return SimpleNamespace(original=original, retrain=retrain, md=md, md2=md2, report=root / "report",
                           audit=audit)


def _evaluated(runs, name="multidelete"):
    return runs.report / "certificates" / f"{name}.json"


def _read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _get(cert, path):
    for part in path.split("."):
        cert = cert[part]
    return cert


def _set(cert, path, value):
    *parents, last = path.split(".")
    for part in parents:
        cert = cert[part]
    cert[last] = value


def _remove(cert, path):
    *parents, last = path.split(".")
    for part in parents:
        cert = cert[part]
    del cert[last]


def _edited(value):
    """A different value of the same kind: a number moved, a string changed, a flag flipped, one entry of a
    dict edited (its first, in key order)."""
    if isinstance(value, bool):
        return not value
    if value is None:
        return "edited"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.01
    if isinstance(value, str):
        return value + "0"
    if isinstance(value, list):
        return value + ["edited"]
    assert isinstance(value, dict) and value, value
    out = copy.deepcopy(value)
    first = sorted(out)[0]
    out[first] = _edited(out[first])
    return out


def _forget_copy(run, tmp_path, edit=None):
    """A copy of the run folder whose certificate.json went through ``edit(cert)``; its path."""
    folder = tmp_path / "copy"
    shutil.copytree(run.path, folder)
    if edit is not None:
        cert = _read(folder / "certificate.json")
        edit(cert)
        (folder / "certificate.json").write_text(json.dumps(cert))
    return folder / "certificate.json"


def _evaluated_copy(runs, tmp_path, edit):
    """The multidelete evaluated certificate after ``edit(cert)``, written outside the report; its path."""
    cert = _read(_evaluated(runs))
    edit(cert)
    path = tmp_path / "cert.json"
    path.write_text(json.dumps(cert))
    return path


def _failed(result) -> set:
    return {name for name, _, _ in result.failed}


@contextmanager
def _restored(*paths):
    """Put back the bytes of ``paths`` (or their absence) when the block ends."""
    saved = {p: p.read_bytes() for p in paths}
    try:
        yield
    finally:
        for p, data in saved.items():
            p.write_bytes(data)


def _flip_data_byte(path):
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    pos = 8 + header_len + (len(raw) - 8 - header_len) // 2  # inside the tensor data
    raw[pos] ^= 0xFF
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------------ what a certificate records

def test_forget_certificate_records_the_procedure(runs):
    cert = _read(runs.md.path / "certificate.json")
    assert cert["version"] == CERTIFICATE_VERSION == 3 and cert["kind"] == "forget"
    assert set(cert) == {f.split(".")[0] for f in FORGET_FIELDS}
    assert cert["method"] == "multidelete" and cert["method_config"] == runs.md.config["method_config"]
    selected = runs.md.metrics["selected"]
    assert cert["procedure"]["steps"] == selected["steps"] >= 1
    assert cert["procedure"]["epochs_run"] == selected["epochs_run"] == 1
    assert cert["procedure"]["selected_epoch"] == selected["epoch"]
    norm = parameter_change_norm(load_file(runs.original.path / "model.safetensors"),
                                 load_file(runs.md.path / "model.safetensors"))
    assert cert["procedure"]["param_change_norm"] == pytest.approx(norm) and norm > 0
    assert cert["procedure"]["structural_change"] is None  # a molecule model stores no training data
    assert cert["metrics"]["splits"] == retrieval_only(runs.md.metrics["splits"])
    assert cert["data"]["content_hash"] == runs.md.config["data"]["content_hash"]
    assert cert["original_weights_sha256"] == sha256_file(runs.original.path / "model.safetensors")
    assert cert["previous_certificate_sha256"] is None  # the parent is a trained run
    # the second deletion points at the first one's certificate file
    second = _read(runs.md2.path / "certificate.json")
    assert second["previous_certificate_sha256"] == sha256_file(runs.md.path / "certificate.json")
    assert second["original_weights_sha256"] == cert["unlearned_weights_sha256"]
    # Retrain takes no update steps of its own; it records its training epochs and the one early stopping kept
    retrain = _read(runs.retrain.path / "certificate.json")["procedure"]
    kept = runs.retrain.metrics["selected"]
    assert retrain["steps"] is None and retrain["param_change_norm"] > 0
    assert (retrain["epochs_run"], retrain["selected_epoch"]) == (kept["epochs_run"], kept["epoch"])
    assert 1 <= kept["epoch"] <= kept["epochs_run"]


def test_evaluated_certificate_in_report_folder(runs):
    cert = _read(_evaluated(runs))
    assert cert["kind"] == "evaluated" and set(cert) == {f.split(".")[0] for f in EVALUATED_FIELDS}
    assert cert["unlearned_path"] == str(runs.md.path.resolve())
    assert cert["original_path"] == str(runs.original.path.resolve())
    assert cert["request_sha256"] == canonical_json_sha256(_read(runs.md.path / "request.json"))
    assert cert["procedure"] == _read(runs.md.path / "certificate.json")["procedure"]
    entry = runs.audit["entries"]["multidelete"]
    ev = cert["evaluation"]
    assert ev["reference"] == str(runs.retrain.path.resolve())
    assert ev["reference_weights_sha256"] == sha256_file(runs.retrain.path / "model.safetensors")
    assert ev["splits"]["forget"] == retrieval_only(entry["splits"])["forget"]
    assert ev["distinguishability"] == entry["distinguishability"]["mean"]
    assert ev["attack_auc"] == entry["membership"]["attack_auc"]
    assert ev["vs_retrain"]["splits.forget.pool64.g2t_mrr"] == entry["vs_retrain"]["splits.forget.pool64.g2t_mrr"]
    assert set(ev["vs_retrain"]) <= set(entry["vs_retrain"])
    # the runs of a --quick original are measured, not judged (test_a_smoke_certificate_is_not_judged_...)
    targets = runs.audit["results"]["summary"]["thresholds"]["multidelete"]
    assert ev["thresholds"] == {name: {**t, "passed": NOT_JUDGED} for name, t in targets.items()}
    assert ev["verdict"] == NOT_JUDGED
    assert ev["audit"] == []  # no per-example audit was given to the report
    # the reference's own certificate judges nothing against itself
    ref = _read(_evaluated(runs, "retrain"))["evaluation"]
    assert ref["thresholds"] == {} and ref["verdict"] is None


def test_a_smoke_certificate_is_not_judged_like_the_report(runs, tmp_path):
    """A --quick original's runs: the report and the short table say "not judged", so does the certificate
    (it used to carry the targets' pass/fail and a verdict)."""
    from graphdel.evaluation import report

    assert NOT_JUDGED == report.NOT_JUDGED and runs.audit["results"]["smoke"] is True
    assert "- **not judged** multidelete" in (runs.report / "report.md").read_text(encoding="utf-8")
    ev = _read(_evaluated(runs))["evaluation"]
    assert ev["verdict"] == NOT_JUDGED and ev["thresholds"]
    assert {t["passed"] for t in ev["thresholds"].values()} == {NOT_JUDGED}
    # The same run, its config no longer that of a quick original: judged, as before.
    copy = tmp_path / "multidelete"
    shutil.copytree(runs.md.path, copy)
    config = _read(copy / "config.json")
    config.pop("quick", None)
    config["data"]["max_items"] = None
    (copy / "config.json").write_text(json.dumps(config))
    targets = runs.audit["results"]["summary"]["thresholds"]["multidelete"]
    judged = evaluated_certificate(copy, entry=runs.audit["entries"]["multidelete"], seed=0, thresholds=targets,
                                   original_path=runs.original.path)["evaluation"]
    assert judged["thresholds"] == targets and {t["passed"] for t in targets.values()} <= {True, False}
    assert judged["verdict"] is all(t["passed"] for t in targets.values())


def test_a_version_2_certificate_is_verified_as_it_was_written(runs, tmp_path):
    """Version 2 had no evaluation.audit and judged smoke runs: such a certificate still holds."""
    targets = runs.audit["results"]["summary"]["thresholds"]["multidelete"]

    def as_version_2(cert):
        cert["version"] = 2
        del cert["evaluation"]["audit"]
        cert["evaluation"]["thresholds"] = targets
        cert["evaluation"]["verdict"] = all(t["passed"] for t in targets.values())

    result = verify_certificate(_evaluated_copy(runs, tmp_path, as_version_2))
    assert result.holds, result.failed
    assert "evaluation.audit" not in {name for name, _, _ in result.checks}
    # and the same judged targets in a version 3 certificate of a smoke run fail
    result = verify_certificate(_evaluated_copy(runs, tmp_path, lambda c: as_version_2(c) or c.update(version=3)
                                                or c["evaluation"].update(audit=[])))
    assert _failed(result) == {"evaluation.thresholds", "evaluation.verdict"}


# ------------------------------------------------------------------------------ verify: what holds

@pytest.mark.parametrize("which", ["md", "md2", "evaluated md", "evaluated retrain"])
def test_untouched_certificate_holds_with_every_check_made(runs, which):
    path = {"md": runs.md.path / "certificate.json", "md2": runs.md2.path / "certificate.json",
            "evaluated md": _evaluated(runs), "evaluated retrain": _evaluated(runs, "retrain")}[which]
    result = verify_certificate(path)
    assert result.holds is True and result.status == "holds", result.failed
    assert result.not_checked == []
    names = [name for name, _, _ in result.checks]
    fields = EVALUATED_FIELDS if which.startswith("evaluated") else FORGET_FIELDS
    assert set(fields) <= set(names)  # one check per certified field ...
    assert len(names) == len(set(names))  # ... and only one
    assert ("chain" in names) is (which == "md2")


def test_cli_verify_holds_and_lists_each_check(runs, capsys):
    assert main(["verify", str(runs.md2.path / "certificate.json")]) == 0
    out = capsys.readouterr().out
    assert "ok          method: matches config.json" in out
    assert "ok          chain:" in out and "back to the trained run" in out
    assert out.splitlines()[-1] == f"certificate holds: {runs.md2.path / 'certificate.json'}"


def test_no_metrics_reports_the_re_evaluation_as_not_checked(runs):
    result = verify_certificate(runs.md.path / "certificate.json", metrics=False)
    assert result.holds is True
    assert [name for name, _, _ in result.not_checked] == RECOMPUTED_FORGET


# ------------------------------------------------------------------------------ verify: every field

def _owner(path, fields):
    """The certified field that ``path`` lies in."""
    return next(f for f in fields if path == f or path.startswith(f + "."))


@pytest.mark.parametrize("path", FORGET_FIELDS)
def test_editing_a_forget_certificate_field_fails_naming_it(runs, tmp_path, path):
    cert_path = _forget_copy(runs.md, tmp_path, lambda c: _set(c, path, _edited(_get(c, path))))
    result = verify_certificate(cert_path)
    assert result.status == "does not hold"
    assert path in _failed(result), result.checks


@pytest.mark.parametrize("path", FORGET_FIELDS)
def test_removing_a_forget_certificate_field_fails_naming_it(runs, tmp_path, path):
    cert_path = _forget_copy(runs.md, tmp_path, lambda c: _remove(c, path))
    result = verify_certificate(cert_path)
    assert result.status == "does not hold"
    assert (path, False, "missing from the certificate") in result.checks


def _evaluated_edit(runs, path):
    """The edited value of an evaluated certificate's field: paths point at another real run (a path to
    nowhere is a moved run, which is not checked rather than failed)."""
    if path == "unlearned_path" or path == "original_path":
        return str(runs.retrain.path.resolve())
    if path == "evaluation.reference":
        return str(runs.original.path.resolve())
    return _edited(_get(_read(_evaluated(runs)), path))


@pytest.mark.parametrize("path", [f for f in EVALUATED_FIELDS if f not in SETTINGS])
def test_editing_an_evaluated_certificate_field_fails_naming_it(runs, tmp_path, path):
    value = _evaluated_edit(runs, path)
    result = verify_certificate(_evaluated_copy(runs, tmp_path, lambda c: _set(c, path, value)))
    assert result.status == "does not hold"
    assert path in _failed(result), result.checks


@pytest.mark.parametrize("path, value", [("evaluation.seed", 1), ("evaluation.pool_size", 2),
                                         ("evaluation.chunks", 1)])
def test_editing_an_evaluation_setting_fails_the_metrics_it_gives(runs, tmp_path, path, value):
    result = verify_certificate(_evaluated_copy(runs, tmp_path, lambda c: _set(c, path, value)))
    assert result.status == "does not hold"
    # which numbers move depends on the data (here 5 chunks or 1 leave the run's own AUCs equal and move
    # Retrain's, so only the gap fails); some must, and nothing outside what the setting feeds
    assert _failed(result) <= {"evaluation.splits", "evaluation.distinguishability", "evaluation.attack_auc",
                               "evaluation.vs_retrain", "evaluation.thresholds", "evaluation.verdict"}


@pytest.mark.parametrize("path", EVALUATED_FIELDS)
def test_removing_an_evaluated_certificate_field_fails_naming_it(runs, tmp_path, path):
    result = verify_certificate(_evaluated_copy(runs, tmp_path, lambda c: _remove(c, path)))
    assert result.status == "does not hold"
    assert (path, False, "missing from the certificate") in result.checks


def test_emptied_metrics_fail(runs, tmp_path):
    result = verify_certificate(_evaluated_copy(runs, tmp_path, lambda c: _set(c, "evaluation.splits", {})))
    assert _failed(result) == {"evaluation.splits"}
    cert_path = _forget_copy(runs.md, tmp_path, lambda c: c["metrics"]["splits"].pop("test"))
    assert _failed(verify_certificate(cert_path)) == {"metrics.splits"}


def test_a_field_nothing_verifies_fails(runs, tmp_path):
    cert_path = _forget_copy(runs.md, tmp_path, lambda c: (c.update(gdpr_compliant=True),
                                                           c["procedure"].update(audited=True)))
    assert _failed(verify_certificate(cert_path, metrics=False)) == {"gdpr_compliant", "procedure.audited"}


def test_weights_equal_to_the_original_fail(runs, tmp_path):
    """A consistent-looking certificate of a "deletion" that left the weights as they were."""
    original = runs.original.path / "model.safetensors"

    def forge(cert):
        cert["unlearned_weights_sha256"] = sha256_file(original)
        cert["procedure"]["param_change_norm"] = 0.0

    cert_path = _forget_copy(runs.md, tmp_path, forge)
    shutil.copyfile(original, cert_path.parent / "model.safetensors")
    result = verify_certificate(cert_path, metrics=False)
    assert _failed(result) == {"weights_changed"}
    assert "nothing was unlearned" in result.failed[0][2]


def test_verify_fails_after_one_weight_byte_changes(runs, tmp_path, capsys):
    cert_path = _forget_copy(runs.md, tmp_path)
    assert main(["verify", str(cert_path)]) == 0
    capsys.readouterr()
    _flip_data_byte(cert_path.parent / "model.safetensors")
    assert main(["verify", str(cert_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL        unlearned_weights_sha256: differs from" in out
    assert "does NOT hold" in out and "unlearned_weights_sha256" in out.splitlines()[-1]


def test_changed_original_weights_fail(runs):
    weights = runs.original.path / "model.safetensors"
    with _restored(weights):
        _flip_data_byte(weights)
        result = verify_certificate(runs.md.path / "certificate.json", metrics=False)
    assert _failed(result) == {"original_weights_sha256"}
    # what is measured against the original is not measured against other weights
    assert ("procedure.param_change_norm", None, "the original weights differ from the certified ones") \
        in result.checks


def test_verify_fails_when_config_or_request_change(runs, tmp_path):
    cert_path = _forget_copy(runs.md, tmp_path)
    config = _read(cert_path.parent / "config.json")
    config["method"] = "retrain"
    (cert_path.parent / "config.json").write_text(json.dumps(config))
    request = _read(cert_path.parent / "request.json")
    request["pairs"] = request["pairs"][:1]
    (cert_path.parent / "request.json").write_text(json.dumps(request))
    failed = _failed(verify_certificate(cert_path, metrics=False))
    assert failed == {"config_sha256", "method", "request", "request_sha256"}


def test_changed_corpus_fails_the_content_hashes(runs, tmp_path):
    cert_path = _forget_copy(runs.md, tmp_path)
    source = Path(runs.md.config["data"]["source"].split(":", 1)[1])
    with _restored(source):  # the requested pair aspirin#0 changes
        source.write_text(source.read_text().replace("Aspirin is an acetate ester", "Aspirin is an ester"))
        result = verify_certificate(cert_path)
    assert {"data.content_hash", "request.pairs"} <= _failed(result)
    assert dict((n, ok) for n, ok, _ in result.checks)["metrics.splits"] is None  # not re-evaluated on other data


# ------------------------------------------------------------------------------ chains

def test_chain_of_two_forgets_verifies_and_a_tampered_parent_breaks_it(runs):
    child = runs.md2.path / "certificate.json"
    parent_cert = runs.md.path / "certificate.json"
    with _restored(parent_cert):
        cert = _read(parent_cert)
        cert["method_config"]["epochs"] = 99
        parent_cert.write_text(json.dumps(cert))
        result = verify_certificate(child, metrics=False)
    assert _failed(result) == {"previous_certificate_sha256"}
    assert verify_certificate(child, metrics=False).holds is True  # restored


def test_chain_walk_checks_the_earlier_runs_hashes(runs):
    """The parent's certificate file is untouched, but its run no longer matches it."""
    child = runs.md2.path / "certificate.json"
    parent_config = runs.md.path / "config.json"
    with _restored(parent_config):
        config = _read(parent_config)
        config["method_config"]["epochs"] = 99
        parent_config.write_text(json.dumps(config))
        result = verify_certificate(child, metrics=False)
    assert _failed(result) == {"chain"}
    assert "config_sha256" in result.failed[0][2]


# ------------------------------------------------------------------------------ what cannot be checked

def test_moved_original_is_not_checked_rather_than_failed(runs, capsys):
    moved = runs.original.path.with_name("orig-moved")
    runs.original.path.rename(moved)
    try:
        result = verify_certificate(runs.md.path / "certificate.json")
        code = main(["verify", str(runs.md.path / "certificate.json")])
    finally:
        moved.rename(runs.original.path)
    assert result.holds is True and result.status == "holds"
    assert {n for n, _, _ in result.not_checked} == {
        "original_weights_sha256", "procedure.param_change_norm", "procedure.structural_change",
        "previous_certificate_sha256"}
    out = capsys.readouterr().out
    assert code == 0
    assert "not checked original_weights_sha256:" in out
    assert "(4 check(s) not made: " in out.splitlines()[-1]


def test_certificate_copied_away_cannot_be_checked(runs, tmp_path, capsys):
    lonely = tmp_path / "lonely.json"
    shutil.copyfile(runs.md.path / "certificate.json", lonely)
    result = verify_certificate(lonely)
    assert result.status == "cannot check" and result.holds is False and result.failed == []
    assert main(["verify", str(lonely)]) == 3
    assert "certificate could NOT be checked: the unlearned run was not found" in capsys.readouterr().out


# ------------------------------------------------------------------------------ bad input

def test_unreadable_certificate_is_a_user_error(tmp_path, capsys):
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(RunError):
        verify_certificate(tmp_path / "c.json")
    assert main(["verify", str(tmp_path / "c.json")]) == 2
    assert "graphdel: error:" in capsys.readouterr().err
    (tmp_path / "d.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(RunError, match="not a graphdel deletion certificate"):
        verify_certificate(tmp_path / "d.json")


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1e-6])
def test_verify_refuses_a_bad_tolerance(tmp_path, tolerance):
    with pytest.raises(InvalidInputError, match="finite number >= 0"):
        verify_certificate(tmp_path / "c.json", tolerance=tolerance)
