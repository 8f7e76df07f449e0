"""Integrity records of run folders: the SHA-256 of a trained run's weights and ``config.json`` written when
it is made (:func:`write_integrity`), and which recorded files changed since (:func:`integrity_changes`; an
unlearned run's record is its certificate). Every name is imported from :mod:`graphdel.runs` too.
"""

from __future__ import annotations

import json
from pathlib import Path

from graphdel.io import atomic_write_json, cached_sha256_file, canonical_json_sha256

#: The integrity record of a trained run: ``{"version": 1, "sha256": {"model.safetensors": hex,
#: "config.json": hex}}``, hashes of the files' bytes. A separate file, so that config.json's own hash
#: (which certificates carry) stays well-defined.
INTEGRITY_FILE = "integrity.json"
#: The files whose hashes a run's integrity record holds.
INTEGRITY_FILES = ("model.safetensors", "config.json")


def write_integrity(folder: str | Path) -> None:
    """Write :data:`INTEGRITY_FILE` into a trained run's staging folder, after every other file: the
    SHA-256 of the weights and of ``config.json`` as written."""
    folder = Path(folder)
    atomic_write_json({"version": 1, "sha256": {name: cached_sha256_file(folder / name) for name in INTEGRITY_FILES}},
                      folder / INTEGRITY_FILE)


def integrity_changes(path: str | Path) -> list[dict] | None:
    """The recorded files of the run at ``path`` that changed since it was written, or None when it has no
    record (a run written before graphdel recorded one).

    A trained run's record is :data:`INTEGRITY_FILE` (hashes of the files' bytes). An unlearned run's is
    its ``certificate.json``: ``unlearned_weights_sha256`` (the weights' bytes) and ``config_sha256`` (the
    canonical JSON of ``config.json``, as the certificate hashes it).

    Returns:
        One ``{"file", "record", "recorded_sha256", "sha256"}`` per changed file (an unreadable record
        counts as a change of the record itself, with ``recorded_sha256`` None); empty when nothing changed.
    """
    path = Path(path)

    def read(name: str):
        try:
            return json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None

    def file_sha(name: str) -> str | None:
        try:
            return cached_sha256_file(path / name)
        except OSError:
            return None

    if (path / INTEGRITY_FILE).is_file():
        record = read(INTEGRITY_FILE)
        recorded = record.get("sha256") if isinstance(record, dict) else None
        if not isinstance(recorded, dict) or not all(isinstance(recorded.get(f), str) for f in INTEGRITY_FILES):
            return [{"file": INTEGRITY_FILE, "record": INTEGRITY_FILE, "recorded_sha256": None,
                     "sha256": file_sha(INTEGRITY_FILE)}]
        found = {name: file_sha(name) for name in INTEGRITY_FILES}
        return [{"file": name, "record": INTEGRITY_FILE, "recorded_sha256": recorded[name], "sha256": found[name]}
                for name in INTEGRITY_FILES if found[name] != recorded[name]]
    config = read("config.json")
    if not (isinstance(config, dict) and config.get("kind") == "forget" and (path / "certificate.json").is_file()):
        return None
    cert = read("certificate.json")
    if not isinstance(cert, dict) or not all(isinstance(cert.get(k), str)
                                             for k in ("unlearned_weights_sha256", "config_sha256")):
        return [{"file": "certificate.json", "record": "certificate.json", "recorded_sha256": None,
                 "sha256": file_sha("certificate.json")}]
    found = {"model.safetensors": file_sha("model.safetensors"), "config.json": canonical_json_sha256(config)}
    recorded = {"model.safetensors": cert["unlearned_weights_sha256"], "config.json": cert["config_sha256"]}
    return [{"file": name, "record": "certificate.json", "recorded_sha256": recorded[name], "sha256": found[name]}
            for name in INTEGRITY_FILES if found[name] != recorded[name]]
