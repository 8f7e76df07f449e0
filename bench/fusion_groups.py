"""Benchmark: the fusion module with its rows grouped by item length, against one padded batch.

    python bench/fusion_groups.py --run RUN [--rounds 2]

A batch of molecules reaches the fusion module padded to its largest molecule (96 atom positions in
nearly every batch of 64 on ``drugs``, where the median molecule has 22 atoms), and every padded position
costs the cross-attention's projections as much as a real one. ``FusionModule.forward`` computes rows
whose items end early apart, with their memory cut to their extent (``graphdel.models.layers.
length_groups``). This bench times, side by side in one process (alternating, the grouped path first):

* one fusion-stage epoch on the run's frozen encoders (``train_fusion_stage``, the stage every molecule
  training and every Retrain runs), from the run's own fusion weights each time;
* the matching scores of the validation split (``matching_accuracies``: forward passes only).

One JSON line per round and variant, then a summary: the fastest time of each variant, their ratio, the
stage's matching loss under each (the two paths agree to float rounding, so the trajectories part in the
last digits), and the largest difference between the validation match probabilities before any update.
"""

from __future__ import annotations

import _common


def main() -> None:
    args, start_load = _common.run_and_rounds(__doc__)
    import copy
    from dataclasses import replace

    import torch

    import graphdel.models.layers as layers
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.matching import matching_accuracies
    from graphdel.training.loop import TrainConfig

    run, prepared = _common.loaded_run(args.run)
    model = run.model.eval()
    sets = prepared.sets()
    train, val = sets["train"], sets["val"]
    recipe = replace(TrainConfig.from_dict(run.config["train"]), device="cpu", fusion_epochs=1)
    start = copy.deepcopy(model.state_dict())
    grouped = layers.length_groups

    def use(variant: str) -> None:
        layers.length_groups = grouped if variant == "grouped" else (lambda *a, **k: None)

    def val_probabilities() -> torch.Tensor:
        return embed_pairs(model, val, with_matching=True).match_prob

    probabilities = {}
    for variant in ("grouped", "padded"):
        use(variant)
        with torch.no_grad():
            probabilities[variant] = val_probabilities()

    def matching() -> None:
        matching_accuracies(model, val, embed_pairs(model, val, with_matching=True), seed=0)

    summary, _ = _common.fusion_stage_rounds("fusion_groups", ("grouped", "padded"), use, model, start,
                                             train, recipe, args.rounds, matching)
    _common.emit({"bench": "fusion_groups", "run": args.run, "rounds": args.rounds, **summary,
                  "val_match_prob_max_diff": float((probabilities["grouped"]
                                                    - probabilities["padded"]).abs().max()),
                  "machine": _common.machine(start_load)})


if __name__ == "__main__":
    main()
