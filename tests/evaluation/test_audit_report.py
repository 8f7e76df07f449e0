"""graphdel report --audit: per-example audits read, checked against the report's request, shown in the
report (summary table, plots, appendix, metrics.json) and recorded in the evaluated certificates, which
``graphdel verify`` checks against the audit files."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

import graphdel as gd
from graphdel.cli import main
from graphdel.errors import InvalidInputError
from graphdel.evaluation.audit_report import (EPSILON_PLOT, ROC_PLOT, audit_section, certificate_entry,
                                              check_audits, read_audit, read_audits)
from graphdel.evaluation.certificate import canonical_json_sha256, verify_certificate
from graphdel.evaluation.report import write_report
from graphdel.io import sha256_file
from graphdel.training.loop import TrainConfig

EVIL_CAPTION = "a *bold* | pipe <script>alert(1)</script> [x](y) `code` _u_ #h"
EVIL_ID = "p<1>|x"
REQUEST = {"format": "graphdel-deletion-request", "version": 1, "by": "pair", "count": 3,
           "pairs": [{"pair_id": p, "item_id": p.split("#")[0], "sha256": "0" * 64}
                     for p in ("a#0", "b#0", EVIL_ID)]}
WEIGHTS = "ab" * 32


def _curve(tpr01: float, tpr1: float) -> dict:
    return {"fpr": [0.0, 0.004, 0.001, 0.01, 0.1, 1.0], "tpr": [0.0, tpr01, tpr01, tpr1, 0.5, 1.0]}


def _signal(median, p90, at_cap, score, auc, tpr1, tpr01) -> dict:
    """One signal's entry of audit.json: the method's numbers as given, the floor's fixed."""
    eps = {"median": median, "p90": p90, "max": 50.0, "share_at_cap": at_cap, "forgetting_score": score,
           "examples": 3}
    return {"epsilon": eps, "epsilon_half": dict(eps),
            "epsilon_floor": {"median": 0.0, "p90": 0.0, "max": 0.0, "share_at_cap": 0.0, "forgetting_score": 1.0,
                              "examples": 3},
            "ulira": {"auc": auc, "tpr_at": {"0.01": tpr1, "0.001": tpr01}, "roc": _curve(tpr01, tpr1)},
            "ulira_floor": {"auc": 0.53, "tpr_at": {"0.01": 0.04, "0.001": 0.008}, "roc": _curve(0.008, 0.04)}}


def _audit(method="multidelete", *, originals=False, settings=(), request=REQUEST, weights=WEIGHTS,
           eps=(0.0, 0.71, 50.0)) -> dict:
    """A version-2 audit.json of 16 models per side on the 3 pairs of ``request``."""
    ids = [p["pair_id"] for p in request["pairs"]]
    per_example = [{"pair_id": p, "epsilon": e, "epsilon_floor": 0.0} for p, e in zip(ids, eps)]
    texts = {"a#0": "caption a", "b#0": "caption b", EVIL_ID: EVIL_CAPTION}
    return {
        "format": "graphdel-audit", "version": 2, "method": method, "settings": list(settings), "models": 16,
        "originals": originals, "seed": 0,
        "estimator": {"delta": 1e-5, "alpha": 0.05, "cap": 50.0, "peaky_ratio": 0.01, "intervals": True},
        "original": {"path": "/runs/original", "weights_sha256": weights},
        "request": request, "primary_signal": "similarity",
        "signals": {"similarity": _signal(0.71, 0.84, 0.0967, 0.774, 0.877, 0.157, 0.105),
                    "match_prob": _signal(50.0, 50.0, 0.6, 0.2, 0.99, 0.742, 0.5)},
        "per_example": per_example,
        "highest_epsilon": [{"pair_id": p["pair_id"], "text": texts.get(p["pair_id"], ""), "epsilon": p["epsilon"],
                             "epsilon_floor": 0.0}
                            for p in sorted(per_example, key=lambda p: -p["epsilon"])],
        "unlearned_runs": [f"/cache/u{i}" for i in range(16)],
        "retrained_runs": [f"/cache/r{i}" for i in range(16)],
    }


def one_line_error(capsys) -> str:
    """The single ``graphdel: error: ...`` line the command printed to stderr (no traceback)."""
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("graphdel: warning:")]
    assert len(err) == 1 and err[0].startswith("graphdel: error: "), err
    return err[0]


