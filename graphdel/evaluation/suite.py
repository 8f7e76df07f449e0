"""The evaluation suite: connects models and pair sets to the metric functions.

:func:`retrieval_metrics` is the retrieval part alone (used by training and ``forget``).
:func:`evaluate_model` runs every metric of the audit on one model; :func:`compare_to_references` adds
the gaps to Retrain (forget side) and the changes from the original (retain side);
:func:`train_shadows` and :func:`lira_membership` are the (costly, optional) LiRA attack.

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

Per-pair membership signals (larger = more member-like): cosine similarity of the pair, the matching
probability, minus the in-pool contrastive loss and the reciprocal rank of the true partner in its pool
(pools as in pool-k retrieval).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from graphdel.device import model_device, placed, resolve_device
from graphdel.evaluation.distinguishability import df_vs_dr_auc
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.matching import balanced_accuracy
from graphdel.evaluation.membership import (attack_roc, leak_flag, lira_auc, lira_scores, logit_scale,
                                            signal_attack)
from graphdel.evaluation.probes import embedding_drift, linear_probe
from graphdel.evaluation.retrieval import PairEmbeddings, Ranks, pool_candidate_scores, split_retrieval
from graphdel.evaluation.summary import flatten, forget_gap, retention_change
from graphdel.models.protocol import PairSampler

__all__ = ["retrieval_metrics", "SuiteConfig", "suite_sets", "PairSignals", "pair_signals", "evaluate_model",
           "compare_to_references", "train_shadows", "lira_membership", "MEMORY_KEYS", "SIGNAL_NAMES"]

SIGNAL_NAMES = ("similarity", "match_prob", "neg_pool_loss", "pool_reciprocal_rank")
RETRIEVAL_SPLITS = ("forget", "retain", "calibration", "val", "test")


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
class SuiteConfig:
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


# ------------------------------------------------------------------------------------------- signals

@dataclass
class PairSignals:
    """Everything the suite reads off one model for one pair set (arrays are ``[N]`` unless noted).

    Attributes:
        emb: the embeddings (``z_x``, ``z_t`` ``[N, d]``, items, rows, ``match_prob``).
        similarity: cosine similarity of each true pair.
        match_prob: matching probability of each true pair (``None`` for fusion-free models).
        deranged_prob: matching probability of ``(x_i, t_j)`` with ``j`` a deranged partner (or ``None``).
        pool_loss: per-pair InfoNCE loss within its pool-k candidates (mean of graph->text and text->graph).
        pool_reciprocal_rank: expected reciprocal rank of the true text among its pool-k candidates
            (graph->text; :func:`graphdel.evaluation.retrieval.pool_retrieval`).
    """

    emb: PairEmbeddings
    similarity: np.ndarray
    match_prob: np.ndarray | None
    deranged_prob: np.ndarray | None
    pool_loss: np.ndarray
    pool_reciprocal_rank: np.ndarray

    def features(self) -> np.ndarray:
        """``[N, k]`` membership-attack features (larger = more member-like), columns of
        :data:`SIGNAL_NAMES` (the matching column is dropped for fusion-free models)."""
        cols = [self.similarity]
        if self.match_prob is not None:
            cols.append(logit_scale(self.match_prob))
        cols += [-self.pool_loss, self.pool_reciprocal_rank]
        return np.stack(cols, axis=1).astype(np.float64)


def _derangement(items: np.ndarray, seed: int) -> np.ndarray | None:
    """Index ``j[i] != i`` with ``items[j[i]] != items[i]`` for every ``i`` (``None`` if one item only).

    The engine's item-aware derangement (:func:`graphdel.unlearning.losses.item_derangement`, one helper
    for the unlearning losses and the suite), seeded by ``seed``: the same ``j`` for the same items and seed."""
    from graphdel.unlearning.losses import item_derangement  # here: the engine imports evaluation modules

    if items.size < 2 or np.unique(items).size < 2:
        return None
    return item_derangement(torch.as_tensor(items), torch.Generator().manual_seed(seed)).numpy().astype(np.int64)


@torch.no_grad()
def _deranged_probs(model, pairs, j: np.ndarray, batch_size: int) -> np.ndarray | None:
    """Matching probability of ``(x_i, t_{j[i]})`` (computed where ``model`` is); needs a
    :class:`~graphdel.data.pairs.PairSet`."""
    data, rows = getattr(pairs, "data", None), getattr(pairs, "rows", None)
    if data is None or rows is None:
        return None
    device = model_device(model)
    was = model.training
    model.eval()
    out = []
    rows = torch.as_tensor(rows).long()
    jt = torch.as_tensor(j).long()
    for s in range(0, rows.numel(), batch_size):
        a = data.batch(rows[s:s + batch_size]).to(device)
        b = data.batch(rows[jt[s:s + batch_size]]).to(device)
        out.append(torch.sigmoid(model.match_logits(model.fuse(a.x, b.text))).float().cpu())
    model.train(was)
    return torch.cat(out).numpy().astype(np.float64)


@torch.no_grad()
def _pool_signals(model, emb: PairEmbeddings, distractors: PairEmbeddings, pool_size: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair pool-k loss and graph->text reciprocal rank, over the candidates of
    :func:`~graphdel.evaluation.retrieval.pool_candidate_scores` (so their size confounds nothing)."""
    g2t, t2g = pool_candidate_scores(emb, distractors, pool_size=pool_size, seed=seed)
    # The protocol's logits are the similarity times the model's inverse temperature: read that scale off
    # one unit vector, whose similarity with itself is 1.
    unit = emb.z_x[:1].to(model_device(model))
    scale = float(model.logits(unit, unit).reshape(-1)[0] / model.sim(unit, unit).reshape(-1)[0])
    target = torch.zeros(g2t.size(0), dtype=torch.long)
    loss = 0.5 * (torch.nn.functional.cross_entropy(scale * g2t, target, reduction="none")
                  + torch.nn.functional.cross_entropy(scale * t2g, target, reduction="none"))
    return loss.double().numpy(), Ranks.of_scores(g2t).reciprocal().numpy()


