"""The same deletion measured on several requests: each headline gap as mean ± spread over the requests.

One request says little about a method: the demo's full mode deletes several requests drawn with
consecutive seeds, evaluates each against its own Retrain (:func:`graphdel.evaluation.suite.evaluate_runs`)
and summarises the headline gaps per method with :func:`spread_of`:

===================  =====================================================================
gap                  per request
===================  =====================================================================
``forget_mrr``       method's Df pool-k g2t MRR minus Retrain's (same request)
``test_mrr``         method's test pool-k g2t MRR minus the original's
``df_dr_auc``        method's Df-vs-Dr AUC minus Retrain's
``attack_auc``       method's membership attack AUC minus Retrain's
``time_share``       method's wall time over Retrain's
===================  =====================================================================

The spread is the sample standard deviation over the requests (``None`` for one request). The metric keys
are the summary's (:func:`graphdel.evaluation.summary.summary_keys` at the entries' pool key).
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

from graphdel.evaluation.summary import flatten, pool_key, summary_keys

__all__ = ["GAPS", "spread_of", "spread_rows", "spread_blocks"]

#: ``gap name -> (summary key, reference role, "diff" or "ratio")``, in the table's order.
GAPS: dict[str, tuple[str, str, str]] = {
    "forget_mrr": ("forget_mrr", "reference", "diff"),
    "test_mrr": ("test_mrr", "original", "diff"),
    "df_dr_auc": ("df_dr_auc", "reference", "diff"),
    "attack_auc": ("attack_auc", "reference", "diff"),
    "time_share": ("wall_time", "reference", "ratio"),
}
_HEADINGS = {"forget_mrr": "Df MRR − Retrain", "test_mrr": "test MRR − original",
             "df_dr_auc": "Df-vs-Dr AUC − Retrain", "attack_auc": "attack AUC − Retrain",
             "time_share": "time / Retrain"}


def _gaps(models: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``{method: {gap: value}}`` of one request's per-model entries (roles ``original``, ``reference``,
    ``method``); a gap whose numbers are missing is ``None``."""
    keys = summary_keys(pool_key(models))
    roles = {e.get("role"): flatten(e) for e in models.values()}
    out: dict[str, dict[str, float | None]] = {}
    for name, entry in models.items():
        if entry.get("role") != "method":
            continue
        mine = flatten(entry)
        row: dict[str, float | None] = {}
        for gap, (key, ref_role, kind) in GAPS.items():
            a, b = mine.get(keys[key]), (roles.get(ref_role) or {}).get(keys[key])
            if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
                row[gap] = None
            elif kind == "diff":
                row[gap] = float(a) - float(b)
            else:
                row[gap] = float(a) / float(b) if b > 0 else None
        out[name] = row
    return out


def spread_of(requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± spread of the headline gaps over several requests.

    Args:
        requests: one ``{"seed": int, "pairs": int, "models": {name: entry}}`` per request, ``models`` the
            evaluated entries of that request (``evaluate_runs(...)["results"]["models"]``).

    Returns:
        ``{"requests": [{"seed", "pairs"}], "methods": {method: {gap: {"mean", "std", "values"}}}}`` over
        the methods every request has, in the first request's order; ``std`` is ``None`` with one value,
        and a gap missing from any request has ``mean = None``.
    """
    if not requests:
        raise ValueError("spread_of needs at least one request")
    per_request = [_gaps(r["models"]) for r in requests]
    methods = [m for m in per_request[0] if all(m in g for g in per_request[1:])]
    out: dict[str, Any] = {"requests": [{"seed": r.get("seed"), "pairs": r.get("pairs")} for r in requests],
                           "methods": {}}
    for m in methods:
        out["methods"][m] = {}
        for gap in GAPS:
            values = [g[m][gap] for g in per_request]
            known = None not in values
            out["methods"][m][gap] = {
                "mean": statistics.fmean(values) if known else None,
                "std": statistics.stdev(values) if known and len(values) > 1 else None,
                "values": values}
    return out


def spread_rows(spread: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the spread as a table: one row per method, each cell ``mean ± std``."""
    def cell(gap: str, v: Mapping[str, Any]) -> str:
        if v["mean"] is None:
            return "–"
        mean = f"{v['mean']:.3f}" if gap == "time_share" else f"{v['mean']:+.3f}"
        return mean if v["std"] is None else f"{mean} ± {v['std']:.3f}"
    header = ["method"] + [_HEADINGS[g] for g in GAPS]
    rows = [[m] + [cell(g, gaps[g]) for g in GAPS] for m, gaps in spread["methods"].items()]
    return header, rows


def spread_blocks(spread: Mapping[str, Any] | None) -> list[tuple]:
    """The report's section on the spread (nothing without one): the requests and the table."""
    if not spread:
        return []
    seeds = ", ".join(f"seed {r['seed']} ({r['pairs']} pairs)" for r in spread["requests"])
    header, rows = spread_rows(spread)
    return [("h2", f"Spread over {len(spread['requests'])} requests"),
            ("p", f"The same deletion drawn {len(spread['requests'])} times: {seeds}; this report's other "
                  "sections are the first request's. Each cell: mean ± standard deviation over the requests, "
                  "every gap against the same request's Retrain (test: against the original)."),
            ("table", header, rows)]
