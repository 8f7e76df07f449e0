"""Outputs: no command writes into, over or around a run it reads, nor over anything that exists without
``--overwrite``; an overwritten report is replaced whole; runs find their data from any directory and can be
re-pointed at moved data.

Every refusal is checked at the command line: exit status 2, one line naming the paths, and the runs read
byte-for-byte unchanged.
"""

from __future__ import annotations

import json
import shutil

import pytest

from graphdel import api
from graphdel.cli import main
from graphdel.runs import Run

from tests.reliability.conftest import files_under, leftovers, one_line_error, tree_digest, write_tiny_csv


@pytest.fixture(scope="module")
def unlearned(tiny_run, tmp_path_factory):
    """A Retrain run and a NegGrad run of one two-pair request on the shared tiny run (never modified)."""
    root = tmp_path_factory.mktemp("unlearned")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        prepared = api.load_run_data(tiny_run, progress=False)
        targets = [p for p in ("ethanol#0", "benzene#0", "aspirin#0") if p not in tiny_run.calibration_ids][:2]
        request = api.make_request(tiny_run, ids=targets, by="pair", prepared=prepared)
        retrain = api.forget(tiny_run, request, method="retrain", out=root / "retrain", progress=False,
                             prepared=prepared)
        neggrad = api.forget(tiny_run, request, method="neggrad", overrides=["epochs=1"], out=root / "neggrad",
                             progress=False, prepared=prepared)
    (root / "ids.txt").write_text("\n".join(targets) + "\n")
    return retrain, neggrad, root / "ids.txt"


# --------------------------------------------------------------------------- never into a run it reads

@pytest.mark.parametrize("where", ["inside", "equal", "parent"])
def test_forget_never_writes_into_or_around_the_run_it_reads(tiny_run, unlearned, tmp_path, capsys, where):
    *_, ids = unlearned
    out = {"inside": tiny_run.path / "sub", "equal": tiny_run.path, "parent": tiny_run.path.parent}[where]
    before = tree_digest(tiny_run.path)
    code = main(["forget", "--model", str(tiny_run.path), "--forget", str(ids), "--method", "neggrad",
                 "--set", "epochs=1", "--out", str(out)])
    line = one_line_error(capsys)
    assert code == 2
    assert f"--out {out} " in line and str(tiny_run.path.resolve()) in line
    relation = {"inside": "is inside the run", "equal": "is the run", "parent": "contains the run"}[where]
    assert f"{relation} {tiny_run.path.resolve()} that this command reads" in line
    assert tree_digest(tiny_run.path) == before and not (tiny_run.path / "sub").exists()


def test_report_never_writes_into_the_original(tiny_run, unlearned, capsys):
    retrain, neggrad, _ = unlearned
    before = tree_digest(tiny_run.path)
    out = tiny_run.path / "report"
    assert main(["report", str(retrain.path), str(neggrad.path), "--out", str(out), "--overwrite"]) == 2
    line = one_line_error(capsys)
    assert f"--out {out} is inside the run {tiny_run.path.resolve()} that this command reads" in line
    assert tree_digest(tiny_run.path) == before


@pytest.mark.parametrize("target", ["original", "itself"])
def test_evaluate_never_replaces_a_file_of_a_run_it_reads_even_with_overwrite(tiny_run, unlearned, capsys, target):
    """The unlearned run's metrics.json (selected epoch, wall time) and its parent's are never replaced."""
    _, neggrad, _ = unlearned
    run = tiny_run if target == "original" else neggrad
    before = {p: tree_digest(p) for p in (tiny_run.path, neggrad.path)}
    out = run.path / "metrics.json"
    assert main(["evaluate", "--model", str(neggrad.path), "--out", str(out), "--overwrite"]) == 2
    line = one_line_error(capsys)
    assert f"--out {out} is inside the run {run.path.resolve()}" in line
    assert {p: tree_digest(p) for p in before} == before


