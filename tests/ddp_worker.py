"""Worker of tests/test_distributed.py: train a tiny model, and unlearn from a given trained run, in one
process or as one of the processes ``torchrun`` starts (the same code either way).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py CSV OUT START METHOD...

Trains on CSV into ``OUT/original``, then unlearns the first trained pairs from the run folder START (so
that unlearning runs can be compared from one starting point) into ``OUT/<method>``; run folders are
written by rank 0 only (the API does that). Each process writes ``OUT/rank<R>.json``: a digest of each
final in-memory model, to check that the replicas agree.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

torch.set_num_threads(1)

#: The recipe of the comparison: dropout off (its masks are random draws made per process); everything
#: else is the quick setting. Batch sizes are global.
TRAIN = {"epochs": 3, "batch_size": 8, "patience": 0, "seed": 0, "device": "cpu", "lr": 1e-3}
FORGET_IDS = 8  # the first 8 trained pairs are deleted
METHOD_OVERRIDES = {
    "multidelete": ["epochs=2", "batch_size=4"],
    "randompair": ["epochs=2", "batch_size=4"],
    "neggrad": ["epochs=2", "batch_size=4"],
}


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the names and bytes of a model's state."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode() + b"\0" + t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def run(csv: str, out: str, start: str | None, methods: list[str]) -> dict[str, str]:
    """Train on ``csv``, then unlearn from ``start`` (default: the model just trained) with each of
    ``methods``; returns ``{run name: model digest}``."""
    import graphdel as gd
    from graphdel import api, distributed
    from graphdel.training.loop import TrainConfig

    distributed.init_from_env("cpu")
    data, model_config, _ = api.quick_configs(f"csv:{csv}")
    model_config = replace(model_config, dropout=0.0, graph=replace(model_config.graph, dropout=0.0))
    out_dir = Path(out)
    original = gd.train(replace(data, calibration_fraction=0.05), TrainConfig(**TRAIN), model_config,
                        out=out_dir / "original", progress=False)
    digests = {"original": model_digest(original.model)}
    parent = gd.Run.load(start) if start else original
    ids = _trained_ids(parent)[:FORGET_IDS]
    for method in methods:
        request = api.make_request(parent, ids=ids, by="pair")
        result = api.forget(parent, request, method=method, overrides=METHOD_OVERRIDES.get(method, []),
                            out=out_dir / method, progress=False)
        digests[method] = model_digest(result.model)
    (out_dir / f"rank{distributed.rank()}.json").write_text(json.dumps(digests))
    distributed.shutdown()
    return digests


def _trained_ids(run) -> list[str]:
    """Pair ids the run trained on, in corpus order."""
    from graphdel import api

    prepared = api.load_run_data(run, progress=False)
    return [prepared.corpus.pair_ids[r] for r in prepared.trained_rows()]


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], sys.argv[3] if sys.argv[3] != "-" else None, sys.argv[4:])
