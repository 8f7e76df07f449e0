"""Benchmark: how far the calibration reference lies from a request's own never-seen level, by sampling alone.

    python bench/reference_noise.py --run ORIGINAL [--requests molecule:0.05:301,scaffold:0.05:302]
        [--draws 20] [--tolerance 0.03] [--bootstrap 2000]

A run stops when its deleted pairs' pool-64 MRR reaches the calibration reference: the original's mean
score on the calibration hold-out (pairs never trained on, drawn as deletions are drawn), weighted like the
request on molecules (:func:`graphdel.evaluation.reference_weights.series_matched_weights`). Retrain's Df
score is the request's own pairs, never seen by its model. Even a method whose deleted pairs scored as
never-seen pairs do would land at the reference, not at that level: two means over two samples of pairs.

For each request (``by:amount:seed``, drawn only to size it and to weight the reference; nothing is
unlearned), this scores every calibration pair under ORIGINAL (its reciprocal rank averaged over ``--draws``
distractor draws, so the draws' own noise mostly averages out) and prints one JSON line: the reference, its
standard error (analytic over the weight strata, and by a bootstrap of the pairs within each stratum), the
per-pair spread, the standard error of ``request's never-seen mean - reference`` for a request of that
size (its pairs spread as the calibration pairs of their stratum do), and the chance that this gap alone
exceeds ``--tolerance`` (normal approximation). No Retrain, no test pair is read.

The errors here are the stratified ones (each weight stratum about its own mean), which the request's part
needs; a run records the linearised error of the same weighted mean
(:func:`graphdel.evaluation.ranks.weighted_mean_error`, ``selected.reference_se``), which agrees to the
third decimal on ``drugs`` (0.022 both for a 5% request).
"""

from __future__ import annotations

import argparse
import random
import statistics

from _common import emit, load, machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the trained original (read-only)")
    parser.add_argument("--requests", default="molecule:0.05:301",
                        help="comma-separated by:amount:seed requests to size and weight the reference for")
    parser.add_argument("--draws", type=int, default=20, help="distractor draws averaged per pair")
    parser.add_argument("--tolerance", type=float, default=0.03, help="the Df target's tolerance")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the reference")
    args = parser.parse_args()
    start_load = load()
    from graphdel import api
    from graphdel.errors import InvalidInputError
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.reference_weights import series_matched_weights
    from graphdel.evaluation.retrieval import pool_g2t_reciprocal
    from graphdel.models.joint import ModelConfig
    from graphdel.runs import Run

    original = Run.load(args.run)
    prepared = api.prepare(api.data_config_of(original), ModelConfig.from_dict(original.config["model"]),
                           exclude=original.excluded_ids, progress=False)
    calibration = prepared.sets()["calibration"]
    if not len(calibration):
        raise InvalidInputError(f"{args.run}: its data has no calibration pairs to measure")
    queries = embed_pairs(original.model, calibration, device="cpu")
    texts = embed_pairs(original.model, prepared.distractors(), texts_only=True, device="cpu")
    rr = sum(pool_g2t_reciprocal(queries, texts, seed=d) for d in range(args.draws)) / args.draws
    score = dict(zip(queries.rows.tolist(), rr.tolist()))  # calibration row -> never-seen score

    for spec in args.requests.split(","):
        by, amount, seed = _parse_request(spec)
        request = api.make_request(original, random_amount=amount, by=by, seed=seed, prepared=prepared)
        df_rows = [prepared.corpus.index_of(p) for p in request.pair_ids]
        weighted = series_matched_weights(prepared, df_rows, prepared.retained_rows(df_rows))
        weights = weighted.weights if weighted is not None else {r: 1 / len(score) for r in score}
        strata = _strata(weights)
        reference = sum(w * score[r] for r, w in weights.items())
        ref_se, gap_se = standard_errors(score, strata, len(df_rows))
        rng = random.Random(seed)
        boot = [sum(share * statistics.fmean(rng.choices([score[r] for r in rows], k=len(rows)))
                    for share, rows in strata) for _ in range(args.bootstrap)]
        miss = 2 * (1 - statistics.NormalDist(0, gap_se).cdf(args.tolerance)) if gap_se > 0 else 0.0
        emit({"bench": "reference_noise", "run": args.run, "request": spec, "df_pairs": len(df_rows),
              "calibration_pairs": len(score), "draws": args.draws,
              "strata": [{"share": round(share, 4), "pairs": len(rows),
                          "mean": round(statistics.fmean(score[r] for r in rows), 4),
                          "sd": round(_var([score[r] for r in rows]) ** 0.5, 4)} for share, rows in strata],
              "reference": round(reference, 4), "reference_se": round(ref_se, 4),
              "reference_se_bootstrap": round(statistics.stdev(boot), 4),
              "effective_pairs": round(1 / sum(w * w for w in weights.values()), 1),
              "gap_se": round(gap_se, 4), "tolerance": args.tolerance,
              "p_gap_beyond_tolerance": round(miss, 3),
              "machine": machine(start_load)})


def standard_errors(score: dict[int, float], strata: list[tuple[float, list[int]]],
                    df_pairs: int) -> tuple[float, float]:
    """``(reference_se, gap_se)``: the standard error of the stratified reference
    ``sum(share * stratum mean)`` over the calibration ``score`` (row -> never-seen score), and that of
    ``request mean - reference`` for a request of ``df_pairs`` pairs that falls in the strata with the same
    shares (what the weights match) and spreads within each as its calibration pairs do.
    Var(stratified mean) = sum(share^2 * var / n)."""
    ref_var = sum(share ** 2 * _var([score[r] for r in rows]) / len(rows) for share, rows in strata)
    req_var = sum(share ** 2 * _var([score[r] for r in rows]) / (share * df_pairs)
                  for share, rows in strata if share > 0)
    return ref_var ** 0.5, (ref_var + req_var) ** 0.5


def _parse_request(spec: str) -> tuple[str, float, int]:
    """``by:amount:seed`` -> ``(by, amount, seed)``; a one-line error naming the bad spec."""
    parts = spec.strip().split(":")
    if len(parts) != 3:
        raise SystemExit(f"--requests: {spec!r} is not by:amount:seed (e.g. molecule:0.05:301)")
    try:
        return parts[0], float(parts[1]), int(parts[2])
    except ValueError:
        raise SystemExit(f"--requests: {spec!r} has a non-numeric amount or seed") from None


def _strata(weights: dict[int, float]) -> list[tuple[float, list[int]]]:
    """The calibration pairs grouped by weight (``series_matched_weights`` gives each stratum one weight):
    ``[(stratum's share of the reference, its rows), ...]``; pairs of weight 0 are left out."""
    groups: dict[float, list[int]] = {}
    for row, w in weights.items():
        if w > 0:
            groups.setdefault(round(w, 12), []).append(row)
    return [(w * len(rows), sorted(rows)) for w, rows in sorted(groups.items())]


def _var(values: list[float]) -> float:
    """Sample variance (0 for fewer than two values)."""
    return statistics.variance(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    main()