def pair_signals(model, pairs: PairSampler, distractors: PairEmbeddings, *, pool_size: int = 64, seed: int = 0,
                 batch_size: int = 256, device: str | torch.device | None = None) -> PairSignals:
    """Embeddings and per-pair signals of ``pairs`` under ``model`` (eval mode, no gradients);
    ``distractors`` are the run's distractor set embedded by the same model. ``device``: where to compute
    (``None``: where ``model`` is, see :func:`graphdel.evaluation.embed.embed_pairs`)."""
    has_match = hasattr(model, "match_logits") and hasattr(model, "fuse")
    with placed(model, device):
        emb = embed_pairs(model, pairs, batch_size=batch_size, with_matching=has_match)
        sim = (emb.z_x * emb.z_t).sum(1).double().numpy()
        match = emb.match_prob.double().numpy() if emb.match_prob is not None else None
        deranged = None
        if match is not None:
            j = _derangement(emb.items.numpy(), seed)
            if j is not None:
                deranged = _deranged_probs(model, pairs, j, batch_size)
        loss, rr = _pool_signals(model, emb, distractors, pool_size, seed)
    return PairSignals(emb, sim, match, deranged, loss, rr)


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


def _matching(sig: PairSignals) -> dict[str, float]:
    if sig.match_prob is None or sig.deranged_prob is None:
        return {}
    p, q = sig.match_prob, sig.deranged_prob
    return {"match_acc": float(np.mean(p > q)),
            "match_bal_acc": balanced_accuracy(p, q)}


# ------------------------------------------------------------------------------------------- memory

# ------------------------------------------------------------------------------------------- probes

def _probes(sig: Mapping[str, PairSignals], corpus, seed: int) -> dict[str, Any]:
    """Linear probes on item embeddings for the item properties registered for the corpus's modality
    (:data:`graphdel.data.pairs.ITEM_PROPERTIES`: RDKit properties of molecules and of depicted molecules,
    content statistics of image files), fitted on the Dr sample and scored on Df and test."""
    from graphdel.data.pairs import ITEM_PROPERTIES

    properties = ITEM_PROPERTIES.get(getattr(corpus, "modality", None)) if corpus is not None else None
    if properties is None:
        return {"note": "probes skipped: they need molecules or images (registered item properties); this "
                        f"corpus is {getattr(corpus, 'modality', 'unknown')!r}"}

    def by_item(s: PairSignals):
        seen: dict[str, int] = {}
        for k, r in enumerate(s.emb.rows.tolist()):
            seen.setdefault(corpus.item_ids[r], k)
        ids = list(seen)
        idx = torch.as_tensor(list(seen.values()), dtype=torch.long)
        return s.emb.z_x[idx].double().numpy(), properties(corpus, ids)

    x_fit, y_fit = by_item(sig["dr"])
    evals = {name: by_item(sig[name]) for name in ("forget", "test") if name in sig}
    out: dict[str, Any] = {}
    for prop, (values, kind) in y_fit.items():
        try:
            res = linear_probe(x_fit, values, {n: (e, y[prop][0]) for n, (e, y) in evals.items()},
                               kind=kind, seed=seed)
        except ValueError as e:
            out[prop] = {"reason": str(e)}
            continue
        score = "r2" if kind == "regression" else "accuracy"
        out[prop] = {n: v.get(score) for n, v in res["sets"].items()}
        out[prop]["fit_n"] = int(x_fit.shape[0])
    return out


