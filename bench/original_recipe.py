"""Benchmark: the default molecule original on ``drugs`` with overrides of its recipe, validation only.

    python bench/original_recipe.py [--data drugs] [--set train.KEY=VALUE] [--set model.KEY=VALUE]
        [--threads 1] [--keep-fusion] [--out RUN]

    e.g. python bench/original_recipe.py --set train.epochs=20 --set model.graph.layers=4 \\
        --set model.text.trainable_layers=1

Starts from the recipe ``graphdel train`` uses (the generic :class:`~graphdel.training.loop.TrainConfig`
and :class:`~graphdel.models.config.ModelConfig` with the modality's ``default_configs`` applied), applies
the ``--set`` overrides with the config kernel (``with_overrides``; ``train.`` keys go to the training
config, ``model.`` keys to the model config, nested ones as ``model.graph.layers``), and trains that exact
recipe: ``api.train`` is told not to re-apply the modality defaults, which would otherwise put back every
field an override left at its generic value (``fusion_epochs=0`` among them). The fusion stage is off
(``fusion_epochs=0``: it changes no embedding and no retrieval number) unless ``--keep-fusion``.

The run goes into a temporary folder, deleted afterwards, unless ``--out`` names one. Prints one JSON line:
the overrides, the best epoch, epochs run, pool-64 graph->text MRR on train and val and their gap, the
seconds of the training loop (``wall_time_s``, evaluation of each epoch included) and of the whole call,
and the machine with its load. Test numbers are never printed: the test split is read once, for the
recipe chosen, from the run folder that ``--out`` keeps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load, machine, peak_rss_mib  # noqa: E402


def recipe(modality: str, overrides: list[str], keep_fusion: bool):
    """``(model_config, train_config)``: the modality's default recipe with ``overrides`` applied."""
    from graphdel.errors import ConfigError
    from graphdel.models.joint import ModelConfig
    from graphdel.train_run import modality_defaults
    from graphdel.training.loop import TrainConfig

    model_config, config = modality_defaults(modality, ModelConfig(), TrainConfig(), False)
    model_set, train_set = [], []
    for item in overrides:
        scope, _, rest = item.partition(".")
        if scope == "model":
            model_set.append(rest)
        elif scope == "train":
            train_set.append(rest)
        else:
            raise ConfigError(f"override {item!r}: keys start with 'model.' or 'train.'")
    model_config = model_config.with_overrides(model_set)
    config = config.with_overrides(train_set)
    if not keep_fusion:
        config = config.with_overrides(["fusion_epochs=0"])
    return model_config, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="drugs")
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="model.KEY=VALUE or train.KEY=VALUE (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--keep-fusion", action="store_true", help="keep the recipe's fusion stage")
    parser.add_argument("--out", default=None, help="keep the run folder here")
    args = parser.parse_args()
    start_load = load()

    import torch

    torch.set_num_threads(args.threads)
    from graphdel import api

    data = api.DataConfig(source=args.data)
    corpus = api.load_corpus(data)
    model_config, config = recipe(corpus.modality, args.overrides, args.keep_fusion)
    # the recipe is final: api.train must not put the modality defaults back over it
    api.modality_defaults = lambda modality, m, c, quick: (m, c)
    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="original_recipe-")
        out = os.path.join(tmp, "run")
    else:
        out = args.out
    try:
        start = time.perf_counter()
        run = api.train(data, config, model_config, out=out, progress=False)
        total = time.perf_counter() - start
        splits = run.metrics["splits"]
        mrr = {s: round(splits[s]["pool64"]["g2t_mrr"], 4) for s in ("train", "val")}
        emit({"bench": "original_recipe", "data": args.data, "overrides": args.overrides,
              "fusion_epochs": config.fusion_epochs, "best_epoch": run.metrics["best_epoch"],
              "epochs_run": len(run.log), "pool64_g2t_mrr": mrr,
              "train_minus_val": round(mrr["train"] - mrr["val"], 4),
              "loop_s": round(run.metrics["wall_time_s"], 1), "total_s": round(total, 1),
              "peak_rss_mib": peak_rss_mib(), "out": args.out, "machine": machine(start_load)})
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
