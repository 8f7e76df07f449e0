"""Faults: NaN/Inf, interrupted or killed runs, a full disk, an unwritable output folder.

Each fault is injected at a known point; the test then checks that no folder exists at the requested path,
that no staging leftovers remain (when the process survives to clean up), that the original run is
byte-for-byte unchanged, and that a rerun with the same output path succeeds.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import graphdel as gd
import graphdel.evaluation.certificate as certificate
import graphdel.runs as runs
import graphdel.unlearning as unlearning
from graphdel import api
from graphdel.cli import main
from graphdel.errors import RunError
from graphdel.models.joint import JointModel
from graphdel.runs import Run
from graphdel.training.loop import TrainingDivergedError
from graphdel.unlearning.base import UnlearningDivergedError
from graphdel.unlearning.multidelete import MultiDelete
from graphdel.unlearning.neggrad import NegGrad

from tests.reliability.conftest import TINY_RECIPE, leftovers, tree_digest


def _train(source: Path, out: Path) -> Run:
    return gd.train(f"csv:{source}", TINY_RECIPE, out=out, quick=True, progress=False)


def _request(run: Run):
    """Two trained pairs (a Df batch needs two pairs: a single pair has no in-batch negative)."""
    targets = [p for p in ("ethanol#0", "benzene#0", "aspirin#0") if p not in run.calibration_ids][:2]
    return api.make_request(run, ids=targets, by="pair")


def _fail_on_call(n: int, exc: BaseException, real):
    """A wrapper of ``real`` that raises ``exc`` on its ``n``-th call."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*args, **kwargs)

    return wrapper, calls


# ------------------------------------------------------------------------------------------- NaN / Inf

def test_nan_loss_during_training_writes_nothing(tiny_source, tmp_path, monkeypatch):
    real = JointModel.loss_terms

    def nan_at_step_2(self, batch, generator=None):
        terms = real(self, batch, generator)
        nan_at_step_2.calls += 1
        if nan_at_step_2.calls == 2:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    nan_at_step_2.calls = 0
    monkeypatch.setattr(JointModel, "loss_terms", nan_at_step_2)
    with pytest.raises(TrainingDivergedError, match=r"non-finite training loss at epoch 2, step 1"):
        _train(tiny_source, tmp_path / "run")
    assert nan_at_step_2.calls == 2  # one step per epoch (7 trained pairs, batches of 4, last dropped)
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []


