"""The audit's metrics: one registry of functions with typed inputs and results, and the built-in ones.

A metric is a function ``compute(inputs: MetricInputs) -> MetricResult | None`` registered with
:func:`register_metric`. :func:`~graphdel.evaluation.suite_model.evaluate_model` reads the model's per-pair
signals once (:class:`MetricInputs`) and then runs every registered metric in registration order
(:func:`compute_metrics`), merging each :class:`MetricResult` into the model's entry:

* ``splits``: per-split values, merged into ``entry["splits"][split]`` (beside retrieval);
* ``section``: a section of its own, ``entry[metric.section]``;
* ``arrays``: per-pair arrays for plots (``entry["_arrays"]``, never written).

Where the values are judged is declared with the metric too (:attr:`Metric.judged`), so
:func:`~graphdel.evaluation.suite_model.compare_to_references` compares a new section with Retrain or the
original without being edited, and the report shows every section a registered metric titles.

The built-in metrics, in their order: ``retrieval`` (pool-k and full-set retrieval of each split),
``matching`` (the matching head's accuracy against deranged partners), ``model_splits`` (the model's own
per-split metrics: a KG's link prediction), ``distinguishability`` (Df-vs-Dr AUC), ``membership`` (the
signal attack and LiRA), ``probes`` (unimodal linear probes) and ``drift`` (embedding drift from the
original). How to add one: docs/extending.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch

from graphdel.evaluation.matching import balanced_accuracy
from graphdel.evaluation.probes import embedding_drift, linear_probe
from graphdel.evaluation.retrieval import PairEmbeddings, split_retrieval
from graphdel.evaluation.suite_attacks import distinguishability, lira_membership, signal_membership
from graphdel.evaluation.suite_signals import PairSignals
from graphdel.models.protocol import PairSampler
from graphdel.registry import Registry

__all__ = ["RETRIEVAL_SPLITS", "SPLIT_NAMES", "MetricInputs", "MetricResult", "Metric", "METRICS",
           "register_metric", "compute_metrics", "judged_side"]

#: The splits retrieval is reported on, in the report's order.
RETRIEVAL_SPLITS = ("forget", "retain", "calibration", "val", "test")
#: The splits judged against the original (everything but Df, which is judged against Retrain).
_RETAIN_SIDE = ("retain", "val", "calibration", "test")
SPLIT_NAMES = ("forget",) + _RETAIN_SIDE


@dataclass(frozen=True)
class MetricInputs:
    """What every metric may read of one model under evaluation (read once, shared by all metrics).

    Attributes:
        model: the model, in the mode and on the device it is evaluated in.
        sets: the suite's pair sets (:func:`~graphdel.evaluation.suite_model.suite_sets`), ``distractors``
            left out.
        signals: ``{set: PairSignals}`` of every non-empty set (embeddings ``[N, d]`` and per-pair ``[N]``
            signals).
        distractors: the distractor set's embeddings, what pool-k retrieval ranks against.
        config: the :class:`~graphdel.evaluation.suite_model.SuiteConfig`.
        corpus: the corpus (the probes read its items), or ``None``.
        broken: ``{set: why}`` of the sets whose outputs are unusable (NaN, collapsed); metrics skip them.
        original_signals: the original model's signals (drift), or ``None``.
        shadows: LiRA's shadow models (:func:`~graphdel.evaluation.suite_attacks.train_shadows`), or ``None``.
        closed_calibration: for a KG request closed over its mirrors, the calibration pairs' signals with
            their own retained mirrors out of the graph (``(signals, mirrors hidden)``), what Df is compared
            with under ``vs_calibration``; ``None``: the calibration split's signals as they are.
    """

    model: Any
    sets: Mapping[str, PairSampler]
    signals: Mapping[str, PairSignals]
    distractors: PairEmbeddings
    config: Any
    corpus: Any = None
    broken: Mapping[str, str] = field(default_factory=dict)
    original_signals: Mapping[str, PairSignals] | None = None
    shadows: Mapping[str, Any] | None = None
    closed_calibration: tuple[PairSignals, int] | None = None


@dataclass
class MetricResult:
    """What one metric found on one model.

    Attributes:
        splits: ``{split: {name: value}}``, merged into the entry's ``splits``.
        section: the metric's own section (``entry[metric.section]``), or ``None``.
        arrays: ``{name: array}`` for plots, kept out of ``metrics.json``.
    """

    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    section: dict[str, Any] | None = None
    arrays: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: its registry name.
        compute: ``inputs -> MetricResult | None`` (``None``: nothing to report for this model).
        section: the entry key of its section (``None``: per-split values only).
        title: the report's heading of its section (``None``: not shown as a section).
        judged: how the section's values are compared: ``"forget"``, all of them with Retrain's (the
            section measures Df); ``"by_split"``, a value under a split name (``forget``, ``test``...)
            with Retrain's for ``forget`` and the original's for the others. Per-split values always
            follow their split.
    """

    name: str
    compute: Callable[[MetricInputs], MetricResult | None]
    section: str | None = None
    title: str | None = None
    judged: Literal["forget", "by_split"] = "by_split"


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, *, section: str | None = None, title: str | None = None,
                    judged: Literal["forget", "by_split"] = "by_split", overwrite: bool = False
                    ) -> Callable[[Callable[[MetricInputs], MetricResult | None]], Callable]:
    """Decorator: register ``compute`` as the metric ``name`` (see :class:`Metric` for the arguments); the
    suite runs it on every model after the metrics registered before it."""
    if judged not in ("forget", "by_split"):
        raise ValueError(f"metric {name!r}: judged must be 'forget' or 'by_split', got {judged!r}")

    def decorate(compute: Callable[[MetricInputs], MetricResult | None]) -> Callable:
        METRICS.register(name, Metric(name, compute, section, title, judged), overwrite=overwrite,
                         origin=f"{compute.__module__}.{compute.__qualname__}")
        return compute
    return decorate


