"""Molecules: SMILES -> PyTorch Geometric graphs with OGB-style categorical features.

Atom features (9 integer columns of ``Data.x``), each the index into a fixed vocabulary whose last entry
means "other":

====  =====================  ==========================================================
col   feature                vocabulary
====  =====================  ==========================================================
0     atomic number          1..118, other
1     chirality tag          unspecified, tetrahedral CW, tetrahedral CCW, other
2     degree                 0..10, other
3     formal charge          -5..5, other
4     total hydrogens        0..8, other
5     radical electrons      0..4, other
6     hybridisation          SP, SP2, SP3, SP3D, SP3D2, other
7     aromatic               False, True
8     in a ring              False, True
====  =====================  ==========================================================

Bond features (3 integer columns of ``Data.edge_attr``): bond type (single, double, triple, aromatic,
other), stereo (none, Z, E, cis, trans, any) and conjugation (False, True). Bonds are stored in both
directions, so a molecule with ``B`` bonds has ``edge_index`` of shape ``[2, 2B]``.

Salts and mixtures are reduced to their largest organic fragment (most heavy atoms among fragments that
contain carbon); the removed fragments are reported so that nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from rdkit import Chem, RDLogger
from torch import Tensor
from torch_geometric.data import Batch, Data

from graphdel.errors import InvalidMoleculeError

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

#: A molecule larger than this many heavy atoms is refused: it is almost always a polymer or a
#: biologic written as SMILES, and one such graph can dominate a batch's memory.
MAX_HEAVY_ATOMS = 1000


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


@dataclass(frozen=True)
class StandardizedMolecule:
    """The result of :func:`standardize_smiles`.

    Attributes:
        smiles: canonical SMILES of the kept fragment.
        removed: canonical SMILES of the fragments removed (counter-ions, solvents), in input order.
    """

    smiles: str
    removed: tuple[str, ...] = ()


def parse_smiles(smiles: str, *, row: int | None = None, item_id: str | None = None) -> Chem.Mol:
    """Parse a SMILES string with RDKit, raising :class:`InvalidMoleculeError` naming row and id."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidMoleculeError("empty SMILES", row=row, item_id=item_id, smiles=smiles)
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise InvalidMoleculeError(f"RDKit cannot parse SMILES {smiles!r}", row=row, item_id=item_id,
                                   smiles=smiles)
    return mol


def largest_organic_fragment(mol: Chem.Mol) -> tuple[Chem.Mol, list[Chem.Mol]]:
    """Split ``mol`` into fragments and keep the largest one that contains carbon.

    Ties are broken by the canonical SMILES so the choice does not depend on atom order. A mixture with
    no carbon at all (e.g. a metal salt) keeps its largest fragment.

    Returns:
        ``(kept, removed)``.
    """
    fragments = list(Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True))
    if len(fragments) == 1:
        return fragments[0], []

    def key(fragment: Chem.Mol):
        has_carbon = any(a.GetAtomicNum() == 6 for a in fragment.GetAtoms())
        return (has_carbon, fragment.GetNumHeavyAtoms(), Chem.MolToSmiles(fragment))

    ranked = sorted(fragments, key=key, reverse=True)
    kept = ranked[0]
    removed = [f for f in fragments if f is not kept]
    return kept, removed


def standardize_smiles(smiles: str, *, row: int | None = None, item_id: str | None = None
                       ) -> StandardizedMolecule:
    """Canonicalise a SMILES string and reduce salts and mixtures to the largest organic fragment.

    Raises:
        InvalidMoleculeError: unparsable, no heavy atom, or more than :data:`MAX_HEAVY_ATOMS` heavy atoms.
    """
    mol = parse_smiles(smiles, row=row, item_id=item_id)
    kept, removed = largest_organic_fragment(mol)
    heavy = kept.GetNumHeavyAtoms()
    if heavy == 0:
        raise InvalidMoleculeError(f"SMILES {smiles!r} has no heavy atom", row=row, item_id=item_id,
                                   smiles=smiles)
    if heavy > MAX_HEAVY_ATOMS:
        raise InvalidMoleculeError(f"SMILES has {heavy} heavy atoms, more than the limit of {MAX_HEAVY_ATOMS}",
                                   row=row, item_id=item_id, smiles=smiles)
    return StandardizedMolecule(Chem.MolToSmiles(kept), tuple(Chem.MolToSmiles(f) for f in removed))


def mol_to_data(mol: Chem.Mol) -> Data:
    """Featurise an RDKit molecule (hydrogens implicit).

    Returns:
        ``Data`` with ``x`` ``[N, 9]`` long, ``edge_index`` ``[2, 2B]`` long and ``edge_attr`` ``[2B, 3]``
        long, edges sorted by source then target.
    """
    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.long).view(-1, 9)
    rows, attrs = [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = bond_features(bond)
        rows += [(i, j), (j, i)]
        attrs += [f, f]
    edge_index = torch.tensor(rows, dtype=torch.long).view(-1, 2).t().contiguous()
    edge_attr = torch.tensor(attrs, dtype=torch.long).view(-1, 3)
    if edge_index.numel():
        order = torch.argsort(edge_index[0] * x.size(0) + edge_index[1])
        edge_index, edge_attr = edge_index[:, order], edge_attr[order]
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, num_nodes=x.size(0))


def smiles_to_data(smiles: str, *, row: int | None = None, item_id: str | None = None) -> Data:
    """Standardise a SMILES string and featurise its largest organic fragment.

    The returned ``Data`` also carries ``smiles`` (canonical, of the kept fragment).
    """
    std = standardize_smiles(smiles, row=row, item_id=item_id)
    data = mol_to_data(Chem.MolFromSmiles(std.smiles))
    data.smiles = std.smiles
    return data


