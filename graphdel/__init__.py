"""graphdel: multimodal machine unlearning on graph-text data.

The command line (``graphdel``) is a thin shell over this API; its verbs are exported here::

    import graphdel as gd
    run = gd.train("drugs", gd.TrainConfig(seed=0), out="runs/original")
    request = gd.make_request(run, random_amount=0.05, by="molecule")
    forgotten = gd.forget(run, request, method="multidelete", out="runs/forgotten")
    gd.evaluate(forgotten).save("out/report")     # report.md, metrics.json, certificates
    gd.deletion_history(forgotten.path)            # every request applied, and the certificate chain

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
    "evaluate": "graphdel.api",
    "forget": "graphdel.api",
    "load_corpus": "graphdel.api",
    "load_run_data": "graphdel.api",
    "make_request": "graphdel.api",
    "quick_configs": "graphdel.api",
    "replay": "graphdel.api",
    "train": "graphdel.api",
    "deletion_history": "graphdel.history",
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
