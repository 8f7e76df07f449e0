"""The report's figures (:func:`render_plots`: pair similarities, headline metrics against Retrain, attack
ROC curves, embeddings), and the two primitives the audit's section of the report draws with too: a
matplotlib figure made without pyplot (:func:`new_figure`) and its PNG bytes (:func:`png_bytes`).

Used by :mod:`graphdel.evaluation.report` and :mod:`graphdel.evaluation.audit_report` (which the report
includes), so it sits below both.
"""

from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np

from graphdel.evaluation.report_format import SPLIT_ORDER, fmt, plain_label, slugs
from graphdel.evaluation.report_verdicts import headline

__all__ = ["new_figure", "png_bytes", "render_plots"]

_SPLIT_LABEL = {"forget": "Df (forget)", "retain": "Dr (retain)", "val": "val", "test": "test"}
_COLORS = {"forget": "#d62728", "retain": "#1f77b4", "val": "#9467bd", "calibration": "#8c564b",
           "test": "#2ca02c"}


def new_figure(w: float = 6.4, h: float = 4.0):
    """A ``w`` x ``h`` inch matplotlib figure at 100 dpi with constrained layout."""
    from matplotlib.figure import Figure  # object API: no pyplot, no global backend switch (Agg canvas)

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def png_bytes(fig) -> bytes:
    """``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_similarity(name: str, sims: Mapping[str, Any]) -> bytes | None:
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in sims.items()}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items() if np.isfinite(v).any()}
    if not arrays:
        return None
    order = [k for k in SPLIT_ORDER if k in arrays] + [k for k in arrays if k not in SPLIT_ORDER]
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
    values = {m: headline(models[m], keys) for m in order}
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


def render_plots(plots: Mapping[str, Any] | None, models, order, reference, keys
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
