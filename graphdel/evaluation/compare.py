"""One deletion request, two modalities: the outcome of every model side by side (``graphdel compare``).

The ``depictions`` source draws the ``drugs`` molecules and keeps their pair ids, so the same request
(e.g. 5% of the training molecules, seed 0) can be unlearned from a graph–text and an image–text model.
:func:`compare` reads two outcomes and lines them up per model (original, Retrain, each method):

* an **outcome** is a report folder (``graphdel demo`` or ``graphdel report`` output: ``metrics.json``
  with the per-model entries) or a single unlearned run folder (its own ``metrics.json``: retrieval only);
* the requests are compared by their pair ids (``request.json`` of the demo folder or of a run): the
  table says whether both sides deleted exactly the same pairs, and their overlap when not.

Numbers per side: Df pool-64 x->text MRR and its gap to Retrain, test pool-64 MRR and its change from the
original, membership attack AUC, wall time and its share of Retrain's, and whether the method meets the
three targets (Df within 0.05 of Retrain, test at most 0.02 below the original, at most 10% of Retrain's
time; :func:`graphdel.evaluation.summary.thresholds`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from graphdel.errors import InvalidInputError
from graphdel.modalities import label

__all__ = ["Outcome", "load_outcome", "compare", "Comparison"]

POOL = "pool64"


@dataclass
class Outcome:
    """What one side of a comparison shows.

    Attributes:
        path: the folder read.
        modality: ``"molecule"``, ``"image"``, ``"kg"`` (from the runs' ``config.json``), or ``"?"``.
        source: the dataset source.
        models: model name -> report entry (``role``, ``splits``, ``membership``, ``wall_time_s``...).
        pair_ids: the deleted pair ids, or ``None`` when no ``request.json`` was found.
    """

    path: Path
    modality: str
    source: str
    models: dict[str, dict]
    pair_ids: frozenset[str] | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"cannot read {path}: {e}") from e


def _request_ids(path: Path) -> frozenset[str] | None:
    """The pair ids of the deletion request saved at ``path`` (``None`` if there is no such file)."""
    from graphdel.data.requests import DeletionRequest

    if not path.is_file():
        return None
    return frozenset(DeletionRequest.load(path).pair_ids)


def _run_info(run_path: Path) -> tuple[str, str]:
    cfg = run_path / "config.json"
    if not cfg.is_file():
        return "?", "?"
    data = (_read_json(cfg) or {}).get("data") or {}
    return str(data.get("modality", "?")), str(data.get("source", "?"))


def load_outcome(folder: str | Path) -> Outcome:
    """Read a report folder or an unlearned run folder (see the module docstring).

    Raises:
        InvalidInputError: neither a report nor an unlearned run, or unreadable JSON.
    """
    folder = Path(folder)
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        raise InvalidInputError(f"{folder} holds no metrics.json: give a report/demo folder or an unlearned "
                                "run folder")
    metrics = _read_json(metrics_path)
    if isinstance(metrics, dict) and isinstance(metrics.get("models"), dict):  # a report
        models = {str(k): v for k, v in metrics["models"].items() if isinstance(v, dict)}
        modality, source = "?", str((metrics.get("request") or {}).get("source") or "?")
        ids = _request_ids(folder / "request.json")
        for entry in models.values():
            run_path = Path(str(entry.get("path", "")))
            if entry.get("path") and run_path.is_dir():
                m, s = _run_info(run_path)
                modality = m if modality == "?" else modality
                source = s if source == "?" else source
                if ids is None and entry.get("role") != "original":
                    ids = _request_ids(run_path / "request.json")
        return Outcome(folder, modality, source, models, ids)
    config_path = folder / "config.json"
    if config_path.is_file() and (folder / "request.json").is_file() and isinstance(metrics, dict):
        config = _read_json(config_path)
        modality, source = _run_info(folder)
        method = str(config.get("method") or folder.name)
        entry = {"role": "reference" if method == "retrain" else "method", "method": method,
                 "splits": metrics.get("splits") or {}, "wall_time_s": metrics.get("wall_time_s")}
        return Outcome(folder, modality, source, {method: entry}, _request_ids(folder / "request.json"))
    raise InvalidInputError(f"{folder} is neither a report folder (metrics.json with 'models') nor an unlearned "
                            "run folder (config.json, request.json, metrics.json)")


def _get(entry: Mapping[str, Any] | None, *keys: str) -> float | None:
    d: Any = entry
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def _side(outcome: Outcome, name: str) -> dict[str, Any]:
    """The numbers of model ``name`` in ``outcome`` (``None`` where absent)."""
    from graphdel.evaluation.summary import thresholds

    entry = outcome.models.get(name)
    if entry is None:
        return {}
    ref = next((e for e in outcome.models.values() if e.get("role") == "reference"), None)
    orig = next((e for e in outcome.models.values() if e.get("role") == "original"), None)
    df = _get(entry, "splits", "forget", POOL, "g2t_mrr")
    test = _get(entry, "splits", "test", POOL, "g2t_mrr")
    ref_df = _get(ref, "splits", "forget", POOL, "g2t_mrr")
    orig_test = _get(orig, "splits", "test", POOL, "g2t_mrr")
    t, ref_t = _get(entry, "wall_time_s"), _get(ref, "wall_time_s")
    out: dict[str, Any] = {
        "df": df, "test": test, "attack": _get(entry, "membership", "attack_auc"), "time_s": t,
        "df_vs_retrain": None if df is None or ref_df is None or entry.get("role") != "method" else df - ref_df,
        "test_vs_original": (None if test is None or orig_test is None or entry.get("role") == "original"
                             else test - orig_test),
        "time_share": None if t is None or not ref_t or entry.get("role") != "method" else t / ref_t,
        "passes": None,
    }
    if entry.get("role") == "method" and ref is not None and orig is not None:
        checks = thresholds(entry, ref, orig)
        verdicts = [c.get("passed") for c in checks.values()]
        out["passes"] = None if None in verdicts else all(verdicts)
    return out


@dataclass
class Comparison:
    """Two outcomes of (ideally) one request, model by model.

    Attributes:
        a, b: the two outcomes.
        rows: ``[(model name, numbers on a, numbers on b)]`` (see :func:`_side` keys).
        same_request: ``True``/``False`` when both request files were found, else ``None``.
        overlap: ``(shared pairs, pairs in a, pairs in b)`` when both were found.
    """

    a: Outcome
    b: Outcome
    rows: list[tuple[str, dict, dict]] = field(default_factory=list)
    same_request: bool | None = None
    overlap: tuple[int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-ready dict: each side's path, modality and source, ``same_request``,
        ``overlap`` and the rows as ``{"model", "a", "b"}`` (what ``graphdel compare --out`` writes)."""
        return {"a": {"path": str(self.a.path), "modality": self.a.modality, "source": self.a.source},
                "b": {"path": str(self.b.path), "modality": self.b.modality, "source": self.b.source},
                "same_request": self.same_request, "overlap": self.overlap,
                "rows": [{"model": n, "a": x, "b": y} for n, x, y in self.rows]}

    def table(self) -> str:
        """A Markdown table: one row per model, the two modalities side by side."""
        la = f"{label(self.a.modality)} ({self.a.source})"  # the records' labels: graph, image, KG
        lb = f"{label(self.b.modality)} ({self.b.source})"
        if self.same_request is None:
            req = "request: not checked (a request.json is missing on one side)"
        elif self.same_request:
            req = f"request: the same {self.overlap[1]} deleted pairs on both sides"
        else:
            s, n, m = self.overlap
            req = f"request: DIFFERENT deleted pairs ({s} shared; {n} on the left, {m} on the right)"
        f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
        sg = lambda v: "" if v is None else f" ({v:+.3f})"  # noqa: E731
        pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        ok = lambda v: "" if v is None else ("PASS" if v else "fail")  # noqa: E731
        lines = [f"Left: {la}, {self.a.path}. Right: {lb}, {self.b.path}. {req}.", "",
                 "Df and test: pool-64 item→text MRR (graph→text for a graph model, image→text for an image "
                 "model); Δ: Df vs Retrain, test vs the original; time: wall time and share of Retrain's; "
                 "targets: Df within 0.05 of Retrain, test at most 0.02 below the original, at most 10% of "
                 "Retrain's time.", "",
                 "| model | Df (Δ) left | test (Δ) left | attack left | time left | targets left "
                 "| Df (Δ) right | test (Δ) right | attack right | time right | targets right |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, x, y in self.rows:
            cells = [name]
            for s in (x, y):
                time = "–" if s.get("time_s") is None else (
                    f"{s['time_s']:.1f} s" + (f" ({pct(s['time_share'])})" if s.get("time_share") is not None else ""))
                cells += [f(s.get("df")) + sg(s.get("df_vs_retrain")), f(s.get("test")) + sg(s.get("test_vs_original")),
                          f(s.get("attack"), 2), time, ok(s.get("passes"))]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare(a: str | Path | Outcome, b: str | Path | Outcome) -> Comparison:
    """Line up two outcomes (see the module docstring): rows in the order original, Retrain, then the
    methods of ``a`` followed by those only in ``b``."""
    a = a if isinstance(a, Outcome) else load_outcome(a)
    b = b if isinstance(b, Outcome) else load_outcome(b)

    def order(o: Outcome) -> list[str]:
        rank = {"original": 0, "reference": 1}
        return sorted(o.models, key=lambda n: (rank.get(o.models[n].get("role"), 2), list(o.models).index(n)))

    names = order(a) + [n for n in order(b) if n not in a.models]
    cmp = Comparison(a, b, [(n, _side(a, n), _side(b, n)) for n in names])
    if a.pair_ids is not None and b.pair_ids is not None:
        cmp.same_request = a.pair_ids == b.pair_ids
        cmp.overlap = (len(a.pair_ids & b.pair_ids), len(a.pair_ids), len(b.pair_ids))
    return cmp
