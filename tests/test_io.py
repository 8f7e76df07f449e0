"""graphdel.io: staged folders never delete or replace what they were not told to, and content hashes are
computed once per file version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import graphdel.io as gio
from graphdel.errors import RunError
from graphdel.io import cached_sha256_file, sha256_file, staged_folder


def partials(folder: Path) -> list[Path]:
    """The staging folders (``.*.partial``) left in ``folder``."""
    return sorted(p for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_finished_block_is_renamed_into_place_and_leaves_nothing_else(tmp_path):
    final = tmp_path / "run"
    with staged_folder(final) as folder:
        (folder / "metrics.json").write_text("{}")
        assert not final.exists()                      # nothing is visible before the block ends
    assert (final / "metrics.json").read_text() == "{}"
    assert partials(tmp_path) == []


def test_a_failed_block_leaves_no_folder(tmp_path):
    final = tmp_path / "run"
    with pytest.raises(ZeroDivisionError):
        with staged_folder(final) as folder:
            (folder / "half.bin").write_bytes(b"x")
            1 / 0
    assert not final.exists() and partials(tmp_path) == []


def test_an_existing_destination_is_refused_before_staging(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    with pytest.raises(RunError, match="already exists"):
        with staged_folder(final):
            pytest.fail("the block must not run")
    assert partials(tmp_path) == []


@pytest.mark.parametrize("kind", ["full folder", "empty folder", "file"])
def test_a_destination_that_appears_while_staging_is_left_untouched(tmp_path, kind):
    final = tmp_path / "run"
    with pytest.raises(RunError) as err:
        with staged_folder(final) as folder:
            (folder / "model.safetensors").write_bytes(b"ours")
            # another process finishes with the same --out while this block runs
            if kind == "file":
                final.write_bytes(b"theirs")
            else:
                final.mkdir()
                if kind == "full folder":
                    (final / "model.safetensors").write_bytes(b"theirs")
    # theirs is untouched: not deleted, not replaced (an empty folder included)
    if kind == "file":
        assert final.read_bytes() == b"theirs"
    elif kind == "full folder":
        assert [p.name for p in final.iterdir()] == ["model.safetensors"]
        assert (final / "model.safetensors").read_bytes() == b"theirs"
    else:
        assert final.is_dir() and list(final.iterdir()) == []
    # one line naming the destination and where the finished staged copy is kept
    message = str(err.value)
    assert "\n" not in message and str(final) in message
    kept = partials(tmp_path)
    assert len(kept) == 1 and str(kept[0]) in message
    assert (kept[0] / "model.safetensors").read_bytes() == b"ours"


def test_overwrite_replaces_an_existing_destination(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with staged_folder(final, overwrite=True) as folder:
        (folder / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert partials(tmp_path) == []


def test_file_digests_are_computed_once_per_file_version(tmp_path, monkeypatch):
    calls: list[Path] = []
    real = gio.sha256_file
    monkeypatch.setattr(gio, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 16)
    first = cached_sha256_file(f)
    assert first == sha256_file(f) and cached_sha256_file(f) == first
    assert len(calls) == 1                                  # the second call is served from memory
    # same size, same modification time, other bytes, written by a rename (a new inode): hashed again
    st = f.stat()
    tmp = tmp_path / "weights.tmp"
    tmp.write_bytes(b"b" * 16)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)
    second = cached_sha256_file(f)
    assert len(calls) == 2 and second != first and second == sha256_file(f)


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                          (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
    """tempfile makes 0600 files and 0700 folders whatever the umask; a team's shared run folder needs the
    umask's permissions, like any file `open` creates."""
    old = os.umask(umask)
    try:
        with staged_folder(tmp_path / "run") as folder:
            gio.atomic_write_json({"a": 1}, folder / "metrics.json")
        gio.atomic_write_text("x", tmp_path / "alone.txt")
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == folder_mode
    assert (tmp_path / "run" / "metrics.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "alone.txt").stat().st_mode & 0o777 == file_mode
    assert gio.current_umask() == old


def test_atomic_torch_save_writes_into_the_file_and_a_failure_leaves_nothing(tmp_path, monkeypatch):
    import io

    import torch

    path = tmp_path / "cache" / "t.pt"
    gio.atomic_torch_save({"x": torch.arange(5)}, path)
    assert torch.load(path, weights_only=True)["x"].tolist() == [0, 1, 2, 3, 4]

    targets = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, **kw: targets.append(f) or real_save(obj, f, **kw))
    gio.atomic_torch_save({"x": torch.ones(3)}, path)
    # written into the temporary file itself: through an in-memory buffer a 15-GB cache was held twice more
    assert len(targets) == 1 and isinstance(targets[0], io.BufferedWriter)
    assert torch.load(path, weights_only=True)["x"].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(Exception):
        gio.atomic_torch_save({"f": lambda: 0}, path)  # not serialisable: fails while writing
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.pt"]
    assert torch.load(path, weights_only=True)["x"].tolist() == [1.0, 1.0, 1.0]
