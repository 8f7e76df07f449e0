"""``graphdel audit``: a per-example privacy audit of one unlearning method on one request.

Population attacks (one classifier over many pairs) overestimate protection (Hayes et al., 2024,
"Inexact unlearning needs more careful evaluations to avoid a false sense of privacy"): whether *this*
deleted pair can be told apart is a question about the distribution of its signal over many models. The
audit therefore trains many models of both kinds for one request:

* ``M`` **unlearned** models: the method run with seeds ``0..M-1`` on the original (with ``originals``:
  on ``M`` originals trained with seeds ``0..M-1``, as U-LiRA's "trained then unlearned" population
  needs; otherwise the randomness is the method's alone);
* ``M`` **retrained** models: Retrain on Dr with training seeds ``0..M-1`` (the original's recipe,
  calibration hold-out and data).

For every deleted pair it reads the attack signals of every model (:func:`graphdel.evaluation.suite.
pair_signals`: the pair's cosine similarity, its pool-64 reciprocal rank and pool loss, its matching
probability where the model has a head) and estimates, per signal
(:mod:`graphdel.evaluation.per_example`):

* the per-example ε of the NeurIPS 2023 unlearning challenge (unlearned against retrained models) and its
  forgetting score, with the same estimate for Retrain against itself (two halves of the retrained
  models) as the floor the estimator reaches with this many models;
* U-LiRA: half of each population are the shadows a per-example Gaussian likelihood ratio is fitted on,
  the other half the targets it is scored on; AUC and TPR at 1% and 0.1% FPR.

Every model is a run folder cached under ``$GRAPHDEL_CACHE/audit`` by (original weights, request, method,
settings, seed), so a second audit of the same request (another method, more models) trains only what it
lacks. Writes ``DIR/audit.json`` (numbers, per-example ε of the primary signal and its floor, the U-LiRA
ROC curves, the pairs with the highest ε) and ``DIR/epsilon.png`` / ``DIR/ulira_roc.png``, swapped in
whole like a report. ``graphdel report --audit DIR`` shows it (:mod:`graphdel.evaluation.audit_report`).

``audit.json`` (format :data:`AUDIT_FORMAT`, version :data:`AUDIT_VERSION`)::

    format, version                  "graphdel-audit", 2
    method, settings, models,        the audited method, its --set settings, M, --originals, the pools' seed
      originals, seed
    estimator                        {delta, alpha, cap, peaky_ratio, intervals} of the ε estimate
    original                         {path, weights_sha256}
    request                          the request (as a run's request.json)
    primary_signal                   the signal of per_example and highest_epsilon ("similarity")
    signals.<name>                   epsilon, epsilon_half, epsilon_floor: summaries (median, p90, max,
                                       share_at_cap, forgetting_score, examples); ulira, ulira_floor: auc,
                                       tpr_at {"0.01", "0.001"}, roc {fpr, tpr} (ulira_floor null below 8)
    per_example                      [{pair_id, epsilon, epsilon_floor}] of the primary signal, Df order
    highest_epsilon                  the 10 pairs with the highest ε: [{pair_id, text, epsilon, epsilon_floor}]
    unlearned_runs, retrained_runs   the cached run folders
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import graphdel.api as api
from graphdel.config import ConfigMixin
from graphdel.data.molecules import cache_dir
from graphdel.device import placed, resolve_device
from graphdel.errors import InvalidInputError
# AUDIT_FORMAT and AUDIT_VERSION (audit.json's "format" and "version") are defined with the file's reader,
# below this module (which trains and unlearns through graphdel.api); importable from here as before.
from graphdel.evaluation.audit_report import AUDIT_FORMAT, AUDIT_VERSION
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.per_example import PEAKY_RATIO, floor, per_example_epsilon, ulira
from graphdel.evaluation.suite import pair_signals
from graphdel.io import (atomic_write_bytes, atomic_write_json, cached_sha256_file, canonical_json_sha256,
                         staged_folder)
from graphdel.runs import Run, check_output

#: The signal the headline numbers are read from (the others are reported alongside).
PRIMARY_SIGNAL = "similarity"
#: Points of each stored U-LiRA ROC curve (log-spaced false-positive rates, see :meth:`ULiRAResult.curve`).
ROC_POINTS = 100


@dataclass
class AuditConfig(ConfigMixin):
    """Settings of :func:`run_audit`.

    Attributes:
        method: the unlearning method audited (``graphdel methods``).
        overrides: its ``--set`` settings.
        models: M, models of each kind (>= 4: U-LiRA needs two shadows and two targets per side).
        originals: train M originals (seeds 0..M-1) and unlearn each, instead of unlearning one original
            with M seeds.
        seed: seed of the pools the signals are read with.
        device: where models train, unlearn and are read (``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            :func:`graphdel.device.resolve_device`).
        progress: a progress bar counting models.
    """

    method: str = "multidelete"
    overrides: Sequence[str] = field(default_factory=list)
    models: int = 16
    originals: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    config_name = "audit config"  # how messages name it; from_dict/to_dict/with_overrides: graphdel.config


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def audit_models(original, request, config: AuditConfig, *, prepared=None,
                 cache: Path | None = None, log: Callable[[str], None] = lambda s: None):
    """The unlearned and retrained runs of the audit, trained or taken from the cache.

    Returns:
        ``(unlearned, retrained)``: two lists of :class:`~graphdel.runs.Run`, M each.
    """
    from tqdm import tqdm

    cache = cache or cache_dir() / "audit"
    prepared = prepared or api.load_run_data(original, progress=False)
    weights = cached_sha256_file(original.path / "model.safetensors")
    # the whole request, as report --audit compares it (check_audits): the same pair ids read from a copy of
    # the data at another path, or described otherwise, are another request, and reusing their models made
    # an audit that the report then refused as "of another deletion request"
    request_key = canonical_json_sha256(request.to_json(prepared.corpus))
    train_config = api.TrainConfig.from_dict(original.config["train"])
    model_config = api.ModelConfig.from_dict(original.config["model"])
    bar = tqdm(total=2 * config.models + (config.models if config.originals else 0), desc="audit models",
               unit="model", disable=not config.progress)

    def cached(folder: Path, make: Callable[[Path], Any]):
        if folder.is_dir():
            run = Run.load(folder)
        else:
            run = make(folder)
        bar.update(1)
        return run

    unlearned, retrained = [], []
    for seed in range(config.models):
        start = original
        if config.originals:
            if seed > 0:  # seed 0 is the original itself
                recipe = replace(train_config, seed=seed, device=config.device)
                start = cached(cache / f"original-{_key(weights, 'original', seed)}",
                               lambda out: api.train(api.data_config_of(original), recipe, model_config, out=out,
                                                     progress=False, prepared=prepared))
            else:
                bar.update(1)
        start_weights = cached_sha256_file(start.path / "model.safetensors")  # hashed once per process
        folder = cache / f"unlearned-{_key(start_weights, request_key, config.method, list(config.overrides), seed)}"
        unlearned.append(cached(folder, lambda out: api.forget(
            start, request, method=config.method, overrides=list(config.overrides) or None, out=out, seed=seed,
            device=config.device, progress=False, prepared=prepared)))
        recipe = replace(train_config, seed=seed, device=config.device)
        retrained.append(cached(cache / f"retrained-{_key(weights, request_key, seed)}", lambda out: api.forget(
            original, request, method="retrain", out=out, seed=seed, device=config.device, progress=False,
            prepared=prepared, retrain_fn=lambda p, dr: api.retrain_model(p, dr, model_config, recipe,
                                                                          progress=False))))
    bar.close()
    log(f"{len(unlearned)} unlearned and {len(retrained)} retrained models")
    return unlearned, retrained


def signal_matrices(runs, prepared, df_rows: Sequence[int], *, seed: int = 0, device: str = "auto"
                    ) -> dict[str, np.ndarray]:
    """``{signal name: [len(runs), |Df|] array}``: each run's attack signals on the deleted pairs
    (similarity, pool reciprocal rank, pool loss, matching probability when every model has a head), in
    the order of ``df_rows``; each model is read on ``device`` (moved there and back)."""
    pairs = prepared.data.subset(sorted(df_rows), "forget")
    out: dict[str, list[np.ndarray]] = {}
    for run in runs:
        with placed(run.model, device) as model:
            distractors = embed_pairs(model, prepared.distractors())
            sig = pair_signals(model, pairs, distractors, seed=seed)
        named = {"similarity": sig.similarity, "pool_reciprocal_rank": sig.pool_reciprocal_rank,
                 "pool_loss": sig.pool_loss, "match_prob": sig.match_prob}
        for name, values in named.items():
            if values is not None:
                out.setdefault(name, []).append(np.asarray(values, dtype=float))
    return {name: np.stack(rows) for name, rows in out.items() if len(rows) == len(runs)}


def _split(matrix: np.ndarray, parts: int) -> list[np.ndarray]:
    """``matrix``'s rows (models) cut into ``parts`` equal consecutive groups (a remainder is dropped)."""
    size = matrix.shape[0] // parts
    return [matrix[i * size:(i + 1) * size] for i in range(parts)]


