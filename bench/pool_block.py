"""Benchmark: pool-k scoring on the CPU, 64 queries at a time (the default) against 1,024 at a time.

    python bench/pool_block.py --run RUN [--rounds 5]

RUN is a trained run folder (the demo's original: the folder `graphdel demo` names in `demo.json`). Its
validation split and a Dr sample of 2,000 pairs are embedded once with its model; then
``pool_candidate_scores`` ranks each against the run's distractor set with both block sizes, interleaved
round by round. Medians are reported with their ratio, and ``same_bits`` says whether both give the same
scores bit for bit (each score is the same row-wise sum in either case).
"""

from __future__ import annotations

import time

from _common import emit, loaded_run, machine, median, run_and_rounds


def main() -> None:
    args, start_load = run_and_rounds(__doc__)
    import torch

    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.retrieval import CPU_POOL_BLOCK, POOL_BLOCK, pool_candidate_scores

    run, prepared = loaded_run(args.run)
    model = run.model.eval()
    distractors = embed_pairs(model, prepared.distractors())
    retained = prepared.retained_rows([])[:2000]
    sets = {"val": prepared.sets()["val"], "dr_2000": prepared.data.subset(retained, "dr")}
    out = {}
    for name, pairs in sets.items():
        queries = embed_pairs(model, pairs)
        times: dict[int, list[float]] = {CPU_POOL_BLOCK: [], POOL_BLOCK: []}
        scores = {}
        for _ in range(args.rounds):
            for block in times:
                start = time.perf_counter()
                scores[block] = pool_candidate_scores(queries, distractors, pool_size=64, block=block)
                times[block].append(time.perf_counter() - start)
        medians = {block: median(t) for block, t in times.items()}
        out[name] = {"pairs": len(pairs),
                     "seconds_median": {str(b): round(s, 4) for b, s in medians.items()},
                     "block_64_over_1024": round(medians[CPU_POOL_BLOCK] / medians[POOL_BLOCK], 3),
                     "same_bits": all(torch.equal(a, b) for a, b in zip(scores[CPU_POOL_BLOCK],
                                                                        scores[POOL_BLOCK]))}
    emit({"bench": "pool_block", "run": str(run.path), "distractor_pairs": len(distractors),
          "rounds": args.rounds,
          "sets": out, "machine": machine(start_load)})


if __name__ == "__main__":
    main()
