"""Whether Df still looks trained on, as the evaluation suite asks it of one model: Df-vs-Dr
distinguishability, the membership attack on the per-pair signals, and the (costly, optional) LiRA attack
with its shadow models.

Membership sets (:func:`graphdel.evaluation.suite_model.suite_sets`): the attack's members are the Dr sample,
its training non-members the ``val`` and ``calibration`` pairs, its held-out non-members ``test``; the
attacked pairs are Df.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from graphdel.evaluation.distinguishability import df_vs_dr_auc, spread_against
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.membership import attack_auc, attack_roc, lira_auc, lira_scores, signal_attack
from graphdel.evaluation.suite_signals import SIGNAL_NAMES, PairSignals

__all__ = ["distinguishability", "signal_membership", "train_shadows", "lira_membership"]


def distinguishability(df: PairSignals, dr: PairSignals, *, chunks: int, seed: int,
                       calibration: PairSignals | None = None) -> dict[str, Any]:
    """Df-vs-Dr AUC (:func:`~graphdel.evaluation.distinguishability.df_vs_dr_auc`, ``chunks`` Dr chunks of
    ``|Df|`` pairs) by cosine similarity, with the matching probability's AUC under ``matching``; a
    ``note`` instead when it cannot be computed.

    With ``calibration`` (the model's never-trained hold-out), also the same AUC of Df against the
    calibration pairs under ``vs_calibration``: 0.5 means the deleted pairs score as pairs this model never
    saw, the per-pair check a user can make without retraining (below 0.5: Df still scored higher, not
    forgotten; above: pushed below never-seen, a trace of the deletion), with the shape of the two
    (:func:`~graphdel.evaluation.distinguishability.spread_against`: ``ks``, ``ks_pvalue``, ``sd_ratio``)."""
    dist: dict[str, Any] = {}
    try:
        # The headline score is the cosine similarity, the score retrieval ranks by. The matching
        # head's probability is kept beside it: on the embedded corpus the head trained with ALBEF's
        # hard negatives stays at its 1:2 prior (match loss 0.637 from epoch 2), so an AUC on it
        # stayed at 0.49-0.52 for the original, Retrain and MultiDelete alike and measured nothing.
        dist.update(df_vs_dr_auc(df.similarity, dr.similarity, chunks=chunks, seed=seed))
        dist["score"] = "similarity"
        if df.match_prob is not None:
            by_match = df_vs_dr_auc(df.match_prob, dr.match_prob, chunks=chunks, seed=seed)
            dist["matching"] = {k: by_match[k] for k in ("mean", "std", "per_chunk")}
        if calibration is not None and len(calibration.similarity):
            by_cal = df_vs_dr_auc(df.similarity, calibration.similarity, chunks=chunks, seed=seed)
            dist["vs_calibration"] = {k: by_cal[k] for k in ("mean", "std", "per_chunk")}
            # the AUC reads the level alone; a run can match it with Df spread far narrower than
            # never-seen pairs (docs/experiments/2026-12-06-retained-pairs-text-projection.md)
            dist["vs_calibration"].update(spread_against(df.similarity, calibration.similarity))
    except ValueError as e:
        dist = {"note": f"not computed: {e}"}
    return dist


def signal_membership(sig: Mapping[str, PairSignals], seed: int) -> tuple[dict[str, Any], Any]:
    """The membership attack on the per-pair signals (:meth:`PairSignals.features`): trained on the Dr
    sample against ``val`` + ``calibration``, applied to Df and to the held-out ``test``. Returns
    ``(section, roc)``: the ``membership`` section of an entry and ``(fpr, tpr, auc)`` of Df against test,
    or a ``note`` and ``None`` when the attack cannot run."""
    non = [sig[n].features() for n in ("val", "calibration") if n in sig]
    if "test" not in sig or not non:
        return {"note": "membership attack skipped: needs val/calibration and test pairs"}, None
    try:
        res = signal_attack(sig["dr"].features(), np.concatenate(non), sig["forget"].features(),
                            reference_signals=sig["test"].features(), seed=seed)
    except ValueError as e:
        return {"note": f"membership attack skipped: {e}"}, None
    fpr, tpr, auc = attack_roc(res["target_scores"], res["reference_scores"])
    names = [n for n in SIGNAL_NAMES if n != "match_prob" or sig["forget"].match_prob is not None]
    # each signal alone, Df against test, no classifier (every signal is larger for a member): which
    # signal carries the leak, e.g. whether the matching head's probability tells deleted pairs apart
    target, reference = sig["forget"].features(), sig["test"].features()
    if target.shape[1] != len(names):
        raise ValueError(f"the signals have {target.shape[1]} columns, expected {len(names)} ({', '.join(names)})")
    by_signal = {n: attack_auc(target[:, j], reference[:, j]) for j, n in enumerate(names)} if len(target) else {}
    out = {"attack_auc": res["attack_auc"], "signal_auc": by_signal, "cv_auc": res["cv_auc"],
           "cv_auc_std": res["cv_auc_std"],
           "member_rate": res["member_rate"],
           "test_member_rate": float(np.mean(res["reference_scores"] >= 0.5)),
           "n_per_class": res["n_per_class"], "classifier": res["classifier"],
           "signals": names,
           "members": "Dr sample", "non_members": "val + calibration", "held_out": "test"}
    return out, (fpr, tpr, auc)


def train_shadows(prepared, df_rows: Sequence[int], model_config, train_config, *, shadows: int = 4,
                  epochs: int | None = None, seed: int = 0, progress: bool = False,
                  targets: Mapping[str, Sequence[int]] | None = None,
                  device: str | torch.device | None = None) -> dict[str, Any]:
    """Train ``shadows`` models, each on a random half of the population, for LiRA.

    The population is every trained row of the original (Dr and Df) plus the test rows; the assignment
    gives every row to exactly ``shadows / 2`` shadows (the balanced "keep" matrix of Carlini et al.), so
    every target has "in" and "out" shadows. Each shadow is :func:`~graphdel.training.loop.train_model`
    with the original recipe (``epochs`` overrides the epoch count: quick shadows), seed ``seed + s``,
    early-stopped on val as the original was; ``device`` (a name or :class:`torch.device`; ``None``: the
    recipe's own) is where each shadow trains and is read.

    Returns:
        ``{"rows": [P] population rows, "keep": [S, P] bool, "signals": {set: [S, N] similarity of the
        set's pairs under each shadow}, "targets": {set: rows}, "epochs": int, "wall_time_s": float}``.
    """
    from dataclasses import replace

    from graphdel.models.joint import build_model
    from graphdel.training.loop import train_model

    if shadows < 4:
        raise ValueError(f"LiRA needs >= 4 shadow models, got {shadows}")
    t0 = time.perf_counter()
    population = sorted(set(prepared.trained_rows()) | set(prepared.corpus.rows("test")))
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((shadows, len(population))), axis=0) < shadows // 2
    cfg = replace(train_config, epochs=epochs or train_config.epochs)
    if device is not None:  # a TrainConfig holds a device name ("cuda:0" for a resolved GPU)
        cfg = replace(cfg, device=device if isinstance(device, str) else str(device))
    targets = dict(targets or {"forget": list(df_rows), "test": prepared.corpus.rows("test")})
    val = prepared.sets()["val"]
    signals: dict[str, list[np.ndarray]] = {k: [] for k in targets}
    pop = np.asarray(population)
    for s in range(shadows):
        torch.manual_seed(seed + s)
        model = build_model(model_config)
        half = prepared.data.subset(pop[keep[s]].tolist(), f"shadow{s}")
        model = train_model(model, half, val, replace(cfg, seed=seed + s), progress=progress,
                            distractors=prepared.distractors()).model
        for name, rows in targets.items():
            e = embed_pairs(model, prepared.data.subset(list(rows), name), device=cfg.device)
            signals[name].append((e.z_x * e.z_t).sum(1).double().numpy())
    return {"rows": population, "keep": keep, "targets": {k: list(v) for k, v in targets.items()},
            "signals": {k: np.stack(v) for k, v in signals.items()}, "epochs": cfg.epochs,
            "wall_time_s": time.perf_counter() - t0}


def _in_out(shadows: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    pos = {r: i for i, r in enumerate(shadows["rows"])}
    cols = np.asarray([pos[r] for r in shadows["targets"][name]])
    is_in = shadows["keep"][:, cols]
    vals = shadows["signals"][name]
    return np.where(is_in, vals, np.nan), np.where(is_in, np.nan, vals)


def lira_membership(sig: Mapping[str, PairSignals], shadows: Mapping[str, Any]) -> dict[str, Any]:
    """LiRA (online, per-example Gaussians with a pooled variance) on the pair similarity: the attacked
    model's Df against test. ``lira_auc`` labels Df 1 and test 0 (as the signal attack does)."""
    parts = {}
    for name in ("forget", "test"):
        if name not in sig or name not in shadows["targets"]:
            return {"lira_note": f"LiRA skipped: no shadow signals for {name}"}
        s_in, s_out = _in_out(shadows, name)
        parts[name] = lira_scores(sig[name].similarity, s_in, s_out, fix_variance=True)
    y = np.concatenate([np.ones(parts["forget"].size), np.zeros(parts["test"].size)])
    return {"lira_auc": lira_auc(np.concatenate([parts["forget"], parts["test"]]), y),
            "lira_shadows": int(shadows["keep"].shape[0]), "lira_shadow_epochs": int(shadows["epochs"])}
