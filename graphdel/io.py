"""Atomic file and folder writes, and content hashing.

Nothing graphdel writes is ever seen half-written: files are written to a temporary sibling and renamed
(``os.replace`` is atomic on POSIX), and run folders are assembled under a temporary name and renamed
when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from graphdel.errors import RunError


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: ``(resolved path, device, inode, size, mtime in ns) -> hex SHA-256``: the digests this process computed.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def cached_sha256_file(path: str | Path) -> str:
    """:func:`sha256_file`, computed once per process for each version of a file.

    A version is the file's resolved path, device, inode, size and modification time: a file rewritten
    in place gets a new size or time, and one replaced by a rename (as every writer here does) a new
    inode, so a changed file is hashed again while an unchanged one is read once, however often it is
    asked for (hashing a 90 MB weights file takes a noticeable fraction of a second).
    """
    resolved = Path(path).resolve()
    st = resolved.stat()
    key = (str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = sha256_file(resolved)
    return digest


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise RunError(f"cannot write to {path.parent}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename (for caches of plain tensors)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def check_output_folder(final: str | Path) -> None:
    """Fail early if the run folder ``final`` could not be created: it exists, or its parent cannot be
    created or written (checked by creating and removing a temporary file there).

    Called before hours of training or unlearning, so that an unwritable ``--out`` is reported at once
    rather than after the work is done. A disk that fills up later is still caught when the folder is
    written (:func:`atomic_write_bytes` raises :class:`RunError` and :func:`staged_folder` removes the
    partial folder).

    Raises:
        RunError: ``final`` exists, or its parent cannot be created or written (the OS reason is named).
    """
    final = Path(final)
    if final.exists():
        raise RunError(f"output folder {final} already exists; choose another --out or remove it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".probe", dir=final.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunError(f"cannot write the output folder {final}: {e.strerror or e}") from e


@contextmanager
def staged_folder(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name and rename it to ``final`` only if the block succeeds.

    An interrupted or failed block leaves no folder at ``final`` (the temporary one is removed), so a
    folder that exists at ``final`` is always complete.

    Without ``overwrite``, nothing at ``final`` is ever deleted or replaced, even when it appears while
    the block runs (another process finishing with the same ``--out``): that folder or file is left
    untouched and the finished staged folder is kept under its temporary name, which the error names, so
    that hours of work are not thrown away either. With ``overwrite``, an existing ``final`` is removed
    and replaced once the block has succeeded.

    Raises:
        RunError: ``final`` exists (or appeared while staging) and ``overwrite`` is false, or the parent
            cannot be written.
    """
    final = Path(final)
    if _exists(final) and not overwrite:
        raise RunError(f"output folder {final} already exists; choose another --out or remove it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    except OSError as e:
        raise RunError(f"cannot create output folder next to {final}: {e.strerror or e}") from e
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if overwrite:
        _publish_replacing(tmp, final)
    else:
        _publish_without_replacing(tmp, final)


def _exists(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symbolic link included (``Path.exists`` says no to one,
    but a rename would still replace it)."""
    return path.exists() or path.is_symlink()


def _publish_replacing(tmp: Path, final: Path) -> None:
    """Rename the finished staged folder ``tmp`` to ``final``, removing what is there first (overwrite was
    asked for). On failure ``tmp`` is removed and the error propagates."""
    try:
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        else:
            final.unlink(missing_ok=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_without_replacing(tmp: Path, final: Path) -> None:
    """Rename the finished staged folder ``tmp`` to ``final`` unless something is already there.

    A folder renamed onto a non-empty folder or onto a file fails (``ENOTEMPTY``/``EEXIST``/``ENOTDIR``)
    without touching it; only an *empty* folder could be replaced, and only one created in the instant
    between the check below and the rename, so no data is ever lost. When ``final`` is taken, ``tmp`` is
    kept (it holds a finished result) and named in the error.

    Raises:
        RunError: ``final`` is taken, or the rename failed for another reason (``tmp`` is then removed).
    """
    taken = (f"output folder {final} appeared while this run was being written and was left untouched; "
             f"the finished run is kept in {tmp}")
    if _exists(final):
        raise RunError(taken)
    try:
        os.rename(tmp, final)
    except OSError as e:
        if _exists(final):
            raise RunError(taken) from e
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(f"cannot rename the finished folder to {final}: {e.strerror or e}") from e
