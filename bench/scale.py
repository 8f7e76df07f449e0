"""Benchmark: graphdel on corpora of the sizes users have (ChEBI-20 ~33k pairs, PubChem324k ~300k).

    python bench/scale.py --original RUN --pairs 33000                     # one size, on the CPU
    python bench/scale.py --original RUN --pairs 33000,300000 --device cuda --budget-s 240 --distinct-texts

Each corpus is the original's corpus **replicated** (bench/unlearn_scaling.py: every pair copied with new
pair and molecule ids, same SMILES, text and split) to about ``--pairs`` pairs. Replication is what a
real corpus of that size costs per epoch and per featurised molecule, but it is not new data: its
captions are the original's (the frozen text features are computed once per distinct text, so text
encoding costs what the original's captions cost; a real corpus of that size has that many captions).
``--distinct-texts`` ends each copy's caption in `` (copy j)``: every caption is then encoded and stored
(50.7 KB a caption: 15 GB of mapped states at 300k), as for a real corpus of that size.
The original model (``--original``, e.g. the demo's) serves every size: it has seen all they contain.

Per size, timed one after the other in this process (one JSON line per size):

- ``prepare``: loading, featurising every molecule from a cold cache, the frozen text features; wall
  time, this process's resident memory after it and its peak so far (VmHWM, which only grows: after the
  first size it includes the earlier sizes' training);
- ``train``: one epoch of the original's recipe over Dr of the 5% request, its validation and the
  recipe's fusion stage: pairs/s of the training loop and peak GPU memory
  (``torch.cuda.max_memory_allocated``);
- ``multidelete``: MultiDelete with the settings ``graphdel forget`` uses, at 1% and 5% of the size's
  trained pairs (seeded random molecules of the original, each with all its copies), wall time;
- ``retrain``: Retrain of the 5% request with the original's recipe (validation included) when the time
  left allows it (``measured``), else **estimated** as the measured epoch (training + one validation)
  times the epochs the original ran, plus the recipe's fusion stage, which runs once (``estimated``;
  early stopping can end a real Retrain sooner).

``--budget-s`` bounds the whole run. Sizes run smallest first; a part of a larger size that the smaller
size's cost, scaled linearly with the pairs, says would not fit in the time left is not run and is
reported as ``skipped`` with that projection (and Retrain is then projected the same way). Issue
targets (GPU): MultiDelete <= 2% of Retrain at 5% deletion on the 33k corpus, <= 0.5% on the 300k one.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import _common
from unlearn_scaling import replicate

#: Issue targets for MultiDelete's share of Retrain at 5% deletion, by corpus size (pairs).
TARGETS = {33_000: 0.02, 300_000: 0.005}


def _gpu_peak_mib(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _reset_gpu_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _prepare_size(original, base, pairs: int, device: str, distinct_texts: bool = False):
    """The corpus replicated to about ``pairs`` pairs (each copy's captions made distinct with
    ``distinct_texts``), prepared (featurised) with the original's settings; its calibration hold-out is the
    copies of the original's. Returns ``(prepared, record)``."""
    from graphdel import api
    from graphdel.device import resolve_device
    from graphdel.models.joint import ModelConfig

    k = max(1, round(pairs / len(base.corpus)))
    corpus = replicate(base.corpus, k, distinct_texts)
    record = {"pairs": len(corpus), "replicas": k, "molecules": len(corpus.items),
              "device": str(resolve_device(device))}
    t = time.perf_counter()
    prepared = api.prepare(api.data_config_of(original), ModelConfig.from_dict(original.config["model"]),
                           corpus=corpus, progress=True)
    calibration_items = {base.corpus.item_ids[r] for r in base.calibration}
    calibration = [r for r, i in enumerate(corpus.item_ids) if i.split("~r")[0] in calibration_items]
    prepared = dataclasses.replace(prepared, calibration=calibration, excluded=[])
    record["prepare"] = {"s": round(time.perf_counter() - t, 1), "rss_mib": _common.rss_mib(),
                         "peak_rss_mib": _common.peak_rss_mib(), "distinct_texts": len(set(corpus.texts))}
    return prepared, record


