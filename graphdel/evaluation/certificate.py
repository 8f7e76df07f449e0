"""The deletion certificate: what was deleted, from which weights, into which weights, by what method.

``certificate.json`` holds the request (pair ids and content hashes), SHA-256 of the original and the
unlearned weights, of the resolved config and of the request, the method and its config, and -- when a
Retrain reference was evaluated -- the metrics against it and which thresholds passed.
``graphdel verify CERT`` recomputes every hash (and the metrics, when they were certified) and says
whether the certificate still holds.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from graphdel.io import sha256_file

CERTIFICATE_VERSION = 1


def canonical_json_sha256(obj) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def build_certificate(folder: str | Path, *, original_weights_sha256: str, evaluation: dict | None = None) -> dict:
    """The certificate of the unlearned run in ``folder`` (its files must be written already).

    Args:
        folder: the unlearned run folder (``model.safetensors``, ``config.json``, ``request.json``).
        original_weights_sha256: hash of the weights the request was unlearned from.
        evaluation: optional ``{"reference": path, "metrics": {...}, "thresholds": {...}}``.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    request = json.loads((folder / "request.json").read_text())
    cert = {
        "version": CERTIFICATE_VERSION,
        "request": request,
        "request_sha256": canonical_json_sha256(request),
        "method": config.get("method"),
        "method_config": config.get("method_config", {}),
        "config_sha256": canonical_json_sha256(config),
        "data": {"source": config["data"]["source"], "content_hash": config["data"]["content_hash"]},
        "original_weights_sha256": original_weights_sha256,
        "unlearned_weights_sha256": sha256_file(folder / "model.safetensors"),
    }
    if evaluation is not None:
        cert["evaluation"] = evaluation
    return cert


# ------------------------------------------------------------------------------ evaluated certificates

#: The retrieval keys of a split that are certified and re-checked by :func:`verify_certificate`.
_RETRIEVAL_KEYS = ("g2t", "t2g", "n")


def retrieval_only(splits: dict) -> dict:
    """The retrieval part (``g2t``, ``t2g``, ``pool<k>``, ``n``) of a ``splits`` dict."""
    return {name: {k: v for k, v in split.items() if k in _RETRIEVAL_KEYS or k.startswith("pool")}
            for name, split in splits.items()}


