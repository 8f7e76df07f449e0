"""The feature cache by kind: sizes, entries of an earlier layout, clearing (``graphdel data cache``)."""

from __future__ import annotations

import json

import pytest

from graphdel.cli import main
from graphdel.data.cache_usage import cache_usage, clear_cache
from graphdel.errors import InvalidInputError


def fill(root):
    """A cache with a mapped text entry (2 arrays, 100 + 50 bytes), an earlier-layout text file (30 bytes),
    a file in the molecule folder (70 bytes) and a run folder (1 file, 5 bytes)."""
    (root / "text" / "abc").mkdir(parents=True)
    (root / "text" / "abc" / "hidden.npy").write_bytes(b"h" * 100)
    (root / "text" / "abc" / "mask.npy").write_bytes(b"m" * 50)
    (root / "text" / "old.pt").write_bytes(b"o" * 30)
    (root / "molecules").mkdir()
    (root / "molecules" / "m.txt").write_bytes(b"x" * 70)  # not a .pt graph file: counted, never unread
    (root / "runs" / "train-1").mkdir(parents=True)
    (root / "runs" / "train-1" / "model.safetensors").write_bytes(b"w" * 5)


def test_usage_counts_entries_bytes_and_the_unread_earlier_layout(tmp_path):
    fill(tmp_path)
    usage = cache_usage(tmp_path)
    assert usage["bytes"] == 255
    assert usage["kinds"] == [
        {"kind": "molecules", "entries": 1, "bytes": 70, "unread_entries": 0, "unread_bytes": 0},
        {"kind": "runs", "entries": 1, "bytes": 5, "unread_entries": 0, "unread_bytes": 0},
        {"kind": "text", "entries": 2, "bytes": 180, "unread_entries": 1, "unread_bytes": 30}]
    assert cache_usage(tmp_path / "absent")["kinds"] == []


def test_molecule_graphs_of_the_int64_layout_or_damaged_are_unread(tmp_path, monkeypatch):
    import torch

    from graphdel.data.molecule_graphs import featurize_smiles

    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    graphs = featurize_smiles(["CCO", "c1ccccc1O"], workers=1)  # writes today's entry
    folder = tmp_path / "molecules"
    (current,) = folder.iterdir()
    torch.save({k: v.long() for k, v in graphs.state().items()}, folder / "old.pt")  # the earlier layout
    (folder / "cut.pt").write_bytes(current.read_bytes()[:200])  # a truncated file
    usage = cache_usage(tmp_path)["kinds"][0]
    sizes = (folder / "old.pt").stat().st_size + 200
    assert (usage["entries"], usage["unread_entries"], usage["unread_bytes"]) == (3, 2, sizes)
    assert clear_cache(["molecules"], unread_only=True, root=tmp_path) == {"molecules": {"entries": 2,
                                                                                        "bytes": sizes}}
    assert list(folder.iterdir()) == [current]


def test_clearing_removes_what_was_asked_and_nothing_else(tmp_path):
    fill(tmp_path)
    assert clear_cache(["text"], unread_only=True, root=tmp_path) == {"text": {"entries": 1, "bytes": 30}}
    assert sorted(p.name for p in (tmp_path / "text").iterdir()) == ["abc"]
    assert clear_cache(["text", "runs"], root=tmp_path) == {"text": {"entries": 1, "bytes": 150},
                                                           "runs": {"entries": 1, "bytes": 5}}
    assert [k["kind"] for k in cache_usage(tmp_path)["kinds"] if k["entries"]] == ["molecules"]
    with pytest.raises(InvalidInputError, match=r"holds no kind 'pixels'; it holds: molecules, runs, text"):
        clear_cache(["pixels"], root=tmp_path)
    assert clear_cache(["all"], root=tmp_path)["molecules"] == {"entries": 1, "bytes": 70}
    assert cache_usage(tmp_path)["bytes"] == 0


def test_the_cache_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    fill(tmp_path)
    assert main(["data", "cache"]) == 0
    out = capsys.readouterr().out
    assert "text       2        0.0 MiB  1 (0.0 MiB)" in out and f"{tmp_path}: 0.0 MiB" in out
    assert main(["data", "cache", "--clear", "text", "--unread", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["removed"] == {"text": {"entries": 1, "bytes": 30}} and result["bytes"] == 225
    assert main(["data", "cache", "--clear", "nothing"]) == 2
    assert "holds no kind 'nothing'" in capsys.readouterr().err
    assert main(["data", "cache", "--unread"]) == 2
