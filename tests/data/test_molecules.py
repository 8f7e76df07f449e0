import pytest
import torch
from torch_geometric.data import Batch

from rdkit import Chem

from graphdel.data.molecules import (ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS, MoleculeGraphs, atom_features,
                                     bond_features, featurize_smiles, mol_to_data, smiles_to_data,
                                     standardize_smiles)
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


def test_a_store_fingerprint_follows_its_contents_and_is_computed_once(monkeypatch):
    from graphdel.data import molecule_graphs

    graphs = [smiles_to_data(s) for s in ["CCO", "c1ccccc1", "C"]]
    store, same = MoleculeGraphs.from_data_list(graphs), MoleculeGraphs.from_data_list(graphs)
    assert store.fingerprint() == same.fingerprint() and len(store.fingerprint()) == 64
    charged = MoleculeGraphs.from_data_list(graphs)
    charged.x[0, 1] += 1  # one feature of one atom
    reordered = MoleculeGraphs.from_data_list(graphs[::-1])
    assert len({store.fingerprint(), charged.fingerprint(), reordered.fingerprint()}) == 3
    calls = []
    monkeypatch.setattr(molecule_graphs, "tensor_digest", lambda ts: calls.append(1) or "x")
    assert same.fingerprint() == store.fingerprint() and calls == []  # remembered, not hashed again


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


def test_molecules_are_stored_in_small_types_mapped_from_the_cache_and_batched_as_long(tmp_path, monkeypatch):
    from tests.mapped_memory import mapped_file

    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    smiles = ["CCO", "c1ccccc1", "C"]
    ref = Batch.from_data_list([smiles_to_data(smiles[i]) for i in (1, 2, 0)])
    cold, warm = featurize_smiles(smiles), featurize_smiles(smiles)
    for graphs in (cold, warm):
        assert [graphs.x.dtype, graphs.edge_index.dtype, graphs.edge_attr.dtype] == [torch.uint8, torch.int32,
                                                                                     torch.uint8]
        ours = graphs.batch(torch.tensor([1, 2, 0]))
        for key in ("x", "edge_index", "edge_attr", "batch", "ptr"):
            assert getattr(ours, key).dtype == torch.long and torch.equal(getattr(ours, key), getattr(ref, key)), key
        assert graphs[1].x.dtype == torch.long and torch.equal(graphs[1].x, ref.x[:6])
    assert mapped_file(warm.x) == str(next((tmp_path / "molecules").glob("*.pt")))  # read from disk as needed
    with pytest.raises(ValueError, match=r"x holds values in 0\.\.300, outside torch.uint8's range"):
        MoleculeGraphs(x=torch.tensor([[300] + [0] * 8]), edge_index=torch.zeros(2, 0, dtype=torch.long),
                       edge_attr=torch.zeros(0, 3, dtype=torch.long), node_ptr=torch.tensor([0, 1]),
                       edge_ptr=torch.tensor([0, 0]))


# Charges, tetrahedral and double-bond stereo, a radical, aromatic heterocycles, a metal-containing
# fragment, a lone atom, hypervalent sulfur and phosphorus, charges past +-5 and a dummy atom (the "other"
# slots): every feature column takes several values.
VARIED = ["C[C@H](N)C(=O)O", "F/C=C/F", "C/C=C\\C", "[CH3]", "c1ccncc1", "[NH4+]", "C[N+](C)(C)C",
          "O=S(=O)(O)c1ccccc1", "CP(=O)(O)O", "[Na+]", "C", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "[2H]C([2H])([2H])O",
          "C1CC[C@@H]2CCCC[C@H]2C1", "[O-][n+]1ccccc1", "C#N", "[Fe+2]", "c1ccc2[nH]ccc2c1", "[Fe+6]",
          "[Co-6]", "*C"]


def _reference(smiles: str):
    """x, edge_index, edge_attr from the defining functions atom_features / bond_features."""
    mol = Chem.MolFromSmiles(smiles)
    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.long).view(-1, 9)
    pairs, attrs = [], []
    for b in mol.GetBonds():
        i, j, f = b.GetBeginAtomIdx(), b.GetEndAtomIdx(), bond_features(b)
        pairs += [(i, j), (j, i)]
        attrs += [f, f]
    ei = torch.tensor(pairs, dtype=torch.long).view(-1, 2).t()
    ea = torch.tensor(attrs, dtype=torch.long).view(-1, 3)
    if ei.numel():
        order = torch.argsort(ei[0] * x.size(0) + ei[1])
        ei, ea = ei[:, order], ea[order]
    return x, ei, ea


