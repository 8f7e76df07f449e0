"""bench/gpu.sh, the prepared GPU check: what it reads off pytest, and its dry run on the CPU (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gpu_module():
    sys.path.insert(0, str(ROOT / "bench"))  # bench/gpu.py imports its sibling _common
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tests_step_reads_pytests_closing_line():
    counts = _gpu_module().pytest_counts
    assert counts("....\n3 passed, 2 skipped, 20 deselected, 2 warnings in 3.86s\n") == {
        "passed": 3, "failed": 0, "skipped": 2, "errors": 0, "deselected": 20}
    assert counts("FAILED x\n1 failed, 15 passed, 1 error in 9.1s") == {
        "passed": 15, "failed": 1, "skipped": 0, "errors": 1, "deselected": 0}
    assert set(counts("no tests ran in 0.01s").values()) == {0}


@pytest.mark.slow  # a demo, the quick KG and image demos, a throughput epoch, bf16, scale: ~3 min
def test_the_dry_run_prints_one_json_line_per_step(tmp_path):
    done = subprocess.run(["bash", "bench/gpu.sh", "--device", "cpu", "--quick", "--skip", "tests",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    scale = [line for line in lines if line["bench"] == "scale"]
    lines = [line for line in lines if line["bench"] == "gpu"]
    assert [line["step"] for line in lines] == ["demo", "unlearn", "modalities", "throughput", "bf16",
                                                "scale"]
    assert all(line["ok"] and "machine" in line for line in lines)
    steps = {line["step"]: line for line in lines}
    assert steps["demo"]["methods"] == ["multidelete"] and not steps["demo"]["original_reused"]
    assert 0 < steps["unlearn"]["multidelete_share_of_retrain"]
    assert set(steps["unlearn"]["methods_s"]) == {"multidelete", "retrain"}
    assert set(steps["unlearn"]["multidelete_seconds"]) == {"setup", "evaluations", "updates"}
    assert [r["seed"] for r in steps["unlearn"]["demo_steps_s"]["requests"]] == [0]
    # the other two scenarios ran every method; the molecule model's only skip (GNNDelete) runs on the KG
    kg, image = steps["modalities"]["kg"], steps["modalities"]["image"]
    assert kg["ok"] and "gnndelete" in kg["ran"] and "multidelete" in kg["ran"] and kg["skipped"] == []
    assert image["ok"] and "multidelete" in image["ran"]
    assert steps["throughput"]["pairs_per_s"] > 0 and steps["throughput"]["peak_gpu_mem_mib"] is None
    assert steps["bf16"]["autocast"] is False and steps["bf16"]["max_abs_diff"] == 0.0  # no autocast on a CPU
    # the scale step: the 48-molecule sample replicated 4 and 10 times, each size measured whole
    assert steps["scale"]["sizes_measured"] == [192, 480] == [line["pairs"] for line in scale]
    for line in scale:
        # every copy's captions distinct: the text pass encodes each of them
        assert line["molecules"] == line["pairs"] == line["prepare"]["distinct_texts"]
        assert [c["fraction"] for c in line["multidelete"]] == [0.01, 0.05]
        assert all(c["share_of_retrain"] == round(c["s"] / line["retrain"]["s"], 4) for c in line["multidelete"])
        assert all(sum(c["seconds"].values()) <= c["s"] + 0.01 for c in line["multidelete"])  # s is rounded
