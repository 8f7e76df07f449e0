"""Molecule features: the OGB-style categorical atom and bond features of :mod:`graphdel.data.molecules` (its
docstring has the table), one molecule to a PyTorch Geometric ``Data`` (:func:`mol_to_data`) and many to
concatenated arrays (:func:`graph_arrays`; :func:`featurize_chunk`, what the worker processes of
:func:`graphdel.data.molecule_graphs.featurize_smiles` run, parses SMILES for it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from torch_geometric.data import Data

from graphdel.errors import InvalidMoleculeError, shorten

RDLogger.DisableLog("rdApp.*")  # RDKit's parse warnings go to stderr; we raise our own errors instead.

FEATURIZER_VERSION = "ogb-v2"  # v2: atropisomer bond stereo inside the table (bond_features)

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
        # no "other" slot here: the column has 6 values, so stereo the list does not name (RDKit's
        # atropisomer STEREOATROPCW/CCW, from CXSMILES wedges) counts as STEREOANY, stereo of no named kind;
        # as "other" it was index 6, past the bond embedding's table
        min(_index(_BOND_STEREO, str(bond.GetStereo())), _BOND_STEREO.index("STEREOANY")),
        int(bond.GetIsConjugated()),
    ]


# The same vocabularies as arrays indexed by RDKit's raw enum values: the featuriser collects the raw values
# of a whole chunk and looks them up in one NumPy gather instead of formatting each enum as a string and
# searching a list (:func:`atom_features` / :func:`bond_features` stay the definition;
# tests/data/test_molecules.py checks the two agree). Values this RDKit build does not name, and any value
# past the largest it names, land on the trailing "other" slot, as ``_index`` does.
def _vocabulary_table(enum_type, vocabulary: Sequence[str]) -> np.ndarray:
    table = np.full(max(enum_type.values) + 2, len(vocabulary), dtype=np.int64)
    for k, name in enumerate(vocabulary):
        table[int(getattr(enum_type, name))] = k
    return table


_CHIRALITY_TABLE = _vocabulary_table(Chem.ChiralType, _CHIRALITY)
_HYBRIDISATION_TABLE = _vocabulary_table(Chem.HybridizationType, _HYBRIDISATION)
_BOND_TYPE_TABLE = _vocabulary_table(Chem.BondType, _BOND_TYPE)
_BOND_STEREO_TABLE = np.minimum(_vocabulary_table(Chem.BondStereo, _BOND_STEREO),  # see bond_features
                                _BOND_STEREO.index("STEREOANY"))


def _lookup(table: np.ndarray, raw: list) -> np.ndarray:
    return table[np.minimum(np.asarray(raw, dtype=np.int64), table.size - 1)]


# Unbound accessors, so that ``list += map(getter, atoms)`` reads a property of every atom of a molecule in
# one C-level loop: per atom, only RDKit's own call is left. A Python loop building a tuple per atom, with
# min() and dict look-ups, took ~1.35 s of CPU for 5,000 molecules where this reading and the NumPy
# conversion take ~1.0 s.
_A, _B = Chem.Atom, Chem.Bond


def _needs_stereo_reads(smiles: str) -> tuple[bool, bool]:
    """Whether a molecule parsed from ``smiles`` can have a chiral tag other than CHI_UNSPECIFIED, and a bond
    stereo other than STEREONONE. RDKit's SMILES parser sets chiral tags only from ``@`` and bond directions,
    from which stereo is perceived, only from ``/`` and ``\\``; CXSMILES extensions (after ``|``) can set
    either; sanitisation and stereo perception only clear them. Reading the two enums costs about a tenth
    of the featurisation, and 58% / 91% of the corpus's molecules need neither."""
    cx = "|" in smiles
    return "@" in smiles or cx, "/" in smiles or "\\" in smiles or cx


#: What :func:`_raw_properties` reads of every atom and every bond (RDKit's raw values); chiral tags and bond
#: stereo are read apart, only where a molecule can carry them (:func:`_needs_stereo_reads`).
_ATOM_READS = {"z": _A.GetAtomicNum, "charge": _A.GetFormalCharge, "hydrogens": _A.GetTotalNumHs,
               "radicals": _A.GetNumRadicalElectrons, "hybridisation": _A.GetHybridization,
               "aromatic": _A.GetIsAromatic, "ring": _A.IsInRing}
_BOND_READS = {"begin": _B.GetBeginAtomIdx, "end": _B.GetEndAtomIdx, "bond_type": _B.GetBondType,
               "conjugated": _B.GetIsConjugated}


