"""The deletion history of a run: every request applied since the original training, oldest first, and
whether the run folders and certificates that record them still form an unbroken chain.

A run unlearned from an unlearned run keeps the whole list in ``history.json``; each unlearned run's
``certificate.json`` carries the SHA-256 of its parent's certificate (``previous_certificate_sha256``) and
of its parent's weights (``original_weights_sha256``). :func:`deletion_history` walks the parents named in
the runs' ``config.json`` and checks each link, so an auditor can see that request 3 was applied to the
model that requests 1 and 2 produced, and that none of those certificates was replaced since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from graphdel.errors import IntegrityError, RunError
from graphdel.io import sha256_file
from graphdel.runs import Run


@dataclass(frozen=True)
class HistoryStep:
    """One request of a run's history.

    Attributes:
        step: 1 for the first request applied after the original training.
        applied_at: when it was applied (UTC, ISO 8601), ``None`` for runs that did not record it.
        by: the request's granularity (``pair``, ``molecule``, ``scaffold``...).
        pairs: the number of pairs it deleted.
        description: the request's own description.
        method: the unlearning method that applied it.
        run: the unlearned run folder that applied it; ``None`` when it could not be found.
        certificate_sha256: SHA-256 of that run's ``certificate.json``; ``None`` when not found.
        chain: ``"ok"`` when the run's certificate names the previous step's certificate and weights and
            its own history agrees; otherwise what does not hold, or why it could not be checked.
    """

    step: int
    applied_at: str | None
    by: str
    pairs: int
    description: str
    method: str
    run: str | None
    certificate_sha256: str | None
    chain: str


def deletion_history(path: str | Path) -> list[HistoryStep]:
    """Every request applied to the model in the run folder ``path``, oldest first (``[]`` for a trained
    run), each with the run that applied it and the state of its link in the certificate chain.

    Raises:
        RunError: ``path`` is not a finished run folder.
    """
    run = Run.load(path, check=False)
    lineage = _unlearned_lineage(run)  # oldest first; may miss the oldest when a parent folder is gone
    offset = len(run.history) - len(lineage)
    steps: list[HistoryStep] = []
    previous: tuple[str | None, str | None] | None = (None, None)  # (certificate sha, weights sha) of step k-1
    for k, entry in enumerate(run.history, 1):
        request = entry.get("request", {})
        holder = lineage[k - 1 - offset] if k - 1 - offset >= 0 else None
        cert_sha, chain, weights = None, "not checked: the run that applied it was not found", None
        if holder is not None:
            cert_sha, weights, chain = _check_link(holder, k, run.history[:k], previous)
        previous = (cert_sha, weights) if holder is not None else None
        steps.append(HistoryStep(step=k, applied_at=entry.get("applied_at"), by=str(request.get("by", "?")),
                                 pairs=len(request.get("pairs", [])),
                                 description=str(request.get("description", "")),
                                 method=str(entry.get("method", "?")),
                                 run=str(holder.path) if holder is not None else None,
                                 certificate_sha256=cert_sha, chain=chain))
    return steps


def chain_original(run: Run) -> Run | None:
    """The trained run a chain of deletions started from: ``run`` itself for a trained run, the parent
    of its oldest unlearned ancestor otherwise; ``None`` when a folder of the chain no longer reads as a
    run (moved or deleted). Loaded with its integrity checked."""
    lineage = _unlearned_lineage(run)
    if not lineage:
        return run
    oldest = lineage[0]
    parent = (oldest.config.get("parent") or {}).get("path")
    if len(lineage) < len(run.history) or not parent:
        return None  # the walk stopped before the oldest request: the chain's start is not reachable
    try:
        root = Run.load(parent)
    except IntegrityError:
        raise  # a chain's original whose weights changed is said, never silently replaced by the parent
    except RunError:
        return None
    if root.config.get("kind") == "forget":  # pragma: no cover - the walk goes through every unlearned run
        return None
    return root


def _unlearned_lineage(run: Run) -> list[Run]:
    """``run`` and its unlearned ancestors, oldest first, following ``config.json``'s ``parent.path``; the
    walk stops at the trained original or at a parent folder that no longer reads as a run."""
    chain: list[Run] = []
    current: Run | None = run
    while current is not None and current.config.get("kind") == "forget":
        chain.append(current)
        parent = (current.config.get("parent") or {}).get("path")
        try:
            current = Run.load(parent, check=False) if parent else None
        except RunError:
            current = None
    return chain[::-1]


def _check_link(holder: Run, k: int, expected_history: list, previous) -> tuple[str | None, str | None, str]:
    """``(certificate sha, weights sha, chain status)`` of the run ``holder`` that applied step ``k``.

    ``previous`` is ``(certificate sha, weights sha)`` of step ``k - 1`` (``(None, None)`` before step 1:
    a chain starts at the original, which has no certificate), or ``None`` when that step's run was not
    found (the link cannot be checked)."""
    cert_path = holder.path / "certificate.json"
    try:
        cert = json.loads(cert_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, None, f"broken: {cert_path} unreadable ({type(e).__name__})"
    cert_sha = sha256_file(cert_path)
    weights = cert.get("unlearned_weights_sha256")
    problems = []
    if holder.history != expected_history:
        problems.append(f"its history.json does not list the same first {k} requests")
    if previous is not None:
        prev_cert, prev_weights = previous
        if cert.get("previous_certificate_sha256") != prev_cert:
            problems.append("its certificate does not name the previous step's certificate")
        if k > 1 and cert.get("original_weights_sha256") != prev_weights:
            problems.append("its certificate's original weights are not the previous step's weights")
    if cert.get("original_weights_sha256") != expected_history[-1].get("parent_weights_sha256"):
        problems.append("its certificate's original weights differ from the history's record")
    if problems:
        return cert_sha, weights, "broken: " + "; ".join(problems)
    return cert_sha, weights, "ok" if previous is not None else "not checked: the previous step's run was not found"