@pytest.mark.parametrize("workers", [0, 2])
def test_featurisation_equals_the_defining_features_in_and_out_of_worker_processes(workers, monkeypatch):
    import graphdel.data.molecule_graphs as molecules

    monkeypatch.setattr(molecules, "CHUNK", 4)  # several chunks, so that worker processes are used
    graphs = featurize_smiles(VARIED, use_cache=False, workers=workers)
    assert len(graphs) == len(VARIED)
    for k, smiles in enumerate(VARIED):
        x, ei, ea = _reference(smiles)
        got = graphs[k]
        assert torch.equal(got.x, x) and torch.equal(got.edge_index, ei) and torch.equal(got.edge_attr, ea), smiles
        single = mol_to_data(Chem.MolFromSmiles(smiles))
        assert torch.equal(single.x, x) and torch.equal(single.edge_index, ei) and torch.equal(single.edge_attr, ea)


# Stereo that only a CXSMILES extension carries (a wedge with coordinates, "ctu", "c"), stereo marks RDKit
# clears, and double bonds without marks: the featuriser skips reading chiral tags and bond stereo only for
# SMILES that cannot carry them.
STEREO_CASES = ["CC(F)Cl |(0,0,;1.3,0,;2,1.1,;2,-1.1,),wU:1.2|", "CC=CC |ctu:1|", "C/C=C/C |c:1|", "C[C@H](C)C",
                "C[C@H](F)Cl", "CC=CC", "C1=CCCCCCC1", "OC(=O)/C=C\\C(=O)O", "C[S@](=O)c1ccccc1", "C[N@](F)Cl"]


def test_stereo_is_read_wherever_the_smiles_can_carry_it():
    from graphdel.data.molecule_features import _needs_stereo_reads

    for smiles in VARIED + STEREO_CASES:
        mol = Chem.MolFromSmiles(smiles)
        chirality, stereo = _needs_stereo_reads(smiles)
        if not chirality:
            assert all(a.GetChiralTag() == Chem.ChiralType.CHI_UNSPECIFIED for a in mol.GetAtoms()), smiles
        if not stereo:
            assert all(b.GetStereo() == Chem.BondStereo.STEREONONE for b in mol.GetBonds()), smiles
    assert _needs_stereo_reads(STEREO_CASES[0]) == (True, True)  # the "|" of a CXSMILES extension
    graphs = featurize_smiles(STEREO_CASES, use_cache=False, workers=0)
    for k, smiles in enumerate(STEREO_CASES):
        x, ei, ea = _reference(smiles)
        got = graphs[k]
        assert torch.equal(got.x, x) and torch.equal(got.edge_index, ei) and torch.equal(got.edge_attr, ea), smiles
    assert int(graphs.x[:, 1].max()) > 0 and int(graphs.edge_attr[:, 1].max()) > 0  # the cases do carry stereo


def test_worker_count_is_resolved_from_the_request_and_the_machine(monkeypatch):
    import graphdel.data.molecule_graphs as molecules

    monkeypatch.setattr(molecules, "_available_cpus", lambda: 16)
    assert molecules.resolve_workers("auto", 100_000) == 8
    assert molecules.resolve_workers("auto", 100) == 0  # a pool costs more than it saves
    monkeypatch.setattr(molecules, "_available_cpus", lambda: 2)
    assert molecules.resolve_workers("auto", 100_000) == 0
    assert molecules.resolve_workers(3, 10) == 3 and molecules.resolve_workers(1, 10) == 0
    with pytest.raises(ValueError):
        molecules.resolve_workers(-1, 10)


def test_atropisomer_bond_stereo_stays_inside_the_embedding_table():
    """Bond stereo the vocabulary does not name (RDKit's atropisomer values) counts as STEREOANY, index 5:
    as "other" it was 6, past the 6-row bond-stereo embedding, and training crashed on such a molecule."""
    from graphdel.data.molecule_features import graph_arrays

    mol = Chem.RWMol(Chem.MolFromSmiles("c1ccccc1-c1ccccc1C"))
    biaryl = next(b for b in mol.GetBonds() if not b.GetIsAromatic() and b.GetBondType() == Chem.BondType.SINGLE
                  and b.GetBeginAtom().GetIsAromatic() and b.GetEndAtom().GetIsAromatic())
    for value in (Chem.BondStereo.STEREOATROPCW, Chem.BondStereo.STEREOATROPCCW, Chem.BondStereo.STEREOANY):
        biaryl.SetStereo(value)
        assert bond_features(biaryl)[1] == 5 < BOND_FEATURE_DIMS[1]
        arrays = graph_arrays([mol])  # the featuriser's own path, read for every molecule
        ends = {biaryl.GetBeginAtomIdx(), biaryl.GetEndAtomIdx()}
        both = [k for k, (a, b) in enumerate(arrays["edge_index"].T.tolist()) if {a, b} == ends]
        assert len(both) == 2 and all(arrays["edge_attr"][k].tolist() == bond_features(biaryl) for k in both)