def _raw_properties(mols: Sequence[Chem.Mol], reads: Sequence[tuple[bool, bool]] | None) -> dict[str, np.ndarray]:
    """RDKit's raw values of every atom and bond property :func:`graph_arrays` encodes, each an int64 array
    over the molecules' atoms (or bonds) in order (keys of :data:`_ATOM_READS`, :data:`_BOND_READS`,
    ``chirality`` and ``stereo``), plus ``nodes`` and ``bonds`` (counts per molecule); ``reads`` as in
    :func:`graph_arrays`."""
    raw: dict[str, list] = {name: [] for name in (*_ATOM_READS, "chirality", *_BOND_READS, "stereo", "nodes", "bonds")}
    for k, mol in enumerate(mols):
        read_chirality, read_stereo = reads[k] if reads is not None else (True, True)
        # indexed access: RDKit's GetAtoms()/GetBonds() iterators are Python wrappers costing twice as much
        n, nb = mol.GetNumAtoms(), mol.GetNumBonds()
        atoms = list(map(mol.GetAtomWithIdx, range(n)))
        for name, read in _ATOM_READS.items():
            raw[name] += map(read, atoms)
        raw["chirality"] += map(_A.GetChiralTag, atoms) if read_chirality else [0] * n  # 0 = CHI_UNSPECIFIED
        bonds = list(map(mol.GetBondWithIdx, range(nb)))
        for name, read in _BOND_READS.items():
            raw[name] += map(read, bonds)
        raw["stereo"] += map(_B.GetStereo, bonds) if read_stereo else [0] * nb  # 0 = STEREONONE
        raw["nodes"].append(n)
        raw["bonds"].append(nb)
    return {name: np.asarray(values, dtype=np.int64) for name, values in raw.items()}


def graph_arrays(mols: Sequence[Chem.Mol],
                 reads: Sequence[tuple[bool, bool]] | None = None) -> dict[str, np.ndarray]:
    """Featurise RDKit molecules into concatenated int64 arrays; values equal :func:`atom_features` /
    :func:`bond_features`.

    Args:
        mols: the molecules.
        reads: per molecule, whether to read its chiral tags and its bond stereo (see
            :func:`_needs_stereo_reads`); a molecule not read gets CHI_UNSPECIFIED / STEREONONE. ``None``:
            read both for every molecule.

    Returns:
        ``x [N, 9]``, ``edge_index [2, E]`` (graph-local atom indices, each graph's edges sorted by source
        then target), ``edge_attr [E, 3]``, ``nodes [M]`` and ``edges [M]`` (counts per molecule).
    """
    raw = _raw_properties(mols, reads)
    nodes_a, bonds_a, begin_a, end_a = raw["nodes"], raw["bonds"], raw["begin"], raw["end"]
    total = int(nodes_a.sum())
    # each bond's graph's first node, to turn graph-local atom indices into chunk-wide ones
    first = np.repeat(np.cumsum(nodes_a) - nodes_a, bonds_a)
    # an atom's degree is the number of bonds it ends (RDKit's GetDegree), counted from the bond list
    # already read instead of one more call per atom
    degree = np.bincount(first + begin_a, minlength=total) + np.bincount(first + end_a, minlength=total)
    z, q = raw["z"], raw["charge"]
    x = np.stack([np.where((z >= 1) & (z <= 118), z - 1, 118),
                  _lookup(_CHIRALITY_TABLE, raw["chirality"]),
                  np.minimum(degree, 11),
                  np.where((q >= -5) & (q <= 5), q + 5, 11),
                  np.minimum(raw["hydrogens"], 9),
                  np.minimum(raw["radicals"], 5),
                  _lookup(_HYBRIDISATION_TABLE, raw["hybridisation"]),
                  raw["aromatic"],
                  raw["ring"]], axis=1).reshape(-1, 9)
    attr = np.stack([_lookup(_BOND_TYPE_TABLE, raw["bond_type"]), _lookup(_BOND_STEREO_TABLE, raw["stereo"]),
                     raw["conjugated"]], axis=1).reshape(-1, 3)
    # every bond in both directions, then one vectorised sort of all edges by (graph, source, target):
    # graphs own increasing node ranges, so the key (first node of the graph + source) * width + target
    # orders graphs, then sources, then targets (keys are distinct: RDKit has no parallel bonds)
    src = np.concatenate([begin_a, end_a])
    dst = np.concatenate([end_a, begin_a])
    first2 = np.concatenate([first, first])
    width = int(nodes_a.max()) + 1 if nodes_a.size else 1
    order = np.argsort((first2 + src) * width + dst, kind="stable")
    return {"x": x, "edge_index": np.stack([src[order], dst[order]]),
            "edge_attr": np.concatenate([attr, attr])[order], "nodes": nodes_a, "edges": 2 * bonds_a}


def featurize_chunk(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """Featurise a list of canonical SMILES into concatenated int64 arrays (runs in worker processes); the
    arrays of :func:`graph_arrays`.

    Raises:
        InvalidMoleculeError: a SMILES RDKit cannot parse (canonical SMILES from
            :func:`standardize_smiles` always parse).
    """
    mols = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise InvalidMoleculeError(f"RDKit cannot parse SMILES {shorten(s)}", smiles=s)
        mols.append(mol)
    return graph_arrays(mols, [_needs_stereo_reads(s) for s in smiles])


def mol_to_data(mol: Chem.Mol) -> Data:
    """Featurise an RDKit molecule (hydrogens implicit).

    Returns:
        ``Data`` with ``x`` ``[N, 9]`` long, ``edge_index`` ``[2, 2B]`` long and ``edge_attr`` ``[2B, 3]``
        long, edges sorted by source then target.
    """
    arrays = graph_arrays([mol])
    return Data(x=torch.from_numpy(arrays["x"]), edge_index=torch.from_numpy(arrays["edge_index"]),
                edge_attr=torch.from_numpy(arrays["edge_attr"]), num_nodes=int(arrays["nodes"][0]))
