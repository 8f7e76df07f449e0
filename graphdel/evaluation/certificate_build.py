"""Building deletion certificates: what a certificate records (:func:`build_certificate`, written by
``forget`` into the run folder) and the evaluated certificate of a report (:func:`evaluated_certificate`).

The format of both kinds is described in :mod:`graphdel.evaluation.certificate`, which imports these names
with those of verification (:mod:`graphdel.evaluation.certificate_verify`). Building sits below the
evaluation suite, which writes evaluated certificates; verification sits above it, since it re-evaluates
models with the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

from graphdel.models.protocol import ModalityModule
from graphdel.io import canonical_json_sha256, sha256_file
from graphdel.runs import is_quick_config

CERTIFICATE_VERSION = 3
#: ``passed`` of each target and ``verdict`` of an evaluated certificate of a smoke run (a ``--quick``
#: original, :func:`graphdel.runs.is_quick_config`): what the report's verdict reads
#: (:data:`graphdel.evaluation.report.NOT_JUDGED`, which a test holds equal).
NOT_JUDGED = "not judged"

#: Fields a certificate of the ``"forget"`` kind asserts (dotted paths into the JSON object).
_FORGET_FIELDS = (
    "version", "kind", "request", "request_sha256", "method", "method_config", "config_sha256",
    "data.source", "data.content_hash", "original_weights_sha256", "unlearned_weights_sha256",
    "procedure.steps", "procedure.epochs_run", "procedure.selected_epoch", "procedure.param_change_norm",
    "procedure.structural_change", "metrics.splits", "previous_certificate_sha256",
)
#: Fields an ``"evaluated"`` certificate asserts on top of those.
_EVALUATED_FIELDS = _FORGET_FIELDS + (
    "unlearned_path", "original_path", "evaluation.seed", "evaluation.pool_size", "evaluation.chunks",
    "evaluation.reference", "evaluation.reference_weights_sha256", "evaluation.splits",
    "evaluation.distinguishability", "evaluation.attack_auc", "evaluation.vs_retrain", "evaluation.thresholds",
    "evaluation.verdict",
)
#: ``{version: {kind: fields}}``: every field must be present (``null`` is a value); a removed field fails
#: verification exactly as an edited one does. Version 3 adds ``evaluation.audit``.
REQUIRED_FIELDS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {"forget": _FORGET_FIELDS, "evaluated": _EVALUATED_FIELDS},
    3: {"forget": _FORGET_FIELDS, "evaluated": _EVALUATED_FIELDS + ("evaluation.audit",)},
}
#: The fields of one ``evaluation.audit`` entry.
AUDIT_ENTRY_FIELDS = ("file", "sha256", "method", "settings", "models", "originals", "request_sha256",
                      "original_weights_sha256")

#: The arguments :func:`graphdel.api.forget` evaluates retrieval with (the sets drawn with the forget seed).
FORGET_POOL_SIZE = 64
FORGET_POOL_SEED = 0

_WEIGHTS = "model.safetensors"


# ------------------------------------------------------------------------------ what a certificate records

#: The retrieval keys of a split that are certified and re-checked by :func:`verify_certificate`.
_RETRIEVAL_KEYS = ("g2t", "t2g", "n")


def retrieval_only(splits: dict) -> dict:
    """The retrieval part (``g2t``, ``t2g``, ``pool<k>``, ``n``) of a ``splits`` dict; splits without any
    (a KG model's link-prediction-only splits such as ``collateral@1``) are left out."""
    out = {name: {k: v for k, v in split.items() if k in _RETRIEVAL_KEYS or k.startswith("pool")}
           for name, split in splits.items()}
    return {name: split for name, split in out.items() if split}


def structural_change(original, forget) -> str | None:
    """What removing the pair set ``forget`` takes away from the training data ``original`` stores (a KG
    model's graph of training triples, through its ``forget_structure`` hook), as the certificate's
    ``procedure.structural_change``: ``"N stored facts removed"``, or ``None`` for a model that stores
    none of it. ``original`` is not modified (a copy is)."""
    import copy

    if type(original).forget_structure is ModalityModule.forget_structure:  # stores nothing: skip the copy
        return None
    removed = int(copy.deepcopy(original).forget_structure(forget) or 0)
    return f"{removed} stored facts removed" if removed else None


def parent_certificate_sha256(parent: str | Path) -> str | None:
    """SHA-256 of ``parent/certificate.json`` when the run folder ``parent`` is an unlearned run that has
    one, else ``None`` (a trained run is where a chain of certificates starts; an unreadable config.json
    names no kind, so it is not taken for one)."""
    parent = Path(parent)
    config = _read_json(parent / "config.json")
    cert = parent / "certificate.json"
    is_unlearned = isinstance(config, dict) and config.get("kind") == "forget"
    return sha256_file(cert) if is_unlearned and cert.is_file() else None


def build_certificate(folder: str | Path, *, original_weights_sha256: str, procedure: dict,
                      previous_certificate_sha256: str | None) -> dict:
    """The certificate of the unlearned run in ``folder`` (its files must be written already).

    Args:
        folder: the unlearned run folder (``model.safetensors``, ``config.json``, ``request.json``,
            ``metrics.json``).
        original_weights_sha256: hash of the weights the request was unlearned from.
        procedure: what the run did (``steps``, ``epochs_run``, ``selected_epoch`` from the method's
            ``selected`` description, ``param_change_norm`` as :func:`graphdel.runs.parameter_change_norm`
            of the two models, ``structural_change`` as :func:`structural_change`).
        previous_certificate_sha256: :func:`parent_certificate_sha256` of the parent run.

    Raises:
        KeyError: ``procedure`` lacks one of its fields.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8")) or {}
    return {
        "version": CERTIFICATE_VERSION,
        "kind": "forget",
        "request": request,
        "request_sha256": canonical_json_sha256(request),
        "method": config.get("method"),
        "method_config": config.get("method_config", {}),
        "config_sha256": canonical_json_sha256(config),
        "data": {"source": config["data"]["source"], "content_hash": config["data"]["content_hash"]},
        "original_weights_sha256": original_weights_sha256,
        "unlearned_weights_sha256": sha256_file(folder / _WEIGHTS),
        "procedure": {k: procedure[k] for k in ("steps", "epochs_run", "selected_epoch", "param_change_norm",
                                                "structural_change")},
        "metrics": {"splits": retrieval_only(metrics.get("splits") or {})},
        "previous_certificate_sha256": previous_certificate_sha256,
    }


# ------------------------------------------------------------------------------ evaluated certificates

def _certified_flat(splits: dict, distinguishability, attack_auc) -> dict:
    """The forget-side numbers an evaluated certificate attests, as the flat dotted keys of
    :func:`graphdel.evaluation.summary.forget_gap` (``splits.forget.pool64.g2t_mrr``,
    ``distinguishability.mean``, ``membership.attack_auc``)."""
    from graphdel.evaluation.summary import flatten

    return flatten({"splits": {"forget": retrieval_only(splits).get("forget", {})},
                    "distinguishability": {"mean": distinguishability},
                    "membership": {"attack_auc": attack_auc}})


def _verdict(thresholds: dict, smoke: bool = False) -> bool | str | None:
    """True when every target passed, False when one failed, None when one could not be judged or
    there are none (no Retrain reference); :data:`NOT_JUDGED` for targets of a ``smoke`` run (or targets
    whose ``passed`` reads it)."""
    values = [t.get("passed") if isinstance(t, dict) else None for t in thresholds.values()]
    if values and (smoke or NOT_JUDGED in values):
        return NOT_JUDGED
    return None if not values or any(v is None for v in values) else all(values)


def _not_judged(thresholds: dict) -> dict:
    """``thresholds`` with each target's ``passed`` replaced by :data:`NOT_JUDGED` (a smoke run: the
    values and limits are kept, as the report shows them)."""
    return {name: {**t, "passed": NOT_JUDGED} if isinstance(t, dict) else t for name, t in thresholds.items()}


def evaluated_certificate(run_path: str | Path, *, entry: dict, seed: int, pool_size: int = 64, chunks: int = 5,
                          reference_path: str | Path | None = None, reference_weights_sha256: str | None = None,
                          vs_retrain: dict | None = None, thresholds: dict | None = None,
                          original_path: str | Path | None = None, audits: list[dict] | None = None) -> dict:
    """The certificate of an unlearned run with the evaluation part filled in.

    It is written into a report folder (``DIR/certificates/<run>.json``), never into the run folder.

    Args:
        run_path: the unlearned run folder.
        entry: the run's suite entry (:func:`graphdel.evaluation.suite.evaluate_model`).
        seed, pool_size, chunks: the suite's settings (:class:`~graphdel.evaluation.suite.SuiteConfig`),
            re-used by :func:`verify_certificate` to re-evaluate.
        reference_path, reference_weights_sha256: the Retrain run the metrics are judged against.
        vs_retrain: forget-side gaps to Retrain (the entry's ``vs_retrain``); only the certified metrics'
            gaps are kept.
        thresholds: :func:`graphdel.evaluation.summary.thresholds` of the run. For a run of a ``--quick``
            original (:func:`graphdel.runs.is_quick_config` of its config.json, which records the original's
            data block) each ``passed`` and the verdict are :data:`NOT_JUDGED`, as in the report.
        original_path: the original run folder (default: the run's parent).
        audits: the per-example privacy audits of the run's method
            (:func:`graphdel.evaluation.audit_report.certificate_entry`), recorded as ``evaluation.audit``.
    """
    from graphdel.errors import RunError

    run_path = Path(run_path)
    config = json.loads((run_path / "config.json").read_text(encoding="utf-8"))
    parent = config.get("parent") or {}
    original = Path(original_path) if original_path else Path(parent.get("path", ""))
    # The procedure is the forget run's own record (it needs the models and the data as they were then);
    # verification recomputes it, so a record altered since fails there.
    own = _read_json(run_path / "certificate.json")
    if not isinstance(own, dict) or not isinstance(own.get("procedure"), dict):
        raise RunError(f"{run_path / 'certificate.json'}: missing, unreadable or from before version "
                       f"{CERTIFICATE_VERSION} (no 'procedure'); re-run graphdel forget to certify this run")
    cert = build_certificate(run_path, original_weights_sha256=parent.get("weights_sha256", ""),
                             procedure=own["procedure"],
                             previous_certificate_sha256=parent_certificate_sha256(parent["path"]))
    cert["kind"] = "evaluated"
    cert["unlearned_path"] = str(run_path.resolve())
    cert["original_path"] = str(original.resolve())
    splits = retrieval_only(entry.get("splits") or {})
    distinguishability = (entry.get("distinguishability") or {}).get("mean")
    attack_auc = (entry.get("membership") or {}).get("attack_auc")
    certified = _certified_flat(splits, distinguishability, attack_auc)
    smoke = is_quick_config(config)
    targets = _not_judged(thresholds or {}) if smoke else (thresholds or {})
    cert["evaluation"] = {
        "seed": seed, "pool_size": pool_size, "chunks": chunks,
        "reference": str(Path(reference_path).resolve()) if reference_path else None,
        "reference_weights_sha256": reference_weights_sha256,
        "splits": splits,
        "distinguishability": distinguishability,
        "attack_auc": attack_auc,
        "vs_retrain": {k: v for k, v in (vs_retrain or {}).items() if k in certified},
        "thresholds": targets,
        "verdict": _verdict(targets, smoke),
        "audit": list(audits or []),
    }
    return cert


def _read_json(path: Path):
    """Parsed JSON of ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    # ValueError: bad JSON or non-UTF-8 bytes; RecursionError: absurdly nested brackets
    except (OSError, ValueError, RecursionError):
        return None