def _write(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def _results(section) -> dict:
    split = lambda mrr: {"pool64": {"g2t_mrr": mrr, "t2g_mrr": mrr}, "n": 3}  # noqa: E731
    model = lambda role, method, df: {"role": role, "method": method, "wall_time_s": 10.0,  # noqa: E731
                                      "splits": {"forget": split(df), "test": split(0.6)}}
    return {"title": "audit test", "models": {"original": model("original", "train", 0.9),
                                              "retrain": model("reference", "retrain", 0.7),
                                              "multidelete": model("method", "multidelete", 0.72)},
            "audit": section}


# ------------------------------------------------------------------------------------------ reading

def test_audits_are_read_with_their_hash_and_unique_labels(tmp_path):
    a = _write(tmp_path / "md", _audit())
    b = _write(tmp_path / "md_orig", _audit(originals=True))
    c = _write(tmp_path / "ft", _audit("ft", settings=["epochs=1"]))
    d = _write(tmp_path / "md_again", _audit())
    audits = read_audits([a, b, c, d])
    assert [x.label for x in audits] == ["multidelete (md)", "multidelete (16 originals)", "ft [epochs=1]",
                                         "multidelete (md_again)"]
    assert audits[0].sha256 == hashlib.sha256((a / "audit.json").read_bytes()).hexdigest()
    assert audits[0].path == (a / "audit.json").resolve()
    assert read_audit(a / "audit.json").path == audits[0].path  # the file itself is accepted too
    entry = certificate_entry(audits[2])
    assert entry == {"file": str((c / "audit.json").resolve()), "sha256": sha256_file(c / "audit.json"),
                     "method": "ft", "settings": ["epochs=1"], "models": 16, "originals": False,
                     "request_sha256": canonical_json_sha256(REQUEST), "original_weights_sha256": WEIGHTS}


def test_bad_audit_folders_are_refused_in_one_line_naming_the_file(tmp_path):
    old = _audit()
    del old["version"], old["format"]
    _write(tmp_path / "old", old)
    no_key = _audit()
    del no_key["per_example"]
    _write(tmp_path / "nokey", no_key)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "audit.json").write_text("{not json", encoding="utf-8")
    _write(tmp_path / "run", {"format": "graphdel-deletion-request", "version": 1})
    edited = _audit()
    edited["per_example"][1]["epsilon"] = "high"
    _write(tmp_path / "edited", edited)
    no_roc = _audit()
    del no_roc["signals"]["match_prob"]["ulira"]["roc"]
    _write(tmp_path / "noroc", no_roc)
    cases = [
        (tmp_path / "old", f"{tmp_path / 'old' / 'audit.json'}: written by an older graphdel audit (version None, "
                           "this report reads 2); run the same graphdel audit command again (its models are "
                           "cached, only the signals are re-read)"),
        (tmp_path / "nokey", f"{tmp_path / 'nokey' / 'audit.json'}: missing key 'per_example'"),
        (tmp_path / "edited", f"{tmp_path / 'edited' / 'audit.json'}: per_example[1].epsilon must be a number, "
                              "got 'high'"),
        (tmp_path / "noroc", f"{tmp_path / 'noroc' / 'audit.json'}: signals.match_prob.ulira must be {{auc, tpr_at, "
                             "roc: {fpr, tpr}} (lists of numbers of one length), got {'auc': 0.99, 'tpr_at': "
                             "{'0.001': 0.5, '0.01': 0.742}}"),
        (tmp_path / "bad", f"{tmp_path / 'bad' / 'audit.json'}: not valid JSON (JSONDecodeError: Expecting "
                           "property name enclosed in double quotes: line 1 column 2 (char 1))"),
        (tmp_path / "run", f"{tmp_path / 'run' / 'audit.json'}: not a graphdel audit (format "
                           "'graphdel-deletion-request')"),
        (tmp_path / "none", f"--audit {tmp_path / 'none'}: cannot read {tmp_path / 'none' / 'audit.json'} (No such "
                            "file or directory); give a folder written by graphdel audit"),
    ]
    for folder, message in cases:
        with pytest.raises(InvalidInputError) as info:
            read_audits([folder])
        assert str(info.value) == message
    good = _write(tmp_path / "good", _audit())
    with pytest.raises(InvalidInputError, match=r"--audit .*good/audit.json: .*good/audit.json is given twice"):
        read_audits([good, good / "audit.json"])


def test_an_audit_of_another_request_or_original_is_refused_naming_it(tmp_path):
    other = copy.deepcopy(REQUEST)
    other["pairs"], other["count"] = other["pairs"][:2], 2
    audits = read_audits([_write(tmp_path / "a", _audit()), _write(tmp_path / "b", _audit("ft", request=other))])
    check_audits(audits[:1], request=REQUEST, original_weights_sha256=WEIGHTS)
    with pytest.raises(InvalidInputError) as info:
        check_audits(audits, request=REQUEST, original_weights_sha256=WEIGHTS)
    assert str(info.value) == (f"{audits[1].path}: audits another deletion request (2 pairs, sha256 "
                               f"{canonical_json_sha256(other)[:12]}…) than the runs of this report (3 pairs, "
                               f"{canonical_json_sha256(REQUEST)[:12]}…)")
    with pytest.raises(InvalidInputError, match=rf"^{re.escape(str(audits[0].path))}: audits another original model "
                                                r"\(weights sha256 abababababab…\) than the runs of this report "
                                                r"\(cdcdcdcdcdcd…\)$"):
        check_audits(audits[:1], request=REQUEST, original_weights_sha256="cd" * 32)