def test_no_command_writes_inside_an_unrelated_run(tiny_run, tiny_source, tmp_path, capsys):
    before = tree_digest(tiny_run.path)
    out = tiny_run.path / "sub"
    assert main(["train", "--data", f"csv:{tiny_source}", "--quick", "--out", str(out)]) == 2
    assert f"--out {out} is inside the run folder {tiny_run.path.resolve()}" in one_line_error(capsys)
    # through a symbolic link too: the real path is what counts
    (tmp_path / "link").symlink_to(tiny_run.path)
    assert main(["train", "--data", f"csv:{tiny_source}", "--quick", "--out", str(tmp_path / "link" / "x")]) == 2
    assert f"is inside the run folder {tiny_run.path.resolve()}" in one_line_error(capsys)
    assert tree_digest(tiny_run.path) == before


def test_compare_never_writes_into_a_folder_it_reads(tmp_path, capsys):
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir(), right.mkdir()
    assert main(["compare", str(left), str(right), "--out", str(left / "compare.md")]) == 2
    assert f"is inside the folder {left.resolve()} that this command reads" in one_line_error(capsys)
    assert list(left.iterdir()) == []


# ------------------------------------------------------------------------------ nothing over what exists

def test_evaluate_refuses_an_existing_file_unless_overwrite(unlearned, tmp_path, capsys):
    _, neggrad, _ = unlearned
    out = tmp_path / "metrics.json"
    out.write_text("mine")
    assert main(["evaluate", "--model", str(neggrad.path), "--out", str(out)]) == 2
    assert f"--out {out} already exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert out.read_text() == "mine"
    assert main(["evaluate", "--model", str(neggrad.path), "--out", str(out), "--overwrite"]) == 0
    assert "forget" in json.loads(out.read_text())["splits"]


def test_compare_refuses_existing_files_unless_overwrite(tmp_path, capsys):
    (tmp_path / "compare.json").write_text("mine")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "compare.md")]) == 2
    assert f"{tmp_path / 'compare.json'} already exists; pass --overwrite" in one_line_error(capsys)
    assert (tmp_path / "compare.json").read_text() == "mine" and not (tmp_path / "compare.md").exists()


