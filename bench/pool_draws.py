"""Benchmark: how much of a Df gap to Retrain, or of a test drop, is the draw of the pool's distractors.

    python bench/pool_draws.py --original ORIGINAL --reference RETRAIN RUN [RUN ...] [--draws 20]
        [--split test]

Every pool-64 score ranks each pair against 63 distractor texts drawn with one seed (the same for every
model, so a gap between two models is a paired comparison; :func:`graphdel.evaluation.retrieval.
draw_distractors`). This scores the deleted pairs of RETRAIN's request under ``--draws`` seeds (0, 1, ...)
for the original, RETRAIN and each RUN (unlearned runs of the same request from ORIGINAL), and prints, per
RUN, the Df score's mean and spread over the draws and the gap to RETRAIN draw by draw: its value at seed 0
(what the report shows), mean, standard deviation, minimum and maximum. One JSON line per RUN.

``--split test`` scores the test pairs instead, and the gap read is the retain side's: each RUN's test score
minus the original's, draw by draw (and Retrain's, beside it).
"""

from __future__ import annotations

import argparse
import statistics

from _common import emit, load, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True, help="the trained run the request was unlearned from")
    parser.add_argument("--reference", required=True, help="the Retrain run of the request")
    parser.add_argument("runs", nargs="+", help="unlearned runs of the same request")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--split", choices=("forget", "test"), default="forget",
                        help="the deleted pairs, gap to Retrain (default), or the test pairs, gap to the "
                             "original")
    args = parser.parse_args()
    start_load = load()
    from graphdel import api
    from graphdel.errors import InvalidInputError
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.retrieval import pool_g2t_mrr
    from graphdel.forget_run import deleted_pairs
    from graphdel.models.joint import ModelConfig
    from graphdel.runs import Run

    original, reference = Run.load(args.original), Run.load(args.reference)
    prepared = api.prepare(api.data_config_of(original), ModelConfig.from_dict(original.config["model"]),
                           exclude=original.excluded_ids, progress=False)
    ids = sorted(deleted_pairs(reference))
    rows = prepared.data.rows_of(ids) if args.split == "forget" else prepared.corpus.rows("test")
    scored = prepared.data.subset(rows, args.split)
    distractors = prepared.distractors()

    def scores(run: Run) -> list[float]:
        # embedded once per model; only the draw changes from seed to seed (what pool_score does per call)
        model = run.model
        queries = embed_pairs(model, scored, device="cpu")
        texts = embed_pairs(model, distractors, texts_only=True, device="cpu")
        return [pool_g2t_mrr(queries, texts, seed=s) for s in range(args.draws)]

    base, ref = scores(original), scores(reference)
    for path in args.runs:
        run = Run.load(path)
        if sorted(deleted_pairs(run)) != ids:
            raise InvalidInputError(f"{path}: its request is not the one {args.reference} retrained without")
        own = scores(run)
        common = {"bench": "pool_draws", "run": path, "reference": args.reference, "df_pairs": len(ids),
                  "draws": args.draws, "split": args.split}
        if args.split == "forget":
            emit({**common, "df": _spread(own), "retrain_df": _spread(ref), "original_df": _spread(base),
                  "gap_to_retrain": _gap(own, ref), "machine": machine(start_load)})
        else:
            emit({**common, "test_pairs": len(scored), "test": _spread(own), "retrain_test": _spread(ref),
                  "original_test": _spread(base), "gap_to_original": _gap(own, base),
                  "retrain_gap_to_original": _gap(ref, base), "machine": machine(start_load)})


def _gap(own: list[float], other: list[float]) -> dict:
    """The draw-by-draw difference ``own - other``: at seed 0, mean, sd, minimum and maximum."""
    gap = [a - b for a, b in zip(own, other)]
    return {"seed_0": round(gap[0], 4), **_spread(gap), "min": round(min(gap), 4), "max": round(max(gap), 4)}


def _spread(values: list[float]) -> dict:
    """``{"mean", "sd"}`` of ``values``, rounded to 4 places (sd 0 for a single value)."""
    return {"mean": round(statistics.mean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


if __name__ == "__main__":
    main()
