"""bench/gpu_kit.py: the GPU machine's missing wheels cut into parts that fit a call, and joined again."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _kit():
    spec = importlib.util.spec_from_file_location("bench_gpu_kit", ROOT / "bench" / "gpu_kit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheels(folder: Path, sizes: dict[str, int]) -> list[Path]:
    folder.mkdir()
    out = []
    for k, (name, size) in enumerate(sizes.items()):
        path = folder / name
        path.write_bytes(bytes((k * 7 + i) % 251 for i in range(size)))
        out.append(path)
    return out


def test_parts_hold_at_most_their_size_and_join_back_to_the_same_bytes(tmp_path):
    kit = _kit()
    wheels = _wheels(tmp_path / "w", {"a.whl": 25, "b.whl": 3, "c.whl": 14})
    manifest = kit.cut_into_parts(wheels, tmp_path / "kit", 10)
    # 42 bytes in parts of 10, each part filled before the next: a in parts 1-3, b in part 3, c in 3-5
    assert manifest["parts"] == 5
    assert [e["chunks"] for e in manifest["wheels"]] == [
        ["part-1/a.whl.000", "part-2/a.whl.001", "part-3/a.whl.002"], ["part-3/b.whl.000"],
        ["part-3/c.whl.000", "part-4/c.whl.001", "part-5/c.whl.002"]]
    parts = [tmp_path / "kit" / f"part-{k}" for k in range(1, 6)]
    sizes = [sum(f.stat().st_size for f in part.glob("*.whl.*")) for part in parts]
    assert sizes == [10, 10, 10, 10, 2]
    # every part names the whole kit, so that the first part to arrive says what is still to come
    assert all(json.loads((tmp_path / "kit" / f"part-{k}" / "manifest.json").read_text()) == manifest
               for k in range(1, 6))
    joined = kit.join_wheels(tmp_path / "kit", tmp_path / "joined")
    assert [p.read_bytes() for p in joined] == [w.read_bytes() for w in wheels]


def test_receive_stages_the_parts_of_each_call_and_join_names_what_is_missing(tmp_path):
    kit = _kit()
    kit.cut_into_parts(_wheels(tmp_path / "w", {"a.whl": 25}), tmp_path / "kit", 10)
    stage = tmp_path / "stage"
    # the first call carries part-1 alone: the later parts are not on the machine yet
    first = tmp_path / "call1"
    (first / "part-1").mkdir(parents=True)
    for f in (tmp_path / "kit" / "part-1").iterdir():
        (first / "part-1" / f.name).write_bytes(f.read_bytes())
    assert kit.receive(first, stage)["staged"] == ["part-1"]
    with pytest.raises(FileNotFoundError, match=r"part-2/a\.whl\.001 is missing: the call carrying part-2"):
        kit.join_wheels(stage, tmp_path / "joined")
    record = kit.receive(tmp_path / "kit", stage)
    assert record["staged"] == ["part-1", "part-2", "part-3"] and record["parts"] == 3
    assert kit.join_wheels(stage, tmp_path / "joined")[0].stat().st_size == 25


def test_a_damaged_chunk_is_refused_by_its_checksum(tmp_path):
    kit = _kit()
    kit.cut_into_parts(_wheels(tmp_path / "w", {"a.whl": 25}), tmp_path / "kit", 10)
    chunk = tmp_path / "kit" / "part-2" / "a.whl.001"
    chunk.write_bytes(b"x" + chunk.read_bytes()[1:])
    with pytest.raises(ValueError, match=r"a\.whl: SHA-256 differs"):
        kit.join_wheels(tmp_path / "kit", tmp_path / "joined")


def test_install_puts_the_joined_wheels_on_a_target_path(tmp_path):
    wheel = tmp_path / "w" / "kitprobe-0.1-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("kitprobe/__init__.py", "VALUE = 42\n")
        z.writestr("kitprobe-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: kitprobe\nVersion: 0.1\n")
        z.writestr("kitprobe-0.1.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("kitprobe-0.1.dist-info/RECORD", "")
    _kit().cut_into_parts([wheel], tmp_path / "stage", 200)
    record = _kit().install(tmp_path / "stage", tmp_path / "site")
    assert record["wheels"] == [wheel.name]
    value = subprocess.run([sys.executable, "-c", "import kitprobe; print(kitprobe.VALUE)"],
                           capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path / "site")},
                           check=True).stdout
    assert value.strip() == "42"


def test_prepare_refuses_a_kit_folder_holding_other_files_before_downloading(tmp_path):
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds 'notes\.txt', which is not a part of a kit"):
        _kit().prepare(tmp_path / "kit", 60)
    assert (tmp_path / "kit" / "notes.txt").read_text() == "mine"
