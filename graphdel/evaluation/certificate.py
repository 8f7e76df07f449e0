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
