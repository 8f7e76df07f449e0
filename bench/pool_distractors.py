"""Benchmark: what one pool-k score costs in distractor embeddings, with the distractors' graphs encoded
and with their texts alone (what selection, early stopping and training's validation embed).

    python bench/pool_distractors.py --run RUN [--rounds 5]

RUN is a trained molecule run folder (the demo's original: the folder `graphdel demo` names in
`demo.json`). Both variants embed the run's distractor set with its model, interleaved round by round;
medians are reported, with their ratio. The script also checks that the validation split's pool-64 graph->text
MRR is the same number either way (``same_score``): graph->text pools read only the distractors' texts.
"""

from __future__ import annotations

import time

from _common import emit, loaded_run, machine, median, run_and_rounds


def main() -> None:
    args, start_load = run_and_rounds(__doc__)
    from graphdel.evaluation.embed import embed_pairs, pool_score
    from graphdel.evaluation.retrieval import pool_retrieval

    run, prepared = loaded_run(args.run)
    model, distractors = run.model.eval(), prepared.distractors()
    times: dict[str, list[float]] = {"both_sides": [], "texts_only": []}
    for _ in range(args.rounds):
        for name in times:
            start = time.perf_counter()
            embed_pairs(model, distractors, texts_only=name == "texts_only")
            times[name].append(time.perf_counter() - start)
    val = prepared.sets()["val"]
    both = pool_retrieval(embed_pairs(model, val), embed_pairs(model, distractors), pool_size=64)["g2t_mrr"]
    texts_alone = pool_score(model, val, distractors, pool_size=64)
    medians = {name: round(median(t), 4) for name, t in times.items()}
    emit({"bench": "pool_distractors", "run": str(run.path), "distractor_pairs": len(distractors),
          "rounds": args.rounds, "seconds_median": medians,
          "texts_only_over_both": round(medians["texts_only"] / medians["both_sides"], 4),
          "same_score": texts_alone == both, "val_pool64_g2t_mrr": round(texts_alone, 4),
          "machine": machine(start_load)})


if __name__ == "__main__":
    main()
