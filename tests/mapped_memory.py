"""Test helper: which file a tensor's memory is mapped from."""

from __future__ import annotations

import sys

import pytest
import torch


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file the memory of ``tensor`` is mapped from (Linux: /proc/self/maps), ``None`` if anonymous."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    address = tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(a, 16) for a in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) == 6 else None
    return None
