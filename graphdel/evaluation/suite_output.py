"""What an evaluation (:func:`~graphdel.evaluation.suite_runs.evaluate_runs`) leaves behind: the report
folder with one certificate per unlearned run (:func:`write_audit`, :func:`save_audit`), the terminal's
plain-text tables (:func:`short_table`, :func:`lp_table`) and :class:`Audit`, the object
:func:`graphdel.api.evaluate` returns.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from graphdel.evaluation.audit_report import certificate_entry
from graphdel.evaluation.certificate_build import evaluated_certificate
from graphdel.evaluation.report import NOT_JUDGED, SMOKE_BANNER, write_report
from graphdel.evaluation.report_verdicts import GAP_ROLES
from graphdel.evaluation.spread import spread_rows
from graphdel.io import atomic_write_json, sha256_file, staged_folder
from graphdel.runs import check_output

__all__ = ["write_audit", "save_audit", "short_table", "lp_table", "spread_table", "Audit"]


def write_audit(out_dir, audit: Mapping[str, Any]) -> dict[str, Any]:
    """Write the report (:func:`~graphdel.evaluation.report.write_report`) and one evaluated certificate
    per unlearned run into ``out_dir/certificates/<run folder name>.json`` (run folders are never
    written). A run's certificate records the audits of its method in ``audit["audits"]``
    (:func:`graphdel.evaluation.audit_report.attach_audits`). Returns ``write_report``'s file map plus the
    certificate paths."""
    from pathlib import Path

    out_dir = Path(out_dir)
    written = write_report(out_dir, audit["results"], audit["plots"])
    reference = audit["reference"]
    thr = (audit["results"].get("summary") or {}).get("thresholds") or {}
    cfg = audit["config"]
    for name, run in audit["names"].items():
        entry = audit["entries"][name]
        cert = evaluated_certificate(
            run.path, entry=entry, seed=cfg.seed, pool_size=cfg.pool_size, chunks=cfg.chunks,
            reference_path=reference.path if reference else None,
            reference_weights_sha256=sha256_file(reference.path / "model.safetensors") if reference else None,
            vs_retrain=entry.get("vs_retrain"), thresholds=thr.get(name), original_path=audit["original"].path,
            audits=[certificate_entry(a) for a in audit.get("audits") or []
                    if a.data["method"] == run.config.get("method")])
        # The folder name becomes a file name: resolved (so "." or "runs/.." give a real name) and reduced to
        # safe characters, so the certificate always lands inside out_dir/certificates/.
        safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", run.path.resolve().name).lstrip(".") or "run"
        rel = f"certificates/{safe}.json"
        atomic_write_json(cert, out_dir / rel)
        written[rel] = (out_dir / rel).resolve()
    return written


def save_audit(out_dir, audit: Mapping[str, Any], *, overwrite: bool = False) -> dict[str, Any]:
    """Write the audit's report folder whole: checked first (:func:`graphdel.runs.check_output`: not
    inside, equal to or around a run it evaluates; an existing folder only with ``overwrite``), then
    assembled under a temporary name (:func:`write_audit`) and swapped in at ``out_dir``, so an old
    report's certificates and plots never survive next to the new ones. Returns :func:`write_audit`'s
    file map with the final paths."""
    from pathlib import Path

    out_dir = Path(out_dir)
    runs = [audit["original"], *audit["names"].values()]
    check_output(out_dir, reads=[r.path for r in runs], overwrite=overwrite)
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        written = write_audit(folder, audit)
    return {rel: (out_dir / rel).resolve() for rel in written}


def short_table(audit: Mapping[str, Any]) -> str:
    """A few-line plain-text table of the outcome (for the terminal). A smoke audit (``results["smoke"]``:
    a ``--quick`` original) opens with :data:`~graphdel.evaluation.report.SMOKE_BANNER` and every verdict
    reads ``not judged``."""
    results = audit["results"]
    smoke = bool(results.get("smoke"))
    entries = results["models"]
    scores = ((results.get("summary") or {}).get("scores") or {}).get("methods") or {}
    thr = (results.get("summary") or {}).get("thresholds") or {}
    ref = next((e for e in entries.values() if e["role"] == "reference"), None)
    head = f"{'model':<14} {'role':<9} {'Df MRR':>7} {'ΔRetrain':>9} {'test MRR':>8} {'attack':>6} {'time s':>7} {'score':>6}  verdict"
    lines = ([SMOKE_BANNER] if smoke else []) + [head, "-" * len(head)]
    get = lambda e, *ks: _dig(e, ks)
    for name, e in entries.items():
        df = get(e, "splits", "forget", f"pool{audit['config'].pool_size}", "g2t_mrr")
        rdf = get(ref, "splits", "forget", f"pool{audit['config'].pool_size}", "g2t_mrr") if ref else None
        with_gaps = e["role"] in GAP_ROLES
        gap = "" if df is None or rdf is None or not with_gaps else f"{df - rdf:+.3f}"
        test = get(e, "splits", "test", f"pool{audit['config'].pool_size}", "g2t_mrr")
        auc = get(e, "membership", "attack_auc")
        t = e.get("wall_time_s")
        sc = (scores.get(name) or {}).get("score")
        verdict = ""
        if name in thr and smoke:
            verdict = NOT_JUDGED
        elif name in thr:
            passed = [v.get("passed") for v in thr[name].values()]
            verdict = "FAIL" if False in passed else ("PASS" if None not in passed else "?")
        f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
        lines.append(f"{name[:14]:<14} {e['role'][:9]:<9} {f(df):>7} {gap:>9} {f(test):>8} {f(auc, 2):>6} "
                     f"{f(t, 1):>7} {f(sc, 2) if sc is not None else '':>6}  {verdict}")
    return "\n".join(lines)


def lp_table(audit: Mapping[str, Any]) -> str:
    """A plain-text table of the link-prediction outcome of a KG audit (empty when no model has ``lp``
    metrics): filtered MRR on Df (against Retrain), on test and on the 1- and 2-hop collateral triples
    (against the original), the Df-vs-Dr triple-score AUROC (against Retrain) and time (share of Retrain)."""
    entries = audit["results"]["models"]
    get = lambda e, *ks: None if e is None else _dig(e, ks)
    if not any(get(e, "splits", "test", "lp", "mrr") is not None for e in entries.values()):
        return ""
    ref = next((e for e in entries.values() if e["role"] == "reference"), None)
    orig = next((e for e in entries.values() if e["role"] == "original"), None)
    f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    d = lambda v, b: "" if v is None or b is None else f"{v - b:+.3f}"
    head = (f"{'model':<14} {'Df MRR':>7} {'ΔRetrain':>9} {'test MRR':>8} {'Δorig':>7} {'coll@1':>7} {'Δorig':>7} "
            f"{'coll@2':>7} {'Δorig':>7} {'AUROC':>6} {'ΔRetrain':>9} {'time':>6}")
    lines = [head, "-" * len(head)]
    rt = get(ref, "wall_time_s")
    for name, e in entries.items():
        v = {k: get(e, "splits", s, "lp", "mrr") for k, s in
             (("df", "forget"), ("test", "test"), ("c1", "collateral@1"), ("c2", "collateral@2"))}
        auc = get(e, "splits", "forget", "lp", "auroc_vs_retain")
        t = get(e, "wall_time_s")
        with_gaps = e["role"] in GAP_ROLES
        share = f"{100 * t / rt:.1f}%" if t is not None and rt and with_gaps else ""
        lines.append(
            f"{name[:14]:<14} {f(v['df']):>7} {d(v['df'], get(ref, 'splits', 'forget', 'lp', 'mrr')):>9} "
            f"{f(v['test']):>8} {d(v['test'], get(orig, 'splits', 'test', 'lp', 'mrr')):>7} "
            f"{f(v['c1']):>7} {d(v['c1'], get(orig, 'splits', 'collateral@1', 'lp', 'mrr')):>7} "
            f"{f(v['c2']):>7} {d(v['c2'], get(orig, 'splits', 'collateral@2', 'lp', 'mrr')):>7} "
            f"{f(auc, 2):>6} {d(auc, get(ref, 'splits', 'forget', 'lp', 'auroc_vs_retain')):>9} {share:>6}")
    return "\n".join(lines)


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d if isinstance(d, (int, float)) else None


def spread_table(audit: Mapping[str, Any]) -> str:
    """A plain-text table of the audit's spread over several requests (:mod:`graphdel.evaluation.spread`;
    empty when it has none): one row per method, each gap as mean ± standard deviation."""
    spread = audit["results"].get("spread")
    if not spread:
        return ""
    header, rows = spread_rows(spread)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    seeds = ", ".join(str(r["seed"]) for r in spread["requests"])
    lines = [f"mean ± standard deviation over {len(spread['requests'])} requests (seeds {seeds}):"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines)


class Audit:
    """The outcome of :func:`~graphdel.evaluation.suite_runs.evaluate_runs`: ``results`` (the report layout),
    ``plots``, and :meth:`save` to write the report folder with its certificates."""

    def __init__(self, audit: Mapping[str, Any]) -> None:
        self._audit = dict(audit)
        self.results = self._audit["results"]
        self.plots = self._audit["plots"]

    def __getitem__(self, key: str) -> Any:
        return self._audit[key]

    def save(self, out_dir, *, overwrite: bool = False) -> dict[str, Any]:
        """Write report.md, report.html, metrics.json, plots/ and certificates/ as the folder ``out_dir``
        (:func:`save_audit`: an existing folder is refused, or with ``overwrite`` replaced whole)."""
        return save_audit(out_dir, self._audit, overwrite=overwrite)

    def table(self) -> str:
        """A few-line plain-text table of the outcome (:func:`short_table`)."""
        return short_table(self._audit)

    def __repr__(self) -> str:
        return f"Audit({list(self.results['models'])})"
