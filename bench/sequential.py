"""Benchmark: a stream of deletion requests, each unlearned from the model the previous one produced,
judged against Retrain on the union of every request so far.

    python bench/sequential.py --quick                       # 800 molecules, the quick recipe (minutes)
    python bench/sequential.py --original RUN --out DIR      # a trained run of the default recipe (hours)

The stream (``--steps``, default 20) repeats five kinds of request, drawn in order with ``--seed`` from what
is still trained on (never a pair an earlier request deleted): one random pair; three named molecules
(every caption of each); one random pair; one chemical series (every training molecule of one Murcko
scaffold holding 2 to 10 of them); 1% of the remaining training molecules. The same requests are applied
with every method of ``--methods`` (default MultiDelete, NegGrad+ and SalUn), each method starting from the
original and chaining on its own output, with the settings ``graphdel forget`` uses.

At the steps of ``--retrain-at`` (default 1, 5, 10, 20) a Retrain is trained on Dr minus the union of the
requests so far, and every model (the original, Retrain, each method's step-k run) is evaluated on the
union as Df with the audit suite's signals (pool-64 retrieval, Df-vs-Dr AUC, the membership attack; no
probes). One JSON line per (method, evaluated step):

* ``df_union_mrr`` / ``retrain_df_union_mrr`` / ``df_gap``: Df (union) pool-64 g2t MRR, Retrain's, the gap;
* ``test_mrr`` / ``original_test_mrr`` / ``test_drop``: test pool-64 g2t MRR, the original's, the drop
  (``val_mrr``, ``val_drop`` the same on validation: what a choice between settings may look at);
* ``dfdr_auc`` / ``retrain_dfdr_auc``, ``attack_auc`` / ``retrain_attack_auc``;
* ``cumulative_s`` / ``retrain_s`` / ``cumulative_over_retrain``: the method's wall time over steps 1..k
  against this Retrain's.

A last line summarises the targets at the final step (MultiDelete: |df_gap| <= 0.05, test_drop <= 0.02,
every request together cheaper than one Retrain) and names the PNG of the trajectories written to ``--out``.
Every run folder is kept under ``--out`` (``original/``, ``retrain/stepK``, ``METHOD/stepK``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

import _common

KINDS = ("pair", "molecules", "pair", "scaffold", "one_percent")


def draw_request(prepared, kind: str, rng: random.Random):
    """One request of ``kind`` drawn with ``rng`` from the rows ``prepared`` still trains on."""
    from graphdel.data.requests import DeletionRequest
    from graphdel.data.scaffold import cached_murcko_scaffold

    corpus, allowed = prepared.corpus, prepared.trained_rows()
    items = sorted({corpus.item_ids[r] for r in allowed})
    if kind == "pair":
        pair = corpus.pair_ids[rng.choice(allowed)]
        return DeletionRequest.from_ids(corpus, [pair], by="pair", allowed_rows=allowed,
                                        description=f"one pair: {pair}")
    if kind == "molecules":
        chosen = rng.sample(items, 3)
        return DeletionRequest.from_ids(corpus, chosen, by="molecule", allowed_rows=allowed,
                                        description=f"three molecules: {', '.join(chosen)}")
    if kind == "scaffold":
        series: dict[str, list[str]] = {}
        for item in items:
            scaffold = cached_murcko_scaffold(corpus.items[item])
            if scaffold:
                series.setdefault(scaffold, []).append(item)
        fitting = sorted(s for s, members in series.items() if 2 <= len(members) <= 10)
        scaffold = rng.choice(fitting)
        return DeletionRequest.from_ids(corpus, [series[scaffold][0]], by="scaffold", allowed_rows=allowed,
                                        description=f"the series of scaffold {scaffold} "
                                                    f"({len(series[scaffold])} molecules)")
    n = max(1, round(0.01 * len(items)))
    return DeletionRequest.from_ids(corpus, rng.sample(items, n), by="molecule", allowed_rows=allowed,
                                    description=f"1% of the remaining training molecules ({n})")


def evaluate(model, sets, config, corpus, original_signals=None):
    """``(numbers, signals)`` of one model on the union's suite sets."""
    from graphdel.evaluation.suite import evaluate_model
    from graphdel.evaluation.summary import flatten

    entry, signals = evaluate_model(model, sets, config=config, corpus=corpus, original_signals=original_signals)
    flat = flatten(entry)
    return {"df": flat["splits.forget.pool64.g2t_mrr"], "test": flat["splits.test.pool64.g2t_mrr"],
            "val": flat["splits.val.pool64.g2t_mrr"],
            "dfdr_auc": flat.get("distinguishability.mean"),
            "attack_auc": flat.get("membership.attack_auc")}, signals