# ------------------------------------------------------------------------------------------ rendering

def test_the_report_shows_the_audit_summary_first_plots_then_details(tmp_path):
    audits = read_audits([_write(tmp_path / "md", _audit()),
                          _write(tmp_path / "ft", _audit("ft", eps=(0.2, 50.0, 0.5)))])
    section = audit_section(audits)
    written = write_report(tmp_path / "out", _results(section))
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    # order: the headline, the audit's table, the plots, then the appendix with the audit's details
    order = ["## Headline: gaps to Retrain", "## Per-example privacy audit", "## Plots", "## Appendix: details",
             "### Per-example audit: every signal", "### Per-example audit: the deleted pairs with the highest ε",
             "### Per-example audit: files"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    summary = md[md.index("## Per-example privacy audit"):md.index("## Plots")]
    head = ("| model | signal | models | ε median | ε p90 | share at cap | forgetting score | U-LiRA AUC | "
            "TPR @ 1% FPR | TPR @ 0.1% FPR |")
    rows = [line for line in summary.splitlines() if line.startswith("| ") and line != head]
    assert rows == [
        "| multidelete | similarity | 16 vs 16 | 0.71 | 0.84 | 0.10 | 0.774 | 0.877 | 0.157 | 0.105 |",
        "| ft | similarity | 16 vs 16 | 0.71 | 0.84 | 0.10 | 0.774 | 0.877 | 0.157 | 0.105 |",
        # both audits share their Retrains: one floor row
        "| Retrain vs Retrain (floor) | similarity | 8 vs 8 | 0.00 | 0.00 | 0.00 | 1.000 | 0.530 | 0.040 | 0.008 |",
    ]
    assert ("δ = 1e-05, Clopper–Pearson bounds at α = 0.05, cap 50, single- and two-threshold (interval) rules"
            in summary)
    details = md[md.index("### Per-example audit: every signal"):]
    assert "| multidelete | match\\_prob | 16 vs 16 | 50.00 | 50.00 | 0.60 | 0.200 | 0.990 | 0.742 | 0.500 |" in details
    # the pairs with the highest ε: ids and captions escaped like every user string of the report
    escaped_caption = "a \\*bold\\* \\| pipe &lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](y) \\`code\\` \\_u\\_ \\#h"
    assert f"| multidelete | p&lt;1&gt;\\|x | {escaped_caption} | 50.00 | 0.00 |" in details
    assert "| ft | b#0 |" not in details and "| ft | b\\#0 | caption b | 50.00 | 0.00 |" in details
    shown_path = str(audits[0].path).replace("_", "\\_")  # Markdown-escaped like every user string
    assert f"| multidelete | {shown_path} | {audits[0].sha256} | 16 vs 16 | no | – |" in details
    assert "<script" not in md.lower()
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<td>a *bold* | pipe &lt;script&gt;alert(1)&lt;/script&gt; [x](y) `code` _u_ #h</td>" in page
    # the two figures, and the numbers in metrics.json
    for rel in (EPSILON_PLOT, ROC_PLOT):
        assert written[rel].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({rel})" in md
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert {EPSILON_PLOT, ROC_PLOT} <= set(metrics["plots"])
    md_entry = metrics["audit"]["multidelete"]
    assert md_entry["sha256"] == audits[0].sha256 and md_entry["file"] == str(audits[0].path)
    assert md_entry["signals"]["similarity"]["ulira"]["tpr_at"] == {"0.01": 0.157, "0.001": 0.105}
    assert md_entry["signals"]["similarity"]["epsilon_floor"]["forgetting_score"] == 1.0
    assert [p["epsilon"] for p in md_entry["per_example"]] == [0.0, 0.71, 50.0]
    assert metrics["audit"]["ft"]["request_sha256"] == canonical_json_sha256(REQUEST)


def test_without_audits_the_report_has_no_audit_part(tmp_path):
    write_report(tmp_path, _results(None))
    assert "Per-example" not in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert not (tmp_path / EPSILON_PLOT).exists() and not (tmp_path / ROC_PLOT).exists()
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["audit"] is None


# ------------------------------------------------------------------------------------------ end to end

def test_report_audit_certificate_and_verify_through_the_command(tiny_csv, tmp_path, capsys):
    """graphdel audit on the tiny model, graphdel report --audit, then graphdel verify: the certificate of
    the audited method's run records the audit file, which must still hash as recorded."""
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig", quick=True,
                        progress=False)
    (tmp_path / "ids.txt").write_text("aspirin#0\nethanol#0\nbenzene#0\n")
    folder = tmp_path / "audit"
    assert main(["audit", "--model", str(original.path), "--forget", str(tmp_path / "ids.txt"), "--method", "ft",
                 "--set", "epochs=1", "--models", "4", "--device", "cpu", "--out", str(folder)]) == 0
    capsys.readouterr()
    data = json.loads((folder / "audit.json").read_text(encoding="utf-8"))
    assert data["version"] == 2 and data["estimator"]["intervals"] is True
    assert [set(p) for p in data["per_example"]] == [{"pair_id", "epsilon", "epsilon_floor"}] * 3
    assert set(data["signals"]["similarity"]["ulira"]["roc"]) == {"fpr", "tpr"}
    runs = [data["unlearned_runs"][0], data["retrained_runs"][0]]
    report = tmp_path / "report"
    base = ["report", *runs, "--no-probes", "--device", "cpu", "--out", str(report)]

    # an audit of another request is refused before any evaluation, naming its file
    other = tmp_path / "other"
    forged = copy.deepcopy(data)
    forged["request"]["pairs"], forged["request"]["count"] = forged["request"]["pairs"][:2], 2
    _write(other, forged)
    assert main([*base, "--audit", str(other)]) == 2
    assert one_line_error(capsys).startswith(f"graphdel: error: {other / 'audit.json'}: audits another deletion "
                                             "request (2 pairs, sha256 ")
    assert not report.exists()
    # the report never replaces an audit folder it reads
    assert main([*base[:-1], str(folder), "--overwrite", "--audit", str(folder)]) == 2
    assert "that this command reads" in one_line_error(capsys)

    assert main([*base, "--audit", str(folder)]) == 0
    capsys.readouterr()
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Per-example privacy audit" in md and "| ft \\[epochs=1\\] | similarity | 4 vs 4 |" in md
    assert (report / EPSILON_PLOT).is_file() and (report / ROC_PLOT).is_file()
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["audit"]["ft [epochs=1]"]["sha256"] == sha256_file(folder / "audit.json")
    ft_cert = report / "certificates" / f"{Path(runs[0]).name}.json"
    retrain_cert = report / "certificates" / f"{Path(runs[1]).name}.json"
    assert json.loads(ft_cert.read_text())["evaluation"]["audit"] == [certificate_entry(read_audit(folder))]
    assert json.loads(retrain_cert.read_text())["evaluation"]["audit"] == []

    assert main(["verify", "--no-metrics", str(ft_cert)]) == 0
    out = capsys.readouterr().out
    assert (f"ok          evaluation.audit: 1 audit file(s) hash as recorded and audit this request and method: "
            f"{(folder / 'audit.json').resolve()}") in out.splitlines()

    # the audit file changed after the report: one failure naming the file
    saved = (folder / "audit.json").read_bytes()
    (folder / "audit.json").write_bytes(saved.replace(b'"models": 4', b'"models": 5'))
    assert main(["verify", "--no-metrics", str(ft_cert)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == [
        f"FAIL        evaluation.audit: {(folder / 'audit.json').resolve()} changed since the report: sha256 "
        f"{sha256_file(folder / 'audit.json')[:16]}…, recorded {hashlib.sha256(saved).hexdigest()[:16]}…"]
    assert lines[-1] == "certificate does NOT hold: 1 failed check(s): evaluation.audit"
    # the file replaced by an audit of another request, its hash put in the certificate: still refused
    shutil.copyfile(other / "audit.json", folder / "audit.json")
    cert = json.loads(ft_cert.read_text())
    cert["evaluation"]["audit"][0]["sha256"] = sha256_file(folder / "audit.json")
    (tmp_path / "forged.json").write_text(json.dumps(cert))
    result = verify_certificate(tmp_path / "forged.json", metrics=False)
    assert [(n, d.split(" (sha256")[0]) for n, ok, d in result.failed] == [
        ("evaluation.audit", f"{(folder / 'audit.json').resolve()} audits another deletion request")]
    # the file gone: not checked (it may have moved), the certificate otherwise holds
    (folder / "audit.json").unlink()
    result = verify_certificate(ft_cert, metrics=False)
    assert result.holds and ("evaluation.audit", None) in {(n, ok) for n, ok, _ in result.checks}
