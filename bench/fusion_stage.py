"""Benchmark: the fusion stage (:mod:`graphdel.training.fusion`) on a trained run's frozen encoders.

    python bench/fusion_stage.py --run RUN [--tokens 24] [--layers 2] [--dim 64] [--readout mean] [--sink]
        [--item-norm | --no-item-norm] [--dropout P] [--product | --no-product] [--epochs 8] [--lr 1e-3]
        [--schedule constant|cosine] [--warmup-epochs 0]
        [--hard-fraction 0.5] [--hard-pool 1] [--no-item-negatives] [--reinit] [--top-k 2,4,8,16]
        [--eval-every 2] [--split val] [--out NEW_RUN]

Loads ``RUN`` read-only, featurises its data with the fusion module reading ``--tokens`` caption tokens
(the sentence embedding reads ``max_length`` tokens whatever this says, so every similarity is unchanged),
trains only the fusion module and matching head with the given recipe, and scores on ``--split`` (``val``
to choose settings; ``test`` only once, at the end): matching balanced accuracy against random partners and
against the hardest partner, and pool-64 graph->text hits@1/MRR with the top-k re-ranked by the matching
head, beside similarity alone (:mod:`graphdel.evaluation.matching`). ``--epochs 0`` scores the run's own
fusion module. It checks that the stage left the split's similarity MRR unchanged. ``--out`` saves the
model as a new run folder (the run's config with the new fusion settings, the metrics of ``--split``).
A two-tower run (the image recipe, ``fusion_layers`` 0) has no module to train: give ``--layers N`` to
build a fresh one.

Prints one JSON line per evaluation, the last one with the timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--tokens", type=int, default=None, help="caption tokens the fusion reads (default: the run's)")
    parser.add_argument("--layers", type=int, default=None, help="fusion layers (default: the run's; "
                        "another number builds a fresh fusion module)")
    parser.add_argument("--dim", type=int, default=None,
                        help="fusion_dim, the fusion module's width (default: the run's; another builds "
                        "a fresh fusion module and head)")
    parser.add_argument("--readout", choices=["first", "mean"], default=None,
                        help="fusion_readout (default: the run's; another builds a fresh fusion module)")
    parser.add_argument("--sink", action="store_true", help="fusion_sink: a learned item token (fresh module)")
    parser.add_argument("--item-norm", action="store_true",
                        help="fusion_item_norm: layer-normalise the item tokens (fresh module)")
    parser.add_argument("--no-item-norm", action="store_true",
                        help="fusion_item_norm off: the item tokens as the input map leaves them (fresh module)")
    parser.add_argument("--product", action="store_true", help="fusion_product: the head also reads z_x * z_t")
    parser.add_argument("--no-product", action="store_true", help="fusion_product off: the head reads the "
                        "fusion module alone (a fresh head)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="fusion_dropout of the fusion module (default: the run's)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="the stage's (peak) learning rate")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="fusion_lr_schedule: the rate after the warm-up")
    parser.add_argument("--warmup-epochs", type=int, default=0, help="fusion_warmup_epochs: linear warm-up")
    parser.add_argument("--hard-fraction", type=float, default=0.5)
    parser.add_argument("--hard-pool", type=int, default=1)
    parser.add_argument("--no-item-negatives", action="store_true",
                        help="fusion_item_negatives off: negative texts only, two fused pairs per true pair")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--reinit", action="store_true", help="re-initialise the fusion module and head first")
    parser.add_argument("--top-k", default="2,4,8,16")
    parser.add_argument("--eval-every", type=int, default=0, help="also score every N stage epochs (0: end only)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start_load = load()

    import copy
    from dataclasses import replace

    import torch

    from graphdel import api
    from graphdel.evaluation.embed import embed_pairs
    from graphdel.evaluation.matching import matching_accuracies, pair_match_logits, rerank_scores
    from graphdel.evaluation.retrieval import (Ranks, draw_distractors, pool_candidate_scores, rank_summary,
                                               rerank_columns, rerank_ranks, usable_pool_size)
    from graphdel.models.joint import ModelConfig, build_model
    from graphdel.runs import Run
    from graphdel.training.fusion import train_fusion_stage
    from graphdel.training.loop import TrainConfig

    run = Run.load(args.run)
    config = ModelConfig.from_dict(run.config["model"])
    if args.tokens is not None:
        config = replace(config, text=replace(config.text, fusion_tokens=args.tokens))
    if args.layers is not None:
        config = replace(config, fusion_layers=args.layers)
    if args.dim is not None:
        config = replace(config, fusion_dim=args.dim)
    if args.readout is not None and args.readout != config.fusion_readout:
        config = replace(config, fusion_readout=args.readout)
        args.reinit = True  # the run's module was trained for the other readout: start a fresh one
    if args.sink:
        config = replace(config, fusion_sink=True)
    if args.item_norm or args.no_item_norm:
        config = replace(config, fusion_item_norm=args.item_norm)
    if args.dropout is not None:
        config = replace(config, fusion_dropout=args.dropout)
    if args.product:
        config = replace(config, fusion_product=True, matching_weight=0.0)
    if args.no_product:
        config = replace(config, fusion_product=False)
    torch.manual_seed(args.seed)
    model = build_model(config)
    own = model.state_dict()
    state = {k: v for k, v in run.model.state_dict().items() if k in own and own[k].shape == v.shape}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert all(k.startswith(("fusion.", "match_head.")) for k in missing + unexpected), (missing, unexpected)
    if missing or unexpected:
        args.reinit = True  # another fusion architecture: the fresh one built above
    torch.manual_seed(args.seed)
    if args.reinit:
        fresh = build_model(config)
        model.fusion.load_state_dict(fresh.fusion.state_dict())
        model.match_head.load_state_dict(fresh.match_head.state_dict())
    t0 = time.perf_counter()
    prepared = api.prepare(api.data_config_of(run), config, exclude=run.excluded_ids, progress=False)
    prep_s = time.perf_counter() - t0
    sets = prepared.sets()
    pairs, train = sets[args.split], sets["train"]
    distractors = prepared.distractors()
    top_ks = sorted(int(k) for k in args.top_k.split(","))
    recipe = replace(TrainConfig.from_dict(run.config["train"]), device="cpu", fusion_epochs=max(1, args.epochs),
                     fusion_lr=args.lr, fusion_lr_schedule=args.schedule,
                     fusion_warmup_epochs=min(args.warmup_epochs, args.epochs),
                     fusion_hard_fraction=args.hard_fraction, fusion_hard_pool=args.hard_pool,
                     fusion_item_negatives=not args.no_item_negatives, batch_size=args.batch_size,
                     seed=args.seed)
    before = copy.deepcopy({k: v for k, v in model.state_dict().items()
                            if not k.startswith(("fusion.", "match_head."))})

    def score(epoch: int, seconds: float) -> dict:
        emb = embed_pairs(model, pairs, with_matching=True)
        d_emb = embed_pairs(model, distractors)
        out = {"split": args.split, "epoch": epoch, "stage_seconds": round(seconds, 1),
               **matching_accuracies(model, pairs, emb, seed=0)}
        k = usable_pool_size(d_emb.items, 64)
        scores, _ = pool_candidate_scores(emb, d_emb, pool_size=64, seed=0)
        idx = draw_distractors(emb.items, emb.rows, d_emb.items, pool_size=k, seed=0)
        cand = torch.cat([emb.rows[:, None], d_emb.rows[idx]], 1)
        cols = rerank_columns(scores, max(top_ks))
        logits = pair_match_logits(model, pairs.data, emb.rows[:, None].expand_as(cols).reshape(-1),
                                   cand.gather(1, cols).reshape(-1))
        # the head's logits are computed once for the deepest top k and read by both scores at every depth
        rr = rerank_scores(model, scores, cols, logits.reshape(cols.shape), "head")
        both = rerank_scores(model, scores, cols, logits.reshape(cols.shape), "head+similarity")
        sim = rank_summary(Ranks.of_scores(scores))
        out["sim"] = {"g2t_acc": round(sim["hits@1"], 4), "g2t_mrr": round(sim["mrr"], 4)}
        for t in top_ks:
            r = rank_summary(rerank_ranks(scores, rr, t))
            out[f"rerank@{t}"] = {"g2t_acc": round(r["hits@1"], 4), "g2t_mrr": round(r["mrr"], 4)}
            r = rank_summary(rerank_ranks(scores, both, t))
            out[f"rerank_sum@{t}"] = {"g2t_acc": round(r["hits@1"], 4), "g2t_mrr": round(r["mrr"], 4)}
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}

    results = []
    if args.epochs == 0 or args.eval_every:
        results.append(score(0, 0.0))
        print(json.dumps(results[-1]), flush=True)
    t_start = time.perf_counter()
    scoring = [0.0]  # seconds spent scoring inside the stage (left out of its time)

    def after_epoch(epoch: int) -> None:
        if epoch == args.epochs or (args.eval_every and epoch % args.eval_every == 0):
            t = time.perf_counter()
            results.append(score(epoch, t - t_start - scoring[0]))
            print(json.dumps(results[-1]), flush=True)
            scoring[0] += time.perf_counter() - t

    recipe = replace(recipe, fusion_epochs=args.epochs)
    history = train_fusion_stage(model, train, recipe, progress=False, after_epoch=after_epoch)
    stage_s = time.perf_counter() - t_start - scoring[0]
    after = {k: v for k, v in model.state_dict().items() if not k.startswith(("fusion.", "match_head."))}
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    summary = {"run": args.run, "args": vars(args), "prepare_seconds": round(prep_s, 1),
               "stage_seconds": round(stage_s, 1), "encoders_unchanged": unchanged,
               "matching_loss": [round(h["matching"], 4) for h in history], "machine": machine(start_load)}
    print(json.dumps(summary), flush=True)
    if args.out:
        from graphdel.io import staged_folder
        from graphdel.runs import write_integrity, write_run

        run_config = {**run.config, "model": config.to_dict(),
                      "train": {**run.config["train"], "fusion_epochs": args.epochs, "fusion_lr": args.lr,
                                "fusion_lr_schedule": args.schedule,
                                "fusion_warmup_epochs": recipe.fusion_warmup_epochs,
                                "fusion_hard_fraction": args.hard_fraction,
                                "fusion_hard_pool": args.hard_pool,
                                "fusion_item_negatives": not args.no_item_negatives}}
        metrics = {**run.metrics, "fusion_stage": {"from": str(Path(args.run).resolve()), "scores": results[-1]}}
        with staged_folder(Path(args.out)) as folder:
            write_run(folder, model=model, config=run_config, metrics=metrics, log=run.log + history, history=[])
            write_integrity(folder)


if __name__ == "__main__":
    main()
