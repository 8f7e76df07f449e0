"""Benchmark: a fusion-stage step fused in one call over its pairs, against one call per kind of pair.

    python bench/fusion_pairs.py --run RUN [--rounds 2]

A fusion-stage step scores ``b`` true pairs, ``b`` pairs of each molecule with a negative caption and ``b``
pairs of each caption with a negative molecule: every caption is read twice and every molecule twice. With
``fuse``'s ``pairs`` (``FusionModule.forward``) the input maps run once per distinct caption and molecule,
the item map only at real atom positions, and the first layer's self-attention once per caption; before,
the step made three ``fuse`` calls and each mapped and attended over its own rows. This bench times, side
by side in one process (alternating, the current path first), one fusion-stage epoch on the run's frozen
encoders from the run's own fusion weights:

* ``pairs``: the stage as it is (``graphdel.training.fusion.fusion_stage_loss``);
* ``separate``: the same step's loss from three fusion-module calls, one per kind of pair, each on its rows
  written out, with the item map over every padded position: the arithmetic of the stage before ``pairs``.

and, the same way, the validation split's matching metrics (``matching_metrics``: random- and hardest-
partner accuracy, pool-64 re-ranking of each query's top candidates), whose ``pair_match_logits`` now
builds each distinct molecule and caption of a chunk once (re-ranking names each query's molecule ``top_k``
times), against the chunk's pairs written out row by row as before.

One JSON line per round and variant, then a summary: the fastest time of each, their ratios, the stage's
matching loss under each (equal to float rounding: Adam carries the rounding into the last digits over an
epoch), the largest difference between the two variants' losses on one batch before any update, and the
validation metrics under each (equal but for float rounding).
"""

from __future__ import annotations

import _common


def main() -> None:
    args, start_load = _common.run_and_rounds(__doc__)
    import copy
    from dataclasses import replace

    import torch

    import graphdel.evaluation.matching as matching
    import graphdel.training.fusion as stage
    from graphdel.evaluation.embed import item_states_cached
    from graphdel.models.layers import FusionModule
    from graphdel.training.loop import TrainConfig

    run, prepared = _common.loaded_run(args.run)
    model = run.model.eval()
    if model.config.fusion_product:
        raise SystemExit("fusion_pairs: the separate variant does not write out fusion_product; "
                         "use a run without it")
    sets = prepared.sets()
    train, val, distractors = sets["train"], sets["val"], prepared.distractors()
    recipe = replace(TrainConfig.from_dict(run.config["train"]), device="cpu", fusion_epochs=1)
    start = copy.deepcopy(model.state_dict())
    current_loss, current_memory = stage.fusion_stage_loss, FusionModule._memory
    current_logits = matching.pair_match_logits

    def rows_written_out(model, data, x_rows, text_rows, *, batch_size=256, device="cpu"):
        """``pair_match_logits`` as it ran before: each chunk's pairs built and fused row by row."""
        model.eval()
        out = []
        with item_states_cached(model):
            for s in range(0, x_rows.numel(), batch_size):
                x = data.batch(x_rows[s:s + batch_size]).x
                text = data.batch(text_rows[s:s + batch_size]).text
                out.append(model.match_logits(model.fuse(x, text)).float())
        return torch.cat(out)

    def every_position(module, item, item_mask):  # the item map as it ran before: every padded position too
        return module.map_items(item)

    def separate_loss(model, batch, b):
        """The stage loss from one fusion-module call per kind of pair, each on its own rows."""
        item_tokens, item_mask, _ = model.item_states(batch.x)
        text_tokens, text_mask, _ = model.text_encoder(batch.text)
        parts = stage.stage_pairs(b, len(batch) == 3 * b).split(b)
        fused = torch.cat([model.fusion(text_tokens[p[:, 1]], text_mask[p[:, 1]], item_tokens[p[:, 0]],
                                        item_mask[p[:, 0]]) for p in parts])
        return stage.balanced_matching_loss(model.match_logits(fused), b)

    def use(variant: str) -> None:
        stage.fusion_stage_loss = current_loss if variant == "pairs" else separate_loss
        FusionModule._memory = current_memory if variant == "pairs" else every_position
        matching.pair_match_logits = current_logits if variant == "pairs" else rows_written_out

    one = train.make_batch(train.rows[torch.arange(3 * recipe.batch_size) % len(train)])
    first_loss = {}
    for variant in ("pairs", "separate"):
        use(variant)
        with torch.no_grad():
            first_loss[variant] = float(stage.fusion_stage_loss(model, one, recipe.batch_size))
    summary, metrics = _common.fusion_stage_rounds(
        "fusion_pairs", ("pairs", "separate"), use, model, start, train, recipe, args.rounds,
        lambda: matching.matching_metrics(model, {"val": val}, distractors)["val"])
    _common.emit({"bench": "fusion_pairs", "run": args.run, "rounds": args.rounds, **summary,
                  "first_batch_loss_diff": abs(first_loss["pairs"] - first_loss["separate"]),
                  "val_matching": metrics, "machine": _common.machine(start_load)})


if __name__ == "__main__":
    main()