def _drift(sig: Mapping[str, PairSignals], orig: Mapping[str, PairSignals]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in ("forget", "test"):
        if split in sig and split in orig:
            out[split] = {"graph": embedding_drift(sig[split].emb.z_x, orig[split].emb.z_x)["mean_cos"],
                          "text": embedding_drift(sig[split].emb.z_t, orig[split].emb.z_t)["mean_cos"]}
    return out


# ------------------------------------------------------------------------------------------- the suite

def evaluate_model(model, sets: Mapping[str, PairSampler], *, config: SuiteConfig | None = None, corpus=None,
                   original_signals: Mapping[str, PairSignals] | None = None, shadows: dict | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every metric of the audit for one model.

    Args:
        model: the model (any :class:`~graphdel.models.protocol.ModalityModel`).
        sets: :func:`suite_sets`.
        config: :class:`SuiteConfig`.
        corpus: the corpus (SMILES for the probes); probes are skipped with a note without it.
        original_signals: the original model's signals (the second return value of this function for the
            original), for embedding drift.
        shadows: the output of :func:`train_shadows` for LiRA, or ``None``.

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
    with placed(model, cfg.device):
        return _evaluate_placed(model, sets, cfg, corpus, original_signals, shadows)


def _evaluate_placed(model, sets: Mapping[str, PairSampler], cfg: SuiteConfig, corpus,
                     original_signals: Mapping[str, PairSignals] | None, shadows: dict | None
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`evaluate_model` on the device ``model`` is on (batches follow the model)."""
    distractors = embed_pairs(model, sets["distractors"], batch_size=cfg.batch_size)
    sig = {name: pair_signals(model, pairs, distractors, pool_size=cfg.pool_size, seed=cfg.seed,
                              batch_size=cfg.batch_size)
           for name, pairs in sets.items() if name != "distractors" and pairs is not None and len(pairs)}
    entry: dict[str, Any] = {"splits": {}}
    bad = {n: r for n, v in sig.items() if (r := _broken(v))}
    if bad:
        entry["broken_outputs"] = "; ".join(f"{n}: {r}" for n, r in bad.items()) + \
            " -- the model is broken; its retrieval there is not reported (ties would rank every pair first)"
    for name in RETRIEVAL_SPLITS:
        if name in bad:
            entry["splits"][name] = {"n": int(sig[name].emb.z_x.size(0)), "note": bad[name]}
        elif name in sig:
            e = sig[name].emb
            entry["splits"][name] = {**split_retrieval(e, distractors, pool_size=cfg.pool_size, seed=cfg.seed),
                                     **_matching(sig[name])}
    # modality-specific metrics (a KG model: link prediction, collateral, triple AUROC; none by default)
    with torch.no_grad():
        was = model.training
        model.eval()
        scored = {k: v for k, v in sets.items() if k != "distractors"}
        extra = model.split_metrics({**scored, "retain": sets.get("retain", sets.get("dr"))})
        model.train(was)
    for name, res in extra.items():
        if name == "retain" and "retain" not in sets:
            continue
        entry["splits"].setdefault(name, {}).update(res)
    arrays: dict[str, Any] = {"similarity": {k: v.similarity for k, v in sig.items()}}
    if "forget" in sig and "dr" in sig:
        df, dr = sig["forget"], sig["dr"]
        dist: dict[str, Any] = {}
        try:
            # The headline score is the cosine similarity, the score retrieval ranks by. The matching
            # head's probability is kept beside it: on the embedded corpus the head trained with ALBEF's
            # hard negatives stays at its 1:2 prior (match loss 0.637 from epoch 2), so an AUC on it
            # stayed at 0.49-0.52 for the original, Retrain and MultiDelete alike and measured nothing.
            dist.update(df_vs_dr_auc(df.similarity, dr.similarity, chunks=cfg.chunks, seed=cfg.seed))
            dist["score"] = "similarity"
            if df.match_prob is not None:
                by_match = df_vs_dr_auc(df.match_prob, dr.match_prob, chunks=cfg.chunks, seed=cfg.seed)
                dist["matching"] = {k: by_match[k] for k in ("mean", "std", "per_chunk")}
        except ValueError as e:
            dist = {"note": f"not computed: {e}"}
        entry["distinguishability"] = dist
        if cfg.membership:
            entry["membership"], arrays["roc"] = _signal_membership(sig, cfg.seed)
        if shadows is not None:
            try:
                entry.setdefault("membership", {}).update(lira_membership(sig, shadows))
            except ValueError as e:
                entry.setdefault("membership", {})["lira_note"] = f"LiRA not computed: {e}"
    if cfg.probes and "dr" in sig:
        entry["probes"] = _probes(sig, corpus, cfg.seed)
    if original_signals is not None:
        entry["drift"] = _drift(sig, original_signals)
    entry["_arrays"] = arrays
    return entry, sig


def _signal_membership(sig: Mapping[str, PairSignals], seed: int) -> tuple[dict[str, Any], Any]:
    non = [sig[n].features() for n in ("val", "calibration") if n in sig]
    if "test" not in sig or not non:
        return {"note": "membership attack skipped: needs val/calibration and test pairs"}, None
    try:
        res = signal_attack(sig["dr"].features(), np.concatenate(non), sig["forget"].features(),
                            reference_signals=sig["test"].features(), seed=seed)
    except ValueError as e:
        return {"note": f"membership attack skipped: {e}"}, None
    fpr, tpr, auc = attack_roc(res["target_scores"], res["reference_scores"])
    out = {"attack_auc": res["attack_auc"], "cv_auc": res["cv_auc"], "cv_auc_std": res["cv_auc_std"],
           "member_rate": res["member_rate"],
           "test_member_rate": float(np.mean(res["reference_scores"] >= 0.5)),
           "n_per_class": res["n_per_class"], "classifier": res["classifier"],
           "signals": [n for n in SIGNAL_NAMES if n != "match_prob" or sig["forget"].match_prob is not None],
           "members": "Dr sample", "non_members": "val + calibration", "held_out": "test"}
    return out, (fpr, tpr, auc)


def compare_to_references(entry: Mapping[str, Any], *, retrain: Mapping[str, Any] | None = None,
                          original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Gaps to Retrain for every forget-side metric and changes from the original for every
    retain/test-side metric (``method - reference``; flat dotted keys).

    Forget side: ``splits.forget.*``, ``distinguishability.*``, ``membership.*``, ``probes.*.forget``,
    ``drift.forget.*``. Retain side: ``splits.{retain,val,calibration,test}.*``, ``probes.*.test``,
    ``drift.test.*``. Also ``speedup_vs_retrain`` (Retrain's wall time / the method's) and the
    membership leak flag against Retrain's attack AUC.
    """
    flat = {k: v for k, v in flatten({k: v for k, v in entry.items() if not k.startswith("_")}).items()}
    forget_keys = [k for k in flat if k.startswith(("splits.forget.", "distinguishability.", "membership.",
                                                     "drift.forget.")) or (k.startswith("probes.")
                                                                           and k.endswith(".forget"))]
    retain_keys = [k for k in flat if k.startswith(("splits.retain.", "splits.val.", "splits.calibration.",
                                                     "splits.test.", "drift.test.")) or (k.startswith("probes.")
                                                                                         and k.endswith(".test"))]
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


# ------------------------------------------------------------------------------------------- LiRA

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


# ------------------------------------------------------------------------------------------- runs -> report

def _model_names(runs) -> list[str]:
    methods = [r.config.get("method") or r.path.name for r in runs]
    return [m if methods.count(m) == 1 else f"{m} ({r.path.name})" for m, r in zip(methods, runs)]


#: What :func:`graphdel.resources.measure` records of a method's memory, copied from a run into its entry.
MEMORY_KEYS = ("peak_mem_mb", "start_mem_mb", "peak_mem_method", "peak_gpu_mem_mb")


def evaluate_runs(runs: Sequence[Any], *, config: SuiteConfig | None = None, original=None,
                  measurements: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                  log=print, accept_modified: bool = False, data: str | None = None) -> dict[str, Any]:
    """Evaluate unlearned runs that share one original (their ``config.parent``) and one request.

    Roles: the run whose method is ``retrain`` is the reference; the parent is the original; every other
    run is a method. ``measurements`` maps a run folder name to ``{"peak_mem_mb", "peak_mem_method"}``
    measured by the caller (the demo), since a run folder does not record memory. Run folders given as
    paths are loaded with their integrity checked (``accept_modified`` accepts a changed file, see
    :meth:`graphdel.runs.Run.check_integrity`); ``data`` re-points the original at moved data
    (:func:`graphdel.evaluation.run_data.load_run_data`).

    Returns:
        ``{"results": ..., "plots": ..., "names": {name: Run}, "original": Run, "reference": Run | None,
        "entries": {name: entry}}`` where ``results``/``plots`` are in the layout of
        :func:`graphdel.evaluation.report.write_report`.
    """
    from graphdel.errors import InvalidInputError
    from graphdel.evaluation.run_data import load_request_any, load_run_data
    from graphdel.evaluation.summary import summary_score, thresholds
    from graphdel.history import deletion_history
    from graphdel.io import canonical_json_sha256
    from graphdel.runs import Run, is_quick_config

    cfg = config or SuiteConfig()
    resolve_device(cfg.device)  # a device that is not here is refused before any work
    runs = [r if isinstance(r, Run) else Run.load(r, accept_modified=accept_modified) for r in runs]
    if not runs:
        raise InvalidInputError("give at least one unlearned run")
    not_forget = [str(r.path) for r in runs if r.config.get("kind") != "forget" or not (r.path / "request.json").is_file()]
    if not_forget:
        raise InvalidInputError(f"not unlearned runs (no parent/request): {not_forget}")
    parents = {r.config["parent"]["weights_sha256"] for r in runs}
    if len(parents) != 1:
        raise InvalidInputError("the runs were unlearned from different original models; report them separately")
    requests = {canonical_json_sha256(_read_json(r.path / "request.json")) for r in runs}
    if len(requests) != 1:
        raise InvalidInputError("the runs unlearned different deletion requests; report them separately")
    if original is None:
        original = Run.load(runs[0].config["parent"]["path"], accept_modified=accept_modified)
    elif not isinstance(original, Run):
        original = Run.load(original, accept_modified=accept_modified)
    refs = [r for r in runs if r.config.get("method") == "retrain"]
    reference = refs[0] if refs else None
    names = dict(zip(_model_names(runs), runs))

    log(f"evaluating {len(runs)} runs against original {original.path}"
        + (f" and Retrain {reference.path}" if reference else " (no Retrain run: forgetting is not judged)"))
    prepared = load_run_data(original, progress=progress, source=data)
    request = load_request_any(prepared, runs[0].path / "request.json")
    df_rows = request.rows(prepared.corpus)
    sets = suite_sets(prepared, df_rows, chunks=cfg.chunks, seed=cfg.seed)
    shadows = None
    if cfg.lira_shadows:
        from graphdel.models.joint import ModelConfig
        from graphdel.training.loop import TrainConfig

        log(f"training {cfg.lira_shadows} LiRA shadow models on random halves ...")
        rows_of = lambda s: [int(r) for r in sets[s].rows.tolist()]
        shadows = train_shadows(prepared, df_rows, ModelConfig.from_dict(original.config["model"]),
                                TrainConfig(**original.config["train"]), shadows=cfg.lira_shadows,
                                epochs=cfg.lira_epochs, seed=cfg.seed, progress=progress,
                                targets={"forget": rows_of("forget"), "test": rows_of("test")},
                                device=cfg.device)

    entries: dict[str, dict] = {}
    sigs: dict[str, dict] = {}
    log("  original ...")
    entries["original"], sigs["original"] = evaluate_model(original.model, sets, config=cfg, corpus=prepared.corpus,
                                                           shadows=shadows)
    entries["original"].update(role="original", method="original", path=str(original.path),
                               wall_time_s=original.metrics.get("wall_time_s"))
    for name, run in names.items():
        log(f"  {name} ...")
        entry, sig = evaluate_model(run.model, sets, config=cfg, corpus=prepared.corpus,
                                    original_signals=sigs["original"], shadows=shadows)
        entry.update(role="reference" if run is reference else "method", method=run.config.get("method"),
                     path=str(run.path), wall_time_s=run.metrics.get("wall_time_s"),
                     # the memory the run recorded (api.forget measures it), unless the caller measured
                     **{k: run.metrics[k] for k in MEMORY_KEYS if run.metrics.get(k) is not None},
                     **{k: v for k, v in (measurements or {}).get(run.path.name, {}).items()})
        entries[name], sigs[name] = entry, sig
    ref_name = next((n for n, r in names.items() if r is reference), None)
    for name in names:
        entries[name].update(compare_to_references(entries[name], retrain=entries[ref_name] if ref_name else None,
                                                   original=entries["original"]))

    plots: dict[str, Any] = {"similarities": {}, "roc": {}, "embeddings": {}}
    for name, entry in entries.items():
        arrays = entry.pop("_arrays")
        plots["similarities"][name] = {k: v for k, v in arrays["similarity"].items()
                                       if k in ("forget", "retain", "test")}
        if arrays.get("roc") is not None:
            plots["roc"][name] = arrays["roc"]
        parts = [sigs[name][k].emb.z_x for k in ("forget", "retain", "test") if k in sigs[name]]
        mask = np.concatenate([np.full(sigs[name][k].emb.z_x.size(0), k == "forget")
                               for k in ("forget", "retain", "test") if k in sigs[name]])
        plots["embeddings"][name] = (torch.cat(parts).numpy(), mask)

    methods = {n: entries[n] for n in names if n != ref_name}
    summary: dict[str, Any] = {}
    if ref_name:
        summary["scores"] = summary_score(methods, entries[ref_name], entries["original"])
        summary["thresholds"] = {n: thresholds(e, entries[ref_name], entries["original"]) for n, e in methods.items()}
    order = (summary.get("scores") or {}).get("ranking") or list(methods)
    corpus = prepared.corpus
    shown = ["original"] + ([ref_name] if ref_name else []) + order[:3]
    examples = []
    for k, r in enumerate(sets["forget"].rows.tolist()[:5]):
        ex = {"pair_id": corpus.pair_ids[r], "caption": _short(corpus.texts[r])}
        for n in shown:
            ex[f"sim {n}"] = float(sigs[n]["forget"].similarity[k])
        examples.append(ex)
    rq = _read_json(runs[0].path / "request.json")
    # methods in ranking order (best first), so the first screen reads top-down
    entries = {n: entries[n] for n in ["original"] + ([ref_name] if ref_name else []) + order
               + [n for n in entries if n not in order and n not in ("original", ref_name)]}
    title = (f"graphdel unlearning report: {len(methods)} method(s) vs Retrain on {rq.get('count')} deleted "
             f"pairs of {corpus.source}")
    smoke = is_quick_config(original.config)  # a --quick original: measured, never judged
    if smoke:
        title += " (smoke run: not judged)"
    elif summary.get("thresholds") and order:
        passing = [n for n, t in summary["thresholds"].items() if all(v.get("passed") for v in t.values())]
        best = summary["scores"]["methods"][order[0]]["score"]
        title += (f" — best: {order[0]} (score {best:.2f}); {len(passing)} of {len(methods)} pass every target"
                  if best is not None else "")
    results = {
        "title": title,
        "request": {"description": rq.get("description"), "pairs": rq.get("count"), "by": rq.get("by"),
                    "seed": rq.get("seed"), "source": rq.get("source"), "source_hash": rq.get("source_hash"),
                    "modality": corpus.modality, "original": str(original.path), "reference": str(reference.path) if reference else None,
                    "evaluation_seed": cfg.seed, "Dr chunks": cfg.chunks,
                    "sets": {k: len(v) for k, v in sets.items()},
                    **({"lira_shadow_training_s": round(shadows["wall_time_s"], 1)} if shadows else {})},
        "models": entries,
        "summary": summary,
        "examples": examples,
        "smoke": smoke,
        # every request applied since the original training, when the runs continue a chain of deletions
        "history": [dataclasses.asdict(step) for step in deletion_history(runs[0].path)],
    }
    return {"results": results, "plots": plots, "names": names, "original": original, "reference": reference,
            "entries": entries, "config": cfg}


def _short(s: str, n: int = 90) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def _read_json(path) -> dict:
    import json

    return json.loads(open(path, encoding="utf-8").read())


def write_audit(out_dir, audit: Mapping[str, Any]) -> dict[str, Any]:
    """Write the report (:func:`~graphdel.evaluation.report.write_report`) and one evaluated certificate
    per unlearned run into ``out_dir/certificates/<run folder name>.json`` (run folders are never
    written). A run's certificate records the audits of its method in ``audit["audits"]``
    (:func:`graphdel.evaluation.audit_report.attach_audits`). Returns ``write_report``'s file map plus the
    certificate paths."""
    from pathlib import Path

    from graphdel.evaluation.audit_report import certificate_entry
    from graphdel.evaluation.certificate_build import evaluated_certificate
    from graphdel.evaluation.report import write_report
    from graphdel.io import atomic_write_json, sha256_file

    out_dir = Path(out_dir)
    written = write_report(out_dir, audit["results"], audit["plots"])
    reference = audit["reference"]
    thr = (audit["results"].get("summary") or {}).get("thresholds") or {}
    cfg = audit["config"]
    for name, run in audit["names"].items():
        entry = audit["entries"][name]
        cert = evaluated_certificate(
            run.path, entry=entry, seed=cfg.seed, pool_size=cfg.pool_size, chunks=cfg.chunks,
            reference_path=reference.path if reference else None,
            reference_weights_sha256=sha256_file(reference.path / "model.safetensors") if reference else None,
            vs_retrain=entry.get("vs_retrain"), thresholds=thr.get(name), original_path=audit["original"].path,
            audits=[certificate_entry(a) for a in audit.get("audits") or []
                    if a.data["method"] == run.config.get("method")])
        # The folder name becomes a file name: resolved (so "." or "runs/.." give a real name) and reduced to
        # safe characters, so the certificate always lands inside out_dir/certificates/.
        safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", run.path.resolve().name).lstrip(".") or "run"
        rel = f"certificates/{safe}.json"
        atomic_write_json(cert, out_dir / rel)
        written[rel] = (out_dir / rel).resolve()
    return written


def save_audit(out_dir, audit: Mapping[str, Any], *, overwrite: bool = False) -> dict[str, Any]:
    """Write the audit's report folder whole: checked first (:func:`graphdel.runs.check_output`: not
    inside, equal to or around a run it evaluates; an existing folder only with ``overwrite``), then
    assembled under a temporary name (:func:`write_audit`) and swapped in at ``out_dir``, so an old
    report's certificates and plots never survive next to the new ones. Returns :func:`write_audit`'s
    file map with the final paths."""
    from pathlib import Path

    from graphdel.io import staged_folder
    from graphdel.runs import check_output

    out_dir = Path(out_dir)
    runs = [audit["original"], *audit["names"].values()]
    check_output(out_dir, reads=[r.path for r in runs], overwrite=overwrite)
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        written = write_audit(folder, audit)
    return {rel: (out_dir / rel).resolve() for rel in written}


def short_table(audit: Mapping[str, Any]) -> str:
    """A few-line plain-text table of the outcome (for the terminal). A smoke audit (``results["smoke"]``:
    a ``--quick`` original) opens with :data:`~graphdel.evaluation.report.SMOKE_BANNER` and every verdict
    reads ``not judged``."""
    from graphdel.evaluation.report import NOT_JUDGED, SMOKE_BANNER

    results = audit["results"]
    smoke = bool(results.get("smoke"))
    entries = results["models"]
    scores = ((results.get("summary") or {}).get("scores") or {}).get("methods") or {}
    thr = (results.get("summary") or {}).get("thresholds") or {}
    ref = next((e for e in entries.values() if e["role"] == "reference"), None)
    head = f"{'model':<14} {'role':<9} {'Df MRR':>7} {'ΔRetrain':>9} {'test MRR':>8} {'attack':>6} {'time s':>7} {'score':>6}  verdict"
    lines = ([SMOKE_BANNER] if smoke else []) + [head, "-" * len(head)]
    get = lambda e, *ks: _dig(e, ks)
    for name, e in entries.items():
        df = get(e, "splits", "forget", f"pool{audit['config'].pool_size}", "g2t_mrr")
        rdf = get(ref, "splits", "forget", f"pool{audit['config'].pool_size}", "g2t_mrr") if ref else None
        gap = "" if df is None or rdf is None or e["role"] != "method" else f"{df - rdf:+.3f}"
        test = get(e, "splits", "test", f"pool{audit['config'].pool_size}", "g2t_mrr")
        auc = get(e, "membership", "attack_auc")
        t = e.get("wall_time_s")
        sc = (scores.get(name) or {}).get("score")
        verdict = ""
        if name in thr and smoke:
            verdict = NOT_JUDGED
        elif name in thr:
            passed = [v.get("passed") for v in thr[name].values()]
            verdict = "FAIL" if False in passed else ("PASS" if None not in passed else "?")
        f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
        lines.append(f"{name[:14]:<14} {e['role'][:9]:<9} {f(df):>7} {gap:>9} {f(test):>8} {f(auc, 2):>6} "
                     f"{f(t, 1):>7} {f(sc, 2) if sc is not None else '':>6}  {verdict}")
    return "\n".join(lines)


def lp_table(audit: Mapping[str, Any]) -> str:
    """A plain-text table of the link-prediction outcome of a KG audit (empty when no model has ``lp``
    metrics): filtered MRR on Df (against Retrain), on test and on the 1- and 2-hop collateral triples
    (against the original), the Df-vs-Dr triple-score AUROC (against Retrain) and time (share of Retrain)."""
    entries = audit["results"]["models"]
    get = lambda e, *ks: None if e is None else _dig(e, ks)
    if not any(get(e, "splits", "test", "lp", "mrr") is not None for e in entries.values()):
        return ""
    ref = next((e for e in entries.values() if e["role"] == "reference"), None)
    orig = next((e for e in entries.values() if e["role"] == "original"), None)
    f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    d = lambda v, b: "" if v is None or b is None else f"{v - b:+.3f}"
    head = (f"{'model':<14} {'Df MRR':>7} {'ΔRetrain':>9} {'test MRR':>8} {'Δorig':>7} {'coll@1':>7} {'Δorig':>7} "
            f"{'coll@2':>7} {'Δorig':>7} {'AUROC':>6} {'ΔRetrain':>9} {'time':>6}")
    lines = [head, "-" * len(head)]
    rt = get(ref, "wall_time_s")
    for name, e in entries.items():
        v = {k: get(e, "splits", s, "lp", "mrr") for k, s in
             (("df", "forget"), ("test", "test"), ("c1", "collateral@1"), ("c2", "collateral@2"))}
        auc = get(e, "splits", "forget", "lp", "auroc_vs_retain")
        t = get(e, "wall_time_s")
        share = f"{100 * t / rt:.1f}%" if t is not None and rt and e["role"] == "method" else ""
        lines.append(
            f"{name[:14]:<14} {f(v['df']):>7} {d(v['df'], get(ref, 'splits', 'forget', 'lp', 'mrr')):>9} "
            f"{f(v['test']):>8} {d(v['test'], get(orig, 'splits', 'test', 'lp', 'mrr')):>7} "
            f"{f(v['c1']):>7} {d(v['c1'], get(orig, 'splits', 'collateral@1', 'lp', 'mrr')):>7} "
            f"{f(v['c2']):>7} {d(v['c2'], get(orig, 'splits', 'collateral@2', 'lp', 'mrr')):>7} "
            f"{f(auc, 2):>6} {d(auc, get(ref, 'splits', 'forget', 'lp', 'auroc_vs_retain')):>9} {share:>6}")
    return "\n".join(lines)


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d if isinstance(d, (int, float)) else None


class Audit:
    """The outcome of :func:`evaluate_runs`: ``results`` (the report layout), ``plots``, and
    :meth:`save` to write the report folder with its certificates."""

    def __init__(self, audit: Mapping[str, Any]) -> None:
        self._audit = dict(audit)
        self.results = self._audit["results"]
        self.plots = self._audit["plots"]

    def __getitem__(self, key: str) -> Any:
        return self._audit[key]

    def save(self, out_dir, *, overwrite: bool = False) -> dict[str, Any]:
        """Write report.md, report.html, metrics.json, plots/ and certificates/ as the folder ``out_dir``
        (:func:`save_audit`: an existing folder is refused, or with ``overwrite`` replaced whole)."""
        return save_audit(out_dir, self._audit, overwrite=overwrite)

    def table(self) -> str:
        """A few-line plain-text table of the outcome (:func:`short_table`)."""
        return short_table(self._audit)

    def __repr__(self) -> str:
        return f"Audit({list(self.results['models'])})"