def estimate(unlearned: np.ndarray, retrained: np.ndarray) -> dict[str, Any]:
    """Every estimate of one signal: ``unlearned`` and ``retrained`` are ``[M, N]`` signal matrices.

    The per-example ε of the unlearned against the retrained models, the same with half of each (``M/2``
    against ``M/2``: the number of models its floor has) and the floor (the retrained models' two halves
    against each other: what the estimator reads when there is nothing to find at that number); U-LiRA with the first half of each population as shadows and the second as targets, and
    its floor (the retrained models in four quarters: in-shadows, in-targets, out-shadows, out-targets;
    ``None`` below 8 models, when a quarter would hold fewer than the 2 models a fit needs).
    """
    eps = per_example_epsilon(unlearned, retrained)
    half = unlearned.shape[0] // 2, retrained.shape[0] // 2
    eps_half = per_example_epsilon(unlearned[:half[0]], retrained[:half[1]])
    eps_floor = floor(retrained)
    shadow_in, target_in = _split(unlearned, 2)
    shadow_out, target_out = _split(retrained, 2)
    attack = ulira(target_in, target_out, shadow_in, shadow_out)
    q = _split(retrained, 4)
    attack_floor = ulira(q[1], q[3], q[0], q[2]) if retrained.shape[0] >= 8 else None
    return {"epsilon": eps, "epsilon_half": eps_half, "epsilon_floor": eps_floor, "ulira": attack,
            "ulira_floor": attack_floor}


