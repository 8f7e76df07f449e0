"""Fixtures of the reliability tests: a tiny corpus on disk and one tiny trained run shared per module.

The shared run is only ever read by the tests (several of them assert exactly that); a test that needs to
change a run or its data copies it first.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

import graphdel as gd
from graphdel.training.loop import TrainConfig
from tests.conftest import TINY_MOLECULES

#: The recipe of every tiny run here: two epochs of batches of four on the 12-molecule corpus.
TINY_RECIPE = TrainConfig(epochs=2, batch_size=4)


def write_tiny_csv(path: Path, rows=TINY_MOLECULES) -> Path:
    """Write the tiny corpus (columns id, smiles, text, split) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "smiles", "text", "split"])
        for name, smiles, text, split in rows:
            w.writerow([name.replace(" ", "_"), smiles, text, split])
    return path


def tree_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Names of staging leftovers (``*.partial`` folders, ``*.tmp``/``*.probe`` files, ``*.old`` outputs moved
    aside by ``--overwrite``) under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".partial", ".tmp", ".probe", ".old")))


def one_line_error(capsys) -> str:
    """The single ``graphdel: error: ...`` line the command printed to stderr (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("graphdel: warning:")]
    assert len(lines) == 1 and lines[0].startswith("graphdel: error: "), err
    return lines[0]


def files_under(folder: Path) -> set[str]:
    """Relative paths of every file under ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    """The tiny corpus as a CSV file shared by a module (never modified)."""
    return write_tiny_csv(tmp_path_factory.mktemp("data") / "tiny.csv")


@pytest.fixture(scope="module")
def tiny_run(tiny_source, tmp_path_factory):
    """One tiny trained run shared by a module (never modified)."""
    # Module fixtures run before the function-scoped cache isolation of tests/conftest.py: isolate here too.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return gd.train(f"csv:{tiny_source}", TINY_RECIPE, out=tmp_path_factory.mktemp("runs") / "orig",
                        quick=True, progress=False)