def main() -> None:
    """Run the stream and print its JSON lines (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train a quick original (800 molecules)")
    parser.add_argument("--original", help="a trained run to start from (default: train one into --out)")
    parser.add_argument("--data", default="drugs")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--retrain-at", default="1,5,10,20")
    parser.add_argument("--methods", default="multidelete,neggrad+,salun")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/sequential")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every method (as graphdel forget --set); runs go to METHOD+TAG")
    parser.add_argument("--tag", default="", help="suffix of the method folders (variants share the original "
                        "and the Retrain runs of one --out)")
    args = parser.parse_args()
    start_load = _common.load()

    import graphdel.api as api
    from graphdel.data.requests import DeletionRequest
    from graphdel.evaluation.suite import SuiteConfig, suite_sets
    from graphdel.runs import Run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.original:
        original = Run.load(args.original)
    elif (out / "original").is_dir():
        original = Run.load(out / "original")
    else:
        data, model_config, train_config = (api.quick_configs(args.data) if args.quick
                                            else (api.DataConfig(source=args.data), None, None))
        original = api.train(data, train_config, model_config, out=out / "original", progress=False)
    base = api.load_run_data(original, progress=False)
    corpus = base.corpus
    retrain_at = sorted({int(k) for k in args.retrain_at.split(",") if int(k) <= args.steps})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    # the stream, drawn once on a virtual chain so that every method gets the same requests
    rng, requests, union, current = random.Random(args.seed), [], [], base
    for k in range(1, args.steps + 1):
        request = draw_request(current, KINDS[(k - 1) % len(KINDS)], rng)
        requests.append(request)
        union += request.pair_ids
        current = dataclasses.replace(base, excluded=sorted({corpus.index_of(p) for p in
                                                             [*original.excluded_ids, *union]}))
    (out / "requests.json").write_text(json.dumps([{"step": k, "by": r.by, "pairs": len(r),
                                                    "description": r.description}
                                                   for k, r in enumerate(requests, 1)], indent=2))

    chains = {m: {"run": original, "cumulative_s": 0.0, "step": 0} for m in methods}
    suite = SuiteConfig(probes=False, seed=args.seed)
    records = []
    for k in retrain_at:
        union_k = [p for r in requests[:k] for p in r.pair_ids]
        union_request = DeletionRequest.from_ids(corpus, union_k, by="pair", allowed_rows=base.trained_rows(),
                                                 description=f"the union of requests 1..{k}")
        folder = out / "retrain" / f"step{k:02d}"
        retrain = Run.load(folder) if folder.is_dir() else api.forget(
            original, union_request, method="retrain", out=folder, seed=args.seed, prepared=base, progress=False)
        sets = suite_sets(base, [corpus.index_of(p) for p in union_k], chunks=5, seed=args.seed)
        orig_numbers, orig_signals = evaluate(original.model, sets, suite, corpus)
        ref_numbers, _ = evaluate(retrain.model, sets, suite, corpus, orig_signals)
        for method in methods:
            chain = chains[method]
            while chain["step"] < k:  # advance this method's chain to step k
                step = chain["step"] + 1
                folder = out / f"{method}{args.tag}" / f"step{step:02d}"
                run = chain["run"]
                if folder.is_dir():
                    new = Run.load(folder)
                else:
                    new = api.forget(run, requests[step - 1], method=method, out=folder, seed=args.seed,
                                     prepared=base.for_run(run), progress=False, overrides=args.set or None)
                chain.update(run=new, step=step, cumulative_s=chain["cumulative_s"] + new.metrics["wall_time_s"])
            numbers, _ = evaluate(chain["run"].model, sets, suite, corpus, orig_signals)
            record = {"bench": "sequential", "method": method, "settings": args.set, "step": k,
                      "union_pairs": len(union_k), "seed": args.seed, "df_union_mrr": round(numbers["df"], 4),
                      "retrain_df_union_mrr": round(ref_numbers["df"], 4),
                      "df_gap": round(numbers["df"] - ref_numbers["df"], 4),
                      "test_mrr": round(numbers["test"], 4), "original_test_mrr": round(orig_numbers["test"], 4),
                      "test_drop": round(orig_numbers["test"] - numbers["test"], 4),
                      "val_mrr": round(numbers["val"], 4), "val_drop": round(orig_numbers["val"] - numbers["val"], 4),
                      "original_df_union_mrr": round(orig_numbers["df"], 4),
                      "dfdr_auc": _round(numbers["dfdr_auc"]), "retrain_dfdr_auc": _round(ref_numbers["dfdr_auc"]),
                      "attack_auc": _round(numbers["attack_auc"]),
                      "retrain_attack_auc": _round(ref_numbers["attack_auc"]),
                      "cumulative_s": round(chain["cumulative_s"], 1),
                      "retrain_s": round(retrain.metrics["wall_time_s"], 1),
                      "cumulative_over_retrain": round(chain["cumulative_s"] / retrain.metrics["wall_time_s"], 4)}
            records.append(record)
            _common.emit(record)
            with (out / f"results{args.tag}.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
    plot = plot_trajectories(records, out / f"trajectories{args.tag}.png")
    last = [r for r in records if r["step"] == retrain_at[-1]]
    md = next((r for r in last if r["method"] == "multidelete"), None)
    _common.emit({"bench": "sequential_summary", "steps": args.steps, "evaluated_at": retrain_at,
                  "original": str(original.path), "plot": str(plot),
                  "multidelete_targets": None if md is None else {
                      "df_gap_within_0.05": abs(md["df_gap"]) <= 0.05, "test_drop_at_most_0.02": md["test_drop"] <= 0.02,
                      "all_requests_cheaper_than_one_retrain": md["cumulative_over_retrain"] < 1.0},
                  "machine": _common.machine(start_load)})


def _round(x):
    return None if x is None else round(float(x), 4)


def plot_trajectories(records: list[dict], path: Path) -> Path:
    """Four panels against the step: Df (union) gap to Retrain, test drop, Df-vs-Dr AUC (dashed:
    Retrain's), cumulative time over one Retrain; one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("df_gap", "Df (union) MRR - Retrain's"), ("test_drop", "test MRR drop from the original"),
              ("dfdr_auc", "Df-vs-Dr AUC (dashed: Retrain)"), ("cumulative_over_retrain", "cumulative time / Retrain")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, title) in zip(axes, panels):
        for method in dict.fromkeys(r["method"] for r in records):
            rows = [r for r in records if r["method"] == method]
            line, = ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=method)
            if key == "dfdr_auc":
                ax.plot([r["step"] for r in rows], [r["retrain_dfdr_auc"] for r in rows], ls="--",
                        color="grey")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("request")
        ax.axhline(0 if key != "dfdr_auc" else 0.5, color="black", lw=0.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
