import numpy as np
import pytest

from graphdel.evaluation.distinguishability import df_vs_dr_auc, spread_against


def test_df_lower_than_dr_gives_one():
    # Df is labelled 0, Dr 1: Dr scored higher everywhere -> AUC 1 (what forgetting looks like).
    out = df_vs_dr_auc(np.array([0.1, 0.2]), np.array([0.8, 0.9, 0.7, 0.6]), chunks=2)
    assert out["per_chunk"] == [1.0, 1.0]
    assert out["mean"] == 1.0 and out["std"] == 0.0
    assert out["n_chunks"] == 2 and out["chunk_size"] == 2


def test_df_higher_than_dr_gives_zero():
    out = df_vs_dr_auc(np.array([0.8, 0.9]), np.array([0.1, 0.2, 0.3, 0.0]), chunks=2)
    assert out["mean"] == 0.0


def test_exact_three_quarters():
    # pairs (dr > df): 0.4>0.1 yes, 0.4>0.5 no, 0.6>0.1 yes, 0.6>0.5 yes -> 3/4
    out = df_vs_dr_auc(np.array([0.1, 0.5]), np.array([0.4, 0.6]), chunks=1)
    assert out["mean"] == pytest.approx(0.75)
    assert out["per_chunk"] == [pytest.approx(0.75)]


def test_ties_count_half_and_the_brief_example():
    # Df [0.1, 0.4] vs Dr [0.35, 0.8]: Dr above Df in 3 of 4 pairs
    assert df_vs_dr_auc(np.array([0.1, 0.4]), np.array([0.35, 0.8]), chunks=1)["mean"] == 0.75
    # Df [0.5, 0.5] vs Dr [0.5, 0.9]: two ties (1/2 each) and two wins -> (1 + 2) / 4
    assert df_vs_dr_auc(np.array([0.5, 0.5]), np.array([0.5, 0.9]), chunks=1)["mean"] == 0.75
    assert df_vs_dr_auc(np.array([0.3, 0.3]), np.array([0.3, 0.3]), chunks=1)["mean"] == 0.5


def test_identical_distributions_near_half():
    rng = np.random.default_rng(0)
    out = df_vs_dr_auc(rng.normal(size=200), rng.normal(size=2000), chunks=5)
    assert out["n_chunks"] == 5
    assert abs(out["mean"] - 0.5) < 0.08
    assert out["std"] == pytest.approx(np.std(out["per_chunk"]))


def test_uses_as_many_chunks_as_fit():
    out = df_vs_dr_auc(np.array([0.0, 1.0]), np.arange(5, dtype=float), chunks=5)
    assert out["n_chunks"] == 2 and out["chunk_size"] == 2
    out = df_vs_dr_auc(np.array([0.0, 1.0, 2.0]), np.array([5.0]), chunks=5)  # Dr smaller than Df
    assert out["n_chunks"] == 1 and out["chunk_size"] == 1 and out["mean"] == 1.0


def test_seeded_and_validated():
    rng = np.random.default_rng(1)
    df, dr = rng.normal(size=30), rng.normal(size=200)
    assert df_vs_dr_auc(df, dr, seed=3) == df_vs_dr_auc(df, dr, seed=3)
    with pytest.raises(ValueError):
        df_vs_dr_auc(np.array([]), dr)
    with pytest.raises(ValueError):
        df_vs_dr_auc(np.array([np.nan]), dr)


def test_spread_against_reads_the_shape_an_auc_misses():
    df, ref = np.array([1.5, 1.75, 2.25, 2.5]), np.array([0.0, 1.0, 3.0, 4.0])
    # Df sits in the middle of the reference: an AUC of Df against it is 0.5 ...
    assert df_vs_dr_auc(df, ref, chunks=1)["mean"] == 0.5
    out = spread_against(df, ref)
    # ... but spreads narrower: sd 0.395 against 1.581, and the empirical CDFs part by 1/2 at x = 1
    # (Df 0, reference 2/4) and at x = 2.5 (Df 1, reference 2/4)
    assert out["sd_ratio"] == pytest.approx(np.sqrt(0.15625) / np.sqrt(2.5))
    assert out["ks"] == pytest.approx(0.5)
    assert spread_against(ref, ref) == {"ks": 0.0, "ks_pvalue": 1.0, "sd_ratio": 1.0}
    assert spread_against(df, np.full(4, 2.0))["sd_ratio"] is None   # no spread to compare with


def test_spread_against_refuses_empty_or_non_finite_scores():
    with pytest.raises(ValueError, match="both sides"):
        spread_against(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        spread_against(np.array([np.nan]), np.array([1.0]))