def compute_metrics(inputs: MetricInputs, entry: dict[str, Any]) -> dict[str, Any]:
    """Run every registered metric on ``inputs`` in registration order, merging each result into
    ``entry`` (``splits`` and sections), and return the plot arrays they produced."""
    arrays: dict[str, Any] = {}
    splits = entry.setdefault("splits", {})
    for metric in METRICS.values():
        result = metric.compute(inputs)
        if result is None:
            continue
        for split, values in result.splits.items():
            splits.setdefault(split, {}).update(values)
        if result.section is not None and metric.section is not None:
            entry.setdefault(metric.section, {}).update(result.section)
        arrays.update(result.arrays)
    return arrays


def judged_side(key: str) -> Literal["forget", "retain"] | None:
    """Which reference a flat dotted metric key (``splits.forget.pool64.g2t_mrr``, ``probes.logp.test``) is
    judged against: ``"forget"`` (Retrain), ``"retain"`` (the original) or ``None`` (neither: sizes,
    notes, a section no registered metric judges)."""
    parts = key.split(".")
    if parts[0] == "splits":
        return "forget" if parts[1:2] == ["forget"] else "retain" if parts[1:2] and parts[1] in _RETAIN_SIDE \
            else None
    metric = next((m for m in METRICS.values() if m.section == parts[0]), None)
    if metric is None:
        return None
    if metric.judged == "forget":
        return "forget"
    if "forget" in parts[1:]:
        return "forget"
    return "retain" if any(p in _RETAIN_SIDE for p in parts[1:]) else None


# ------------------------------------------------------------------------------------ the built-in metrics

@register_metric("retrieval")
def retrieval(inputs: MetricInputs) -> MetricResult:
    """Retrieval of each of :data:`RETRIEVAL_SPLITS` the model was scored on (both directions, full set and
    pool-k, :func:`~graphdel.evaluation.retrieval.split_retrieval`); a broken split gets its size and the
    reason instead. Arrays: every set's true-pair similarity."""
    cfg, splits = inputs.config, {}
    for name in RETRIEVAL_SPLITS:
        if name in inputs.broken:
            splits[name] = {"n": int(inputs.signals[name].emb.z_x.size(0)), "note": inputs.broken[name]}
        elif name in inputs.signals:
            splits[name] = split_retrieval(inputs.signals[name].emb, inputs.distractors, pool_size=cfg.pool_size,
                                           seed=cfg.seed)
    return MetricResult(splits=splits, arrays={"similarity": {k: v.similarity for k, v in inputs.signals.items()}})


@register_metric("matching")
def matching(inputs: MetricInputs) -> MetricResult:
    """The matching head of each retrieval split: ``match_acc`` (the true pair more probable than a deranged
    one) and ``match_bal_acc`` (balanced accuracy at 0.5 over true and deranged pairs); nothing for a model
    without a matching head or a broken split."""
    splits = {}
    for name in RETRIEVAL_SPLITS:
        sig = inputs.signals.get(name)
        if name in inputs.broken or sig is None or sig.match_prob is None or sig.deranged_prob is None:
            continue
        p, q = sig.match_prob, sig.deranged_prob
        splits[name] = {"match_acc": float(np.mean(p > q)), "match_bal_acc": balanced_accuracy(p, q)}
    return MetricResult(splits=splits)