def run_audit(original, request, config: AuditConfig, out: str | Path, *, overwrite: bool = False,
              log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Audit ``config.method`` on ``request`` from the trained run ``original`` and write ``out``
    (``audit.json``, ``epsilon.png``, ``ulira_roc.png``; see the module docstring).

    Returns:
        the contents of ``audit.json``.

    Raises:
        InvalidInputError: fewer than 4 models.
    """
    if config.models < 4:
        raise InvalidInputError(f"--models must be at least 4 (two shadows and two targets per side), "
                                f"got {config.models}")
    check_output(out, reads=[original.path], overwrite=overwrite)
    resolve_device(config.device)  # CUDA asked for without a GPU: said before any work
    prepared = api.load_run_data(original, progress=False)
    unlearned, retrained = audit_models(original, request, config, prepared=prepared, log=log)
    corpus = prepared.corpus
    df_rows = sorted(request.rows(corpus))
    log("reading the signals of every model on the deleted pairs")
    s_u = signal_matrices(unlearned, prepared, df_rows, seed=config.seed, device=config.device)
    s_r = signal_matrices(retrained, prepared, df_rows, seed=config.seed, device=config.device)
    signals = {}
    for name in s_u:
        if name in s_r:
            signals[name] = estimate(s_u[name], s_r[name])
    primary = signals[PRIMARY_SIGNAL]["epsilon"]
    primary_floor = signals[PRIMARY_SIGNAL]["epsilon_floor"]
    order = np.argsort(-primary.epsilon, kind="stable")[:10]
    result = {
        "format": AUDIT_FORMAT, "version": AUDIT_VERSION,
        "method": config.method, "settings": list(config.overrides), "models": config.models,
        "originals": config.originals, "seed": config.seed,
        "estimator": {"delta": primary.delta, "alpha": primary.alpha, "cap": primary.cap,
                      "peaky_ratio": PEAKY_RATIO, "intervals": primary.intervals},
        "original": {"path": str(original.path.resolve()),
                     "weights_sha256": cached_sha256_file(original.path / "model.safetensors")},
        "request": request.to_json(corpus),
        "primary_signal": PRIMARY_SIGNAL,
        "signals": {name: _jsonable(parts) for name, parts in signals.items()},
        "per_example": [{"pair_id": corpus.pair_ids[r], "epsilon": float(e), "epsilon_floor": float(f)}
                        for r, e, f in zip(df_rows, primary.epsilon, primary_floor.epsilon)],
        "highest_epsilon": [{"pair_id": corpus.pair_ids[df_rows[i]], "text": corpus.texts[df_rows[i]],
                             "epsilon": float(primary.epsilon[i]), "epsilon_floor": float(primary_floor.epsilon[i])}
                            for i in order],
        "unlearned_runs": [str(r.path) for r in unlearned], "retrained_runs": [str(r.path) for r in retrained],
    }
    with staged_folder(Path(out), overwrite=overwrite) as folder:
        atomic_write_json(result, folder / "audit.json")
        atomic_write_bytes(_epsilon_plot(signals[PRIMARY_SIGNAL], config.method), folder / "epsilon.png")
        atomic_write_bytes(_roc_plot(signals, config.method), folder / "ulira_roc.png")
    return result


def _attack_json(attack) -> dict[str, Any]:
    """A U-LiRA result as JSON: AUC, TPR at each FPR and the ROC at :data:`ROC_POINTS` FPRs (for plots)."""
    fpr, tpr = attack.curve(ROC_POINTS)
    return {"auc": attack.auc, "tpr_at": {str(k): v for k, v in attack.tpr_at.items()},
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}}


def _jsonable(parts: dict[str, Any]) -> dict[str, Any]:
    """The estimates of one signal as JSON: summaries, forgetting scores and U-LiRA (per-example ε is
    listed once, for the primary signal, under ``per_example``)."""
    eps, eps_floor, attack, attack_floor = (parts["epsilon"], parts["epsilon_floor"], parts["ulira"],
                                            parts["ulira_floor"])
    return {"epsilon": {**eps.summary(), "forgetting_score": eps.forgetting_score},
            "epsilon_half": parts["epsilon_half"].summary(),
            "epsilon_floor": {**eps_floor.summary(), "forgetting_score": eps_floor.forgetting_score},
            "ulira": _attack_json(attack),
            "ulira_floor": None if attack_floor is None else _attack_json(attack_floor)}


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _epsilon_plot(parts: dict[str, Any], method: str) -> bytes:
    """Histogram of the per-example ε of ``method`` against the floor (Retrain against itself)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps, eps_floor = parts["epsilon"].epsilon, parts["epsilon_floor"].epsilon
    top = max(float(np.max(eps)), float(np.max(eps_floor)), 1e-6)
    bins = np.linspace(0, top, 21)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(eps_floor, bins=bins, alpha=0.6, label="Retrain vs Retrain (floor)", color="grey")
    ax.hist(eps, bins=bins, alpha=0.6, label=f"{method} vs Retrain", color="#d62728")
    ax.set_xlabel("per-example ε (similarity signal)")
    ax.set_ylabel("deleted pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _roc_plot(signals: dict[str, dict[str, Any]], method: str) -> bytes:
    """U-LiRA ROC curves on log axes, one per signal, and the primary signal's floor (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, parts in signals.items():
        attack = parts["ulira"]
        ax.plot(np.maximum(attack.fpr, 1e-4), np.maximum(attack.tpr, 1e-4), label=f"{name} (AUC {attack.auc:.2f})")
    floor_attack = signals[PRIMARY_SIGNAL]["ulira_floor"]
    if floor_attack is not None:
        ax.plot(np.maximum(floor_attack.fpr, 1e-4), np.maximum(floor_attack.tpr, 1e-4), ls="--", color="grey",
                label=f"floor, {PRIMARY_SIGNAL} (AUC {floor_attack.auc:.2f})")
    ax.plot([1e-4, 1], [1e-4, 1], color="black", lw=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"U-LiRA on {method}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
