"""Df-vs-Dr distinguishability: can a per-pair score tell deleted pairs from retained ones?

The score of a pair is any per-pair number where *higher means "the model believes this pair"*: the
cosine similarity ``sim(z_x, z_t)``, the matching head's logit, or minus the per-pair loss.

Following the MultiDelete authors' evaluation, the forget set ``Df`` is compared with ``chunks`` disjoint,
randomly drawn chunks of ``Dr`` of the same size as ``Df`` (so each comparison is balanced); one ROC-AUC
per chunk, reported as mean, standard deviation and the per-chunk values.

Labels: **Df = 0, Dr = 1**. So

* AUC ≈ 0.5: Df scored like Dr (the original model, which trained on both);
* AUC > 0.5: Df scored lower than Dr. Retrain shows a moderate value (Df is unseen to it, Dr is seen);
  an unlearned model should match *Retrain's* value, not maximise it — AUC near 1 is over-forgetting;
* AUC < 0.5: Df scored *higher* than Dr.

An AUC reads where two samples lie against each other, not how wide each is: deleted pairs all moved to
the middle of a reference sample score an AUC of 0.5 against it while spreading far narrower.
:func:`spread_against` reads the shape: the two-sample Kolmogorov-Smirnov statistic and the ratio of the
standard deviations.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

__all__ = ["df_vs_dr_auc", "spread_against"]


def _score_pair(df_scores, other_scores, caller: str, other: str) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as flat float64 arrays. Raises ValueError (naming ``caller``) when one is empty or
    holds NaN or inf."""
    df = np.asarray(df_scores, dtype=np.float64).reshape(-1)
    rest = np.asarray(other_scores, dtype=np.float64).reshape(-1)
    if df.size == 0 or rest.size == 0:
        raise ValueError(f"{caller} needs scores on both sides, got |Df|={df.size}, {other}={rest.size}")
    if not (np.isfinite(df).all() and np.isfinite(rest).all()):
        raise ValueError(f"{caller}: scores contain NaN or inf")
    return df, rest


def df_vs_dr_auc(df_scores: np.ndarray, dr_scores: np.ndarray, *, chunks: int = 5, seed: int = 0) -> dict:
    """ROC-AUC of Df (label 0) against disjoint Dr chunks of size ``|Df|`` (label 1).

    Convention: 0.5 means Df is scored like Dr, 1.0 that every Df pair scores below every Dr pair (the
    KG triple AUROC, :func:`graphdel.evaluation.link_prediction.triple_auroc`, follows the same).

    Dr is shuffled with ``numpy.random.default_rng(seed)`` and the first ``n_chunks * |Df|`` entries are
    cut into ``n_chunks = min(chunks, |Dr| // |Df|)`` chunks of ``|Df|``. When Dr holds fewer than
    ``|Df|`` scores (``|Dr| // |Df| == 0``), a single chunk with all of Dr is used (unbalanced).

    Args:
        df_scores: ``[|Df|]`` per-pair scores of the forget set.
        dr_scores: ``[|Dr|]`` per-pair scores of the retain set (or a sample of it).
        chunks: number of Dr chunks wanted (>= 1).
        seed: seed of the Dr shuffle.

    Returns:
        ``{"mean", "std" (population std over chunks), "per_chunk": [auc, ...], "n_chunks", "chunk_size"}``.
    """
    df, dr = _score_pair(df_scores, dr_scores, "df_vs_dr_auc", "|Dr|")
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    perm = np.random.default_rng(seed).permutation(dr.size)
    n_chunks = min(chunks, dr.size // df.size)
    if n_chunks == 0:
        parts = [dr[perm]]
    else:
        parts = [dr[perm[i * df.size:(i + 1) * df.size]] for i in range(n_chunks)]
    per_chunk = []
    for part in parts:
        y = np.concatenate([np.zeros(df.size), np.ones(part.size)])
        per_chunk.append(float(roc_auc_score(y, np.concatenate([df, part]))))
    return {
        "mean": float(np.mean(per_chunk)),
        "std": float(np.std(per_chunk)),
        "per_chunk": per_chunk,
        "n_chunks": len(parts),
        "chunk_size": int(parts[0].size),
    }


def spread_against(df_scores: np.ndarray, reference_scores: np.ndarray) -> dict:
    """Whether Df's per-pair scores are distributed like a reference sample's (the calibration pairs: what
    never-seen pairs look like), in shape as well as in level.

    Args:
        df_scores: ``[|Df|]`` per-pair scores of the forget set.
        reference_scores: ``[n]`` per-pair scores of the reference sample.

    Returns:
        ``{"ks", "ks_pvalue", "sd_ratio"}``: the two-sample Kolmogorov-Smirnov statistic (the largest gap
        between the two empirical distribution functions; 0 = the same distribution) and its p-value
        (:func:`scipy.stats.ks_2samp`), and the standard deviation of Df's scores over the reference's
        (1 = as wide; below 1 = Df moved more alike than never-seen pairs lie; ``None`` when every
        reference score is the same).

    Raises:
        ValueError: a side is empty or holds NaN or inf.
    """
    df, ref = _score_pair(df_scores, reference_scores, "spread_against", "reference")
    test = ks_2samp(df, ref)
    ref_sd = float(np.std(ref))
    return {"ks": float(test.statistic), "ks_pvalue": float(test.pvalue),
            "sd_ratio": float(np.std(df)) / ref_sd if ref_sd > 0 else None}
