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

Reading and checking the audit folders is in :mod:`graphdel.evaluation.audit_files`, every name imported
from here too; this module renders them.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from graphdel.evaluation.audit_files import (AUDIT_FILE, AUDIT_FORMAT, AUDIT_VERSION, AuditFile, attach_audits,
                                             audit_section, certificate_entry, check_audits,
                                             check_audits_against_run, read_audit, read_audits)
from graphdel.evaluation.report_format import fmt, plain_label
from graphdel.evaluation.report_plots import new_figure, png_bytes

__all__ = ["AuditFile", "read_audit", "read_audits", "check_audits", "check_audits_against_run", "attach_audits",
           "audit_section",
           "certificate_entry", "summary_blocks", "figures", "appendix_blocks", "AUDIT_FILE",
           "EPSILON_PLOT", "ROC_PLOT", "AUDIT_FORMAT", "AUDIT_VERSION"]

#: Where the report writes its two audit figures (relative to the report folder).
EPSILON_PLOT = "plots/audit_epsilon.png"
ROC_PLOT = "plots/audit_ulira_roc.png"
#: Pairs with the highest ε shown per method in the appendix (audit.json keeps 10).
_TOP = 5
#: Width of the ε histogram's bins.
_BIN = 0.25
#: Lowest TPR drawn on the ROC's log axis (lower values, 0 included, are drawn on the axis).
_TPR_FLOOR = 1e-3


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
