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

import json
from pathlib import Path
from typing import Any, Mapping

from graphdel.evaluation import audit_report
from graphdel.evaluation.metrics import METRICS
# The report is cut along its concepts: formatting (shared with audit_report, which this module includes),
# judgement, figures and rendering live in the report_* modules; NOT_JUDGED and to_jsonable are imported
# from here too.
from graphdel.evaluation.report_format import (SPLIT_ORDER, cell_text, fmt, kv_rows, memory_cells, request_line,
                                               to_jsonable)
from graphdel.evaluation.report_plots import render_plots
from graphdel.evaluation.report_render import to_html, to_markdown
from graphdel.evaluation.report_verdicts import (NOT_JUDGED, headline_rows, method_verdict, model_roles,
                                                 spread_retrains)
from graphdel.evaluation.spread import spread_blocks
from graphdel.evaluation.summary import judgement, pool_key, summary_keys
from graphdel.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from graphdel.modalities import item_word
from graphdel.runs import is_quick_config

__all__ = ["write_report", "SCHEMA", "SMOKE_BANNER", "NOT_JUDGED", "APPENDIX"]

SCHEMA = "graphdel.report/1"
#: The line a smoke run's report (``--quick``: tiny model, data sample) starts with; no verdict is computed.
SMOKE_BANNER = "smoke run (--quick): tiny model and data sample; verdicts are not computed"
#: The heading every long key/value table of the report sits under, after the plots.
APPENDIX = "Appendix: details"


# ------------------------------------------------------------------------------------------- document

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
    Retrain), the spread over several requests (when given), the plots, then every long key/value table under ``## Appendix: details``."""
    B: list[tuple] = []
    B.append(("h1", str(results.get("title") or "graphdel unlearning report")))
    if smoke:
        B.append(("banner", SMOKE_BANNER))
    request = results.get("request") or {}
    B += _request_blocks(request, results.get("history") or [])
    verdicts = [method_verdict(m, models, original, reference, keys, summary, smoke) for m in methods]
    B += _verdict_blocks(verdicts, methods, smoke)
    B += _headline_blocks(models, order, original, reference, keys, summary, verdicts, request, pool)
    B += spread_blocks(results.get("spread"))  # the demo's other requests, when it ran several
    B += audit_report.summary_blocks(results.get("audit"))  # graphdel report --audit: its numbers, first screen
    if figures:
        B.append(("h2", "Plots"))
        for rel, caption, png in figures:
            B.append(("img", rel, caption, png))
    B.append(("h2", APPENDIX))
    B += _appendix_blocks(results, models, order, summary, pool, request, smoke)
    return B


def _request_blocks(request: Mapping, history: list) -> list[tuple]:
    """The request line and, for a request applied to an already unlearned model, the chain it continues."""
    B: list[tuple] = []
    if request:
        B.append(("h2", "Request"))
        B.append(("p", request_line(request)))
    if len(history) > 1:  # a request applied to an already unlearned model: the chain it continues
        B.append(("p", f"This is request {len(history)} of a chain of deletions from the same original "
                       "(`graphdel history RUN`):"))
        B.append(("table", ["step", "applied (UTC)", "by", "pairs", "method", "certificate", "chain"],
                  [[str(s.get("step")), str(s.get("applied_at") or "not recorded"), str(s.get("by")),
                    str(s.get("pairs")), str(s.get("method")), str(s.get("certificate_sha256") or "not found")[:12],
                    str(s.get("chain"))] for s in history]))
    return B


def _verdict_blocks(verdicts: list[dict], methods, smoke: bool) -> list[tuple]:
    """The verdicts section: one verdict per method (measurements only in a smoke run)."""
    B: list[tuple] = [("h2", "Verdicts")]
    if not methods:
        B.append(("p", "No unlearning method in these results."))
    if smoke:
        B.append(("p", "Measurements only: a model this small, trained on a sample, says nothing about the "
                       "methods, so no method is judged against the targets."))
    B.append(("verdicts", verdicts))
    return B


def _headline_blocks(models, order, original, reference, keys, summary, verdicts: list[dict], request: Mapping,
                     pool) -> list[tuple]:
    """The headline table: each model's gaps to Retrain (forget side) and to the original (test)."""
    B: list[tuple] = [("h2", "Headline: gaps to Retrain")]
    head, rows = headline_rows(models, order, original, reference, keys, summary,
                               {v["name"]: v["status"] for v in verdicts})
    side = item_word(str(request.get("modality")))  # the record's word: graph, image, query
    B.append(("p", f"MRR: {pool} {side}→text retrieval. Δ compares a method with Retrain on the forget side "
                   f"and with the original model on test. Df-vs-Dr AUC labels Df 0, Dr 1; attack AUC labels "
                   f"Df 1, test 0. Closest to Retrain is best on the forget side, in either direction. "
                   f"Df-vs-calibration AUC labels Df 0 and the model's never-trained calibration pairs 1: "
                   f"0.5 means the deleted pairs score as pairs the model never saw. Df − calibration MRR "
                   f"is the same question in the Df MRR's own score, ± its standard error over the pairs: "
                   f"no Retrain needed, and a Retrain's deleted pairs sit near 0 on it while its never-seen "
                   f"level may differ from the original's by a training run's spread."))
    B.append(("table", head, rows))
    return B


