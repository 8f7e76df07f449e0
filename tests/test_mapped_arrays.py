"""Cache entries of memory-mapped arrays: written through, published whole, read back mapped."""

from __future__ import annotations

import pytest
import torch

from graphdel.mapped_arrays import read_arrays, writing_arrays
from tests.mapped_memory import mapped_file

SPECS = {"states": ((3, 2, 4), torch.float16), "mask": ((3, 2), torch.bool),
         "pooled": ((3, 4), torch.float32)}


def write_entry(folder):
    with writing_arrays(folder, SPECS) as out:
        out["states"][1] = torch.arange(8, dtype=torch.float16).reshape(2, 4)
        out["mask"][torch.tensor([0, 2]), :1] = True
        out["pooled"][2] = 0.5


def test_what_the_block_writes_is_read_back_from_the_files(tmp_path):
    write_entry(tmp_path / "entry")
    got = read_arrays(tmp_path / "entry", ("states", "mask", "pooled"))
    assert {k: (tuple(v.shape), v.dtype) for k, v in got.items()} == {k: s for k, s in SPECS.items()}
    assert got["states"][1].flatten().tolist() == list(range(8))
    assert got["states"][0].abs().sum() == 0 and got["states"][2].abs().sum() == 0
    assert got["mask"].tolist() == [[True, False], [False, False], [True, False]]
    assert got["pooled"].tolist() == [[0.0] * 4, [0.0] * 4, [0.5] * 4]
    # mapped from the file, not copied into the process
    assert mapped_file(got["states"]) == str(tmp_path / "entry" / "states.npy")


def test_a_failed_block_publishes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):
        with writing_arrays(tmp_path / "entry", SPECS) as out:
            out["pooled"][0] = 1.0
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    assert read_arrays(tmp_path / "entry", ("pooled",)) is None


def test_a_damaged_entry_is_removed_not_trusted(tmp_path):
    write_entry(tmp_path / "entry")
    path = tmp_path / "entry" / "states.npy"
    path.write_bytes(path.read_bytes()[:-10])  # truncated: shorter than its header says
    assert read_arrays(tmp_path / "entry", ("states", "mask")) is None
    assert not (tmp_path / "entry").exists()
    # an entry folder left without its arrays, read by whatever it holds (the image cache's way): damaged too
    (tmp_path / "empty").mkdir()
    assert read_arrays(tmp_path / "empty") is None
    assert not (tmp_path / "empty").exists()


def test_writing_into_what_was_read_leaves_the_file_as_it_was(tmp_path):
    write_entry(tmp_path / "entry")
    got = read_arrays(tmp_path / "entry", ("pooled",))
    got["pooled"][0] = 7.0
    assert read_arrays(tmp_path / "entry", ("pooled",))["pooled"][0].tolist() == [0.0] * 4


def test_a_full_disk_is_one_clear_error_before_any_write(tmp_path, monkeypatch):
    import errno
    import os

    from graphdel.errors import RunError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    # the file's whole size: numpy's 128-byte header and 3 x 2 x 4 float16
    message = r"not enough disk space for the cache entry \S*entry \(states.npy: 176 bytes\)"
    with pytest.raises(RunError, match=message):
        write_entry(tmp_path / "entry")
    assert list(tmp_path.iterdir()) == []  # nothing published, the staged folder removed


def test_an_entry_is_built_by_its_filler_and_read_back_mapped(tmp_path):
    from graphdel.mapped_arrays import build_entry

    got = build_entry(tmp_path / "entry", SPECS, lambda arrays: arrays["pooled"][1].fill_(2.0))
    assert got["pooled"][:, 0].tolist() == [0.0, 2.0, 0.0] and sorted(got) == ["mask", "pooled", "states"]
    assert mapped_file(got["pooled"]) == str(tmp_path / "entry" / "pooled.npy")


def test_without_a_folder_the_same_zero_filled_arrays_are_built_in_memory(tmp_path):
    from graphdel.mapped_arrays import build_entry

    got = build_entry(None, SPECS, lambda arrays: arrays["pooled"][1].fill_(2.0))
    assert got["pooled"][:, 0].tolist() == [0.0, 2.0, 0.0]
    assert not got["mask"].any() and not got["states"].any()
    assert mapped_file(got["pooled"]) in (None, "[heap]") and list(tmp_path.iterdir()) == []  # no file
