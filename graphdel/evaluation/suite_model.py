"""Every metric of the audit on one model (:func:`evaluate_model`), and its comparison with Retrain (forget
side) and the original (retain side) (:func:`compare_to_references`); :func:`retrieval_metrics` is the
retrieval part alone (used by training and ``forget``).

Pair sets (:func:`suite_sets`), all built from the *original* model's data so every model is scored on
the same pairs:

* ``forget`` -- Df;
* ``retain`` -- a seeded sample of Dr of ``|Df|`` pairs (retrieval, probes' evaluation, examples);
* ``dr`` -- a larger seeded Dr sample of ``chunks * |Df|`` pairs (Df-vs-Dr chunks, attack members,
  probe fitting);
* ``calibration``, ``val`` -- never-trained pairs; the membership attack's training non-members;
* ``test`` -- only ever reported, and the attack's *held-out* non-members. Nothing here uses test to
  choose anything.

Graph--text matching accuracy (``match_acc``) is defined *pairwise*: for every pair ``i`` a deranged
partner ``j`` (seeded, a pair of another item) is drawn and the pair counts as correct when the matching
head gives the true pair a higher probability than ``(x_i, t_j)``. ``match_bal_acc`` is the balanced
accuracy at threshold 0.5 over the true pairs and the same deranged pairs:
``(mean[p(x_i,t_i) >= 0.5] + mean[p(x_i,t_j) < 0.5]) / 2``.

The per-pair signals are :mod:`graphdel.evaluation.suite_signals`; the metrics computed from them are the
registered ones of :mod:`graphdel.evaluation.metrics` (retrieval, matching, the model's own split metrics,
distinguishability, membership, probes, drift), run in their registration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from graphdel.config import ConfigMixin
from graphdel.device import placed
from graphdel.evaluation.embed import embed_pairs, item_states_cached
from graphdel.evaluation.membership import leak_flag
from graphdel.evaluation.metrics import RETRIEVAL_SPLITS, MetricInputs, compute_metrics, judged_side
from graphdel.evaluation.retrieval import PairEmbeddings, split_retrieval
from graphdel.evaluation.suite_signals import PairSignals, pair_signals
from graphdel.evaluation.summary import flatten, forget_gap, retention_change
from graphdel.models.protocol import PairSampler

__all__ = ["RETRIEVAL_SPLITS", "retrieval_metrics", "SuiteConfig", "suite_sets", "evaluate_model",
           "compare_to_references"]


def retrieval_metrics(model, sets: Mapping[str, PairSampler], distractors: PairSampler | PairEmbeddings, *,
                      pool_size: int = 64, seed: int = 0, device: str | torch.device | None = None
                      ) -> dict[str, dict]:
    """Retrieval in both directions, over the whole set and pool-k against ``distractors``, for each named
    pair set (:func:`graphdel.evaluation.retrieval.split_retrieval`).

    Args:
        model: any :class:`~graphdel.models.protocol.ModalityModel`.
        sets: named pair sets; empty ones are left out.
        distractors: the run's distractor set (:meth:`graphdel.evaluation.run_data.Prepared.distractors`), or its
            embeddings under ``model``.
        device: where to compute (``None``: where ``model`` is; else ``model`` is moved there for the call,
            :func:`graphdel.device.placed`).

    Returns:
        ``{name: {"g2t": {mrr, hits@1, hits@10}, "t2g": {...}, "pool64": {g2t_mrr, t2g_mrr, g2t_acc,
        t2g_acc, k, chance_mrr}, "n": N}}``.
    """
    with placed(model, device):
        if not isinstance(distractors, PairEmbeddings):
            distractors = embed_pairs(model, distractors)
        out = {}
        for name, pairs in sets.items():
            if pairs is None or len(pairs) == 0:
                continue
            emb = embed_pairs(model, pairs)
            out[name] = split_retrieval(emb, distractors, pool_size=pool_size, seed=seed)
    return out


@dataclass
class SuiteConfig(ConfigMixin):
    """Settings of :func:`evaluate_model`.

    Attributes:
        pool_size: pool size of pool-k retrieval and of the pool signals.
        seed: seeds the retain/Dr samples, pools, derangements, chunks and attacks.
        chunks: Df-vs-Dr chunks (each of ``|Df|`` pairs).
        probes: fit the unimodal probes (modalities with registered item properties: molecules, images).
        membership: run the signal attack.
        lira_shadows: shadow models of the LiRA attack (0 = off; >= 4 when on; costly: each is a training).
        lira_epochs: epochs of each shadow training (``None``: the original recipe's).
        batch_size: evaluation batch size.
        device: where models run (``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            :func:`graphdel.device.resolve_device`): each model is moved there while it is evaluated, and
            LiRA's shadows train there.
    """

    pool_size: int = 64
    seed: int = 0
    chunks: int = 5
    probes: bool = True
    membership: bool = True
    lira_shadows: int = 0
    lira_epochs: int | None = None
    batch_size: int = 256
    device: str = "auto"

    config_name = "suite config"  # how messages name it; from_dict/to_dict/with_overrides: graphdel.config

    def __post_init__(self) -> None:
        if self.lira_shadows and self.lira_shadows < 4:
            raise ValueError(f"LiRA needs >= 4 shadow models, got lira_shadows={self.lira_shadows}")


def suite_sets(prepared, df_rows: Sequence[int], *, chunks: int = 5, seed: int = 0) -> dict[str, PairSampler]:
    """The pair sets of the suite (see the module docstring) from the original model's
    :class:`~graphdel.evaluation.run_data.Prepared` and the rows of Df, and under ``"distractors"`` the run's distractor
    set (what pool-k retrieval ranks every pair against; not scored itself)."""
    from graphdel.evaluation.run_data import evaluation_sets, retain_sample_rows

    df = sorted(set(df_rows))
    sets = evaluation_sets(prepared, df, seed)
    sets["dr"] = prepared.data.subset(retain_sample_rows(prepared.retained_rows(df), max(1, chunks) * len(df),
                                                         seed + 1), "dr")
    sets["distractors"] = prepared.distractors()
    return sets


# ------------------------------------------------------------------------------------------- per split

def _broken(sig: PairSignals) -> str | None:
    """Why a set's outputs are unusable (non-finite, or every pair embedded identically), or ``None``."""
    e = sig.emb
    if not (torch.isfinite(e.z_x).all() and torch.isfinite(e.z_t).all()):
        return "NaN/inf embeddings"
    n = e.z_x.size(0)
    if n >= 2:
        for side, z in (("graph", e.z_x), ("text", e.z_t)):
            if float((z - z[:1]).abs().max()) < 1e-6 and e.items.unique().numel() > 1:
                return f"every {side} embedding identical (collapsed)"
    if sig.match_prob is not None and not np.isfinite(sig.match_prob).all():
        return "NaN/inf matching probabilities"
    return None


# ------------------------------------------------------------------------------------------- the suite

def evaluate_model(model, sets: Mapping[str, PairSampler], *, config: SuiteConfig | None = None, corpus=None,
                   original_signals: Mapping[str, PairSignals] | None = None, shadows: dict | None = None,
                   calibration_hidden: PairSampler | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every metric of the audit for one model.

    Args:
        model: the model (any :class:`~graphdel.models.protocol.ModalityModel`).
        sets: :func:`suite_sets`.
        config: :class:`SuiteConfig`.
        corpus: the corpus (SMILES for the probes); probes are skipped with a note without it.
        original_signals: the original model's signals (the second return value of this function for the
            original), for embedding drift.
        shadows: the output of :func:`train_shadows` for LiRA, or ``None``.
        calibration_hidden: for a KG request closed over its mirrors, the retained pairs that state a
            calibration triple backwards (:func:`~graphdel.evaluation.run_data.calibration_mirrors`): Df is
            compared with the calibration pairs scored with these out of the graph (``vs_calibration``), as
            Df's own mirrors are. Every other metric reads the calibration split as it is.

    Returns:
        ``(entry, signals)``: ``entry`` in the per-model layout of :mod:`graphdel.evaluation.report`
        (``splits`` with retrieval and matching accuracy, ``distinguishability`` by cosine similarity with
        the matching probability's AUC under ``matching``, ``membership``, ``probes``, ``drift``), and the
        per-set :class:`PairSignals` (for plots and drift). ``entry["_arrays"]`` holds per-pair arrays for
        plots (removed by callers before writing).

    The model is moved to ``config.device`` while it is evaluated and back afterwards
    (:func:`graphdel.device.placed`).
    """
    cfg = config or SuiteConfig()
    if "distractors" not in sets:
        raise ValueError("evaluate_model needs the run's distractor set under sets['distractors'] (suite_sets)")
    with placed(model, cfg.device), item_states_cached(model):
        return _evaluate_placed(model, sets, cfg, corpus, original_signals, shadows, calibration_hidden)


def _evaluate_placed(model, sets: Mapping[str, PairSampler], cfg: SuiteConfig, corpus,
                     original_signals: Mapping[str, PairSignals] | None, shadows: dict | None,
                     calibration_hidden: PairSampler | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`evaluate_model` on the device ``model`` is on (batches follow the model)."""
    distractors = embed_pairs(model, sets["distractors"], batch_size=cfg.batch_size)
    signals_of = lambda pairs: pair_signals(model, pairs, distractors, pool_size=cfg.pool_size, seed=cfg.seed,
                                            batch_size=cfg.batch_size)
    sig = {name: signals_of(pairs)
           for name, pairs in sets.items() if name != "distractors" and pairs is not None and len(pairs)}
    closed_calibration = None
    if calibration_hidden is not None and len(calibration_hidden) and "calibration" in sig:
        with model.facts_hidden(calibration_hidden):
            closed_calibration = (signals_of(sets["calibration"]), len(calibration_hidden))
    entry: dict[str, Any] = {"splits": {}}
    bad = {n: r for n, v in sig.items() if (r := _broken(v))}
    if bad:
        entry["broken_outputs"] = "; ".join(f"{n}: {r}" for n, r in bad.items()) + \
            " -- the model is broken; its retrieval there is not reported (ties would rank every pair first)"
    inputs = MetricInputs(model, {k: v for k, v in sets.items() if k != "distractors"}, sig, distractors, cfg,
                          corpus, bad, original_signals, shadows, closed_calibration)
    entry["_arrays"] = compute_metrics(inputs, entry)
    return entry, sig


def compare_to_references(entry: Mapping[str, Any], *, retrain: Mapping[str, Any] | None = None,
                          original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Gaps to Retrain for every forget-side metric and changes from the original for every
    retain/test-side metric (``method - reference``; flat dotted keys).

    Which side a key is on is declared by the metric that wrote it
    (:func:`graphdel.evaluation.metrics.judged_side`): forget side ``splits.forget.*``,
    ``distinguishability.*``, ``membership.*``, ``probes.*.forget``, ``drift.forget.*``; retain side
    ``splits.{retain,val,calibration,test}.*``, ``probes.*.test``, ``drift.test.*``. Also
    ``speedup_vs_retrain`` (Retrain's wall time / the method's) and the membership leak flag against
    Retrain's attack AUC.
    """
    flat = flatten({k: v for k, v in entry.items() if not k.startswith("_")})
    forget_keys = [k for k in flat if judged_side(k) == "forget"]
    retain_keys = [k for k in flat if judged_side(k) == "retain"]
    out: dict[str, Any] = {}
    if retrain is not None:
        ref = {k: v for k, v in retrain.items() if not k.startswith("_")}
        out["vs_retrain"] = forget_gap(flat, flatten(ref), forget_keys)
        rt, mt = retrain.get("wall_time_s"), entry.get("wall_time_s")
        if isinstance(rt, (int, float)) and isinstance(mt, (int, float)) and mt > 0:
            out["speedup_vs_retrain"] = float(rt) / float(mt)
        auc, ref_auc = (entry.get("membership") or {}).get("attack_auc"), (retrain.get("membership") or {}).get("attack_auc")
        if auc is not None and ref_auc is not None:
            out["leak"] = leak_flag(auc, reference_auc=ref_auc)
    if original is not None:
        orig = {k: v for k, v in original.items() if not k.startswith("_")}
        out["vs_original"] = retention_change(flat, flatten(orig), retain_keys)
    return out
