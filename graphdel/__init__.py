"""graphdel: multimodal machine unlearning on graph-text data.

The command line (``graphdel``) is a thin shell over this API::

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")

The names below are imported on first use (PEP 562 ``__getattr__``): ``import graphdel`` alone does not load
torch or PyTorch Geometric, so ``graphdel --help`` and argument errors answer at once.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "DataConfig": "graphdel.api",
    "load_corpus": "graphdel.api",
    "load_run_data": "graphdel.api",
    "quick_configs": "graphdel.api",
    "train": "graphdel.api",
    "load_dataset": "graphdel.data.sources",
    "ModelConfig": "graphdel.models.joint",
    "Run": "graphdel.runs",
    "TrainConfig": "graphdel.training.loop",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graphdel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