def test_report_refuses_an_existing_folder_and_overwrite_replaces_it_whole(tiny_run, unlearned, tmp_path, capsys):
    retrain, neggrad, _ = unlearned
    out = tmp_path / "report"
    cmd = ["report", str(retrain.path), str(neggrad.path), "--out", str(out), "--no-probes"]
    assert main(cmd) == 0
    fresh = files_under(out)
    assert {"report.html", "metrics.json", "certificates/neggrad.json"} <= fresh
    # stale files of an older report: a certificate of a run no longer reported, a plot no longer drawn
    (out / "certificates" / "old-method.json").write_text("{}")
    (out / "plots" / "stale.png").write_bytes(b"old")
    capsys.readouterr()
    assert main(cmd) == 2
    assert f"--out {out} already exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert (out / "certificates" / "old-method.json").exists()
    before = {p: tree_digest(p) for p in (tiny_run.path, retrain.path, neggrad.path)}
    assert main(cmd + ["--overwrite"]) == 0
    assert files_under(out) == fresh  # only the new report: nothing stale survives
    assert leftovers(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["report"]
    assert {p: tree_digest(p) for p in before} == before
    assert main(["verify", "--no-metrics", str(out / "certificates" / "neggrad.json")]) == 0


# -------------------------------------------------------------------------------------------- the demo

def test_demo_refuses_an_existing_folder_and_overwrite_replaces_it_whole(tiny_source, tmp_path, capsys,
                                                                        monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "old-result.txt").write_text("old")
    cmd = ["demo", "--quick", "--data", f"csv:{tiny_source}", "--methods", "neggrad", "--out", str(out)]
    assert main(cmd) == 2
    assert f"--out {out} already exists and is not empty; pass --overwrite" in one_line_error(capsys)

    # a demo that fails half-way puts the old folder back, unmixed
    real = api.forget

    def fail_after_retrain(*args, method, **kwargs):
        if method != "retrain":
            raise KeyboardInterrupt
        return real(*args, method=method, **kwargs)

    monkeypatch.setattr(api, "forget", fail_after_retrain)
    assert main(cmd + ["--overwrite"]) == 130
    assert files_under(out) == {"old-result.txt"} and leftovers(tmp_path) == []
    monkeypatch.setattr(api, "forget", real)

    assert main(cmd + ["--overwrite"]) == 0
    assert "old-result.txt" not in files_under(out) and (out / "runs" / "neggrad" / "certificate.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # the old one moved aside is gone


def test_demo_never_contains_the_run_cache(tiny_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path / "out" / "cache"))
    assert main(["demo", "--quick", "--data", f"csv:{tiny_source}", "--out", str(tmp_path / "out"),
                 "--overwrite"]) == 2
    line = one_line_error(capsys)
    assert f"--out {tmp_path / 'out'} is or contains {tmp_path / 'out' / 'cache' / 'runs'}" in line


# ------------------------------------------------------------------------------------- portable data

def test_a_run_records_its_data_absolutely_and_can_be_pointed_at_moved_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_tiny_csv(tmp_path / "in" / "good.csv")
    assert main(["train", "--data", "csv:in/good.csv", "--quick", "--epochs", "2", "--out", "orig"]) == 0
    capsys.readouterr()
    run = Run.load(tmp_path / "orig")
    assert run.data_source == f"csv:{tmp_path / 'in' / 'good.csv'}"
    target = next(p for p in ("ethanol#0", "benzene#0") if p not in run.calibration_ids)
    (tmp_path / "ids.txt").write_text(target + "\n")

    # the data moves, and the command runs from another directory
    (tmp_path / "moved").mkdir()
    shutil.move(tmp_path / "in" / "good.csv", tmp_path / "moved" / "good.csv")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cmd = ["forget", "--model", "../orig", "--forget", "../ids.txt", "--method", "neggrad", "--set", "epochs=1",
           "--out", "../f"]
    assert main(cmd) == 2
    line = one_line_error(capsys)
    assert f"the data 'csv:{tmp_path / 'in' / 'good.csv'}' of ../orig is not there any more" in line
    assert "pass --data SPEC" in line and not (tmp_path / "f").exists()

    assert main(cmd + ["--data", "csv:../moved/good.csv"]) == 0
    new = Run.load(tmp_path / "f")
    assert new.data_source == f"csv:{tmp_path / 'moved' / 'good.csv'}"  # where the data was read, absolutely
    assert new.data_hash == run.data_hash
    assert main(["evaluate", "--model", "../f", "--out", "../e.json"]) == 0  # the new run finds its data


def test_changed_data_given_with_data_is_still_refused(tiny_run, tmp_path, capsys):
    copy = tmp_path / "tiny.csv"
    shutil.copy(tiny_run.data_source.split(":", 1)[1], copy)
    copy.write_text(copy.read_text().replace("Naphthalene is a fused", "Naphthalene is an edited fused"))
    assert main(["evaluate", "--model", str(tiny_run.path), "--data", f"csv:{copy}",
                 "--out", str(tmp_path / "e.json")]) == 2
    assert "has changed since" in one_line_error(capsys) and not (tmp_path / "e.json").exists()


# ---------------------------------------------------------------------------------- over-long names

@pytest.mark.parametrize("command", ["train", "forget", "evaluate", "report", "demo", "compare"])
@pytest.mark.parametrize("where", ["name", "folder"])
def test_an_over_long_output_name_is_one_line(tiny_run, tiny_source, unlearned, tmp_path, capsys, command, where):
    retrain, neggrad, ids = unlearned
    long = "x" * 300
    out = tmp_path / long if where == "name" else tmp_path / long / "out"
    args = {"train": ["--data", f"csv:{tiny_source}", "--quick"],
            "forget": ["--model", str(tiny_run.path), "--forget", str(ids)],
            "evaluate": ["--model", str(neggrad.path)],
            "report": [str(retrain.path), str(neggrad.path)],
            "demo": ["--quick", "--data", f"csv:{tiny_source}", "--methods", "neggrad"],
            "compare": [str(tmp_path / "a"), str(tmp_path / "b")]}[command]
    assert main([command, *args, "--out", str(out) + (".md" if command == "compare" else "")]) == 2
    line = one_line_error(capsys)
    assert f"'{'x' * 40}…': file name too long (30" in line
    assert list(tmp_path.iterdir()) == []
