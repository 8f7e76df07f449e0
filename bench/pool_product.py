"""Benchmark: pool-k scoring by one matrix product per block (graphdel's path) against the row-wise sums it
replaced, and the product's block size on the CPU.

    python bench/pool_product.py --run RUN [--rounds 5] [--draws 8]

RUN is a trained run folder (the demo's original: the folder `graphdel demo` names in `demo.json`). Its
validation split and a Dr sample of 2,000 pairs are embedded once with its model; then each set is ranked
against the run's distractor set over ``--draws`` distractor draws (seeds 0..draws-1, as an unlearning
evaluation does with ``eval_draws`` 8) by the reference (each pool's embeddings gathered, row-wise sums, 64
queries at a time: the path before) and by ``pool_candidate_scores`` with 64, 256 and 1,024 queries per
block, interleaved round by round. Per set: the median seconds of each, the reference over the default
block's, and against the reference: the largest score difference, the pools whose rank (candidates above,
candidates tied) differs, and the difference of the mean reciprocal rank, in both directions.
"""

from __future__ import annotations

import time

from _common import emit, loaded_run, machine, median, row_wise_pool, run_and_rounds

BLOCKS = (64, 256, 1024)


def main() -> None:
    args, start_load = run_and_rounds(__doc__, lambda p: p.add_argument("--draws", type=int, default=8))
    n_draws = args.draws

    from graphdel.evaluation import retrieval
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.retrieval import POOL_BLOCK, Ranks, pool_candidate_scores

    run, prepared = loaded_run(args.run)
    model = run.model.eval()
    distractors = embed_pairs(model, prepared.distractors())
    retained = prepared.retained_rows([])[:2000]
    sets = {"val": prepared.sets()["val"], "dr_2000": prepared.data.subset(retained, "dr")}
    product = retrieval._pool_scores

    def scorer(pool_scores, block: int):
        def score(queries, seed: int):
            retrieval._pool_scores = pool_scores
            try:
                return pool_candidate_scores(queries, distractors, pool_size=64, seed=seed, block=block)
            finally:
                retrieval._pool_scores = product
        return score

    # the reference scores 64 queries at a time whatever the block it is handed
    variants = {"row_wise_64": scorer(row_wise_pool, POOL_BLOCK)}
    variants.update({f"product_{block}": scorer(product, block) for block in BLOCKS})
    default = f"product_{POOL_BLOCK}"
    out = {}
    for name, pairs in sets.items():
        queries = embed_pairs(model, pairs)
        times: dict[str, list[float]] = {v: [] for v in variants}
        scored: dict[str, list] = {}
        for _ in range(args.rounds):
            for variant, score in variants.items():
                start = time.perf_counter()
                scored[variant] = [score(queries, seed) for seed in range(n_draws)]
                times[variant].append(time.perf_counter() - start)
        medians = {v: median(t) for v, t in times.items()}
        diff, changed, mrr_diff = 0.0, 0, 0.0
        for (ref_g, ref_t), (new_g, new_t) in zip(scored["row_wise_64"], scored[default]):
            for ref, new in ((ref_g, new_g), (ref_t, new_t)):
                diff = max(diff, float((ref - new).abs().max()))
                a, b = Ranks.of_scores(ref), Ranks.of_scores(new)
                changed += int(((a.above != b.above) | (a.tied != b.tied)).sum())
                mrr_diff = max(mrr_diff, abs(float(a.reciprocal().mean() - b.reciprocal().mean())))
        out[name] = {"pairs": len(pairs), "draws": n_draws,
                     "seconds_median": {v: round(s, 4) for v, s in medians.items()},
                     "reference_over_default": round(medians["row_wise_64"] / medians[default], 2),
                     "max_score_diff": diff, "pools_with_another_rank": changed,
                     "pools_scored": 2 * n_draws * len(pairs), "max_mrr_diff": mrr_diff}
    emit({"bench": "pool_product", "run": str(run.path), "distractor_pairs": len(distractors),
          "rounds": args.rounds, "default_block": POOL_BLOCK, "sets": out, "machine": machine(start_load)})


if __name__ == "__main__":
    main()
