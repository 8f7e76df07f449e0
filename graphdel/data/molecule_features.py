"""Molecule features: the OGB-style categorical atom and bond features of :mod:`graphdel.data.molecules` (its
docstring has the table), one molecule to a PyTorch Geometric ``Data`` (:func:`mol_to_data`) and many to
concatenated arrays (:func:`featurize_chunk`, what the worker processes of
:func:`graphdel.data.molecule_graphs.featurize_smiles` run).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from torch_geometric.data import Data

from graphdel.errors import InvalidMoleculeError, shorten

RDLogger.DisableLog("rdApp.*")  # RDKit's parse warnings go to stderr; we raise our own errors instead.

FEATURIZER_VERSION = "ogb-v1"

_CHIRALITY = ["CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW"]
_HYBRIDISATION = ["SP", "SP2", "SP3", "SP3D", "SP3D2"]
_BOND_TYPE = ["SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"]
_BOND_STEREO = ["STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"]

#: Vocabulary size of each atom feature column (the last index of each is "other").
ATOM_FEATURE_DIMS: tuple[int, ...] = (119, 4, 12, 12, 10, 6, 6, 2, 2)
#: Vocabulary size of each bond feature column.
BOND_FEATURE_DIMS: tuple[int, ...] = (5, 6, 2)


def _index(vocabulary: Sequence, value) -> int:
    """Position of ``value`` in ``vocabulary``, or the trailing "other" slot."""
    try:
        return vocabulary.index(value)
    except ValueError:
        return len(vocabulary)


def atom_features(atom: Chem.Atom) -> list[int]:
    """The 9 categorical features of one RDKit atom (see the module docstring)."""
    atomic_num = atom.GetAtomicNum()
    return [
        atomic_num - 1 if 1 <= atomic_num <= 118 else 118,
        _index(_CHIRALITY, str(atom.GetChiralTag())),
        min(atom.GetDegree(), 11),
        atom.GetFormalCharge() + 5 if -5 <= atom.GetFormalCharge() <= 5 else 11,
        min(atom.GetTotalNumHs(), 9),
        min(atom.GetNumRadicalElectrons(), 5),
        _index(_HYBRIDISATION, str(atom.GetHybridization())),
        int(atom.GetIsAromatic()),
        int(atom.IsInRing()),
    ]


def bond_features(bond: Chem.Bond) -> list[int]:
    """The 3 categorical features of one RDKit bond (see the module docstring)."""
    return [
        _index(_BOND_TYPE, str(bond.GetBondType())),
        _index(_BOND_STEREO, str(bond.GetStereo())),
        int(bond.GetIsConjugated()),
    ]


# The same vocabularies keyed by RDKit's enum values: the featuriser looks features up in these instead of
# formatting each enum as a string and searching a list (:func:`atom_features` / :func:`bond_features` stay
# the definition; tests/data/test_molecules.py checks the two agree).
_CHIRALITY_INDEX = {getattr(Chem.ChiralType, n): k for k, n in enumerate(_CHIRALITY)}
_HYBRIDISATION_INDEX = {getattr(Chem.HybridizationType, n): k for k, n in enumerate(_HYBRIDISATION)}
_BOND_TYPE_INDEX = {getattr(Chem.BondType, n): k for k, n in enumerate(_BOND_TYPE)}
_BOND_STEREO_INDEX = {getattr(Chem.BondStereo, n): k for k, n in enumerate(_BOND_STEREO)}


def mol_rows(mol: Chem.Mol, xs: list, src: list, dst: list, attrs: list) -> tuple[int, int]:
    """Append one molecule's atom feature rows to ``xs`` and its bonds, both directions with graph-local
    atom indices, to ``src``/``dst``/``attrs``; returns ``(atoms, directed edges)``. Values equal
    :func:`atom_features` / :func:`bond_features`."""
    # indexed access: RDKit's GetAtoms()/GetBonds() iterators are Python wrappers costing ~a third of the time
    atom_at, bond_at = mol.GetAtomWithIdx, mol.GetBondWithIdx
    n = mol.GetNumAtoms()
    for k in range(n):
        a = atom_at(k)
        z, q = a.GetAtomicNum(), a.GetFormalCharge()
        xs.append((z - 1 if 1 <= z <= 118 else 118, _CHIRALITY_INDEX.get(a.GetChiralTag(), 3),
                   min(a.GetDegree(), 11), q + 5 if -5 <= q <= 5 else 11, min(a.GetTotalNumHs(), 9),
                   min(a.GetNumRadicalElectrons(), 5), _HYBRIDISATION_INDEX.get(a.GetHybridization(), 5),
                   int(a.GetIsAromatic()), int(a.IsInRing())))
    nb = mol.GetNumBonds()
    for k in range(nb):
        b = bond_at(k)
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        f = (_BOND_TYPE_INDEX.get(b.GetBondType(), 4), _BOND_STEREO_INDEX.get(b.GetStereo(), 6),
             int(b.GetIsConjugated()))
        src += (i, j)
        dst += (j, i)
        attrs += (f, f)
    return n, 2 * nb


def featurize_chunk(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """Featurise a list of canonical SMILES into concatenated int64 arrays (runs in worker processes).

    Returns:
        ``x [N, 9]``, ``edge_index [2, E]`` (graph-local atom indices, each graph's edges sorted by source
        then target), ``edge_attr [E, 3]``, ``nodes [M]`` and ``edges [M]`` (counts per molecule).

    Raises:
        InvalidMoleculeError: a SMILES RDKit cannot parse (canonical SMILES from
            :func:`standardize_smiles` always parse).
    """
    xs: list = []
    src: list = []
    dst: list = []
    attrs: list = []
    nodes, edges = [], []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise InvalidMoleculeError(f"RDKit cannot parse SMILES {shorten(s)}", smiles=s)
        n, e = mol_rows(mol, xs, src, dst, attrs)
        nodes.append(n)
        edges.append(e)
    nodes_a, edges_a = np.asarray(nodes, dtype=np.int64), np.asarray(edges, dtype=np.int64)
    src_a, dst_a = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    # one vectorised sort of all edges by (graph, source, target): graphs own increasing node ranges, so
    # the key (first node of the graph + source) * width + target orders graphs, then sources, then targets
    first = np.repeat(np.cumsum(nodes_a) - nodes_a, edges_a)
    width = int(nodes_a.max()) + 1 if nodes_a.size else 1
    order = np.argsort((first + src_a) * width + dst_a, kind="stable")
    return {"x": np.asarray(xs, dtype=np.int64).reshape(-1, 9),
            "edge_index": np.stack([src_a[order], dst_a[order]]) if order.size else np.zeros((2, 0), np.int64),
            "edge_attr": np.asarray(attrs, dtype=np.int64).reshape(-1, 3)[order],
            "nodes": nodes_a, "edges": edges_a}


def mol_to_data(mol: Chem.Mol) -> Data:
    """Featurise an RDKit molecule (hydrogens implicit).

    Returns:
        ``Data`` with ``x`` ``[N, 9]`` long, ``edge_index`` ``[2, 2B]`` long and ``edge_attr`` ``[2B, 3]``
        long, edges sorted by source then target.
    """
    xs: list = []
    src: list = []
    dst: list = []
    attrs: list = []
    n, _ = mol_rows(mol, xs, src, dst, attrs)
    x = torch.tensor(xs, dtype=torch.long).view(-1, 9)
    edge_index = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    edge_attr = torch.tensor(attrs, dtype=torch.long).view(-1, 3)
    if edge_index.numel():
        order = torch.argsort(edge_index[0] * n + edge_index[1])
        edge_index, edge_attr = edge_index[:, order], edge_attr[order]
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, num_nodes=n)

