"""Formatting for the report and the audit's section of it: JSON-safe values, numbers as text, escaping of
user strings for Markdown and HTML, safe plot labels and file names, and the text of table cells (values, key/value rows, memory, the request in one line).

Used by :mod:`graphdel.evaluation.report` and :mod:`graphdel.evaluation.audit_report` (which the report
includes), so it sits below both.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from graphdel.evaluation.summary import flatten

__all__ = ["SPLIT_ORDER", "to_jsonable", "finite_number", "fmt", "signed", "md_escape", "html_escape", "plain_label",
           "slug_base", "slugs", "cell_text", "kv_rows", "memory_mb", "memory_cells",
           "request_line"]

#: The order splits are shown in (others follow in their own order).
SPLIT_ORDER = ["forget", "retain", "val", "calibration", "test"]


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy / torch / Path values into JSON-safe Python; NaN and inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensors, without importing torch here
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def finite_number(x: Any) -> float | None:
    """``x`` as a finite float, or None (for None, a bool, a non-number, NaN or inf)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(x: Any, digits: int = 3) -> str:
    """``x`` as table text: ``yes``/``no`` for a bool, an integer as is, a number to ``digits`` decimals,
    ``–`` for a missing or non-finite number, anything else as ``str``."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    f = finite_number(x)
    if f is None:
        return "–" if x is None or isinstance(x, (float, np.floating)) else str(x)
    return f"{f:.{digits}f}"


def signed(x: float | None, digits: int = 3) -> str:
    """``x`` with its sign always shown (a typographic minus), or ``–`` for None."""
    return "–" if x is None else f"{x:+.{digits}f}".replace("-", "−")


def md_escape(s: Any) -> str:
    """Escape a user string for Markdown: HTML entities for & < >, backslashes for formatting chars."""
    s = str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = re.sub(r"([\\`*_\[\]|#])", r"\\\1", s)
    return " ".join(s.splitlines())


def html_escape(s: Any) -> str:
    """Escape a user string for HTML (quotes included)."""
    return html.escape(str(s), quote=True)


def plain_label(s: Any) -> str:
    """A user string made safe for matplotlib text (no mathtext)."""
    return str(s).replace("$", r"\$")


def slug_base(name: str) -> str:
    """``name`` reduced to a readable file-name part: lower case, ``+`` written ``plus``
    (``neggrad+`` -> ``neggrad_plus``), any other run of characters outside ``[a-z0-9_-]`` one ``_``."""
    s = str(name).lower().replace("+", "_plus_")
    s = re.sub(r"[^a-z0-9_-]+", "_", s)
    s = re.sub(r"_{2,}", "_", s).strip("_-")[:60].strip("_-")
    return s or "model"


def slugs(names: list[str]) -> dict[str, str]:
    """An injective ``name -> slug`` map (:func:`slug_base`) that does not depend on the order of ``names``.

    Names whose bases collide (``"a b"`` and ``"a_b"``, ``"A"`` and ``"a"``) keep the base only where the
    name *is* its base; the others get a short hash of the name (``a_b_3f2a91``), lengthened until unique.
    """
    names = list(dict.fromkeys(names))
    bases = {n: slug_base(n) for n in names}
    count: dict[str, int] = {}
    for b in bases.values():
        count[b] = count.get(b, 0) + 1
    out = {n: b for n, b in bases.items() if count[b] == 1 or str(n) == b}
    used = set(out.values())
    for n in sorted((n for n in names if n not in out), key=str):
        digest = hashlib.sha256(str(n).encode("utf-8")).hexdigest()
        k = 6
        while f"{bases[n]}_{digest[:k]}" in used or f"{bases[n]}_{digest[:k]}" in bases.values():
            k += 2
            if k > len(digest):  # pragma: no cover - a sha256 collision
                raise ValueError(f"cannot name the plots of {n!r} uniquely")
        out[n] = f"{bases[n]}_{digest[:k]}"
        used.add(out[n])
    return {n: out[n] for n in names}


# ------------------------------------------------------------------------------------- table cells

def cell_text(v: Any) -> str:
    """A table cell: a string as is, a list or dict as compact JSON, anything else :func:`fmt`."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(to_jsonable(v), ensure_ascii=False)
    return fmt(v)


def kv_rows(d: Mapping[str, Any]) -> list[list[str]]:
    """``[[dotted key, value]]`` of a nested dict (:func:`graphdel.evaluation.summary.flatten`); an array of
    at most 8 values is one comma-separated cell, a longer one is left out (metrics.json has it)."""
    rows = []
    for k, v in flatten(d).items():
        if isinstance(v, (list, tuple, np.ndarray)) or (hasattr(v, "detach") and hasattr(v, "tolist")):
            arr = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=object).reshape(-1)
            if arr.size > 8:
                continue  # raw per-item arrays belong to metrics.json, not the page
            v = ", ".join(fmt(x) for x in arr)
        rows.append([k, fmt(v) if not isinstance(v, str) else v])
    return rows


def memory_mb(x: Any) -> float | None:
    """A recorded memory figure in MB, or ``None`` when there is none (missing, NaN, or not above 0: a
    process never has a peak RSS of 0, so a 0 means "not measured", never "no memory")."""
    f = finite_number(x)
    return f if f is not None and f > 0 else None


def memory_cells(entry: Mapping[str, Any]) -> list[str]:
    """``[peak RSS, added over the start]`` of a run (MB, one decimal), ``"n/a"`` where not recorded.

    Reads what :func:`graphdel.resources.measure` records around the method: ``peak_mem_mb`` (peak
    RSS of the process while the method ran) and ``start_mem_mb`` (its RSS when the method began)."""
    peak, start = memory_mb(entry.get("peak_mem_mb")), memory_mb(entry.get("start_mem_mb"))
    return ["n/a" if peak is None else f"{peak:.1f}",
            "n/a" if peak is None or start is None else f"{peak - start:+.1f}".replace("-", "−")]


def request_line(request: Mapping[str, Any]) -> str:
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