@dataclass
class MoleculeGraphs:
    """Many featurised molecules stored as concatenated tensors (one allocation, fast to slice and cache).

    Graph ``i`` owns nodes ``node_ptr[i]:node_ptr[i+1]`` and edges ``edge_ptr[i]:edge_ptr[i+1]``; its
    ``edge_index`` is stored relative to its own first node.

    Attributes:
        x: ``[total_nodes, 9]`` long.
        edge_index: ``[2, total_edges]`` long, graph-local node indices.
        edge_attr: ``[total_edges, 3]`` long.
        node_ptr: ``[num_graphs + 1]`` long.
        edge_ptr: ``[num_graphs + 1]`` long.
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    node_ptr: Tensor
    edge_ptr: Tensor

    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    @classmethod
    def from_data_list(cls, graphs: Sequence[Data]) -> "MoleculeGraphs":
        """Concatenate graphs made by :func:`mol_to_data`."""
        nodes = torch.tensor([0] + [g.num_nodes for g in graphs]).cumsum(0)
        edges = torch.tensor([0] + [g.edge_index.size(1) for g in graphs]).cumsum(0)
        return cls(
            x=torch.cat([g.x for g in graphs]) if graphs else torch.zeros(0, 9, dtype=torch.long),
            edge_index=torch.cat([g.edge_index for g in graphs], 1) if graphs else torch.zeros(2, 0, dtype=torch.long),
            edge_attr=torch.cat([g.edge_attr for g in graphs]) if graphs else torch.zeros(0, 3, dtype=torch.long),
            node_ptr=nodes, edge_ptr=edges,
        )

    def __getitem__(self, i: int) -> Data:
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return Data(x=self.x[n0:n1], edge_index=self.edge_index[:, e0:e1], edge_attr=self.edge_attr[e0:e1],
                    num_nodes=n1 - n0)

    def batch(self, indices: Tensor) -> Batch:
        """Collate graphs ``indices`` (``[B]`` long) into one PyG ``Batch`` with vectorised gathers.

        Equivalent to ``Batch.from_data_list([self[i] for i in indices])`` but without a Python loop over
        graphs or atoms, which matters in the training step.
        """
        indices = torch.as_tensor(indices, dtype=torch.long)
        n_nodes = self.node_ptr[indices + 1] - self.node_ptr[indices]
        n_edges = self.edge_ptr[indices + 1] - self.edge_ptr[indices]
        node_src = _ranges(self.node_ptr[indices], n_nodes)
        edge_src = _ranges(self.edge_ptr[indices], n_edges)
        new_node_start = torch.cat([n_nodes.new_zeros(1), n_nodes.cumsum(0)])
        offsets = torch.repeat_interleave(new_node_start[:-1], n_edges)
        batch_vec = torch.repeat_interleave(torch.arange(indices.numel()), n_nodes)
        out = Batch(x=self.x[node_src], edge_index=self.edge_index[:, edge_src] + offsets,
                    edge_attr=self.edge_attr[edge_src], batch=batch_vec, ptr=new_node_start)
        out._num_graphs = indices.numel()
        return out

    def state(self) -> dict[str, Tensor]:
        """Tensors for ``torch.save`` / safetensors."""
        return {"x": self.x, "edge_index": self.edge_index, "edge_attr": self.edge_attr,
                "node_ptr": self.node_ptr, "edge_ptr": self.edge_ptr}


def _ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + l)`` for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    group_start = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)[:-1]])
    within = torch.arange(total) - torch.repeat_interleave(group_start, lengths)
    return torch.repeat_interleave(starts, lengths) + within


def cache_dir() -> Path:
    """Where featurised data is cached: ``$GRAPHDEL_CACHE`` or ``~/.cache/graphdel``."""
    return Path(os.environ.get("GRAPHDEL_CACHE", Path.home() / ".cache" / "graphdel"))


def _hash_smiles(smiles: Iterable[str]) -> str:
    h = hashlib.sha256(FEATURIZER_VERSION.encode())
    for s in smiles:
        h.update(b"\x00" + s.encode())
    return h.hexdigest()[:24]


def _featurize_worker(smiles: str) -> Data:
    return mol_to_data(Chem.MolFromSmiles(smiles))


def featurize_smiles(canonical_smiles: Sequence[str], *, use_cache: bool = True, workers: int = 0
                     ) -> MoleculeGraphs:
    """Featurise already standardised SMILES (see :func:`standardize_smiles`), with an on-disk cache.

    The cache key is a SHA-256 of the featuriser version and the SMILES list, so a second call on the same
    molecules loads tensors instead of running RDKit. The cache is read with ``weights_only=True``.

    Args:
        canonical_smiles: ``M`` canonical SMILES strings.
        use_cache: read and write the cache.
        workers: processes for featurisation (0 = in this process).
    """
    path = cache_dir() / "molecules" / f"{_hash_smiles(canonical_smiles)}.pt"
    if use_cache and path.exists():
        try:
            return MoleculeGraphs(**torch.load(path, weights_only=True))
        except Exception:  # a corrupt or truncated cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    if workers and workers > 1 and len(canonical_smiles) > 256:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            graphs = pool.map(_featurize_worker, canonical_smiles, chunksize=64)
    else:
        graphs = [_featurize_worker(s) for s in canonical_smiles]
    result = MoleculeGraphs.from_data_list(graphs)
    if use_cache:
        from graphdel.io import atomic_torch_save

        atomic_torch_save(result.state(), path)
    return result
