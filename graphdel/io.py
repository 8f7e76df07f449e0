"""Atomic file and folder writes, and content hashing.

Nothing graphdel writes is ever seen half-written: files are written to a temporary sibling and renamed
(``os.replace`` is atomic on POSIX), and run folders are assembled under a temporary name and renamed
when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from graphdel.errors import RunError


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json_sha256(obj) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


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


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back: POSIX has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(kind: str) -> int:
    """The permission bits ``open``/``mkdir`` would give a new file (``kind="file"``, 0666 less the umask) or
    folder (``"folder"``, 0777 less the umask).

    ``tempfile`` creates its files 0600 and folders 0700 whatever the umask (right for secrets, wrong for a
    run folder a team shares); every temporary that becomes an output is given these bits before it is
    renamed into place.
    """
    return (0o666 if kind == "file" else 0o777) & ~current_umask()


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename; the file gets
    the permissions the umask gives a new file (:func:`umask_mode`)."""
    _atomic_write(lambda f: f.write(data), path)


def _atomic_write(write: Callable[[BinaryIO], Any], path: str | Path) -> None:
    """Call ``write`` on a temporary file next to ``path`` opened for binary writing, then sync it and
    rename it to ``path`` (permissions as :func:`atomic_write_bytes` gives them); a failure leaves no file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise RunError(f"cannot write to {path.parent}: {e.strerror or e}") from e
    try:
        os.fchmod(fd, umask_mode("file"))
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    import torch  # here, not at the top: `graphdel --help` must not pay for importing torch

    # straight into the file: through an in-memory buffer the data was held twice more while writing
    _atomic_write(lambda f: torch.save(obj, f), path)


#: Bytes a staged output's temporary sibling adds to its name (``.NAME.`` + 8 random characters +
#: ``.partial``): an output name longer than the file system's limit minus this cannot be staged.
STAGING_NAME_MARGIN = 18


def name_limit(path: str | Path) -> int:
    """The longest file name, in bytes, that the file system holding ``path`` (or its nearest existing
    ancestor) allows; 255 when it cannot be asked."""
    for folder in (Path(path), *Path(path).parents):
        try:
            if folder.is_dir():
                return int(os.pathconf(folder, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return 255


def check_name_lengths(path: str | Path, *, what: str = "--out") -> None:
    """Refuse a path with a component longer than the file system allows, before anything touches the disk
    (the OS would raise ``ENAMETOOLONG`` from deep inside a command). The last component must also leave
    room for the temporary name it is staged under (:data:`STAGING_NAME_MARGIN`).

    Raises:
        RunError: one line naming the component (shortened) and both lengths.
    """
    path = Path(path)
    limit = name_limit(path.parent if str(path.parent) else Path("."))
    parts = path.parts
    for i, part in enumerate(parts):
        size = len(os.fsencode(part))
        allowed = limit - STAGING_NAME_MARGIN if i == len(parts) - 1 else limit
        if size > allowed and part != os.sep:
            shown = part if len(part) <= 40 else part[:40] + "…"
            raise RunError(f"{what} {shown!r}: file name too long ({size} bytes; at most {allowed} can be "
                           f"written here)")


def probe_writable(final: str | Path, *, what: str = "folder", suffix: str = ".partial") -> None:
    """Create ``final``'s parent if needed and create and remove a temporary file there, named like the
    temporary sibling ``final`` will be written under (``suffix``), so that an unwritable place or an
    over-long name is reported before hours of work, not after.

    Raises:
        RunError: ``cannot write the output {what} FINAL: <OS reason>``.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunError(f"cannot write the output {what} {final}: {e.strerror or e}") from e


@contextmanager
def staged_folder(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name and rename it to ``final`` only if the block succeeds.

    An interrupted or failed block leaves no folder at ``final`` (the temporary one is removed), so a
    folder that exists at ``final`` is always complete.

    Without ``overwrite``, nothing at ``final`` is ever deleted or replaced, even when it appears while
    the block runs (another process finishing with the same ``--out``): that folder or file is left
    untouched and the finished staged folder is kept under its temporary name, which the error names, so
    that hours of work are not thrown away either. With ``overwrite``, an existing ``final`` is replaced
    whole once the block has succeeded (:func:`_publish_replacing`: never merged with the new folder).

    Raises:
        RunError: ``final`` exists (or appeared while staging) and ``overwrite`` is false, or the parent
            cannot be written.
    """
    final = Path(final)
    if occupied(final) and not overwrite:
        raise RunError(f"output folder {final} already exists; choose another --out or remove it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        tmp.chmod(umask_mode("folder"))  # mkdtemp makes it 0700; the run folder follows the umask
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


def occupied(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symbolic link included (``Path.exists`` says no to one,
    but a rename would still replace it)."""
    return path.exists() or path.is_symlink()


def _publish_replacing(tmp: Path, final: Path) -> None:
    """Swap the finished staged folder ``tmp`` in at ``final`` (overwrite was asked for).

    What is at ``final`` is first renamed aside to a hidden ``.NAME.<random>.old`` sibling, then ``tmp`` is
    renamed to ``final``, and only then is the old one deleted: the new folder never mixes with the old one
    (no stale file survives), and ``final`` is missing only between two renames, never while the old one
    is being deleted. If the second rename fails, the old one is put back and ``tmp`` removed.

    Raises:
        RunError: a rename failed (the OS reason is named).
    """
    aside = None
    try:
        if occupied(final):
            aside = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old")
            os.rename(final, aside)
        os.rename(tmp, final)
    except BaseException as e:
        if aside is not None and not occupied(final):
            try:
                os.rename(aside, final)
            except OSError:
                pass  # the old folder stays under its hidden name, which the error below names
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            kept = f" (the old one is kept as {aside})" if aside is not None and occupied(aside) else ""
            raise RunError(f"cannot replace {final}: {e.strerror or e}{kept}") from e
        raise
    if aside is not None:
        remove_path(aside)


def remove_path(path: Path) -> None:
    """Delete ``path`` whatever it is (a folder tree, a file, a symbolic link itself); missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
    if occupied(final):
        raise RunError(taken)
    try:
        os.rename(tmp, final)
    except OSError as e:
        if occupied(final):
            raise RunError(taken) from e
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(f"cannot rename the finished folder to {final}: {e.strerror or e}") from e