def evaluated_certificate(run_path: str | Path, *, entry: dict, seed: int, pool_size: int = 64,
                          reference_path: str | Path | None = None, reference_weights_sha256: str | None = None,
                          vs_retrain: dict | None = None, thresholds: dict | None = None,
                          original_path: str | Path | None = None) -> dict:
    """The certificate of an unlearned run with the evaluation part filled in.

    It is written into a report folder (``DIR/certificates/<run>.json``), never into the run folder.

    Args:
        run_path: the unlearned run folder.
        entry: the run's suite entry (:func:`graphdel.evaluation.suite.evaluate_model`).
        seed: the seed of the evaluation sets and pools (re-used by :func:`verify_certificate`).
        pool_size: pool size of pool-k retrieval.
        reference_path, reference_weights_sha256: the Retrain run the metrics are judged against.
        vs_retrain: forget-side gaps to Retrain.
        thresholds: :func:`graphdel.evaluation.summary.thresholds` of the run.
        original_path: the original run folder.
    """
    run_path = Path(run_path)
    config = json.loads((run_path / "config.json").read_text())
    parent = config.get("parent") or {}
    cert = build_certificate(run_path, original_weights_sha256=parent.get("weights_sha256", ""))
    cert["unlearned_path"] = str(run_path.resolve())
    cert["original_path"] = str(Path(original_path).resolve()) if original_path else parent.get("path")
    passed = None
    if thresholds:
        values = [t.get("passed") for t in thresholds.values()]
        passed = None if any(v is None for v in values) else all(values)
    cert["evaluation"] = {
        "seed": seed, "pool_size": pool_size,
        "reference": str(Path(reference_path).resolve()) if reference_path else None,
        "reference_weights_sha256": reference_weights_sha256,
        "metrics": {"splits": retrieval_only(entry.get("splits") or {}),
                    "distinguishability": (entry.get("distinguishability") or {}).get("mean"),
                    "attack_auc": (entry.get("membership") or {}).get("attack_auc")},
        "vs_retrain": vs_retrain or {},
        "thresholds": thresholds or {},
        "all_thresholds_passed": passed,
    }
    return cert


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_certificate`: ``checks`` are ``(name, ok, detail)`` with ``ok`` True,
    False, or None for a check that could not be made (e.g. the original weights are not reachable)."""

    checks: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """True when no check failed (checks that could not be made do not count against it)."""
        return all(ok is not False for _, ok, _ in self.checks)

    @property
    def failed(self) -> list:
        """The ``(name, False, detail)`` checks that failed."""
        return [c for c in self.checks if c[1] is False]


def _compare(recorded, actual, tol: float, prefix: str = "") -> list[str]:
    diffs = []
    if isinstance(recorded, dict):
        if not isinstance(actual, dict):
            return [f"{prefix or 'metrics'} missing"]
        for k, v in recorded.items():
            diffs += _compare(v, actual.get(k), tol, f"{prefix}.{k}" if prefix else str(k))
        return diffs
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool):
        if not isinstance(actual, (int, float)) or not math.isfinite(float(actual)) \
                or abs(float(recorded) - float(actual)) > tol:
            diffs.append(f"{prefix}: recorded {recorded!r}, recomputed {actual!r}")
    return diffs


def _locate_run(cert: dict, cert_path: Path) -> Path | None:
    recorded = cert.get("unlearned_path")
    if isinstance(recorded, str) and recorded and (Path(recorded) / "model.safetensors").is_file():
        return Path(recorded)
    if (cert_path.parent / "model.safetensors").is_file():
        return cert_path.parent
    return None


def verify_certificate(cert_path: str | Path, *, tolerance: float = 1e-6, metrics: bool = True,
                       progress: bool = False) -> VerifyResult:
    """Recompute what a certificate states and say whether it still holds.

    Checks: ``weights`` (SHA-256 of the unlearned weights, found at the recorded ``unlearned_path`` or next
    to the certificate), ``config`` (canonical hash of the run's ``config.json``), ``request`` (the
    certificate's request and the run's ``request.json`` against ``request_sha256``), ``original_weights``
    (when the original run is reachable), ``data`` (the corpus still hashes as recorded and every requested
    pair still has its content hash) and ``metrics`` (retrieval re-evaluated on the same pairs and seeds,
    each number within ``tolerance`` of the certified one; a certificate without an evaluation part is
    checked against the run's ``metrics.json``).

    Raises:
        RunError: the certificate cannot be read.
    """
    from graphdel.errors import GraphdelError, RunError

    cert_path = Path(cert_path)
    try:
        cert = json.loads(cert_path.read_text(encoding="utf-8"))
    # ValueError: bad JSON or non-UTF-8 bytes; RecursionError: absurdly nested brackets (a file from elsewhere)
    except (OSError, ValueError, RecursionError) as e:
        raise RunError(f"cannot read certificate {cert_path}: {type(e).__name__}: {e}") from e
    if not isinstance(cert, dict) or "unlearned_weights_sha256" not in cert:
        raise RunError(f"{cert_path} is not a graphdel deletion certificate")
    res = VerifyResult()
    add = lambda name, ok, detail: res.checks.append((name, ok, detail))
    run_path = _locate_run(cert, cert_path)
    if run_path is None:
        add("weights", False, f"unlearned run not found (recorded path {cert.get('unlearned_path')!r}, "
                              f"nor next to {cert_path})")
        return res
    actual = sha256_file(run_path / "model.safetensors")
    add("weights", actual == cert["unlearned_weights_sha256"],
        f"{run_path / 'model.safetensors'}: sha256 {actual[:16]}… "
        + ("matches" if actual == cert["unlearned_weights_sha256"]
           else f"!= certified {cert['unlearned_weights_sha256'][:16]}…"))
    try:
        config = json.loads((run_path / "config.json").read_text())
        ok = canonical_json_sha256(config) == cert.get("config_sha256")
        add("config", ok, "config.json " + ("matches" if ok else "differs from the certified hash"))
    except (OSError, json.JSONDecodeError) as e:
        config = None
        add("config", False, f"config.json unreadable: {e}")
    try:
        run_request = json.loads((run_path / "request.json").read_text())
        ok = (canonical_json_sha256(cert.get("request")) == cert.get("request_sha256")
              == canonical_json_sha256(run_request))
        add("request", ok, "request " + ("matches" if ok else "differs from the certified hash"))
    except (OSError, json.JSONDecodeError) as e:
        add("request", False, f"request.json unreadable: {e}")
    original = cert.get("original_path") or ((config or {}).get("parent") or {}).get("path")
    if isinstance(original, str) and original and (Path(original) / "model.safetensors").is_file():
        actual = sha256_file(Path(original) / "model.safetensors")
        ok = actual == cert.get("original_weights_sha256")
        add("original_weights", ok, f"{original}: " + ("matches" if ok else "differs from the certified hash"))
    else:
        add("original_weights", None, f"original run not reachable ({original!r}); not checked")
    if not metrics or config is None:
        return res
    evaluation = cert.get("evaluation") or {}
    try:
        from graphdel import api
        from graphdel.runs import Run

        run = Run.load(run_path)
        prepared = api.load_run_data(run, progress=progress)
        add("data", True, f"corpus {run.data_source} hashes as recorded")
        request = api._load_request_any(prepared, run_path / "request.json")
        bad = request.verify_hashes(prepared.corpus) if request.pair_hashes else []
        add("request_content", not bad, "every requested pair hashes as recorded" if not bad
            else f"{len(bad)} requested pairs changed: {bad[:5]}")
        if evaluation.get("metrics"):
            recorded = evaluation["metrics"]["splits"]
            seed, pool_seed, label = int(evaluation.get("seed", 0)), int(evaluation.get("seed", 0)), "certified"
        else:
            recorded = retrieval_only(run.metrics.get("splits") or {})
            seed, pool_seed, label = int(config.get("seed", 0)), 0, "metrics.json (no certified evaluation)"
        from graphdel.evaluation.suite import retrieval_metrics

        sets = api.evaluation_sets(prepared, request.rows(prepared.corpus), seed)
        again = retrieval_metrics(run.model, {k: v for k, v in sets.items() if k in recorded},
                                  pool_size=int(evaluation.get("pool_size", 64)), seed=pool_seed)
        diffs = _compare(recorded, again, tolerance)
        add("metrics", not diffs, f"retrieval re-evaluated, {label}: " + (
            f"all within {tolerance:g}" if not diffs else "; ".join(diffs[:5])
            + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else "")))
    except GraphdelError as e:
        add("metrics", False, f"could not re-evaluate: {e}")
    except Exception as e:  # a corrupted weights file can fail to load in many ways
        add("metrics", False, f"could not re-evaluate: {type(e).__name__}: {e}")
    return res
