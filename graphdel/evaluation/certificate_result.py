"""What verifying a deletion certificate finds (:class:`VerifyResult`: one ``(name, ok, detail)`` per check)
and how a check compares a recorded value with the one found: the value at a dotted path, numbers within a
tolerance, nested records key by key (:func:`_diff`). Part of the certificate modules, which share private
helpers (:mod:`graphdel.evaluation.certificate_checks` explains the cut).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_MISSING = object()


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_certificate`.

    Attributes:
        checks: ``(name, ok, detail)``, one per certified field (named by its dotted path) plus
            ``request.pairs`` (the requested pairs' content), ``weights_changed``, ``chain`` (earlier
            certificates) and ``run`` (the run's config.json or request.json unreadable); ``ok`` is True,
            False, or None for a check that could not be made (e.g. the original run moved).
        unreachable: why nothing about the run could be checked (its folder was not found), else None.
    """

    checks: list = field(default_factory=list)
    unreachable: str | None = None

    @property
    def failed(self) -> list:
        """The ``(name, False, detail)`` checks that failed."""
        return [c for c in self.checks if c[1] is False]

    @property
    def not_checked(self) -> list:
        """The ``(name, None, detail)`` checks that could not be made."""
        return [c for c in self.checks if c[1] is None]

    @property
    def status(self) -> str:
        """``"does not hold"`` when a check failed, else ``"cannot check"`` when the run was not found,
        else ``"holds"``."""
        if self.failed:
            return "does not hold"
        return "cannot check" if self.unreachable is not None else "holds"

    @property
    def holds(self) -> bool:
        """True when the run was found and no check failed (checks that could not be made do not count
        against it; see :attr:`not_checked`)."""
        return self.status == "holds"


def _get(obj, path: str):
    """The value at the dotted ``path`` of nested dicts, or :data:`_MISSING`."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _close(a: float, b: float, tol: float) -> bool:
    """``a`` and ``b`` within ``tol`` (absolute up to magnitude 1, relative above, e.g. a weight norm)."""
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _diff(recorded, actual, tol: float, prefix: str = "") -> list[str]:
    """Where ``recorded`` and ``actual`` differ: numbers beyond ``tol``, anything else unequal, and keys
    present on one side only (so a removed or an added entry is a difference too)."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(recorded) | set(actual), key=str):
            sub = f"{prefix}.{k}" if prefix else str(k)
            if k not in actual:
                out.append(f"{sub}: recorded {recorded[k]!r}, absent when recomputed")
            elif k not in recorded:
                out.append(f"{sub}: missing from the certificate (recomputed {actual[k]!r})")
            else:
                out += _diff(recorded[k], actual[k], tol, sub)
        return out
    same = _close(recorded, actual, tol) if _is_number(recorded) and _is_number(actual) else recorded == actual
    return [] if same else [f"{prefix + ': ' if prefix else ''}recorded {recorded!r}, found {actual!r}"]


def _summary(diffs: list[str]) -> str:
    """The first differences, and how many more."""
    return "; ".join(diffs[:5]) + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else "")
