import pytest
import torch
from torch_geometric.data import Batch

from graphdel.data.molecules import (ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS, MoleculeGraphs, featurize_smiles,
                                     smiles_to_data, standardize_smiles)
from graphdel.errors import InvalidMoleculeError


def test_aspirin_exact_features():
    data = smiles_to_data("CC(=O)Oc1ccccc1C(=O)O")
    assert data.num_nodes == 13 and data.edge_index.shape == (2, 26) and data.edge_attr.shape == (26, 3)
    # methyl carbon: C (index 5), unspecified chirality, degree 1, charge 0 (index 5), 3 H, no radical, SP3
    assert data.x[0].tolist() == [5, 0, 1, 5, 3, 0, 2, 0, 0]
    # aromatic carbons are SP2, aromatic, in a ring
    aromatic = data.x[data.x[:, 7] == 1]
    assert len(aromatic) == 6 and set(aromatic[:, 6].tolist()) == {1} and set(aromatic[:, 8].tolist()) == {1}
    # 6 aromatic bonds, each stored twice
    assert int((data.edge_attr[:, 0] == 3).sum()) == 12
    for col, dim in enumerate(ATOM_FEATURE_DIMS):
        assert int(data.x[:, col].max()) < dim
    for col, dim in enumerate(BOND_FEATURE_DIMS):
        assert int(data.edge_attr[:, col].max()) < dim


def test_caffeine_counts():
    data = smiles_to_data("Cn1cnc2c1c(=O)n(C)c(=O)n2C")
    assert data.num_nodes == 14
    assert data.edge_index.shape[1] == 2 * 15
    assert int((data.x[:, 0] == 6).sum()) == 4  # four nitrogens (atomic number 7 -> index 6)


def test_salt_is_reduced_to_largest_organic_fragment():
    std = standardize_smiles("CC(=O)[O-].[Na+]")
    assert std.smiles == "CC(=O)[O-]" and std.removed == ("[Na+]",)
    data = smiles_to_data("CC(=O)[O-].[Na+]")
    assert data.num_nodes == 4 and data.smiles == "CC(=O)[O-]"
    assert data.x[3].tolist()[3] == 4  # formal charge -1 -> index 4


def test_hydrochloride_keeps_organic_part():
    std = standardize_smiles("CC(C)NCC(COC1=CC=C(C=C1)CCOCC2CC2)O.Cl")
    assert std.smiles == "CC(C)NCC(O)COc1ccc(CCOCC2CC2)cc1" and std.removed == ("Cl",)


@pytest.mark.parametrize("bad", ["C1CC", "not a smiles", "", "[Na+].[Cl-]x"])
def test_invalid_smiles_names_row_and_id(bad):
    with pytest.raises(InvalidMoleculeError) as err:
        smiles_to_data(bad, row=7, item_id="DB0001")
    assert "row 7" in str(err.value) and "DB0001" in str(err.value)


def test_no_heavy_atom_is_refused():
    with pytest.raises(InvalidMoleculeError, match="no heavy atom"):
        standardize_smiles("[H][H]", row=1, item_id="h2")


def test_vectorised_batch_equals_pyg_collation():
    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "C"]]
    store = MoleculeGraphs.from_data_list(graphs)
    order = torch.tensor([2, 0, 3, 2])
    ours = store.batch(order)
    ref = Batch.from_data_list([graphs[i] for i in order.tolist()])
    for key in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(ours, key), getattr(ref, key)), key
    assert ours.num_graphs == 4


def test_featurisation_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    smiles = ["CCO", "c1ccccc1"]
    first = featurize_smiles(smiles)
    files = list((tmp_path / "molecules").glob("*.pt"))
    assert len(files) == 1
    second = featurize_smiles(smiles)
    assert torch.equal(first.x, second.x) and torch.equal(first.edge_index, second.edge_index)
    files[0].write_bytes(b"corrupt")  # a damaged cache is rebuilt, not trusted
    third = featurize_smiles(smiles)
    assert torch.equal(first.x, third.x)
