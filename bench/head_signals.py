"""Benchmark: can a membership signal be read off the matching head? Df-vs-Dr AUC by every per-pair score
the head gives, beside the cosine similarity.

    python bench/head_signals.py --original ORIGINAL RUN [RUN ...]

Each ``RUN`` is a forget run of ``ORIGINAL`` (Retrain, MultiDelete, ...): its ``request.json`` names Df;
the evaluation pair sets are the suite's (:func:`graphdel.api.evaluation_sets`, seed 0): Df, a Dr sample
of ``|Df|`` pairs and the calibration pairs (never trained). Per model (the original, then each run), one
JSON line with the ROC-AUC of Df (label 0) against Dr, and against calibration, by:

* ``similarity``: the cosine of the pair (the suite's headline score);
* ``match_prob``: the head's probability of the true pair (the suite's matching signal);
* ``margin_random``: the true pair's logit minus the logit of the pair's item with a random other caption
  (the suite's deranged partner);
* ``margin_hardest_text`` / ``margin_hardest_item``: minus the logit with the most similar other caption of
  the set (other molecule for the caption) — how much better than its closest rival the head finds it.

For Retrain, Df was never trained and Dr was, so an AUC away from 0.5 is a signal of training. Reads no
test pair.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True)
    parser.add_argument("runs", nargs="+", help="forget runs of the original (each with its request.json)")
    args = parser.parse_args()
    start_load = load()

    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from graphdel import api
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.matching import matching_partners, pair_match_logits
    from graphdel.evaluation.retrieval import hardest_of_other_items
    from graphdel.runs import Run

    original = Run.load(args.original)
    prepared = api.load_run_data(original, progress=False)

    def scores(model, pairs) -> dict[str, np.ndarray]:
        """Every signal of the module docstring for each pair of ``pairs`` (larger = more member-like)."""
        emb = embed_pairs(model, pairs, with_matching=True)
        rows = emb.rows
        true = pair_match_logits(model, pairs.data, rows, rows)
        random_j, hard_text = matching_partners(emb, seed=0)
        hard_item = hardest_of_other_items(emb.z_t, emb.z_x, emb.items, emb.items, 1)[:, 0]
        def margin(x_rows, text_rows) -> np.ndarray:
            return (true - pair_match_logits(model, pairs.data, x_rows, text_rows)).numpy()

        return {"similarity": (emb.z_x * emb.z_t).sum(1).numpy(), "match_prob": emb.match_prob.numpy(),
                "margin_random": margin(rows, rows[random_j]),
                "margin_hardest_text": margin(rows, rows[hard_text]),
                "margin_hardest_item": margin(rows[hard_item], rows)}

    def auc(df: np.ndarray, other: np.ndarray) -> float:
        labels = np.r_[np.zeros(df.size), np.ones(other.size)]
        return round(float(roc_auc_score(labels, np.r_[df, other])), 4)

    for path in args.runs:
        request = api.load_request_any(prepared, Path(path) / "request.json")
        sets = api.evaluation_sets(prepared, request.rows(prepared.corpus), 0)
        models = ([("original", original)] if path == args.runs[0] else []) + [(path, Run.load(path))]
        for name, run in models:
            model = run.model.eval()
            with torch.no_grad():
                got = {split: scores(model, sets[split]) for split in ("forget", "retain", "calibration")}
            emit({"bench": "head_signals", "model": name, "request": str(Path(path) / "request.json"),
                  "df_pairs": len(sets["forget"]),
                  "df_vs_dr_auc": {k: auc(got["forget"][k], got["retain"][k]) for k in got["forget"]},
                  "df_vs_calibration_auc": {k: auc(got["forget"][k], got["calibration"][k])
                                            for k in got["forget"]},
                  "machine": machine(start_load)})


if __name__ == "__main__":
    main()
