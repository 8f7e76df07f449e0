"""Benchmark: graphdel's molecule featurisation against ``torch_geometric.utils.from_smiles``, cold and
warm cache, on the same molecules of the embedded corpus.

    python bench/featurize.py [--molecules 5000] [--rounds 3] [--workers 2]

Both turn the same canonical SMILES (the corpus's standardised ones, a seeded sample) into graphs with 9
categorical atom and 3 bond feature columns. Timed, side by side in each round (the rounds are
interleaved, so a busy machine slows all variants alike; the median is reported):

* ``from_smiles``: ``[from_smiles(s) for s in smiles]`` (one PyG ``Data`` per molecule);
* ``cold``: :func:`graphdel.data.molecules.featurize_smiles` on an empty cache, in this process (parse,
  featurise, concatenate, write the cache file);
* ``cold_workers``: the same with ``--workers`` worker processes;
* ``warm``: the same call again (the cache file is read).

Prints one JSON line with the times and the ratios. Issue targets: cold at least as fast as from_smiles
(``cold_speedup_vs_from_smiles >= 1``); warm at least 50x faster than cold (``warm_speedup_vs_cold >= 50``).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import _common


def main() -> None:
    """Run the comparison and print its JSON line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the cold_workers variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start_load = _common.load()

    import torch
    from torch_geometric.utils import from_smiles

    from graphdel.data.molecules import featurize_smiles
    from graphdel.data.sources import load_dataset

    torch.set_num_threads(1)
    corpus = load_dataset("drugs")
    items = corpus.item_list()
    chosen = random.Random(args.seed).sample(items, min(args.molecules, len(items)))
    smiles = [corpus.items[i] for i in chosen]
    times: dict[str, list[float]] = {"from_smiles": [], "cold": [], "cold_workers": [], "warm": []}
    atoms = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            t = time.perf_counter()
            pyg = [from_smiles(s) for s in smiles]
            times["from_smiles"].append(time.perf_counter() - t)
            for name, workers in (("cold", 0), ("cold_workers", args.workers)):
                os.environ["GRAPHDEL_CACHE"] = os.path.join(tmp, f"{name}-{r}")  # empty: a cold cache
                t = time.perf_counter()
                graphs = featurize_smiles(smiles, workers=workers)
                times[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            warm = featurize_smiles(smiles)  # the cache just written
            times["warm"].append(time.perf_counter() - t)
            assert torch.equal(warm.x, graphs.x) and len(warm) == len(smiles)
            atoms = int(graphs.x.size(0))
            assert atoms == sum(d.num_nodes for d in pyg)  # same molecules, same heavy atoms
    med = {k: _common.median(v) for k, v in times.items()}
    _common.emit({
        "bench": "featurize", "molecules": len(smiles), "atoms": atoms, "rounds": args.rounds,
        "seconds_median": {k: round(v, 4) for k, v in med.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "molecules_per_s": {k: round(len(smiles) / v, 1) for k, v in med.items()},
        "cold_speedup_vs_from_smiles": round(med["from_smiles"] / med["cold"], 2),
        "cold_workers_speedup_vs_from_smiles": round(med["from_smiles"] / med["cold_workers"], 2),
        "warm_speedup_vs_cold": round(med["cold"] / med["warm"], 1),
        "workers": args.workers,
        "targets": {"cold_at_least_as_fast_as_from_smiles": med["cold"] <= med["from_smiles"],
                    "warm_50x_faster_than_cold": med["cold"] / med["warm"] >= 50},
        "machine": _common.machine(start_load),
    })


if __name__ == "__main__":
    main()