def _appendix_blocks(results, models, order, summary, pool, request: Mapping, smoke: bool) -> list[tuple]:
    """Everything under ``## Appendix: details``: the request, the runs, the targets and scores, every
    model's measurements split by split, the examples and the audit's details."""
    B: list[tuple] = []
    if request:
        B.append(("h3", "Deletion request"))
        B.append(("table", ["key", "value"], [[k, cell_text(v)] for k, v in request.items()]))
    B += _run_blocks(models, order)
    B += _judgement_blocks(summary, smoke)
    B += _retrieval_blocks(models, order, pool)
    B += _link_prediction_blocks(models, order)
    B.extend(_inference_split_blocks(models, order))
    for section, title in ((m.section, m.title) for m in METRICS.values() if m.section and m.title):
        rows = [[n, *kv] for n in order if isinstance(models[n].get(section), Mapping)
                for kv in kv_rows(models[n][section])]
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


def _run_blocks(models, order) -> list[tuple]:
    """The runs: role, method, wall time and memory of each model."""
    B: list[tuple] = [("h3", "Runs")]
    B.append(("table", ["model", "role", "method", "wall time (s)", "peak RSS (MB)", "added over start (MB)"],
              [[n, models[n].get("role", ""), str(models[n].get("method", "")),
                fmt(models[n].get("wall_time_s"), 1), *memory_cells(models[n])]
               for n in order]))
    how = list(dict.fromkeys(str(models[n]["peak_mem_method"]) for n in order
                             if models[n].get("peak_mem_method")))
    B.append(("p", "Memory of the process while the method ran (recorded by `forget`; n/a: not recorded)"
                   + (": " + "; ".join(how) if how else "") + "."))
    return B


def _judgement_blocks(summary, smoke: bool) -> list[tuple]:
    """The targets each method was judged against, and the summary score with its components."""
    B: list[tuple] = []
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
    return B


def _retrieval_blocks(models, order, pool) -> list[tuple]:
    """Retrieval of every model on every split, both directions, full ranking and the ``pool`` protocol."""
    rrows = []
    for n in order:
        splits = models[n].get("splits") or {}
        names = [s for s in SPLIT_ORDER if s in splits] + [s for s in splits if s not in SPLIT_ORDER]
        for s in names:
            sp = splits[s] or {}
            g, t, p = sp.get("g2t") or {}, sp.get("t2g") or {}, sp.get(pool) or {}
            rrows.append([n, s, fmt(sp.get("n")),
                          fmt(g.get("mrr")), fmt(g.get("hits@1")), fmt(g.get("hits@10")),
                          fmt(t.get("mrr")), fmt(t.get("hits@1")), fmt(t.get("hits@10")),
                          fmt(p.get("g2t_mrr")), fmt(p.get("t2g_mrr")), fmt(p.get("g2t_acc")),
                          fmt(p.get("t2g_acc")), fmt(sp.get("match_acc"))])
    return [("h3", "Retrieval"),
            ("table", ["model", "split", "n", "g2t MRR", "g2t H@1", "g2t H@10",
                       "t2g MRR", "t2g H@1", "t2g H@10", f"{pool} g2t MRR", f"{pool} t2g MRR",
                       f"{pool} g2t acc", f"{pool} t2g acc", "match acc"],
             rrows)]


def _link_prediction_blocks(models, order) -> list[tuple]:
    """Link prediction of every model on every split (knowledge graphs; nothing when no model has any)."""
    lrows = []
    for n in order:
        splits = models[n].get("splits") or {}
        for s_name in [s for s in SPLIT_ORDER if s in splits] + [s for s in splits if s not in SPLIT_ORDER]:
            lp = (splits[s_name] or {}).get("lp")
            if isinstance(lp, Mapping):
                lrows.append([n, s_name, fmt(lp.get("n")), fmt(lp.get("mrr")), fmt(lp.get("hits@1")),
                              fmt(lp.get("hits@3")), fmt(lp.get("hits@10")), fmt(lp.get("auroc_vs_retain"))])
    if not lrows:
        return []
    return [("h3", "Link prediction"),
            ("p", "Filtered ranks over all entities, both directions. collateral@k: retained training "
                  "triples within k hops of a deleted one (compare with the original). Df-vs-Dr AUROC: "
                  "deleted (label 0) vs retained (label 1) triple scores, as in the Df-vs-Dr AUC; 0.5 = "
                  "deleted triples scored like retained ones, 1.0 = every deleted triple below every "
                  "retained one (compare with Retrain)."),
            ("table", ["model", "split", "queries", "MRR", "H@1", "H@3", "H@10", "Df-vs-Dr AUROC"], lrows)]


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
    original, reference, methods = model_roles(models)
    order = [n for n in (original, reference) if n is not None] + methods + spread_retrains(models)
    pool = pool_key(models)
    keys = summary_keys(pool)
    if smoke is None:
        given = results.get("smoke")
        smoke = bool(given) if given is not None else _smoke_of_runs(models, original)
    smoke = bool(smoke)

    summary = dict(results.get("summary") or {})
    if not {"scores", "thresholds"} <= summary.keys():  # the suite's results carry it: not judged twice
        for k, v in judgement(models, original, reference, methods, keys).items():
            summary.setdefault(k, v)

    figures = render_plots(plots, models, order, reference, keys) + audit_report.figures(results.get("audit"))
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
    atomic_write_text(to_markdown(blocks), out_dir / "report.md")
    written["report.md"] = out_dir / "report.md"
    atomic_write_text(to_html(blocks, title), out_dir / "report.html")
    written["report.html"] = out_dir / "report.html"
    return {k: p.resolve() for k, p in written.items()}
