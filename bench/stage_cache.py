"""Benchmark: the fusion stage's frozen-state cache as the corpus grows, default capacity against sized.

    python bench/stage_cache.py --original RUN                     # the corpus as it is, and replicated x5
    python bench/stage_cache.py --original RUN --replicas 1,5,10

The fusion stage (graphdel/training/fusion.py) reads its training pairs once per epoch in random batches,
each pair's molecule and a negative molecule, through the graph encoder with every layer frozen, so each
molecule's node states can be cached (:class:`~graphdel.encoders.graph.FrozenTrunkCache`), which serves
the molecules it holds and computes the others. This bench replays that access pattern (two
epochs of batches of 64, a random negative molecule per pair, ``item_states`` only: no fusion module, no
gradient) on the original's corpus replicated ``k`` times (bench/unlearn_scaling.py: new ids, same
molecules), once with the cache's default capacity (``share_frozen_states()``, 250,000 atoms) and once
sized to the stage's pairs (``share_frozen_states(reads=train)``, what the stage uses), side by side in one
process, and the sized cache once more serving whole batches only (the cache before it served per
molecule). One JSON line per corpus size and variant: per epoch the share of molecules served from the
cache and the seconds, the atoms cached, the sized variant's speed-up on the second epoch over the
default, and on the first epoch over whole-batch serving.
"""

from __future__ import annotations

import argparse
import time

import _common
from molecule_variants import whole_batches
from unlearn_scaling import replicate


def replay(model, train, reads, epochs: int = 2, batch_size: int = 64, seed: int = 0,
           whole: bool = False) -> dict:
    """The stage's item-batch pattern over ``train`` for ``epochs`` epochs; what the cache did each epoch.
    ``whole``: the cache serves whole batches only (the reference of bench/molecule_variants.py)."""
    import torch

    from graphdel.encoders.graph import FrozenTrunkCache

    if whole:
        per_molecule, FrozenTrunkCache.states = FrozenTrunkCache.states, whole_batches
        try:
            return replay(model, train, reads, epochs, batch_size, seed)
        finally:
            FrozenTrunkCache.states = per_molecule

    rows, generator = train.rows, torch.Generator().manual_seed(seed)
    n, out = len(rows), []
    with model.share_frozen_states(reads=reads), torch.no_grad():
        cache = model.graph_encoder.trunk_cache
        for _ in range(epochs):
            t, hits, misses = time.perf_counter(), cache.hits, cache.misses
            order = torch.randperm(n, generator=generator)
            for s in range(n // batch_size):
                pairs = rows[order[s * batch_size:(s + 1) * batch_size]]
                negatives = rows[torch.randint(n, (batch_size,), generator=generator)]
                model.item_states(train.make_batch(pairs).x)
                model.item_states(train.make_batch(negatives).x)
            served = cache.hits - hits
            out.append({"served": round(served / (served + cache.misses - misses), 3),
                        "s": round(time.perf_counter() - t, 2)})
        return {"capacity_atoms": cache.max_nodes, "cached_atoms": cache._nodes, "epochs": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True, help="a trained molecule run (its corpus and model)")
    parser.add_argument("--replicas", default="1,5", help="comma-separated replication factors")
    args = parser.parse_args()
    start_load = _common.load()

    from graphdel import api
    from graphdel.models.joint import ModelConfig
    from graphdel.runs import Run

    original = Run.load(args.original)
    base = api.load_run_data(original, progress=False)
    model = original.model
    for p in model.parameters():  # as in the stage: every graph layer frozen, so all of them are cached
        p.requires_grad_(False)
    model.eval()
    for k in [int(r) for r in args.replicas.split(",")]:
        prepared = api.prepare(api.data_config_of(original), ModelConfig.from_dict(original.config["model"]),
                               corpus=replicate(base.corpus, k), progress=False)
        train = prepared.data.subset(prepared.trained_rows(), "train")
        default = replay(model, train, reads=None)
        sized = replay(model, train, reads=train)
        whole = replay(model, train, reads=train, whole=True)
        for name, record in (("default", default), ("sized", sized), ("sized, whole batches", whole)):
            _common.emit({"bench": "stage_cache", "replicas": k, "pairs": len(train), "cache": name, **record,
                          "machine": _common.machine(start_load)})
        _common.emit({"bench": "stage_cache", "replicas": k, "pairs": len(train),
                      "second_epoch_speedup": round(default["epochs"][1]["s"] / sized["epochs"][1]["s"], 1),
                      "first_epoch_per_molecule_speedup":
                          round(whole["epochs"][0]["s"] / sized["epochs"][0]["s"], 2)})


if __name__ == "__main__":
    main()
