"""Near-neighbour leakage on a handful of real molecules and hand-made embeddings."""

import numpy as np
import pytest
import torch

import graphdel as gd
from graphdel import api
from graphdel.errors import InvalidMoleculeError
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.neighbours import (caption_leakage, morgan_fingerprints, nearest_neighbours,
                                            neighbour_leakage, tanimoto_matrix)
from graphdel.training.loop import TrainConfig

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
SALICYLIC_ACID = "OC(=O)c1ccccc1O"
IBUPROFEN = "CC(C)Cc1ccc(cc1)C(C)C(=O)O"
NAPROXEN = "COc1ccc2cc(ccc2c1)[C@H](C)C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"
THEOPHYLLINE = "Cn1c2c(c(=O)n(C)c1=O)[nH]cn2"


def test_radius_zero_tanimoto_counts_atom_types():
    # radius 0 keeps only atom invariants: ethane {CH3}, propane {CH3, CH2}, ethanol {CH3, CH2, OH}
    sim = tanimoto_matrix(["CC", "CCC"], ["CC", "CCC", "CCO"], radius=0)
    assert sim.shape == (2, 3)
    np.testing.assert_allclose(sim, [[1.0, 1 / 2, 1 / 3], [1 / 2, 1.0, 2 / 3]], rtol=0, atol=1e-12)
    assert [fp.GetNumOnBits() for fp in morgan_fingerprints(["CC", "CCC", "CCO"], radius=0)] == [1, 2, 3]


def test_tanimoto_is_symmetric_with_unit_diagonal():
    mols = [ASPIRIN, IBUPROFEN, CAFFEINE, "CCO"]
    sim = tanimoto_matrix(mols, mols)
    np.testing.assert_allclose(np.diag(sim), 1.0)
    np.testing.assert_allclose(sim, sim.T)
    assert ((sim >= 0) & (sim <= 1)).all()


def test_nearest_neighbours_pair_each_drug_with_its_analogue():
    # aspirin -> salicylic acid (its metabolite), ibuprofen -> naproxen (both aryl propionic acids),
    # caffeine -> theophylline (both methylxanthines)
    candidates = [CAFFEINE, NAPROXEN, "CCO", SALICYLIC_ACID, THEOPHYLLINE]
    nb = nearest_neighbours([ASPIRIN, IBUPROFEN, THEOPHYLLINE], candidates, k=1)
    assert nb.query.tolist() == [0, 1, 2]
    assert nb.candidate.tolist() == [3, 1, 4]  # theophylline finds itself first (similarity 1)
    assert nb.similarity[2] == 1.0
    assert nb.rank.tolist() == [1, 1, 1]
    full = tanimoto_matrix([ASPIRIN, IBUPROFEN, THEOPHYLLINE], candidates)
    np.testing.assert_allclose(nb.similarity, full[[0, 1, 2], [3, 1, 4]])


def test_nearest_neighbours_order_ties_and_threshold():
    # two identical candidates tie: the lower index comes first
    nb = nearest_neighbours([CAFFEINE], [THEOPHYLLINE, "CCO", THEOPHYLLINE, CAFFEINE], k=3)
    assert nb.candidate.tolist() == [3, 0, 2]
    assert nb.rank.tolist() == [1, 2, 3]
    assert nb.similarity[0] == 1.0 and nb.similarity[1] == nb.similarity[2] < 1.0
    # k larger than the candidates gives them all, nearest first
    nb = nearest_neighbours([ASPIRIN], [IBUPROFEN, SALICYLIC_ACID], k=10)
    assert nb.candidate.tolist() == [1, 0] and len(nb) == 2
    # a threshold can leave a query without neighbours
    nb = nearest_neighbours(["CCO", ASPIRIN], [CAFFEINE, SALICYLIC_ACID], k=2, min_similarity=0.3)
    assert nb.query.tolist() == [1] and nb.candidate.tolist() == [1]


def test_bad_input_is_refused():
    with pytest.raises(InvalidMoleculeError, match="row 2"):
        nearest_neighbours(["CCO", "not a molecule"], ["CC"])
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(["CCO"], ["CC"], k=0)


def test_caption_leakage_ranks_on_hand_made_embeddings():
    e = torch.eye(4)
    captions = e  # caption c is the unit vector e_c
    # link 0: the neighbour points at caption 1 (forgotten) -> rank 1; own caption 2 is orthogonal, tied with
    # captions 0 and 3 behind caption 1 -> rank 2, 3 or 4 at random: expected rank 3
    # link 1: the neighbour is closest to caption 3 (its own), then caption 0 (forgotten) -> rank 2
    neighbours = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.8]])
    out = caption_leakage(neighbours, captions, forgotten=[1, 0], own=[2, 3])
    assert out["n"] == 2
    assert out["forgotten_ranks"].tolist() == [1, 2]
    assert out["own_ranks"].tolist() == [3, 1]
    assert out["forgotten"]["mrr"] == pytest.approx(0.75)
    assert out["forgotten"]["hits@1"] == 0.5
    assert out["own"]["mrr"] == pytest.approx(((1 / 2 + 1 / 3 + 1 / 4) / 3 + 1) / 2)
    np.testing.assert_allclose(out["forgotten_similarity"], [1.0, 0.6], atol=1e-7)
    with pytest.raises(ValueError, match="one row per link"):
        caption_leakage(neighbours, captions, forgotten=[1])


def test_neighbour_leakage_of_a_model_matches_its_embeddings(tiny_csv, tmp_path):
    run = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "run", quick=True,
                   progress=False)
    prepared = api.load_run_data(run, progress=False)
    corpus = prepared.corpus
    row = {corpus.item_ids[r]: r for r in range(len(corpus))}
    forgotten = [row["aspirin"], row["aspirin"], row["caffeine"]]
    neighbours = [row["ibuprofen"], row["paracetamol"], row["naphthalene"]]
    captions = sorted(set(forgotten + neighbours) | {row["ethanol"], row["benzene"]})
    out = neighbour_leakage(run.model, prepared.data, forgotten, neighbours, captions)
    z_x = embed_pairs(run.model, prepared.data.subset(neighbours)).z_x
    z_t = embed_pairs(run.model, prepared.data.subset(captions)).z_t
    scores = z_x @ z_t.T
    for link, (f, n) in enumerate(zip(forgotten, neighbours)):
        target = scores[link, captions.index(f)]
        assert out["forgotten_ranks"][link] == 1 + int((scores[link] > target).sum())
        own = scores[link, captions.index(n)]
        assert out["own_ranks"][link] == 1 + int((scores[link] > own).sum())
        assert out["forgotten_similarity"][link] == pytest.approx(float(target), abs=1e-5)
    with pytest.raises(ValueError, match="must contain"):
        neighbour_leakage(run.model, prepared.data, forgotten, neighbours, captions[:2])