def test_nan_loss_during_unlearning_writes_nothing(tiny_run, tmp_path, monkeypatch):
    before = tree_digest(tiny_run.path)
    real = MultiDelete.loss

    def nan_loss(self, trainer, df, dr, cfg):
        loss, terms = real(self, trainer, df, dr, cfg)
        return loss * float("nan"), terms

    monkeypatch.setattr(MultiDelete, "loss", nan_loss)
    with pytest.raises(UnlearningDivergedError, match=r"multidelete: non-finite loss \(nan\) at epoch 1, step 0"):
        api.forget(tiny_run, _request(tiny_run), method="multidelete", out=tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists() and leftovers(tmp_path) == []
    assert tree_digest(tiny_run.path) == before


def test_neggrad_guard_keeps_the_last_finite_weights_and_says_so(tiny_run, tmp_path, monkeypatch):
    """NegGrad's divergence guard stops instead of raising: the run is written, from finite weights, and
    the reason is recorded."""
    real = NegGrad.loss
    calls = []

    def nan_loss(self, trainer, df, dr, cfg):  # finite for the first step, NaN from the second on
        out = real(self, trainer, df, dr, cfg)
        calls.append(1)
        return (out[0] * float("nan"), out[1]) if out is not None and len(calls) > 1 else out

    monkeypatch.setattr(NegGrad, "loss", nan_loss)
    # early_stop off: the guard, not the calibrated stopping rule, must be what ends the run
    new = api.forget(tiny_run, _request(tiny_run), method="neggrad", overrides=["early_stop=false"],
                     out=tmp_path / "f", progress=False)
    assert "non-finite loss (nan)" in new.metrics["selected"]["stop_reason"]
    assert new.metrics["selected"]["steps"] == 1
    assert all(torch.isfinite(t).all() for t in new.model.state_dict().values() if t.is_floating_point())


def test_a_guard_that_stops_before_any_step_writes_no_run(tiny_run, tmp_path, monkeypatch):
    """NaN at the very first step: nothing was unlearned, so nothing is written or certified."""
    from graphdel.errors import UnlearningNoOpError

    real = NegGrad.loss
    monkeypatch.setattr(NegGrad, "loss", lambda self, trainer, df, dr, cfg: (
        lambda out: (out[0] * float("nan"), out[1]))(real(self, trainer, df, dr, cfg)))
    with pytest.raises(UnlearningNoOpError, match="0 update steps"):
        api.forget(tiny_run, _request(tiny_run), method="neggrad", out=tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()


def test_non_finite_weights_are_never_saved(tiny_run, tmp_path, monkeypatch):
    before = tree_digest(tiny_run.path)
    real = unlearning.unlearn

    def inf_weights(*args, **kwargs):
        result = real(*args, **kwargs)
        with torch.no_grad():
            next(result.model.parameters()).view(-1)[0] = float("inf")
        return result

    monkeypatch.setattr(unlearning, "unlearn", inf_weights)
    with pytest.raises(RunError, match=r"refusing to save non-finite \(NaN/Inf\) weights in 1 tensors"):
        api.forget(tiny_run, _request(tiny_run), method="neggrad", overrides=["epochs=1"], out=tmp_path / "f",
                   progress=False)
    assert not (tmp_path / "f").exists() and leftovers(tmp_path) == []
    assert tree_digest(tiny_run.path) == before


# ------------------------------------------------------------------------------------------ interrupts

def test_ctrl_c_mid_training_leaves_nothing_and_a_rerun_works(tiny_source, tmp_path, monkeypatch):
    wrapper, calls = _fail_on_call(2, KeyboardInterrupt(), JointModel.loss_terms)
    with monkeypatch.context() as m:
        m.setattr(JointModel, "loss_terms", wrapper)
        with pytest.raises(KeyboardInterrupt):
            _train(tiny_source, tmp_path / "run")
    assert calls["n"] == 2 and not (tmp_path / "run").exists() and leftovers(tmp_path) == []
    assert Run.load(_train(tiny_source, tmp_path / "run").path).config["kind"] == "train"


def test_ctrl_c_while_writing_the_run_leaves_nothing(tiny_source, tmp_path, monkeypatch):
    real = runs.atomic_write_json

    def interrupt_at_metrics(obj, path):
        if Path(path).name == "metrics.json":  # model.safetensors and config.json are already staged
            raise KeyboardInterrupt
        return real(obj, path)

    with monkeypatch.context() as m:
        m.setattr(runs, "atomic_write_json", interrupt_at_metrics)
        with pytest.raises(KeyboardInterrupt):
            _train(tiny_source, tmp_path / "run")
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []
    _train(tiny_source, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_ctrl_c_in_forget_leaves_nothing_and_the_original_untouched(tiny_run, tmp_path, monkeypatch):
    before = tree_digest(tiny_run.path)
    request = _request(tiny_run)
    with monkeypatch.context() as m:
        m.setattr(certificate, "build_certificate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            api.forget(tiny_run, request, method="neggrad", overrides=["epochs=1"], out=tmp_path / "f",
                       progress=False)
    assert not (tmp_path / "f").exists() and leftovers(tmp_path) == []
    assert tree_digest(tiny_run.path) == before
    new = api.forget(tiny_run, request, method="neggrad", overrides=["epochs=1"], out=tmp_path / "f", progress=False)
    assert (new.path / "certificate.json").is_file()


def test_cli_reports_an_interrupt_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(api, "train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["train", "--data", "csv:x.csv", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "graphdel: interrupted; no run folder was finished\n"


_KILLED_CHILD = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    import graphdel as gd
    import graphdel.api as api
    from graphdel.training.loop import TrainConfig

    source, out, marker = sys.argv[1:4]
    real = api.write_run

    def staged_then_wait(folder, **kw):
        real(folder, **kw)                 # every file of the run is now in the staging folder
        open(marker, "w").write(str(folder))
        time.sleep(300)                    # the parent kills us here, before the rename

    api.write_run = staged_then_wait
    gd.train(f"csv:{source}", TrainConfig(epochs=2, batch_size=4), out=out, quick=True, progress=False)
""")


def test_sigkill_before_the_rename_never_leaves_a_finished_looking_run(tiny_source, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "staged"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(tiny_source), str(out), str(marker)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), child.stderr.read().decode() if child.poll() is not None else "child too slow"
        time.sleep(0.2)  # the marker is written; let the child reach its sleep
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    staged = Path(marker.read_text())
    # the staging folder holds every file, but under a hidden *.partial name that nothing treats as a run
    assert staged.parent == tmp_path and staged.name.startswith(".run.") and staged.name.endswith(".partial")
    assert {"config.json", "model.safetensors", "metrics.json"} <= {p.name for p in staged.iterdir()}
    assert not out.exists()
    with pytest.raises(RunError, match="does not exist"):
        Run.load(out)
    with pytest.raises(RunError, match="staging folder of an interrupted run"):
        Run.load(staged)
    # a rerun with the same --out starts cleanly
    assert _train(tiny_source, out).config["kind"] == "train"


# -------------------------------------------------------------------------- the original is read-only

def test_forget_never_opens_the_original_for_writing(tiny_run, tmp_path, monkeypatch):
    root = str(tiny_run.path.resolve())
    writes: list[str] = []

    def inside(path) -> bool:
        try:
            p = os.path.realpath(os.fspath(path))
        except TypeError:  # a file descriptor
            return False
        return p == root or p.startswith(root + os.sep)

    def guard(name, real, is_write):
        def wrapper(*args, **kwargs):
            if args and inside(args[0]) and is_write(*args, **kwargs):
                writes.append(f"{name}({args[0]})")
                raise AssertionError(f"{name} on the original run: {args[0]}")
            return real(*args, **kwargs)
        return wrapper

    write_mode = lambda file, mode="r", *a, **k: any(c in mode for c in "wax+")  # noqa: E731
    write_flags = lambda path, flags, *a, **k: bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT  # noqa: E731
                                                             | os.O_TRUNC | os.O_APPEND))
    always = lambda *a, **k: True  # noqa: E731
    monkeypatch.setattr(builtins, "open", guard("open", builtins.open, write_mode))
    monkeypatch.setattr(io, "open", guard("io.open", io.open, write_mode))
    monkeypatch.setattr(os, "open", guard("os.open", os.open, write_flags))
    for name in ("replace", "rename", "unlink", "remove", "rmdir", "mkdir", "utime", "chmod"):
        monkeypatch.setattr(os, name, guard(f"os.{name}", getattr(os, name), always))
    monkeypatch.setattr(shutil, "rmtree", guard("shutil.rmtree", shutil.rmtree, always))
    with pytest.raises(AssertionError, match="open on the original run"):  # the guard itself works
        open(tiny_run.path / "config.json", "a")
    writes.clear()
    api.forget(tiny_run, _request(tiny_run), method="multidelete", overrides=["epochs=1"], out=tmp_path / "f",
               progress=False)
    assert writes == []


# ------------------------------------------------------------------------------ full disk / unwritable

@pytest.fixture
def full_disk(monkeypatch):
    """``os.fsync`` fails with ENOSPC for files inside a run's staging folder (a disk that fills up while
    the run is written; caches and everything else still write)."""
    real = os.fsync

    def fsync(fd):
        if ".partial" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_full_disk_while_writing_a_trained_run(tiny_source, tmp_path, full_disk):
    with pytest.raises(RunError, match=r"cannot write .*model\.safetensors: No space left on device"):
        _train(tiny_source, tmp_path / "run")
    assert not (tmp_path / "run").exists() and leftovers(tmp_path) == []


def test_full_disk_while_writing_a_forgotten_run(tiny_run, tmp_path, full_disk):
    before = tree_digest(tiny_run.path)
    with pytest.raises(RunError, match="No space left on device"):
        api.forget(tiny_run, _request(tiny_run), method="neggrad", overrides=["epochs=1"], out=tmp_path / "f",
                   progress=False)
    assert not (tmp_path / "f").exists() and leftovers(tmp_path) == []
    assert tree_digest(tiny_run.path) == before


def test_unwritable_output_folder_fails_before_training(tiny_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(api, "train_model", lambda *a, **k: pytest.fail("trained although --out is unwritable"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunError, match=r"cannot write the output folder .*a-file/run: (Not a directory|File exists)"):
        _train(tiny_source, tmp_path / "a-file" / "run")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("graphdel.io.tempfile.mkstemp", denied)
    assert main(["train", "--data", f"csv:{tiny_source}", "--out", str(tmp_path / "ro" / "run"), "--quick"]) == 2
    assert "cannot write the output folder" in capsys.readouterr().err


def test_unwritable_output_folder_fails_before_unlearning(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(unlearning, "unlearn", lambda *a, **k: pytest.fail("unlearned although --out is unwritable"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunError, match="cannot write the output folder"):
        api.forget(tiny_run, _request(tiny_run), method="neggrad", out=tmp_path / "a-file" / "f", progress=False)


def test_existing_output_folder_is_refused(tiny_run, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="already exists"):
        api.forget(tiny_run, _request(tiny_run), method="neggrad", out=tmp_path / "taken", progress=False)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