@register_metric("model_splits")
def model_splits(inputs: MetricInputs) -> MetricResult:
    """The model's own per-split metrics (:meth:`~graphdel.models.protocol.ModalityModule.split_metrics`: a
    KG model's link prediction, collateral, triple AUROC; none by default), computed in eval mode on every
    set, ``retain`` standing in by the Dr sample when the suite has none."""
    model, sets = inputs.model, inputs.sets
    with torch.no_grad():
        was = model.training
        model.eval()
        scored = {k: v for k, v in sets.items() if k != "distractors"}
        extra = model.split_metrics({**scored, "retain": sets.get("retain", sets.get("dr"))})
        model.train(was)
    return MetricResult(splits={name: dict(res) for name, res in extra.items()
                                if name != "retain" or "retain" in sets})


@register_metric("distinguishability", section="distinguishability", title="Df-vs-Dr distinguishability",
                 judged="forget")
def df_vs_dr(inputs: MetricInputs) -> MetricResult | None:
    """Df-vs-Dr AUC by cosine similarity, with the matching probability's under ``matching`` and, when the
    suite scores a calibration split, Df against it under ``vs_calibration``
    (:func:`~graphdel.evaluation.suite_attacks.distinguishability`; for a closed KG request, against the
    calibration pairs scored without their retained mirrors, counted under ``mirrors_hidden``)."""
    sig = inputs.signals
    if "forget" not in sig or "dr" not in sig:
        return None
    calibration = inputs.closed_calibration[0] if inputs.closed_calibration else sig.get("calibration")
    section = distinguishability(sig["forget"], sig["dr"], chunks=inputs.config.chunks, seed=inputs.config.seed,
                                 calibration=calibration)
    if inputs.closed_calibration and "vs_calibration" in section:
        section["vs_calibration"]["mirrors_hidden"] = inputs.closed_calibration[1]
    return MetricResult(section=section)


@register_metric("membership", section="membership", title="Membership inference", judged="forget")
def membership(inputs: MetricInputs) -> MetricResult | None:
    """The signal attack (``config.membership``) and LiRA (when shadows were trained) on Df; arrays: the
    attack's ROC of Df against test."""
    sig, cfg = inputs.signals, inputs.config
    if "forget" not in sig or "dr" not in sig:
        return None
    result = MetricResult(section={})
    if cfg.membership:
        result.section, result.arrays["roc"] = signal_membership(sig, cfg.seed)
    if inputs.shadows is not None:
        try:
            result.section.update(lira_membership(sig, inputs.shadows))
        except ValueError as e:
            result.section["lira_note"] = f"LiRA not computed: {e}"
    return result if result.section or result.arrays else None


@register_metric("probes", section="probes", title="Unimodal probes")
def probes(inputs: MetricInputs) -> MetricResult | None:
    """Linear probes on item embeddings for the item properties registered for the corpus's modality
    (:data:`graphdel.data.pairs.ITEM_PROPERTIES`: RDKit properties of molecules and of depicted molecules,
    content statistics of image files), fitted on the Dr sample and scored on Df and test."""
    if not inputs.config.probes or "dr" not in inputs.signals:
        return None
    return MetricResult(section=_probe_scores(inputs.signals, inputs.corpus, inputs.config.seed))


def _probe_scores(sig: Mapping[str, PairSignals], corpus, seed: int) -> dict[str, Any]:
    """``{property: {"forget": score, "test": score, "fit_n": N}}`` (R² or accuracy), or a note."""
    from graphdel.data.pairs import ITEM_PROPERTIES, item_properties
    from graphdel.modalities import require_loaded

    require_loaded(getattr(corpus, "modality", None))
    if corpus is None or ITEM_PROPERTIES.get(corpus.modality) is None:
        return {"note": "probes skipped: they need molecules or images (registered item properties); this "
                        f"corpus is {getattr(corpus, 'modality', 'unknown')!r}"}

    def by_item(s: PairSignals):
        seen: dict[str, int] = {}
        for k, r in enumerate(s.emb.rows.tolist()):
            seen.setdefault(corpus.item_ids[r], k)
        ids = list(seen)
        idx = torch.as_tensor(list(seen.values()), dtype=torch.long)
        return s.emb.z_x[idx].double().numpy(), item_properties(corpus, ids)

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


@register_metric("drift", section="drift", title="Embedding drift")
def drift(inputs: MetricInputs) -> MetricResult | None:
    """Mean cosine between this model's and the original's embeddings of the same Df and test pairs, per
    side (:func:`~graphdel.evaluation.probes.embedding_drift`); needs the original's signals."""
    sig, orig = inputs.signals, inputs.original_signals
    if orig is None:
        return None
    out: dict[str, Any] = {}
    for split in ("forget", "test"):
        if split in sig and split in orig:
            out[split] = {"graph": embedding_drift(sig[split].emb.z_x, orig[split].emb.z_x)["mean_cos"],
                          "text": embedding_drift(sig[split].emb.z_t, orig[split].emb.z_t)["mean_cos"]}
    return MetricResult(section=out)
