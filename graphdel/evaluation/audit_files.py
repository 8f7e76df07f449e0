"""The ``graphdel audit`` folders a report reads (``--audit DIR``): each ``audit.json`` read with its SHA-256
and checked key by key before anything is drawn from it, the audits checked against the report's request
and original, and what a certificate and ``metrics.json`` record of them.
:mod:`graphdel.evaluation.audit_report`, which renders them, imports every name from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from graphdel.errors import InvalidInputError, shorten
from graphdel.io import canonical_json_sha256

#: The file a ``graphdel audit`` folder holds its numbers in.
AUDIT_FILE = "audit.json"
#: ``audit.json``'s ``format`` and ``version`` (2: per-example floor ε, ROC curves and the estimator's
#: settings recorded). Defined here, with the reader of the file: :mod:`graphdel.audit`, which writes it,
#: trains and unlearns models through :mod:`graphdel.api` and so sits above the report; it imports them.
AUDIT_FORMAT = "graphdel-audit"
AUDIT_VERSION = 2
#: Keys of ``audit.json`` the report reads (format 2 of :mod:`graphdel.audit`).
_REQUIRED = ("method", "settings", "models", "originals", "estimator", "original", "request", "primary_signal",
             "signals", "per_example", "highest_epsilon", "retrained_runs")


@dataclass(frozen=True)
class AuditFile:
    """One ``graphdel audit`` folder read for a report.

    Attributes:
        path: its ``audit.json``, resolved.
        sha256: SHA-256 of the bytes read (the numbers shown are parsed from those same bytes).
        data: the parsed ``audit.json``.
        label: the name the report shows it under (:func:`read_audits` makes labels unique).
    """

    path: Path
    sha256: str
    data: dict
    label: str


def _label(data: Mapping[str, Any]) -> str:
    """``method`` plus what sets the audit apart from another of the same method: ``--originals`` and the
    ``--set`` settings (e.g. ``multidelete (16 originals)``, ``ft [epochs=1]``)."""
    label = str(data["method"])
    if data.get("originals"):
        label += f" ({data['models']} originals)"
    if data.get("settings"):
        label += " [" + " ".join(str(s) for s in data["settings"]) + "]"
    return label


def read_audit(folder: str | Path) -> AuditFile:
    """Read ``folder/audit.json`` (a folder written by ``graphdel audit``; the file itself is accepted too).

    Raises:
        InvalidInputError: the file is missing or unreadable, not JSON, not an audit, written by an older
            ``graphdel audit`` (no ``version`` 2: no per-example floor or ROC curves), or lacks a key; each
            one line naming the file (and the key).
    """
    import hashlib

    folder = Path(folder)
    path = folder if folder.name == AUDIT_FILE and folder.is_file() else folder / AUDIT_FILE
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"--audit {folder}: cannot read {path} ({e.strerror or e}); give a folder "
                                "written by graphdel audit") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise InvalidInputError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(data, dict) or (data.get("format", AUDIT_FORMAT) != AUDIT_FORMAT):
        raise InvalidInputError(f"{path}: not a graphdel audit (format {str(data.get('format'))[:40]!r})"
                                if isinstance(data, dict) else f"{path}: not a graphdel audit (not an object)")
    if data.get("version") != AUDIT_VERSION:
        raise InvalidInputError(f"{path}: written by an older graphdel audit (version {data.get('version')!r}, "
                                f"this report reads {AUDIT_VERSION}); run the same graphdel audit command again "
                                "(its models are cached, only the signals are re-read)")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InvalidInputError(f"{path}: missing key {missing[0]!r}" + (
            f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    problem = _shape_problem(data)
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
    return AuditFile(path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest(), data=data, label=_label(data))


def _shape_problem(data: Mapping[str, Any]) -> str | None:
    """The first value of ``audit.json`` the report cannot use, as ``"KEY must be ..., got ..."`` (a file
    edited by hand or written by something else), or None: the top-level keys first, then the rows of the
    per-pair lists, then every signal."""
    return _top_level_problem(data) or _rows_problem(data) or _signals_problem(data)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bad(key: str, want: str, got: Any) -> str:
    return f"{key} must be {want}, got {shorten(got, 60)}"


def _top_level_problem(data: Mapping[str, Any]) -> str | None:
    """The first top-level key of ``audit.json`` whose value the report cannot use, or None."""
    checks: list[tuple[str, bool, str, Any]] = [
        ("method", isinstance(data["method"], str) and bool(data["method"]), "a method name", data["method"]),
        ("settings", isinstance(data["settings"], list) and all(isinstance(x, str) for x in data["settings"]),
         "a list of KEY=VALUE strings", data["settings"]),
        ("models", isinstance(data["models"], int) and not isinstance(data["models"], bool) and data["models"] >= 4,
         "a number of models >= 4", data["models"]),
        ("originals", isinstance(data["originals"], bool), "true or false", data["originals"]),
        ("estimator", isinstance(data["estimator"], dict) and _number(data["estimator"].get("delta"))
         and _number(data["estimator"].get("cap")) and isinstance(data["estimator"].get("intervals"), bool)
         and (data["estimator"].get("alpha") is None or _number(data["estimator"].get("alpha"))),
         "{delta, alpha, cap, intervals}", data["estimator"]),
        ("original", isinstance(data["original"], dict), "an object", data["original"]),
        ("request", isinstance(data["request"], dict), "a deletion request object", data["request"]),
        ("retrained_runs", isinstance(data["retrained_runs"], list), "a list of run folders", data["retrained_runs"]),
        ("signals", isinstance(data["signals"], dict) and isinstance(data["primary_signal"], str)
         and data["primary_signal"] in data["signals"],
         f"an object with the primary signal {shorten(data['primary_signal'], 40)}", data["signals"]),
        ("per_example", isinstance(data["per_example"], list) and bool(data["per_example"]),
         "a non-empty list", data["per_example"]),
        ("highest_epsilon", isinstance(data["highest_epsilon"], list), "a list", data["highest_epsilon"]),
    ]
    for key, ok, want, got in checks:
        if not ok:
            return _bad(key, want, got)
    return None


def _rows_problem(data: Mapping[str, Any]) -> str | None:
    """The first row of ``per_example`` or ``highest_epsilon`` without a ``pair_id`` or its two ε, or None."""
    for list_key, keys in (("per_example", ("epsilon", "epsilon_floor")),
                           ("highest_epsilon", ("epsilon", "epsilon_floor"))):
        for i, row in enumerate(data[list_key]):
            if not isinstance(row, dict) or not isinstance(row.get("pair_id"), str):
                return _bad(f"{list_key}[{i}]", "an object with a pair_id", row)
            for k in keys:
                if not _number(row.get(k)):
                    return _bad(f"{list_key}[{i}].{k}", "a number", row.get(k))
    return None


def _signals_problem(data: Mapping[str, Any]) -> str | None:
    """The first signal whose ε summaries or U-LiRA results (AUC, TPR, ROC curve) are not numbers, or None."""
    for name, sig in data["signals"].items():
        if not isinstance(sig, dict):
            return _bad(f"signals.{name}", "an object", sig)
        for part in ("epsilon", "epsilon_floor"):
            for k in ("median", "p90", "share_at_cap", "forgetting_score"):
                v = sig.get(part).get(k) if isinstance(sig.get(part), dict) else None
                if not _number(v):
                    return _bad(f"signals.{name}.{part}.{k}", "a number", v)
        for part in ("ulira", "ulira_floor"):
            attack = sig.get(part)
            if attack is None and part == "ulira_floor":
                continue  # fewer than 8 models: no floor attack
            roc = attack.get("roc") if isinstance(attack, dict) else None
            if not (isinstance(attack, dict) and _number(attack.get("auc"))
                    and isinstance(attack.get("tpr_at"), dict) and isinstance(roc, dict)
                    and isinstance(roc.get("fpr"), list) and isinstance(roc.get("tpr"), list)
                    and len(roc["fpr"]) == len(roc["tpr"]) and all(map(_number, roc["fpr"] + roc["tpr"]))):
                return _bad(f"signals.{name}.{part}", "{auc, tpr_at, roc: {fpr, tpr}} (lists of numbers of one "
                                                     "length)", attack)
    return None


def read_audits(folders: Sequence[str | Path]) -> list[AuditFile]:
    """:func:`read_audit` of each folder, in order, with labels made unique (the folder's name is added
    to a label that two audits share).

    Raises:
        InvalidInputError: as :func:`read_audit`, or one audit file given twice.
    """
    audits = [read_audit(f) for f in folders]
    seen: dict[Path, int] = {}
    for i, a in enumerate(audits):
        if a.path in seen:
            raise InvalidInputError(f"--audit {folders[i]}: {a.path} is given twice")
        seen[a.path] = i
    labels = [a.label for a in audits]
    out = []
    for a in audits:
        label = a.label if labels.count(a.label) == 1 else f"{a.label} ({a.path.parent.name})"
        out.append(AuditFile(path=a.path, sha256=a.sha256, data=a.data, label=label))
    if len({a.label for a in out}) < len(out):
        dup = next(a.label for a in out if [b.label for b in out].count(a.label) > 1)
        raise InvalidInputError(f"two audits are both labelled {dup!r} (same method, settings and folder "
                                "name); give one of them")
    return out


def check_audits(audits: Sequence[AuditFile], *, request: Mapping[str, Any], original_weights_sha256: str) -> None:
    """Every audit must be of ``request`` (the report's runs' request.json, compared by canonical hash)
    unlearned from the original whose weights hash to ``original_weights_sha256``.

    Raises:
        InvalidInputError: one line naming the first audit file that audits another request or another
            original.
    """
    wanted = canonical_json_sha256(request)
    for a in audits:
        got = canonical_json_sha256(a.data["request"])
        if got != wanted:
            raise InvalidInputError(
                f"{a.path}: audits another deletion request ({a.data['request'].get('count')} pairs, sha256 "
                f"{got[:12]}…) than the runs of this report ({request.get('count')} pairs, {wanted[:12]}…)")
        weights = (a.data["original"] or {}).get("weights_sha256")
        if weights != original_weights_sha256:
            raise InvalidInputError(
                f"{a.path}: audits another original model (weights sha256 {str(weights)[:12]}…) than the "
                f"runs of this report ({original_weights_sha256[:12]}…)")


def certificate_entry(audit: AuditFile) -> dict[str, Any]:
    """What an evaluated certificate records of an audit of its method (``evaluation.audit``): the file,
    its SHA-256, and what the file says it audited (method, settings, M, ``--originals``, the request's and
    the original's hashes), so that ``graphdel verify`` can check the file is unchanged and of this
    certificate's request."""
    d = audit.data
    return {"file": str(audit.path), "sha256": audit.sha256, "method": d["method"], "settings": list(d["settings"]),
            "models": d["models"], "originals": bool(d["originals"]),
            "request_sha256": canonical_json_sha256(d["request"]),
            "original_weights_sha256": (d["original"] or {}).get("weights_sha256")}


def audit_section(audits: Sequence[AuditFile]) -> dict[str, Any]:
    """``results["audit"]`` of the report (``metrics.json`` carries it): ``{label: entry}`` in the given
    order, each entry the audit's certificate fields (:func:`certificate_entry`) plus ``label``,
    ``estimator``, ``primary_signal``, ``signals`` (every number and ROC curve of ``audit.json``),
    ``per_example`` (ε and floor ε of the primary signal per deleted pair), ``highest_epsilon`` and
    ``retrained_runs``."""
    return {a.label: {"label": a.label, **certificate_entry(a),
                      **{k: a.data[k] for k in ("estimator", "primary_signal", "signals", "per_example",
                                                "highest_epsilon", "retrained_runs")}}
            for a in audits}


def check_audits_against_run(audits: Sequence[AuditFile], run: str | Path) -> None:
    """:func:`check_audits` against an unlearned run folder's ``request.json`` and the original weights its
    ``config.json`` names (``parent.weights_sha256``), before anything is evaluated; a folder without them
    is left for the evaluation to refuse.

    Raises:
        InvalidInputError: as :func:`check_audits`.
    """
    run = Path(run)
    try:
        request = json.loads((run / "request.json").read_text(encoding="utf-8"))
        parent = json.loads((run / "config.json").read_text(encoding="utf-8"))["parent"]["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if isinstance(request, dict) and isinstance(parent, str):
        check_audits(audits, request=request, original_weights_sha256=parent)


def attach_audits(suite_audit: dict, audits: Sequence[AuditFile]) -> None:
    """Add ``audits`` to an evaluation (:func:`graphdel.evaluation.suite.evaluate_runs`'s dict) after
    :func:`check_audits` against its runs: ``results["audit"]`` (:func:`audit_section`, shown by the report)
    and ``audits`` (used by :func:`graphdel.evaluation.suite.write_audit` for the certificates).

    Raises:
        InvalidInputError: as :func:`check_audits`.
    """
    from graphdel.io import cached_sha256_file

    run = next(iter(suite_audit["names"].values()))
    request = json.loads((run.path / "request.json").read_text(encoding="utf-8"))
    check_audits(audits, request=request,
                 original_weights_sha256=cached_sha256_file(suite_audit["original"].path / "model.safetensors"))
    suite_audit["results"]["audit"] = audit_section(audits)
    suite_audit["audits"] = list(audits)
