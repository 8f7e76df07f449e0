"""Output paths: the one check every writing command makes before any work (:func:`check_output`). A run folder
is never written to, replaced or written around, and no command writes inside, over or around a folder it
reads, nor the runs those descend from (:func:`run_lineage`). Every name is imported from
:mod:`graphdel.runs` too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from graphdel.errors import RunError
from graphdel.io import check_name_lengths, occupied, probe_writable


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` looks like a run folder (a ``config.json`` and a ``model.safetensors``)."""
    try:
        return (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    except OSError:  # e.g. a folder we may not look into
        return False


def run_lineage(path: str | Path) -> list[Path]:
    """``path`` resolved, followed by every ancestor run its ``config.json`` names (``parent.path``), as
    far as they are reachable: the runs a command that reads ``path`` depends on."""
    out: list[Path] = []
    current: Path | None = Path(path).resolve()
    while current is not None and current not in out:
        out.append(current)
        try:
            config = json.loads((current / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            break
        parent = (config.get("parent") or {}).get("path") if isinstance(config, dict) else None
        current = Path(parent).resolve() if isinstance(parent, str) and parent else None
    return out


def check_output(out: str | Path, *, reads: Sequence[str | Path] = (), protect: Sequence[str | Path] = (),
                 overwrite: bool | None = None, kind: str = "folder", allow_empty_folder: bool = False,
                 what: str = "--out") -> Path:
    """The one check every writing command makes on its output path, before any work.

    Refused, each with one line naming both paths:

    - an output equal to, inside, or containing a folder the command reads (``reads``, each with the
      ancestor runs its ``config.json`` names; symbolic links resolved);
    - an output equal to or containing a folder in ``protect`` (e.g. the demo's run cache);
    - an output inside any run folder, or that is a run folder: a run is never written to or replaced;
    - an existing output, unless ``overwrite`` (``None``: the command has no ``--overwrite``) or, with
      ``allow_empty_folder``, an empty folder; a ``kind="file"`` output that is a folder;
    - a name too long for the file system, or a place that cannot be written.

    ``overwrite`` never reaches an input: the first checks come first. The caller then writes atomically
    (a folder through :func:`graphdel.io.staged_folder`, a file through :func:`graphdel.io.atomic_write_json`),
    so an existing output is replaced whole, never merged.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        RunError: one of the above.
    """
    out = Path(out)
    check_name_lengths(out, what=what)
    try:
        target = out.resolve()
        inputs = [p for r in reads for p in run_lineage(r)]
        protected = [Path(p).resolve() for p in protect]
        exists = occupied(out)
    except OSError as e:
        raise RunError(f"{what} {out}: {e.strerror or e}") from e
    _refuse_inputs(out, target, inputs, protected, what)
    _refuse_run_folders(out, target, what)
    if exists:
        _refuse_existing(out, kind, overwrite, allow_empty_folder, what)
    probe_writable(out, what=kind, suffix=".partial" if kind == "folder" else ".tmp")
    return out


def _refuse_inputs(out: Path, target: Path, inputs: Sequence[Path], protected: Sequence[Path], what: str) -> None:
    """Refuse an output (``target``, resolved) equal to, inside or containing a folder the command reads
    (``inputs``), or equal to or containing a ``protected`` one."""
    for src in inputs:
        label = "run" if is_run_folder(src) else "folder"
        if target == src:
            raise RunError(f"{what} {out} is the {label} {src} that this command reads; choose another path")
        if target.is_relative_to(src):
            raise RunError(f"{what} {out} is inside the {label} {src} that this command reads; choose a path "
                           "outside it")
        if src.is_relative_to(target):
            raise RunError(f"{what} {out} contains the {label} {src} that this command reads; choose a path "
                           "that does not contain it")
    for src in protected:
        if src.is_relative_to(target):
            raise RunError(f"{what} {out} is or contains {src}, which this command reads; choose another path")


def _refuse_run_folders(out: Path, target: Path, what: str) -> None:
    """Refuse an output (``target``, resolved) that is a run folder or lies inside one."""
    for folder in (target, *target.parents):
        if is_run_folder(folder):
            if folder == target:
                raise RunError(f"{what} {out} is the run folder {folder}; a run is never replaced, choose "
                               "another path")
            raise RunError(f"{what} {out} is inside the run folder {folder}; a run is never written to, choose "
                           "a path outside it")


def _refuse_existing(out: Path, kind: str, overwrite: bool | None, allow_empty_folder: bool, what: str) -> None:
    """Refuse an existing output unless ``overwrite`` (or, with ``allow_empty_folder``, an empty folder), and a
    ``kind="file"`` output that is a folder."""
    if kind == "file" and out.is_dir() and not out.is_symlink():
        raise RunError(f"{what} {out} is a folder; give the path of a file")
    empty = out.is_dir() and not out.is_symlink() and not any(out.iterdir())
    if allow_empty_folder and empty:
        pass
    elif overwrite is None:
        raise RunError(f"output {kind} {out} already exists; choose another {what} or remove it")
    elif not overwrite:
        state = "already exists" + (" and is not empty" if allow_empty_folder and out.is_dir() else "")
        raise RunError(f"{what} {out} {state}; pass --overwrite to replace it, or choose another path")
