"""Benchmark: MultiDelete's wall time against Retrain's, as |Df| and the corpus size grow.

    python bench/unlearn_scaling.py                       # short: 800 molecules, 3-epoch recipe (minutes)
    python bench/unlearn_scaling.py --full --original RUN # the default corpus and recipe (hours on 2 cores)

Corpus sizes x1, x2, x4 are made by **replicating** the (sampled) embedded corpus: every pair is copied
with new pair and molecule ids (``<id>~r<j>``) and the same SMILES, text and split. That is enough for
timing -- a replicated corpus costs what a real one of that size costs per epoch -- but it is not new data
(a replica of a molecule is the same graph and text), which is why it is said in the output.

The original model is trained once on x1 (or ``--original`` names a finished run to reuse). Because the
replicas carry exactly the content of x1, the same model serves as the original of x2 and x4: a model
trained on x1 has seen everything x4 contains. Deletions are random molecules (seeded) drawn from what
the original trained on; ``|Df|`` is a fraction of the x1 training molecules (``--df-of base``, default:
the same absolute deletion at every corpus size, which is what shows that unlearning cost follows |Df|
and not |D|) or of the current corpus's (``--df-of scaled``). The calibration hold-out of x_k is the
replicas of x1's.

MultiDelete runs with the settings ``graphdel forget`` uses (the model's recommendation, then ``--set``).
Timed: MultiDelete's own wall time (``unlearn(...).wall_time_s``: setup, every update, every calibrated
evaluation) and Retrain's (a fresh model trained on Dr with the original recipe, validation included),
both in this process, one after the other. Retrain is run once per corpus size, for the 5% request
(``--retrain-each`` retrains for every |Df|; Dr differs by under 10% across the grid).

Prints one JSON line. Issue targets: MultiDelete <= 5% of Retrain at 5% deletion on the default corpus,
<= 2% at x4.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import _common


def replicate(corpus, k: int, distinct_texts: bool = False):
    """``corpus`` with every pair copied ``k`` times (copies 1..k-1 get ``~r<j>`` ids); same splits. With
    ``distinct_texts`` copy ``j`` >= 1 of a caption ends in `` (copy j)``, so that the frozen text pass, which
    encodes each distinct text once, costs what a corpus of that many captions costs."""
    from graphdel.data.corpus import Corpus

    if k == 1:
        return corpus
    suffix = [""] + [f"~r{j}" for j in range(1, k)]
    ending = [""] + [f" (copy {j})" if distinct_texts else "" for j in range(1, k)]
    return Corpus(source=f"{corpus.source} replicated x{k}", modality=corpus.modality,
                  pair_ids=[p + s for s in suffix for p in corpus.pair_ids],
                  item_ids=[i + s for s in suffix for i in corpus.item_ids],
                  texts=[t + e for e in ending for t in corpus.texts],
                  splits=[x for _ in suffix for x in corpus.splits],
                  items={i + s: smi for s in suffix for i, smi in corpus.items.items()}, extra=dict(corpus.extra))


def main() -> None:
    """Run the grid and print its JSON line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="default corpus and recipe (overrides the short "
                        "defaults of --max-items and --epochs)")
    parser.add_argument("--max-items", type=int, default=800, help="molecules sampled from the corpus (short)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the original/Retrain recipe (short)")
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--fractions", default="0.01,0.02,0.05,0.10")
    parser.add_argument("--df-of", choices=["base", "scaled"], default="base")
    parser.add_argument("--retrain-each", action="store_true")
    parser.add_argument("--original", help="reuse this trained run (its data, model and recipe) as the original")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MultiDelete setting")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see bench/README.md)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start_load = _common.load()

    import torch
    from tqdm.auto import tqdm

    import graphdel as gd
    from graphdel import api
    from graphdel.data.requests import DeletionRequest
    from graphdel.models.joint import ModelConfig, build_model
    from graphdel.training.loop import TrainConfig, train_model
    from graphdel.unlearning import UnlearningContext, unlearn

    torch.set_num_threads(args.threads)
    scales = [int(s) for s in args.scales.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    t_total = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.original:
            original = gd.Run.load(args.original)
            data_cfg = api.DataConfig(**{k: v for k, v in original.config["data"].items()
                                         if k in api.DataConfig.__dataclass_fields__})
            recipe = TrainConfig(**original.config["train"])
            original_s = None
        else:
            data_cfg = api.DataConfig(max_items=None if args.full else args.max_items)
            recipe = TrainConfig() if args.full else TrainConfig(epochs=args.epochs, patience=0)
            t = time.perf_counter()
            original = gd.train(data_cfg, recipe, out=os.path.join(tmp, "original"), progress=False)
            original_s = time.perf_counter() - t
        model_config = ModelConfig.from_dict(original.config["model"])
        base = api.load_run_data(original, progress=False)
        base_trained_items = sorted({base.corpus.item_ids[r] for r in base.trained_rows()})
        calibration_items = {base.corpus.item_ids[r] for r in base.calibration}
        cells, retrain_s = [], {}
        bar = tqdm(total=len(scales) * len(fractions), desc="unlearn_scaling", unit="cell")  # stderr
        for k in scales:
            corpus = replicate(base.corpus, k)
            prepared = api.prepare(data_cfg, model_config, corpus=corpus, progress=False)
            calibration = [r for r, i in enumerate(corpus.item_ids) if i.split("~r")[0] in calibration_items]
            prepared = dataclasses.replace(prepared, calibration=calibration, excluded=[])
            trained = prepared.trained_rows()
            trained_items = sorted({corpus.item_ids[r] for r in trained})
            sets = prepared.sets()
            for f in fractions:
                n_mol = max(1, round(f * (len(base_trained_items) if args.df_of == "base" else len(trained_items))))
                request = DeletionRequest.random(corpus, n_mol, by="molecule", seed=args.seed, allowed_rows=trained)
                df = request.rows(corpus)
                dr = prepared.retained_rows(df)
                ev = api.evaluation_sets(prepared, df, args.seed)
                ctx = UnlearningContext(forget=ev["forget"], retain=prepared.data.subset(dr, "retain"),
                                        calibration=ev["calibration"], val=ev["val"], seed=args.seed,
                                        progress=False)
                # the settings `graphdel forget` uses: the model's recommendation, then --set
                md = unlearn(original.model, ctx, "multidelete",
                             api.with_model_defaults(original.model, "multidelete", args.set))
                md_config = md.config  # the resolved hyperparameters (defaults change as the method evolves)
                if args.retrain_each or (k not in retrain_s and abs(f - 0.05) < 1e-9) or \
                        (k not in retrain_s and f == fractions[-1]):
                    torch.manual_seed(recipe.seed)
                    t = time.perf_counter()
                    train_model(build_model(model_config), prepared.data.subset(dr, "retain"), sets["val"], recipe,
                                progress=False)
                    retrain_s[k] = time.perf_counter() - t
                cells.append({"scale": k, "fraction_of_base": round(n_mol / len(base_trained_items), 4),
                              "fraction_of_corpus": round(n_mol / len(trained_items), 4),
                              "df_molecules": n_mol, "df_pairs": len(df), "dr_pairs": len(dr),
                              "multidelete_s": round(md.wall_time_s, 2),
                              "multidelete_epochs": md.selected.get("epochs_run"),
                              "multidelete_steps": md.selected.get("steps")})
                bar.update(1)
        bar.close()
        for c in cells:
            c["retrain_s"] = round(retrain_s[c["scale"]], 1)
            c["multidelete_over_retrain"] = round(c["multidelete_s"] / retrain_s[c["scale"]], 4)

    def ratio_at(scale: int, frac: float):
        for c in cells:
            if c["scale"] == scale and abs(c["fraction_of_base"] - frac) < 0.005:
                return c["multidelete_over_retrain"]
        return None

    r1, r4 = ratio_at(1, 0.05), ratio_at(4, 0.05)
    _common.emit({
        "bench": "unlearn_scaling", "setting": "full" if args.full or args.original else "short",
        "replicated_corpus": True,
        "note": "corpus x2/x4 = the x1 corpus replicated (new ids, same SMILES/texts/splits); the x1 original "
                "serves every size; |Df| as a fraction of x1's training molecules" if args.df_of == "base" else
                "corpus x2/x4 = the x1 corpus replicated; |Df| as a fraction of each corpus's training molecules",
        "data": data_cfg.source, "max_items": data_cfg.max_items, "recipe": recipe.to_dict(),
        "multidelete_overrides": args.set, "multidelete_config": md_config, "original_train_s": None if original_s is None else round(original_s, 1),
        "retrain_s": {str(k): round(v, 1) for k, v in retrain_s.items()}, "cells": cells,
        "ratio_5pct_x1": r1, "ratio_5pct_x4": r4,
        "targets": {"x1_5pct_at_most_5pct": None if r1 is None else r1 <= 0.05,
                    "x4_5pct_at_most_2pct": None if r4 is None else r4 <= 0.02},
        "total_s": round(time.perf_counter() - t_total, 1),
        "machine": _common.machine(start_load),
    })


if __name__ == "__main__":
    main()
