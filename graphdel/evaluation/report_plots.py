"""Figures of the report and of the audit's section of it: a matplotlib figure made without pyplot, and its
PNG bytes.

Used by :mod:`graphdel.evaluation.report` and :mod:`graphdel.evaluation.audit_report` (which the report
includes), so it sits below both.
"""

from __future__ import annotations

import io

__all__ = ["new_figure", "png_bytes"]


def new_figure(w: float = 6.4, h: float = 4.0):
    """A ``w`` x ``h`` inch matplotlib figure at 100 dpi with constrained layout."""
    from matplotlib.figure import Figure  # object API: no pyplot, no global backend switch (Agg canvas)

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def png_bytes(fig) -> bytes:
    """``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
