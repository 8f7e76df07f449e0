"""The per-example privacy audit in the unlearning report: ``graphdel report RUN... --audit DIR``.

``graphdel audit`` (:mod:`graphdel.audit`) writes one folder per method: ``DIR/audit.json`` with the
per-example ε of M unlearned against M retrained models, its floor (Retrain against itself), the
challenge's forgetting score and U-LiRA, for every attack signal. This module reads such folders, checks
that they audit the original and the request the report is about, and renders them into the report:

* after the headline table (the summary): one row per method on the primary signal (ε median and 90th
  percentile, forgetting score, U-LiRA AUC and TPR at 1% and 0.1% FPR), and the floor's row;
* in the plots: ``plots/audit_epsilon.png`` (per method, the histogram of per-example ε against the
  floor's) and ``plots/audit_ulira_roc.png`` (the U-LiRA ROC curves on log axes, one panel per signal, the
  floor dashed);
* in the appendix: the same numbers for every signal, the pairs with the highest ε (id and caption,
  escaped like every user string of the report), and each audit file with its SHA-256.

``metrics.json`` carries all of it under ``"audit"`` (``{label: entry}``, :func:`audit_section`); the
evaluated certificate of a run of an audited method records the audit file's hash
(:func:`certificate_entry`, ``evaluation.audit``), which ``graphdel verify`` checks.

In Python: ``audit = evaluate_runs(runs)``, ``attach_audits(audit, read_audits(dirs))``,
``save_audit(out, audit)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from graphdel.errors import InvalidInputError
from graphdel.evaluation.report_format import fmt, plain_label
from graphdel.evaluation.report_plots import new_figure, png_bytes
from graphdel.io import canonical_json_sha256

__all__ = ["AuditFile", "read_audit", "read_audits", "check_audits", "check_audits_against_run", "attach_audits",
           "audit_section",
           "certificate_entry", "summary_blocks", "figures", "appendix_blocks", "AUDIT_FILE",
           "EPSILON_PLOT", "ROC_PLOT", "AUDIT_FORMAT", "AUDIT_VERSION"]

#: The file a ``graphdel audit`` folder holds its numbers in.
AUDIT_FILE = "audit.json"
#: ``audit.json``'s ``format`` and ``version`` (2: per-example floor ε, ROC curves and the estimator's
#: settings recorded). Defined here, with the reader of the file: :mod:`graphdel.audit`, which writes it,
#: trains and unlearns models through :mod:`graphdel.api` and so sits above the report; it imports them.
AUDIT_FORMAT = "graphdel-audit"
AUDIT_VERSION = 2
#: Where the report writes its two audit figures (relative to the report folder).
EPSILON_PLOT = "plots/audit_epsilon.png"
ROC_PLOT = "plots/audit_ulira_roc.png"
#: Keys of ``audit.json`` the report reads (format 2 of :mod:`graphdel.audit`).
_REQUIRED = ("method", "settings", "models", "originals", "estimator", "original", "request", "primary_signal",
             "signals", "per_example", "highest_epsilon", "retrained_runs")
#: Pairs with the highest ε shown per method in the appendix (audit.json keeps 10).
_TOP = 5
#: Width of the ε histogram's bins.
_BIN = 0.25
#: Lowest TPR drawn on the ROC's log axis (lower values, 0 included, are drawn on the axis).
_TPR_FLOOR = 1e-3


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
    edited by hand or written by something else), or None."""
    from graphdel.errors import shorten

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def bad(key: str, want: str, got: Any) -> str:
        return f"{key} must be {want}, got {shorten(got, 60)}"

    checks: list[tuple[str, bool, str, Any]] = [
        ("method", isinstance(data["method"], str) and bool(data["method"]), "a method name", data["method"]),
        ("settings", isinstance(data["settings"], list) and all(isinstance(x, str) for x in data["settings"]),
         "a list of KEY=VALUE strings", data["settings"]),
        ("models", isinstance(data["models"], int) and not isinstance(data["models"], bool) and data["models"] >= 4,
         "a number of models >= 4", data["models"]),
        ("originals", isinstance(data["originals"], bool), "true or false", data["originals"]),
        ("estimator", isinstance(data["estimator"], dict) and number(data["estimator"].get("delta"))
         and number(data["estimator"].get("cap")) and isinstance(data["estimator"].get("intervals"), bool)
         and (data["estimator"].get("alpha") is None or number(data["estimator"].get("alpha"))),
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
            return bad(key, want, got)
    for list_key, keys in (("per_example", ("epsilon", "epsilon_floor")),
                           ("highest_epsilon", ("epsilon", "epsilon_floor"))):
        for i, row in enumerate(data[list_key]):
            if not isinstance(row, dict) or not isinstance(row.get("pair_id"), str):
                return bad(f"{list_key}[{i}]", "an object with a pair_id", row)
            for k in keys:
                if not number(row.get(k)):
                    return bad(f"{list_key}[{i}].{k}", "a number", row.get(k))
    for name, sig in data["signals"].items():
        if not isinstance(sig, dict):
            return bad(f"signals.{name}", "an object", sig)
        for part in ("epsilon", "epsilon_floor"):
            for k in ("median", "p90", "share_at_cap", "forgetting_score"):
                v = sig.get(part).get(k) if isinstance(sig.get(part), dict) else None
                if not number(v):
                    return bad(f"signals.{name}.{part}.{k}", "a number", v)
        for part in ("ulira", "ulira_floor"):
            attack = sig.get(part)
            if attack is None and part == "ulira_floor":
                continue  # fewer than 8 models: no floor attack
            roc = attack.get("roc") if isinstance(attack, dict) else None
            if not (isinstance(attack, dict) and number(attack.get("auc")) and isinstance(attack.get("tpr_at"), dict)
                    and isinstance(roc, dict) and isinstance(roc.get("fpr"), list) and isinstance(roc.get("tpr"), list)
                    and len(roc["fpr"]) == len(roc["tpr"]) and all(map(number, roc["fpr"] + roc["tpr"]))):
                return bad(f"signals.{name}.{part}", "{auc, tpr_at, roc: {fpr, tpr}} (lists of numbers of one "
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


# ------------------------------------------------------------------------------------------------ rendering

def _estimator_line(section: Mapping[str, Any]) -> str:
    first = next(iter(section.values()))
    est = first.get("estimator") or {}
    alpha = est.get("alpha")
    return (f"δ = {est.get('delta'):g}, " + (f"Clopper–Pearson bounds at α = {alpha:g}" if alpha is not None
                                             else "plug-in rates")
            + f", cap {est.get('cap'):g}, " + ("single- and two-threshold (interval) rules"
                                              if est.get("intervals") else "single thresholds only"))


def _row(name: str, signal: str, models: str, eps: Mapping[str, Any], attack: Mapping[str, Any] | None
         ) -> list[str]:
    tpr = (attack or {}).get("tpr_at") or {}
    return [name, signal, models, fmt(eps.get("median"), 2), fmt(eps.get("p90"), 2),
            fmt(eps.get("share_at_cap"), 2), fmt(eps.get("forgetting_score")),
            fmt((attack or {}).get("auc")), fmt(tpr.get("0.01")), fmt(tpr.get("0.001"))]


_HEAD = ["model", "signal", "models", "ε median", "ε p90", "share at cap", "forgetting score", "U-LiRA AUC",
         "TPR @ 1% FPR", "TPR @ 0.1% FPR"]


def _table_rows(section: Mapping[str, Any], signals: str) -> list[list[str]]:
    """Rows of the audit table: per audit, its primary signal (``signals="primary"``) or every signal
    (``"all"``); then the floor of each distinct set of Retrains (audits of one request share them)."""
    rows, floors = [], {}
    for label, e in section.items():
        names = [e["primary_signal"]] if signals == "primary" else (
            [e["primary_signal"]] + [s for s in e["signals"] if s != e["primary_signal"]])
        for s in names:
            rows.append(_row(label, s, f"{e['models']} vs {e['models']}", e["signals"][s]["epsilon"],
                             e["signals"][s]["ulira"]))
        floors.setdefault(tuple(e["retrained_runs"]), (e, names))
    for e, names in floors.values():
        m = e["models"]
        for s in names:
            rows.append(_row("Retrain vs Retrain (floor)", s, f"{m // 2} vs {m - m // 2}",
                             e["signals"][s]["epsilon_floor"], e["signals"][s]["ulira_floor"]))
    return rows


def summary_blocks(section: Mapping[str, Any] | None) -> list[tuple]:
    """The report's blocks after the headline table: a heading, what the numbers mean, and the primary
    signal's table (one row per audit, then the floor). Nothing without audits."""
    if not section:
        return []
    primary = next(iter(section.values()))["primary_signal"]
    return [
        ("h2", "Per-example privacy audit"),
        ("p", f"graphdel audit: per deleted pair, can an attacker tell the method's unlearned models from "
              f"Retrains of the same request? ε per pair (NeurIPS 2023 unlearning challenge estimator: "
              f"{_estimator_line(section)}; 0 = not told apart), the challenge's forgetting score (1 = every "
              f"pair below ε 0.5), U-LiRA (a per-pair Gaussian likelihood-ratio attack) AUC and TPR at low "
              f"FPR. The floor is Retrain against itself: what the estimators read with nothing to find at "
              f"this number of models; read each method against it. Signal: {primary} (every signal is in "
              f"the appendix)."),
        ("table", _HEAD, _table_rows(section, "primary")),
    ]


def _new_axes_grid(n: int, w: float, h: float):
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    fig = new_figure(w * cols, h * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _epsilon_figure(section: Mapping[str, Any]) -> bytes:
    """One panel per audit: histogram of its per-example ε (primary signal) over the floor's, with the
    pairs at the cap in a bar of their own (the cap, 50, is far right of the rest)."""
    entries = list(section.values())
    cap = float((entries[0].get("estimator") or {}).get("cap") or 50.0)
    values = [(np.array([p["epsilon"] for p in e["per_example"]], dtype=float),
               np.array([p["epsilon_floor"] for p in e["per_example"]], dtype=float)) for e in entries]
    finite = [v[v < cap] for pair in values for v in pair]
    top = max([1.0] + [float(v.max()) for v in finite if v.size])
    edges = np.arange(0.0, np.ceil(top / _BIN) * _BIN + _BIN / 2, _BIN)
    cap_x = edges[-1] + 2 * _BIN                                   # the cap's bar, apart from the rest
    fig, axes = _new_axes_grid(len(entries), 4.6, 2.6)
    for ax, e, (eps, eps_floor) in zip(axes, entries, values):
        for v, color, label, alpha in ((eps_floor, "#7f7f7f", "Retrain vs Retrain (floor)", 0.45),
                                       (eps, "#d62728", e["label"], 0.6)):
            counts, _ = np.histogram(v[v < cap], bins=edges)
            ax.bar(edges[:-1], counts, width=_BIN, align="edge", color=color, alpha=alpha,
                   label=plain_label(label))
            ax.bar([cap_x], [int(np.sum(v >= cap))], width=_BIN, align="edge", color=color, alpha=alpha)
        ticks = [x for x in np.arange(0.0, edges[-1] + 1e-9, 0.5 if edges[-1] <= 4 else 1.0)]
        ax.set_xticks(ticks + [cap_x + _BIN / 2], [f"{t:g}" for t in ticks] + [f"cap\n{cap:g}"])
        ax.axvline(edges[-1] + _BIN, color="black", linewidth=0.5, linestyle=":")
        ax.set_title(plain_label(f"{e['label']}: median {np.median(eps):.2f}, p90 {np.percentile(eps, 90):.2f} "
                                  f"(floor {np.median(eps_floor):.2f}, {np.percentile(eps_floor, 90):.2f})"),
                     fontsize="small")
        ax.set_ylabel("deleted pairs", fontsize="small")
        ax.legend(fontsize="x-small", loc="upper center")
    axes[-1].set_xlabel(f"per-example ε ({entries[0]['primary_signal']} signal)")
    return png_bytes(fig)


def _roc_figure(section: Mapping[str, Any]) -> bytes:
    """One panel per signal: the U-LiRA ROC of every audit on log axes, the floor dashed, chance dotted."""
    entries = list(section.values())
    signals = list(dict.fromkeys([entries[0]["primary_signal"]] + [s for e in entries for s in e["signals"]]))
    curves = [(e, s, e["signals"][s]) for e in entries for s in signals if s in e["signals"]]
    lows = [min(f for f in part["roc"]["fpr"] if f > 0) for _, _, sig in curves
            for part in (sig["ulira"], sig.get("ulira_floor")) if part and any(f > 0 for f in part["roc"]["fpr"])]
    x_low = min(lows + [1e-3]) / 1.5  # 0.1% FPR always in view, reached or not
    fig, axes = _new_axes_grid(len(signals), 3.9, 3.6)
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for ax, s in zip(axes, signals):
        ax.plot([x_low, 1], [x_low, 1], color="black", linestyle=":", linewidth=0.8, label="chance")
        floor_drawn = False
        for i, e in enumerate(entries):
            if s not in e["signals"]:
                continue
            sig = e["signals"][s]
            for part, style, color, label in ((sig["ulira"], "-", colors[i % len(colors)],
                                               f"{e['label']} (AUC {sig['ulira']['auc']:.2f})"),
                                              (sig.get("ulira_floor"), "--", "#7f7f7f", "floor")):
                if not part or (label == "floor" and floor_drawn):
                    continue  # audits of one request share their Retrains: one floor per panel
                fpr, tpr = np.asarray(part["roc"]["fpr"], dtype=float), np.asarray(part["roc"]["tpr"], dtype=float)
                keep = fpr > 0
                if label == "floor":
                    floor_drawn = True
                    label = f"Retrain vs Retrain, floor (AUC {part['auc']:.2f})"
                ax.plot(fpr[keep], np.maximum(tpr[keep], _TPR_FLOOR), linestyle=style, color=color,
                        linewidth=1.4 if style == "-" else 1.1, label=plain_label(label))
        ax.axvline(0.01, color="#bbbbbb", linewidth=0.6)
        ax.axvline(0.001, color="#bbbbbb", linewidth=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_low, 1)
        ax.set_ylim(_TPR_FLOOR, 1.05)
        ax.set_title(plain_label(f"U-LiRA, {s}"), fontsize="small")
        ax.set_xlabel("false positive rate", fontsize="small")
        ax.set_ylabel("true positive rate", fontsize="small")
        ax.legend(fontsize="xx-small", loc="lower right")
    return png_bytes(fig)


def figures(section: Mapping[str, Any] | None) -> list[tuple[str, str, bytes]]:
    """``(relative path, caption, png)`` of the audit's two figures (none without audits)."""
    if not section:
        return []
    return [(EPSILON_PLOT, "Per-example ε of each audited method (red) against the floor, Retrain against "
                           "itself (grey); pairs at the cap in the bar on the right", _epsilon_figure(section)),
            (ROC_PLOT, f"U-LiRA ROC on log axes, per signal (dashed: the floor; thin lines at 0.1% and 1% FPR; "
                       f"a curve starts at the smallest false-positive rate its target models can show, one "
                       f"score in (retrained targets × pairs); TPR below {_TPR_FLOOR:g} drawn on the axis)",
             _roc_figure(section))]


def appendix_blocks(section: Mapping[str, Any] | None) -> list[tuple]:
    """The appendix's audit tables: every signal, the pairs with the highest ε (captions shortened; the
    renderers escape them), and the audit files with their hashes. Nothing without audits."""
    if not section:
        return []
    def short(text: str, n: int = 90) -> str:
        return text if len(text) <= n else text[:n - 1] + "…"

    top = [[label, str(p.get("pair_id")), short(str(p.get("text", ""))), fmt(p.get("epsilon"), 2),
            fmt(p.get("epsilon_floor"), 2)]
           for label, e in section.items() for p in e["highest_epsilon"][:_TOP]]
    files = [[label, e["file"], e["sha256"], f"{e['models']} vs {e['models']}", "yes" if e["originals"] else "no",
              " ".join(e["settings"]) or "–"] for label, e in section.items()]
    return [
        ("h3", "Per-example audit: every signal"),
        ("table", _HEAD, _table_rows(section, "all")),
        ("h3", "Per-example audit: the deleted pairs with the highest ε"),
        ("p", f"Up to {_TOP} per method, primary signal, ties in request order (audit.json lists 10, "
              "metrics.json every pair)."),
        ("table", ["model", "pair id", "caption", "ε", "floor ε"], top),
        ("h3", "Per-example audit: files"),
        ("table", ["model", "audit file", "sha256", "models", "--originals", "settings"], files),
    ]
