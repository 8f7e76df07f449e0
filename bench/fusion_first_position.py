"""Benchmark: MultiDelete on a KG with the fusion module's first-position shortcut and with the full last
layer, side by side.

    python bench/fusion_first_position.py --original RUN [--fraction 0.02] [--seed 0] [--repeats 2]

RUN is a trained KG run (``graphdel train --data wordnet --out RUN``, or the cached original a KG demo names
in its demo.json). A fusion module with ``readout="first"`` reads one text position after its last layer;
out of training mode it computes that layer's cross-attention and feed-forward block for that position alone
(:func:`graphdel.models.layers._first_position`). One random triple request (``--fraction`` of the training
triples, ``--seed``) is unlearned with the KG model's recommended MultiDelete settings, alternately with the
shortcut and with the full last layer (every position, then the first read). Prints one JSON line per run
and a summary line: the method's wall time of each (the fastest of the repeats) and their ratio, whether
both kept the same step, and the largest weight difference between the two models (float order only).
"""

from __future__ import annotations

import argparse
import tempfile

from _common import emit, load, machine


def full_last_layer(layer, h, memory, text_mask, item_mask):
    """The reference path: the whole decoder layer on every text position, then the first one read."""
    return layer(h, memory, tgt_key_padding_mask=~text_mask, memory_key_padding_mask=~item_mask)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True)
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    start_load = load()

    import graphdel.api as api
    import graphdel.models.layers as layers

    original = api.Run.load(args.original)
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, random_amount=args.fraction, by="triple", seed=args.seed,
                               prepared=prepared)
    shortcut = layers._first_position
    times: dict[str, list[float]] = {"shortcut": [], "full": []}
    models, steps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for variant in ("shortcut", "full"):
                layers._first_position = shortcut if variant == "shortcut" else full_last_layer
                out = api.forget(original, request, method="multidelete", out=f"{tmp}/{variant}-{repeat}",
                                 progress=False, prepared=prepared, device="cpu")
                selected = out.metrics["selected"]
                times[variant].append(out.metrics["wall_time_s"])
                models[variant], steps[variant] = out.model.state_dict(), selected["step"]
                emit({"bench": "fusion_first_position", "variant": variant, "repeat": repeat,
                      "method_s": round(out.metrics["wall_time_s"], 2), "seconds": selected["seconds"],
                      "kept_step": selected["step"], "selected_forget": round(selected["scores"]["forget"], 4)})
    layers._first_position = shortcut
    diff = max(float((models["shortcut"][k].float() - models["full"][k].float()).abs().max())
               for k in models["shortcut"] if models["shortcut"][k].is_floating_point())
    best = {k: min(v) for k, v in times.items()}
    emit({"bench": "fusion_first_position", "summary": True, "pairs": len(request), "seed": args.seed,
          "shortcut_s": round(best["shortcut"], 2), "full_s": round(best["full"], 2),
          "speedup": round(best["full"] / best["shortcut"], 2), "same_kept_step": steps["shortcut"] == steps["full"],
          "max_weight_diff": diff, "machine": machine(start_load)})


if __name__ == "__main__":
    main()
