"""Cache entries of named arrays that live on disk, not in the process: memory-mapped ``.npy`` files.

A corpus of PubChem size has about 15 GB of frozen caption states (300k captions x 64 tokens x 384
float16). Held in memory they would not fit beside training on a 24-GiB machine, and serialising them
in one piece would need that much again. Here an entry is a folder of ``.npy`` files: :func:`writing_arrays`
maps new files and hands out tensors that write through to them, so a producer fills them batch by batch
while its own memory holds one batch, and publishes the folder by renaming it into place once complete (a
folder at its final name is always whole); :func:`read_arrays` maps the files back, so a batch pages in the
rows it gathers and nothing else. Mapped pages are the kernel's page cache: shared between processes (the
ranks of a ``torchrun`` job read one copy) and dropped under memory pressure.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from graphdel.errors import RunError
from graphdel.io import staged_folder

__all__ = ["writing_arrays", "read_arrays", "build_entry"]

_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.bool: np.bool_,
                 torch.uint8: np.uint8, torch.int32: np.int32, torch.int64: np.int64}


@contextmanager
def writing_arrays(folder: str | Path, specs: Mapping[str, tuple[tuple[int, ...], torch.dtype]]
                   ) -> Iterator[dict[str, torch.Tensor]]:
    """Create the entry ``folder`` with one zero-filled array per ``specs`` item (``name: (shape, dtype)``)
    and yield them as CPU tensors mapped onto their files: what the block writes into them goes to disk.

    The folder is built under a temporary name and renamed to ``folder`` when the block succeeds (an entry
    already there, written meanwhile by another process from the same inputs, is replaced whole); a failed
    block leaves nothing. The tensors must not be used after the block: read the entry back with
    :func:`read_arrays`.
    """
    with staged_folder(folder, overwrite=True) as tmp:
        maps = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=_NUMPY_DTYPES[dtype],
                                                shape=shape)
                for name, (shape, dtype) in specs.items()}
        for name in maps:
            _reserve(tmp / f"{name}.npy", folder)
        yield {name: torch.from_numpy(m) for name, m in maps.items()}
        for m in maps.values():
            m.flush()


def _reserve(path: Path, entry: str | Path) -> None:
    """Allocate the disk blocks of the (sparse) file ``path`` now: a full disk is then one clear error here,
    not a SIGBUS in the middle of writing through the mapping. File systems that cannot reserve are let be.

    Raises:
        RunError: not enough space for the entry ``entry``.
    """
    if not hasattr(os, "posix_fallocate"):  # not on macOS
        return
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise RunError(f"not enough disk space for the cache entry {entry} ({path.name}: {size:,} "
                               f"bytes); free space or set GRAPHDEL_CACHE to a larger disk") from e


def read_arrays(folder: str | Path, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor] | None:
    """The arrays ``names`` of the entry ``folder`` (``None``: every array it holds), mapped read-only from
    disk (CPU tensors); ``None`` when the entry is missing or unreadable (a damaged entry is removed, to be
    rebuilt: never trusted).

    The mapping is copy-on-write: a caller that writes into a tensor changes its own pages, never the
    file."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if names is None:
        names = tuple(sorted(p.stem for p in folder.glob("*.npy")))
        if not names:  # a published entry holds its arrays: an empty folder is damaged, not an empty entry
            shutil.rmtree(folder, ignore_errors=True)
            return None
    try:
        return {name: torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False))
                for name in names}
    except (OSError, ValueError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


def build_entry(folder: str | Path | None, specs: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
                fill: Callable[[dict[str, torch.Tensor]], None]) -> dict[str, torch.Tensor]:
    """Write the entry ``folder`` by calling ``fill`` on its zero-filled arrays (:func:`writing_arrays`) and
    return them read back mapped (:func:`read_arrays`); ``folder=None``: the same arrays in memory, no cache.

    Raises:
        RunError: the entry just written cannot be read back.
    """
    if folder is None:
        arrays = {name: torch.zeros(shape, dtype=dtype) for name, (shape, dtype) in specs.items()}
        fill(arrays)
        return arrays
    with writing_arrays(folder, specs) as arrays:
        fill(arrays)
    written = read_arrays(folder, tuple(specs))
    if written is None:
        raise RunError(f"the cache entry {folder} could not be read back after writing it")
    return written
