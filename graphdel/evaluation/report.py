"""The unlearning report: ``report.md``, a self-contained ``report.html``, ``metrics.json`` and plots.

:func:`write_report` turns a ``results`` dict (metrics, JSON-able) and an optional ``plots`` dict (raw
arrays for figures) into a folder::

    out_dir/
      report.md        request, verdicts, headline table, plots (plots/*.png), then the appendix of details
      report.html      the same, self-contained: inline CSS, plots embedded as base64 data URIs, no script
      metrics.json     ``results`` made JSON-safe + the computed summary + the list of plots (atomic write)
      plots/*.png      one file per figure

The first screen tells the outcome: the title, what was deleted (the request in one line, its seed
included), one verdict line per method (did it forget like Retrain? did it keep the rest? was it fast?) and
the headline table of gaps to Retrain (with each method's verdict); then the plots; then every long
key/value table (the full request, runs with time and memory, targets, summary score, retrieval, link
prediction, distinguishability, membership, probes, drift, examples) under ``## Appendix: details``.

A *smoke* run (``--quick``: a tiny model trained on a sample of the data) is measured but not judged: the
report opens with :data:`SMOKE_BANNER`, and every verdict reads ``not judged`` (``write_report(smoke=...)``,
``results["smoke"]``, or detected from the original run's ``config.json``).

``results`` layout (every key optional unless marked *required*)::

    {
      "title": str,                                   # report title
      "smoke": bool,                                  # a --quick run: measured, not judged (see above)
      "request": {str: scalar | list | dict},         # the deletion request, shown as key/value table
      "models": {                                     # *required*; name -> entry, names are free text
        name: {
          "role": "original" | "reference" | "method",  # *required*; "reference" is Retrain; at most one
                                                      # original and one reference are used (first seen)
          "method": str,                              # registry name ("multidelete", "retrain", ...)
          "wall_time_s": float, "path": str,          # path: the run folder (its config.json says quick)
          "peak_mem_mb": float, "start_mem_mb": float,  # peak RSS of the process while the method ran and
                                                      # its RSS when it began (resources.measure), MB; shown
                                                      # as "n/a" when absent
          "splits": {                                 # "forget" (Df), "retain" (Dr sample), "val", "test",
            split: {                                  #   any other split names are shown too
              "g2t": {"mrr", "hits@1", "hits@10"},    # = retrieval.split_retrieval(...)
              "t2g": {"mrr", "hits@1", "hits@10"},
              "pool64": {"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc"},   # f"pool{k}"
              "n": int,
              "match_acc": float,                     # matching-head accuracy, if the model has one
            }},
          "distinguishability": {"mean", "std", "per_chunk", ...},     # = df_vs_dr_auc(...)
          "membership": {"attack_auc", "cv_auc", "member_rate", ...},  # signal_attack(...) minus arrays,
                                                      # optionally "lira_auc"
          "probes": {...}, "drift": {...},            # free-form nested dicts of numbers, shown flattened
        }},
      "summary": {"scores": ..., "thresholds": {method: ...}},  # computed here when absent (summary.py)
      "examples": [{"pair_id": str, "caption": str, ...}],     # a few pairs to show; any scalar columns
      "audit": {label: {...}},                                # graphdel audit folders (report --audit):
                                                              # graphdel.evaluation.audit_report.audit_section
    }

``plots`` layout (all optional; names must match ``results["models"]`` only for readability)::

    {
      "similarities": {model: {"forget": arr, "retain": arr, "test": arr, ...}},  # per-pair cosine sims
      "roc": {model: (fpr, tpr, auc)},                                            # attack ROC curves
      "embeddings": {model: (emb [N, 2 or d], is_df [N] bool)},                   # PCA to 2-D if d > 2
    }

Figures written: ``plots/similarity_<model>.png`` (histograms of Df/Dr/test similarities, one per model),
``plots/metrics_vs_retrain.png`` (grouped bars: every model on Df MRR, test MRR, Df-vs-Dr AUC, attack
AUC, with Retrain's values as dashed reference lines), ``plots/attack_roc.png`` (all ROC curves) and
``plots/embedding_<model>.png`` (2-D projection with Df highlighted). ``<model>`` is the model name in
lower case with ``+`` written ``plus`` and every other run of characters outside ``[a-z0-9_-]`` written
``_`` (``neggrad`` -> ``neggrad``, ``neggrad+`` -> ``neggrad_plus``, whatever the order of the models);
names that still collide (``"a b"`` and ``"a_b"``) are told apart by a short hash of the name. With
``results["audit"]`` (``graphdel report --audit DIR``): ``plots/audit_epsilon.png`` and
``plots/audit_ulira_roc.png``, the audit's table after the headline table and its details in the appendix
(:mod:`graphdel.evaluation.audit_report`).

``metrics.json`` holds ``{"schema": "graphdel.report/1", **results, "summary": ..., "plots": [relpaths],
"smoke": bool}``
with numpy/torch values converted to lists and numbers, NaN and inf written as ``null``.

Every user-supplied string (model names, ids, captions, request values) is escaped: with
:func:`html.escape` in the HTML, and with entities/backslashes in the Markdown. The HTML carries no
script and a Content-Security-Policy that forbids any.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from graphdel.evaluation import audit_report
from graphdel.evaluation.membership import leak_flag
# The formatting and figure helpers are shared with audit_report (which this module includes), so they live
# below both; to_jsonable is imported from here too.
from graphdel.evaluation.report_format import (finite_number, fmt, html_escape, md_escape, plain_label, pool_key,
                                               signed, slugs, summary_keys, to_jsonable)
from graphdel.evaluation.report_plots import new_figure, png_bytes
from graphdel.evaluation.summary import flatten, summary_score, thresholds
from graphdel.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from graphdel.runs import is_quick_config

__all__ = ["write_report", "SCHEMA", "SMOKE_BANNER", "NOT_JUDGED", "APPENDIX"]

SCHEMA = "graphdel.report/1"
#: The line a smoke run's report (``--quick``: tiny model, data sample) starts with; no verdict is computed.
SMOKE_BANNER = "smoke run (--quick): tiny model and data sample; verdicts are not computed"
#: What the verdict of a method of a smoke run reads.
NOT_JUDGED = "not judged"
#: The heading every long key/value table of the report sits under, after the plots.
APPENDIX = "Appendix: details"
_SPLIT_ORDER = ["forget", "retain", "val", "calibration", "test"]
_SPLIT_LABEL = {"forget": "Df (forget)", "retain": "Dr (retain)", "val": "val", "test": "test"}
_COLORS = {"forget": "#d62728", "retain": "#1f77b4", "val": "#9467bd", "calibration": "#8c564b",
           "test": "#2ca02c"}


# ------------------------------------------------------------------------------------------------- roles

def _roles(models: Mapping[str, Any]) -> tuple[str | None, str | None, list[str]]:
    original = reference = None
    methods = []
    for name, entry in models.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"results['models'][{name!r}] must be a dict, got {type(entry).__name__}")
        role = entry.get("role")
        if role == "original":
            original = original or name
        elif role == "reference":
            reference = reference or name
        elif role == "method":
            methods.append(name)
        else:
            raise ValueError(f"results['models'][{name!r}]['role'] must be 'original', 'reference' or "
                             f"'method', got {role!r}")
    return original, reference, methods


def _headline(entry: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, float | None]:
    flat = flatten(entry)
    return {
        "forget_mrr": finite_number(flat.get(keys["forget_mrr"])),
        "test_mrr": finite_number(flat.get(keys["test_mrr"])),
        "df_dr_auc": finite_number(flat.get(keys["df_dr_auc"])),
        "attack_auc": finite_number(flat.get(keys["attack_auc"])),
        "wall_time": finite_number(flat.get(keys["wall_time"])),
    }


def _compute_summary(models, original, reference, methods, keys) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if reference is not None and original is not None and methods:
        out["scores"] = summary_score({m: models[m] for m in methods}, models[reference], models[original],
                                      keys=keys)
    if reference is not None and original is not None:
        out["thresholds"] = {m: thresholds(models[m], models[reference], models[original], keys=keys)
                             for m in methods}
    return out


# ---------------------------------------------------------------------------------------------- verdicts

def _verdict(name: str, models, original, reference, keys, summary, smoke: bool = False) -> dict[str, Any]:
    """Structured verdict of one method: parts (ok: bool | None, text) and an overall status.

    With ``smoke`` (a ``--quick`` run) nothing is judged: the parts are the bare measurements (ok ``None``)
    and the status is ``"not judged"``."""
    entry = models[name]
    h = _headline(entry, keys)
    ref = _headline(models[reference], keys) if reference else {}
    orig = _headline(models[original], keys) if original else {}
    thr = (summary.get("thresholds") or {}).get(name) or {}
    parts: list[tuple[bool | None, str]] = []

    t = thr.get("forget_mrr_vs_retrain") or {}
    if reference is None:
        parts.append((None, "forgetting not judged: no Retrain reference"))
    elif t.get("value") is None:
        parts.append((None, "forgetting not judged: Df MRR missing"))
    elif smoke:
        parts.append((None, f"Df MRR {fmt(h['forget_mrr'])} vs Retrain {fmt(ref['forget_mrr'])} "
                            f"({signed(t['value'])})"))
    else:
        gap, m, r = t["value"], h["forget_mrr"], ref["forget_mrr"]
        detail = f"Df MRR {fmt(m)} vs Retrain {fmt(r)} ({signed(gap)}, tolerance ±{t['limit']:g})"
        if t["passed"]:
            parts.append((True, f"forgot like Retrain: {detail}"))
        elif gap > 0:
            parts.append((False, f"still remembers Df: {detail}"))
        else:
            parts.append((False, f"over-forgot Df: {detail}"))

    if h["attack_auc"] is not None:
        r_auc = ref.get("attack_auc")
        against = f"Retrain {fmt(r_auc)}" if r_auc is not None else "0.5 (no Retrain value)"
        if smoke:
            parts.append((None, f"membership attack: AUC {fmt(h['attack_auc'])} vs {against}"))
        else:
            flag = leak_flag(h["attack_auc"], reference_auc=r_auc)
            parts.append((flag == "ok",
                          f"membership attack: AUC {fmt(h['attack_auc'])} vs {against} → {flag}"))

    t = thr.get("test_mrr_drop") or {}
    if original is None:
        parts.append((None, "retention not judged: no original model"))
    elif t.get("value") is None:
        parts.append((None, "retention not judged: test MRR missing"))
    else:
        detail = (f"test MRR {fmt(h['test_mrr'])} vs original {fmt(orig['test_mrr'])} "
                  f"({signed(-t['value'])})")
        if smoke:
            parts.append((None, detail))
        else:
            parts.append((bool(t["passed"]),
                          ("kept the rest: " if t["passed"] else "lost on test: ") + detail))

    t = thr.get("time_vs_retrain") or {}
    if t.get("value") is not None:
        pct = 100 * t["value"]
        if smoke:
            parts.append((None, f"time: {pct:.1f}% of Retrain's"))
        else:
            parts.append((bool(t["passed"]), f"{'fast' if t['passed'] else 'slow'}: {pct:.1f}% of Retrain's "
                                             f"time (target ≤ {100 * t['limit']:g}%)"))
    else:
        parts.append((None, "time not judged"))

    oks = [ok for ok, _ in parts]
    if smoke:
        status = NOT_JUDGED
    else:
        status = "FAIL" if False in oks else ("PASS" if None not in oks else "INCOMPLETE")
    score = ((summary.get("scores") or {}).get("methods") or {}).get(name, {})
    return {"name": name, "method": entry.get("method", ""), "status": status, "parts": parts,
            "score": score.get("score"), "rank": score.get("rank")}


# --------------------------------------------------------------------------------------------- plots

def _plot_similarity(name: str, sims: Mapping[str, Any]) -> bytes | None:
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in sims.items()}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items() if np.isfinite(v).any()}
    if not arrays:
        return None
    order = [k for k in _SPLIT_ORDER if k in arrays] + [k for k in arrays if k not in _SPLIT_ORDER]
    lo = min(float(v.min()) for v in arrays.values())
    hi = max(float(v.max()) for v in arrays.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    fig = new_figure()
    ax = fig.subplots()
    for k in order:
        ax.hist(arrays[k], bins=bins, density=True, histtype="stepfilled", alpha=0.35,
                color=_COLORS.get(k), label=plain_label(f"{_SPLIT_LABEL.get(k, k)} (n={arrays[k].size})"))
    ax.set_xlabel("cosine similarity of the true pair")
    ax.set_ylabel("density")
    ax.set_title(plain_label(f"{name}: pair similarities"))
    ax.legend()
    return png_bytes(fig)


def _plot_bars(models, order: list[str], reference: str | None, keys) -> bytes | None:
    metrics = [("forget_mrr", "Df MRR"), ("test_mrr", "test MRR"), ("df_dr_auc", "Df-vs-Dr AUC"),
               ("attack_auc", "attack AUC")]
    values = {m: _headline(models[m], keys) for m in order}
    metrics = [(k, lab) for k, lab in metrics if any(values[m][k] is not None for m in order)]
    if not metrics or not order:
        return None
    fig = new_figure(max(6.4, 1.6 * len(metrics) + 0.4 * len(order)), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(order)
    x = np.arange(len(metrics))
    for i, m in enumerate(order):
        ys = [values[m][k] if values[m][k] is not None else np.nan for k, _ in metrics]
        ax.bar(x - 0.4 + width * (i + 0.5), ys, width, label=plain_label(m))
    if reference is not None:
        for j, (k, _) in enumerate(metrics):
            v = values[reference][k]
            if v is not None:
                ax.hlines(v, x[j] - 0.45, x[j] + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xticks(x, [lab for _, lab in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_title("methods vs Retrain (dashed: Retrain)" if reference else "metrics per model")
    ax.legend(fontsize="small")
    return png_bytes(fig)


def _plot_roc(roc: Mapping[str, Any]) -> bytes | None:
    if not roc:
        return None
    fig = new_figure(5.0, 5.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for name, curve in roc.items():
        fpr, tpr, auc = curve
        ax.plot(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float),
                label=plain_label(f"{name} (AUC {fmt(auc)})"))
    ax.set_xlabel("false positive rate (test called member)")
    ax.set_ylabel("true positive rate (Df called member)")
    ax.set_title("membership attack ROC, Df vs test")
    ax.legend(fontsize="small", loc="lower right")
    return png_bytes(fig)


def _plot_embedding(name: str, emb: Any, is_df: Any) -> bytes | None:
    x = np.asarray(emb.detach().cpu() if hasattr(emb, "detach") else emb, dtype=np.float64)
    mask = np.asarray(is_df.detach().cpu() if hasattr(is_df, "detach") else is_df).astype(bool).reshape(-1)
    if x.ndim != 2 or x.shape[0] != mask.size or x.shape[0] == 0:
        raise ValueError(f"plots['embeddings'][{name!r}] must be (emb [N, d], is_df [N]), got "
                         f"{x.shape} and {mask.shape}")
    if x.shape[1] > 2:
        from sklearn.decomposition import PCA

        x = PCA(n_components=2, random_state=0).fit_transform(x) if x.shape[0] >= 2 else x[:, :2]
    elif x.shape[1] == 1:
        x = np.concatenate([x, np.zeros_like(x)], axis=1)
    fig = new_figure(5.0, 5.0)
    ax = fig.subplots()
    ax.scatter(x[~mask, 0], x[~mask, 1], s=6, c="#9e9e9e", alpha=0.5, label=f"other (n={int((~mask).sum())})")
    ax.scatter(x[mask, 0], x[mask, 1], s=14, c="#d62728", label=f"Df (n={int(mask.sum())})")
    ax.set_title(plain_label(f"{name}: embeddings (PCA)"))
    ax.legend(fontsize="small")
    return png_bytes(fig)


def _render_plots(plots: Mapping[str, Any] | None, models, order, reference, keys
                  ) -> list[tuple[str, str, bytes]]:
    """(relative path, caption, png bytes) for every figure."""
    out: list[tuple[str, str, bytes]] = []
    plots = plots or {}
    sims = plots.get("similarities") or {}
    slug = slugs(list(dict.fromkeys(list(order) + list(sims) + list(plots.get("embeddings") or {}))))
    for name, per_split in sims.items():
        png = _plot_similarity(name, per_split)
        if png:
            out.append((f"plots/similarity_{slug[name]}.png", f"Pair similarities of {name}: Df, Dr and test",
                        png))
    png = _plot_bars(models, order, reference, keys)
    if png:
        out.append(("plots/metrics_vs_retrain.png", "Headline metrics of every model (dashed: Retrain)", png))
    png = _plot_roc(plots.get("roc") or {})
    if png:
        out.append(("plots/attack_roc.png", "Membership attack ROC curves (Df vs test)", png))
    for name, (emb, is_df) in (plots.get("embeddings") or {}).items():
        png = _plot_embedding(name, emb, is_df)
        if png:
            out.append((f"plots/embedding_{slug[name]}.png",
                        f"2-D projection of {name}'s embeddings, Df in red", png))
    return out


# ------------------------------------------------------------------------------------------- document

def _headline_rows(models, order, original, reference, keys, summary, verdicts: Mapping[str, str]
                   ) -> tuple[list[str], list[list[str]]]:
    head = ["model", "role", "Df MRR (Δ vs Retrain)", "test MRR (Δ vs original)",
            "Df-vs-Dr AUC (Δ vs Retrain)",
            "attack AUC (Δ vs Retrain)", "time / Retrain", "score", "verdict"]
    ref = _headline(models[reference], keys) if reference else {}
    orig = _headline(models[original], keys) if original else {}
    scores = (summary.get("scores") or {}).get("methods") or {}
    rows = []

    def cell(v, base):
        if v is None:
            return "–"
        if base is None:
            return fmt(v)
        return f"{fmt(v)} ({signed(v - base)})"

    for name in order:
        h = _headline(models[name], keys)
        is_method = models[name].get("role") == "method"
        ratio = None
        if h["wall_time"] is not None and ref.get("wall_time"):
            ratio = h["wall_time"] / ref["wall_time"]
        rows.append([
            name, models[name].get("role", ""),
            cell(h["forget_mrr"], ref.get("forget_mrr") if is_method else None),
            cell(h["test_mrr"], orig.get("test_mrr") if is_method else None),
            cell(h["df_dr_auc"], ref.get("df_dr_auc") if is_method else None),
            cell(h["attack_auc"], ref.get("attack_auc") if is_method else None),
            "–" if ratio is None else f"{100 * ratio:.1f}%",
            fmt((scores.get(name) or {}).get("score")) if is_method else "",
            verdicts.get(name, "") if is_method else "",
        ])
    return head, rows


def _cell(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(to_jsonable(v), ensure_ascii=False)
    return fmt(v)


def _kv_rows(d: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for k, v in flatten(d).items():
        if isinstance(v, (list, tuple, np.ndarray)) or (hasattr(v, "detach") and hasattr(v, "tolist")):
            arr = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=object).reshape(-1)
            if arr.size > 8:
                continue  # raw per-item arrays belong to metrics.json, not the page
            v = ", ".join(fmt(x) for x in arr)
        rows.append([k, fmt(v) if not isinstance(v, str) else v])
    return rows


def _mem_mb(x: Any) -> float | None:
    """A recorded memory figure in MB, or ``None`` when there is none (missing, NaN, or not above 0: a
    process never has a peak RSS of 0, so a 0 means "not measured", never "no memory")."""
    f = finite_number(x)
    return f if f is not None and f > 0 else None


def _memory_cells(entry: Mapping[str, Any]) -> list[str]:
    """``[peak RSS, added over the start]`` of a run (MB, one decimal), ``"n/a"`` where not recorded.

    Reads what :func:`graphdel.resources.measure` records around the method: ``peak_mem_mb`` (peak
    RSS of the process while the method ran) and ``start_mem_mb`` (its RSS when the method began)."""
    peak, start = _mem_mb(entry.get("peak_mem_mb")), _mem_mb(entry.get("start_mem_mb"))
    return ["n/a" if peak is None else f"{peak:.1f}",
            "n/a" if peak is None or start is None else f"{peak - start:+.1f}".replace("-", "−")]


def _request_line(request: Mapping[str, Any]) -> str:
    """One line saying what was deleted: the request's description and its size, granularity, seed and
    data (whichever of them the request records); the full key/value table is in the appendix."""
    def short(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            shown = ", ".join(str(x) for x in list(v)[:5])
            return shown + (f", … ({len(v)} in all)" if len(v) > 5 else "")
        if isinstance(v, Mapping):
            return f"{len(v)} entries"
        return fmt(v)

    parts = []
    if request.get("description"):
        parts.append(str(request["description"]))
    for key, label in (("pairs", "pairs"), ("count", "pairs"), ("ids", "ids"), ("fraction", "fraction"),
                       ("by", "by"), ("seed", "seed"), ("source", "data")):
        if key in request and request[key] is not None and not (key == "count" and "pairs" in request):
            parts.append(f"{label} {short(request[key])}")
    if not parts:  # a request of other keys: its first few
        parts = [f"{k} {short(v)}" for k, v in list(request.items())[:4]]
    return "Deleted: " + "; ".join(parts)


#: The classes of a deleted triple in ``forget.lp.by_inference`` (:data:`graphdel.data.kg_facts.KINDS`).
_INFERENCE_KINDS = (("mirrored", "mirrored"), ("path", "path"), ("not_inferable", "not inferable"))


def _inference_split_blocks(models: Mapping[str, Any], order: list[str]) -> list[tuple]:
    """The KG report's split of the deleted triples' link prediction by what the retained graph still says
    of them (``splits.forget.lp.by_inference``, :func:`graphdel.evaluation.link_prediction.inference_split`):
    a heading, a note and one row per model and class; no blocks when no model has the split."""
    rows = []
    for n in order:
        lp = ((models[n].get("splits") or {}).get("forget") or {}).get("lp")
        by = lp.get("by_inference") if isinstance(lp, Mapping) else None
        if not isinstance(by, Mapping):
            continue
        for key, label in _INFERENCE_KINDS:
            m = by.get(key)
            if isinstance(m, Mapping):
                rows.append([n, label, fmt(m.get("triples")), fmt(m.get("mrr")), fmt(m.get("hits@1")),
                             fmt(m.get("hits@10"))])
    if not rows:
        return []
    return [("h3", "Deleted triples: inferable or not"),
            ("p", "The deleted triples split by what the retained graph still says of them: mirrored (a "
                  "retained triple states the fact backwards, by a symmetric or inverse relation learned "
                  "from the graph), path (their entities are linked by at most 2 retained triples), not "
                  "inferable (neither). Filtered MRR, both directions. Retrain keeps predicting what the "
                  "retained graph implies; compare a method with Retrain class by class "
                  "(graphdel forget --close also deletes the mirrored triples)."),
            ("table", ["model", "deleted triples", "count", "MRR", "H@1", "H@10"], rows)]


def _build(results, models, order, original, reference, methods, keys, summary, pool, figures,
           smoke: bool = False):
    """The report as a list of blocks, rendered to Markdown and HTML by the two writers below.

    Order: the title (and the smoke banner), the request, the verdicts, the headline table (gaps to
    Retrain), the plots, then every long key/value table under ``## Appendix: details``."""
    B: list[tuple] = []
    B.append(("h1", str(results.get("title") or "graphdel unlearning report")))
    if smoke:
        B.append(("banner", SMOKE_BANNER))
    request = results.get("request") or {}
    if request:
        B.append(("h2", "Request"))
        B.append(("p", _request_line(request)))
    history = results.get("history") or []
    if len(history) > 1:  # a request applied to an already unlearned model: the chain it continues
        B.append(("p", f"This is request {len(history)} of a chain of deletions from the same original "
                       "(`graphdel history RUN`):"))
        B.append(("table", ["step", "applied (UTC)", "by", "pairs", "method", "certificate", "chain"],
                  [[str(s.get("step")), str(s.get("applied_at") or "not recorded"), str(s.get("by")),
                    str(s.get("pairs")), str(s.get("method")), str(s.get("certificate_sha256") or "not found")[:12],
                    str(s.get("chain"))] for s in history]))

    verdicts = [_verdict(m, models, original, reference, keys, summary, smoke) for m in methods]
    B.append(("h2", "Verdicts"))
    if not methods:
        B.append(("p", "No unlearning method in these results."))
    if smoke:
        B.append(("p", "Measurements only: a model this small, trained on a sample, says nothing about the "
                       "methods, so no method is judged against the targets."))
    B.append(("verdicts", verdicts))

    B.append(("h2", "Headline: gaps to Retrain"))
    head, rows = _headline_rows(models, order, original, reference, keys, summary,
                                {v["name"]: v["status"] for v in verdicts})
    side = {"image": "image", "kg": "query"}.get(str(request.get("modality")), "graph")
    B.append(("p", f"MRR: {pool} {side}→text retrieval. Δ compares a method with Retrain on the forget side "
                   f"and with the original model on test. Df-vs-Dr AUC labels Df 0, Dr 1; attack AUC labels "
                   f"Df 1, test 0. Closest to Retrain is best on the forget side, in either direction."))
    B.append(("table", head, rows))
    B += audit_report.summary_blocks(results.get("audit"))  # graphdel report --audit: its numbers, first screen

    if figures:
        B.append(("h2", "Plots"))
        for rel, caption, png in figures:
            B.append(("img", rel, caption, png))

    B.append(("h2", APPENDIX))
    if request:
        B.append(("h3", "Deletion request"))
        B.append(("table", ["key", "value"], [[k, _cell(v)] for k, v in request.items()]))
    B.append(("h3", "Runs"))
    B.append(("table", ["model", "role", "method", "wall time (s)", "peak RSS (MB)", "added over start (MB)"],
              [[n, models[n].get("role", ""), str(models[n].get("method", "")),
                fmt(models[n].get("wall_time_s"), 1), *_memory_cells(models[n])]
               for n in order]))
    how = list(dict.fromkeys(str(models[n]["peak_mem_method"]) for n in order
                             if models[n].get("peak_mem_method")))
    B.append(("p", "Memory of the process while the method ran (recorded by `forget`; n/a: not recorded)"
                   + (": " + "; ".join(how) if how else "") + "."))

    thr = summary.get("thresholds") or {}
    if thr:
        B.append(("h3", "Targets"))
        B.append(("table", ["method", "target", "value", "limit", "passed", "rule"],
                  [[m, t, fmt(e.get("value")), fmt(e.get("limit")),
                    NOT_JUDGED if smoke else
                    ("–" if e.get("passed") is None else ("yes" if e["passed"] else "no")),
                    str(e.get("rule", ""))]
                   for m, per in thr.items() for t, e in per.items()]))
    scores = (summary.get("scores") or {}).get("methods") or {}
    if scores:
        B.append(("h3", "Summary score"))
        B.append(("p", "score = 1 − weighted mean of min(1, gap / scale); gaps to Retrain on Df are absolute "
                       "(over-forgetting counts), test counts only drops vs the original "
                       "(graphdel.evaluation.summary)."))
        B.append(("table", ["method", "rank", "score", "component", "gap", "error", "weight", "scale"],
                  [[m, fmt(s.get("rank")), fmt(s.get("score")), c, fmt(v.get("gap")), fmt(v.get("error")),
                    fmt(v.get("weight")), fmt(v.get("scale"))]
                   for m, s in scores.items() for c, v in (s.get("components") or {}).items()]))

    B.append(("h3", "Retrieval"))
    rrows = []
    for n in order:
        splits = models[n].get("splits") or {}
        names = [s for s in _SPLIT_ORDER if s in splits] + [s for s in splits if s not in _SPLIT_ORDER]
        for s in names:
            sp = splits[s] or {}
            g, t, p = sp.get("g2t") or {}, sp.get("t2g") or {}, sp.get(pool) or {}
            rrows.append([n, s, fmt(sp.get("n")),
                          fmt(g.get("mrr")), fmt(g.get("hits@1")), fmt(g.get("hits@10")),
                          fmt(t.get("mrr")), fmt(t.get("hits@1")), fmt(t.get("hits@10")),
                          fmt(p.get("g2t_mrr")), fmt(p.get("t2g_mrr")), fmt(p.get("g2t_acc")),
                          fmt(p.get("t2g_acc")), fmt(sp.get("match_acc"))])
    B.append(("table", ["model", "split", "n", "g2t MRR", "g2t H@1", "g2t H@10",
                        "t2g MRR", "t2g H@1", "t2g H@10", f"{pool} g2t MRR", f"{pool} t2g MRR",
                        f"{pool} g2t acc", f"{pool} t2g acc", "match acc"],
              rrows))
    lrows = []
    for n in order:
        splits = models[n].get("splits") or {}
        for s_name in [s for s in _SPLIT_ORDER if s in splits] + [s for s in splits if s not in _SPLIT_ORDER]:
            lp = (splits[s_name] or {}).get("lp")
            if isinstance(lp, Mapping):
                lrows.append([n, s_name, fmt(lp.get("n")), fmt(lp.get("mrr")), fmt(lp.get("hits@1")),
                              fmt(lp.get("hits@3")), fmt(lp.get("hits@10")), fmt(lp.get("auroc_vs_retain"))])
    if lrows:
        B.append(("h3", "Link prediction"))
        B.append(("p", "Filtered ranks over all entities, both directions. collateral@k: retained training "
                       "triples within k hops of a deleted one (compare with the original). Df-vs-Dr AUROC: "
                       "deleted (label 0) vs retained (label 1) triple scores, as in the Df-vs-Dr AUC; 0.5 = "
                       "deleted triples scored like retained ones, 1.0 = every deleted triple below every "
                       "retained one (compare with Retrain)."))
        B.append(("table", ["model", "split", "queries", "MRR", "H@1", "H@3", "H@10", "Df-vs-Dr AUROC"], lrows))
    B.extend(_inference_split_blocks(models, order))
    for section, title in (("distinguishability", "Df-vs-Dr distinguishability"),
                           ("membership", "Membership inference"),
                           ("probes", "Unimodal probes"), ("drift", "Embedding drift")):
        rows = [[n, *kv] for n in order if isinstance(models[n].get(section), Mapping)
                for kv in _kv_rows(models[n][section])]
        if rows:
            B.append(("h3", title))
            B.append(("table", ["model", "metric", "value"], rows))

    examples = [e for e in (results.get("examples") or []) if isinstance(e, Mapping)]
    if examples:
        cols = list(dict.fromkeys(["pair_id", "caption"] + [k for e in examples for k in e]))
        cols = [c for c in cols if any(c in e for e in examples)]
        B.append(("h3", "Examples"))
        B.append(("table", cols, [[fmt(e.get(c)) if not isinstance(e.get(c), str) else e[c] for c in cols]
                                  for e in examples]))
    B += audit_report.appendix_blocks(results.get("audit"))
    return B


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;
padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
.verdicts{list-style:none;padding:0}
.verdicts li{margin:.4rem 0;padding:.4rem .6rem;border-left:4px solid #999;background:#f8f8f8}
.PASS{border-color:#2ca02c!important}.FAIL{border-color:#d62728!important}
.banner{padding:.5rem .8rem;background:#fff4d6;border-left:4px solid #e0a800}
.tag{font-weight:bold;margin-right:.4rem}.ok{color:#1a7f1a}.bad{color:#c62828}.unk{color:#777}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
"""


def _css_class(ok: bool | None) -> str:
    return "ok" if ok else ("bad" if ok is False else "unk")


def _mark(ok: bool | None) -> str:
    return "✓" if ok else ("✗" if ok is False else "?")


def _to_markdown(blocks) -> str:
    lines: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + md_escape(b[1]), ""]
        elif kind == "p":
            lines += [md_escape(b[1]), ""]
        elif kind == "banner":
            lines += [f"> **{md_escape(b[1])}**", ""]
        elif kind == "verdicts":
            for v in b[1]:
                score = "" if v["score"] is None else f" — score {fmt(v['score'])} (rank {v['rank']})"
                judged = v["status"] != NOT_JUDGED
                parts = "; ".join((f"{_mark(ok)} " if judged else "") + md_escape(text) for ok, text in v["parts"])
                lines.append(f"- **{v['status']}** {md_escape(v['name'])} (`{md_escape(v['method'])}`): {parts}{score}")
            lines.append("")
        elif kind == "table":
            head, rows = b[1], b[2]
            lines.append("| " + " | ".join(md_escape(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            for r in rows:
                lines.append("| " + " | ".join(md_escape(c) for c in r) + " |")
            lines.append("")
        elif kind == "img":
            _, rel, caption, _png_bytes = b
            lines += [f"![{md_escape(caption)}]({rel})", "", f"*{md_escape(caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _to_html(blocks, title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
           "style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html_escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html_escape(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html_escape(b[1])}</p>")
        elif kind == "banner":
            out.append(f'<p class="banner"><b>{html_escape(b[1])}</b></p>')
        elif kind == "verdicts":
            out.append('<ul class="verdicts">')
            for v in b[1]:
                judged = v["status"] != NOT_JUDGED
                parts = "; ".join(
                    f'<span class="{_css_class(ok)}">{_mark(ok) + " " if judged else ""}{html_escape(t)}</span>'
                    for ok, t in v["parts"])
                score = ("" if v["score"] is None
                         else f" — score <b>{fmt(v['score'])}</b> (rank {html_escape(v['rank'])})")
                css = html_escape(str(v["status"]).replace(" ", "-"))
                out.append(f'<li class="{css}"><span class="tag">{html_escape(v["status"])}</span>'
                           f'<b>{html_escape(v["name"])}</b> (<code>{html_escape(v["method"])}</code>): {parts}{score}</li>')
            out.append("</ul>")
        elif kind == "table":
            head, rows = b[1], b[2]
            cells = "".join(f"<th>{html_escape(x)}</th>" for x in head)
            out.append(f"<table><thead><tr>{cells}</tr></thead><tbody>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{html_escape(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "img":
            _, rel, caption, png = b
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html_escape(caption)}">'
                       f"<figcaption>{html_escape(caption)} ({html_escape(rel)})</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- smoke

def _smoke_of_runs(models: Mapping[str, Any], original: str | None) -> bool:
    """Whether the runs behind ``models`` are quick runs: the ``config.json`` of the original (or, when its
    folder is not recorded or unreadable, of the first run whose is) under the entries' ``path``."""
    names = ([original] if original is not None else []) + [n for n in models if n != original]
    for name in names:
        path = models[name].get("path") if isinstance(models[name], Mapping) else None
        if not isinstance(path, str) or not path:
            continue
        try:
            config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return is_quick_config(config)
    return False


# ---------------------------------------------------------------------------------------------- entry

def write_report(out_dir: str | Path, results: Mapping[str, Any], plots: Mapping[str, Any] | None = None,
                 *, smoke: bool | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``metrics.json`` and ``plots/*.png`` into ``out_dir``.

    Args:
        out_dir: folder to write into (created if missing; existing files of the same names are replaced,
            each atomically).
        results: metrics, in the layout of the module docstring (``models`` required).
        plots: raw arrays for the figures, in the layout of the module docstring, or ``None``.
        smoke: a smoke run (``--quick``: tiny model, data sample): the report opens with
            :data:`SMOKE_BANNER`, every verdict reads ``not judged`` and the title drops its pass count;
            the numbers are all shown. ``None``: ``results["smoke"]`` when given, else whether the original
            run's ``config.json`` (found from ``models[...]["path"]``) says it was quick
            (:func:`is_quick_config`).

    Returns:
        ``{relative path: absolute Path}`` of every file written, e.g. ``"report.md"``,
        ``"report.html"``, ``"metrics.json"``, ``"plots/attack_roc.png"``.
    """
    out_dir = Path(out_dir)
    models = results.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("results['models'] must be a non-empty dict of model entries")
    original, reference, methods = _roles(models)
    order = [n for n in (original, reference) if n is not None] + methods
    pool = pool_key(models)
    keys = summary_keys(pool)
    if smoke is None:
        given = results.get("smoke")
        smoke = bool(given) if given is not None else _smoke_of_runs(models, original)
    smoke = bool(smoke)

    summary = dict(results.get("summary") or {})
    computed = _compute_summary(models, original, reference, methods, keys)
    for k, v in computed.items():
        summary.setdefault(k, v)

    figures = _render_plots(plots, models, order, reference, keys) + audit_report.figures(results.get("audit"))
    title = str(results.get("title") or "graphdel unlearning report")
    blocks = _build({**results, "title": title}, models, order, original, reference, methods, keys, summary,
                    pool, figures, smoke=smoke)

    written: dict[str, Path] = {}
    for rel, _caption, png in figures:
        atomic_write_bytes(png, out_dir / rel)
        written[rel] = out_dir / rel
    metrics = {**to_jsonable(results), "schema": SCHEMA, "summary": to_jsonable(summary),
               "plots": [rel for rel, _, _ in figures], "smoke": smoke}
    atomic_write_json(metrics, out_dir / "metrics.json")
    written["metrics.json"] = out_dir / "metrics.json"
    atomic_write_text(_to_markdown(blocks), out_dir / "report.md")
    written["report.md"] = out_dir / "report.md"
    atomic_write_text(_to_html(blocks, title), out_dir / "report.html")
    written["report.html"] = out_dir / "report.html"
    return {k: p.resolve() for k, p in written.items()}