def _requests(prepared, fractions: list[float], replicas: int, seed: int) -> dict[float, list[int]]:
    """Df rows per fraction: seeded random molecules, each with all its copies (a molecule request covers
    every pair of the same structure), so drawing ``f / replicas`` of the trained molecules deletes about
    ``f`` of the trained pairs."""
    from graphdel.data.requests import DeletionRequest

    corpus, trained = prepared.corpus, prepared.trained_rows()
    n_items = len({corpus.item_ids[r] for r in trained})
    return {f: DeletionRequest.random(corpus, max(1, round(f * n_items / replicas)), by="molecule", seed=seed,
                                      allowed_rows=trained).rows(corpus) for f in fractions}


def _measure_epoch(original, prepared, dr, device: str) -> dict:
    """One epoch of the original's recipe on ``dr``, its validation and the recipe's fusion stage."""
    import torch

    from graphdel.device import resolve_device
    from graphdel.models.joint import ModelConfig, build_model
    from graphdel.training.loop import TrainConfig, train_model

    where = resolve_device(device)
    recipe = dataclasses.replace(TrainConfig.from_dict(original.config["train"]), device=device, epochs=1)
    _reset_gpu_peak(where)
    torch.manual_seed(recipe.seed)
    t = time.perf_counter()
    epoch = train_model(build_model(ModelConfig.from_dict(original.config["model"])), dr, prepared.sets()["val"],
                        recipe, progress=False, distractors=prepared.distractors())
    total_s = time.perf_counter() - t
    train_s = epoch.history[0]["train_seconds"]
    fusion_s = sum(e["train_seconds"] for e in epoch.history if e.get("stage") == "fusion")
    return {"dr_pairs": len(dr), "epoch_s": round(train_s, 2), "fusion_stage_s": round(fusion_s, 2),
            "with_validation_s": round(total_s - fusion_s, 2),
            "pairs_per_s": round(len(dr) // recipe.batch_size * recipe.batch_size / train_s, 1),
            "peak_gpu_mem_mib": _gpu_peak_mib(where)}


def _measure_multidelete(original, prepared, df: list[int], device: str, seed: int) -> dict:
    """MultiDelete on ``df`` with the settings ``graphdel forget`` uses: wall time, steps, where the time went
    (``seconds``: setup, evaluations, updates), peak GPU memory."""
    from graphdel import api
    from graphdel.device import resolve_device
    from graphdel.unlearning import UnlearningContext, unlearn

    ev = api.evaluation_sets(prepared, df, seed)
    ctx = UnlearningContext(forget=ev["forget"], retain=prepared.data.subset(prepared.retained_rows(df), "retain"),
                            calibration=ev["calibration"], val=ev["val"], seed=seed, device=device, progress=False)
    _reset_gpu_peak(resolve_device(device))
    md = unlearn(original.model, ctx, "multidelete", api.with_model_defaults(original.model, "multidelete", []))
    return {"s": round(md.wall_time_s, 2), "steps": md.selected.get("steps"),
            "seconds": md.selected.get("seconds"),
            "peak_gpu_mem_mib": _gpu_peak_mib(resolve_device(device))}


def _linear(previous: dict | None, pairs: int, seconds) -> float | None:
    """A cost measured on the previous (smaller) size, scaled linearly to ``pairs``; None without one."""
    return None if previous is None or seconds is None else seconds * pairs / previous["pairs"]


def measure_size(original, base, pairs: int, fractions: list[float], device: str, deadline: float,
                 seed: int = 0, previous: dict | None = None, distinct_texts: bool = False) -> dict:
    """The measurements of one corpus size (see the module docstring). A part that the previous size's
    cost, scaled linearly, says would not finish before ``deadline`` (a ``time.perf_counter()`` value) is
    not run: it is reported as ``skipped`` with that projection."""
    import torch

    from graphdel.models.joint import ModelConfig, build_model
    from graphdel.training.loop import TrainConfig, train_model

    left = lambda: deadline - time.perf_counter()  # noqa: E731
    prepared, record = _prepare_size(original, base, pairs, device, distinct_texts)
    pairs = record["pairs"]
    requests = _requests(prepared, fractions, record["replicas"], seed)
    trained = len(prepared.trained_rows())
    dr = prepared.data.subset(prepared.retained_rows(requests[max(fractions)]), "retain")
    previous_train = (previous or {}).get("train", {})
    projected = _linear(previous, pairs, previous_train.get("with_validation_s", 0) + previous_train.get("fusion_stage_s", 0)
                        if previous_train else None)
    if projected is not None and projected > left():
        record["train"] = {"skipped": "time budget", "projected_s": round(projected, 1)}
    else:
        record["train"] = _measure_epoch(original, prepared, dr, device)

    record["multidelete"] = []
    for f, df in requests.items():
        cell = {"fraction": f, "df_pairs": len(df), "df_share_of_trained": round(len(df) / trained, 4)}
        done = [c for c in (previous or {}).get("multidelete", []) if c["fraction"] == f and "s" in c]
        projected = _linear(previous, pairs, done[0]["s"] if done else None)
        if left() <= 0 or (projected is not None and projected > left()):
            cell.update(skipped="time budget", projected_s=None if projected is None else round(projected, 1))
        else:
            cell.update(_measure_multidelete(original, prepared, df, device, seed))
        record["multidelete"].append(cell)

    epochs_run = len([e for e in original.log if "epoch" in e and e.get("stage") != "fusion"]) or \
        original.config["train"]["epochs"]
    if "skipped" in record["train"]:
        retrain = {"how": "estimated from the previous size, linearly",
                   "s": round(_linear(previous, pairs, previous["retrain"]["s"]), 1)}
    else:
        epoch = record["train"]
        estimate = epoch["with_validation_s"] * epochs_run + epoch["fusion_stage_s"]  # fusion runs once, at the end
        retrain = {"how": "estimated", "s": round(estimate, 1), "epochs": epochs_run, "time_left_s": round(left(), 1)}
        if estimate * 1.2 < left():
            recipe = dataclasses.replace(TrainConfig.from_dict(original.config["train"]), device=device)
            torch.manual_seed(recipe.seed)
            t = time.perf_counter()
            result = train_model(build_model(ModelConfig.from_dict(original.config["model"])), dr,
                                 prepared.sets()["val"], recipe, progress=False, distractors=prepared.distractors())
            retrain = {"how": "measured", "s": round(time.perf_counter() - t, 1), "epochs": len(result.history)}
    record["retrain"] = retrain
    for cell in record["multidelete"]:
        if "s" in cell:
            cell["share_of_retrain"] = round(cell["s"] / retrain["s"], 4)
    target = next((share for n, share in TARGETS.items() if abs(pairs - n) <= 0.2 * n), None)
    at5 = [c for c in record["multidelete"] if c["fraction"] == max(fractions) and "share_of_retrain" in c]
    if target is not None and at5 and abs(max(fractions) - 0.05) < 1e-9:
        record["targets"] = {f"share_at_5pct_at_most_{target}": at5[0]["share_of_retrain"] <= target}
    return record


def main(argv: list[str] | None = None) -> int:
    """Measure each size of ``--pairs`` and print one JSON line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True, help="a trained run (its data, model and recipe)")
    parser.add_argument("--pairs", default="33000", help="comma-separated corpus sizes, in pairs")
    parser.add_argument("--fractions", default="0.01,0.05", help="deletion fractions of the trained molecules")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=3600.0, help="wall-time bound of the whole run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distinct-texts", action="store_true",
                        help="make each copy's captions distinct, so the text pass encodes every caption")
    args = parser.parse_args(argv)
    start_load = _common.load()
    deadline = time.perf_counter() + args.budget_s

    import graphdel as gd
    from graphdel import api

    original = gd.Run.load(args.original)
    base = api.load_run_data(original, progress=False)
    fractions = [float(f) for f in args.fractions.split(",")]
    previous = None
    for pairs in sorted(int(p) for p in args.pairs.split(",")):
        record = {"bench": "scale", "replicated_corpus": True, "target_pairs": pairs}
        if time.perf_counter() > deadline:
            record["skipped"] = "time budget"
        else:
            measured = measure_size(original, base, pairs, fractions, args.device, deadline, args.seed,
                                    previous, args.distinct_texts)
            record.update(measured)
            previous = measured
        _common.emit({**record, "machine": _common.machine(start_load)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
