"""What the feature cache (``$GRAPHDEL_CACHE``, :func:`~graphdel.data.molecules.cache_dir`) holds, and
clearing it by kind.

The cache grows with the corpora a user prepares: the frozen text states of a PubChem-size corpus alone take
15 GB (docs/experiments/2026-12-07-bounded-preparation.md). Each kind is one folder (``text``, ``molecules``,
``images``, ``scaffolds``, ``depictions``, ``runs``, ``audit``, ``item_embeddings``...); an entry is one file
or folder in it.
Entries of an earlier layout that nothing reads any more are counted apart as ``unread``: the text and image
states once saved whole as ``.pt`` files, and molecule graphs saved as int64 (five times the size of today's
uint8/int32 entries, whose key differs, so they are never looked up again) or damaged past reading.
Everything here is rebuilt on demand, except that clearing ``runs`` or ``audit`` means training those models
again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from graphdel.data.molecule_graphs import STORAGE_DTYPES, cache_dir
from graphdel.errors import InvalidInputError
from graphdel.io import remove_path

__all__ = ["cache_usage", "clear_cache"]

#: Kinds whose entries are folders of mapped arrays now; a ``.pt`` file there is of the earlier layout.
_MAPPED_KINDS = ("text", "images")


def _size(path: Path) -> int:
    """Bytes under ``path`` (a file, or every file below a folder; links not followed)."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


def _is_unread(kind: str, entry: Path) -> bool:
    if entry.suffix != ".pt" or entry.is_dir():
        return False
    if kind in _MAPPED_KINDS:
        return True
    if kind == "molecules":  # read mapped: only the header and the pickled metadata are paged in
        try:
            x = torch.load(entry, weights_only=True, mmap=True)["x"]
        except Exception:  # damaged: a read of its key removes it and featurises again
            return True
        return x.dtype != STORAGE_DTYPES["x"]
    return False


def cache_usage(root: Path | None = None) -> dict:
    """``{"root", "kinds": [{"kind", "entries", "bytes", "unread_entries", "unread_bytes"}], "bytes"}``: each
    kind's entries and bytes (hidden temporaries of an interrupted write count too), sorted by kind."""
    root = Path(root) if root is not None else cache_dir()
    kinds = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        entries = list(folder.iterdir())
        unread = [e for e in entries if _is_unread(folder.name, e)]
        kinds.append({"kind": folder.name, "entries": len(entries), "bytes": sum(_size(e) for e in entries),
                      "unread_entries": len(unread), "unread_bytes": sum(_size(e) for e in unread)})
    return {"root": str(root), "kinds": kinds, "bytes": sum(k["bytes"] for k in kinds)}


def clear_cache(kinds: list[str], *, unread_only: bool = False, root: Path | None = None) -> dict:
    """Remove every entry of ``kinds`` (``["all"]``: every kind) from the cache, or with ``unread_only`` only
    the entries nothing reads any more; returns ``{kind: {"entries", "bytes"}}`` removed.

    Raises:
        InvalidInputError: a kind the cache does not hold (the message lists those it holds).
    """
    root = Path(root) if root is not None else cache_dir()
    held = {k["kind"] for k in cache_usage(root)["kinds"]}
    wanted = sorted(held) if kinds == ["all"] else kinds
    unknown = [k for k in wanted if k not in held]
    if unknown:
        raise InvalidInputError(f"the cache {root} holds no kind {unknown[0]!r}; it holds: "
                                f"{', '.join(sorted(held)) or 'nothing'}")
    removed = {}
    for kind in wanted:
        entries = [e for e in (root / kind).iterdir() if not unread_only or _is_unread(kind, e)]
        removed[kind] = {"entries": len(entries), "bytes": sum(_size(e) for e in entries)}
        for entry in entries:
            remove_path(entry)
    return removed
