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
contain carbon); the removed fragments are reported so that nothing is dropped silently. A mixture with no
carbon-containing fragment (an inorganic salt such as ``[Na+].[Cl-]``) is kept whole: no fragment is more
"the molecule" than another, and keeping the largest ion would describe sodium chloride as sodium.

The probe targets of molecules (:func:`molecule_item_properties`: logP, TPSA, aromaticity) are here too;
:mod:`graphdel.evaluation.probes` registers them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import Crippen, rdMolDescriptors
from torch import Tensor
from torch_geometric.data import Batch, Data

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

#: A molecule larger than this many heavy atoms is refused: it is almost always a polymer or a
#: biologic written as SMILES, and one such graph can dominate a batch's memory.
MAX_HEAVY_ATOMS = 1000
#: A SMILES string longer than this is refused before RDKit parses it. RDKit's parse time and memory grow
#: with the string (about 1 s and hundreds of MB for a million atoms), so a runaway field (a whole file on
#: one line) must be refused on its length, not after parsing it. 20 characters per allowed heavy atom
#: leaves room for brackets, charges, stereo marks and ring closures.
MAX_SMILES_CHARS = 20 * MAX_HEAVY_ATOMS


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
    if len(smiles) > MAX_SMILES_CHARS:  # see MAX_SMILES_CHARS: refuse before RDKit spends time on it
        raise InvalidMoleculeError(f"SMILES of {len(smiles)} characters is longer than the limit of "
                                   f"{MAX_SMILES_CHARS}", row=row, item_id=item_id, smiles=smiles[:100])
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise InvalidMoleculeError(f"RDKit cannot parse SMILES {shorten(smiles)}", row=row, item_id=item_id,
                                   smiles=smiles)
    return mol


def largest_organic_fragment(mol: Chem.Mol) -> tuple[Chem.Mol, list[Chem.Mol]]:
    """Split ``mol`` into fragments and keep the largest one that contains carbon.

    Ties are broken by the canonical SMILES so the choice does not depend on atom order. A mixture with
    no carbon at all (e.g. ``[Na+].[Cl-]``, copper sulfate) is returned whole with nothing removed: there
    is no organic fragment to prefer, and the largest ion alone is not the compound the text describes.

    Returns:
        ``(kept, removed)``.
    """
    fragments = list(Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True))
    if len(fragments) == 1:
        return fragments[0], []
    if not any(a.GetAtomicNum() == 6 for a in mol.GetAtoms()):
        return mol, []

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
        InvalidMoleculeError: unparsable, longer than :data:`MAX_SMILES_CHARS` characters, no heavy atom,
            or more than :data:`MAX_HEAVY_ATOMS` heavy atoms.
    """
    mol = parse_smiles(smiles, row=row, item_id=item_id)
    kept, removed = largest_organic_fragment(mol)
    heavy = kept.GetNumHeavyAtoms()
    if heavy == 0:
        raise InvalidMoleculeError(f"SMILES {shorten(smiles)} has no heavy atom", row=row, item_id=item_id,
                                   smiles=smiles)
    if heavy > MAX_HEAVY_ATOMS:
        raise InvalidMoleculeError(f"SMILES has {heavy} heavy atoms, more than the limit of {MAX_HEAVY_ATOMS}",
                                   row=row, item_id=item_id, smiles=smiles)
    return StandardizedMolecule(Chem.MolToSmiles(kept), tuple(Chem.MolToSmiles(f) for f in removed))


# The same vocabularies keyed by RDKit's enum values: the featuriser looks features up in these instead of
# formatting each enum as a string and searching a list (:func:`atom_features` / :func:`bond_features` stay
# the definition; tests/data/test_molecules.py checks the two agree).
_CHIRALITY_INDEX = {getattr(Chem.ChiralType, n): k for k, n in enumerate(_CHIRALITY)}
_HYBRIDISATION_INDEX = {getattr(Chem.HybridizationType, n): k for k, n in enumerate(_HYBRIDISATION)}
_BOND_TYPE_INDEX = {getattr(Chem.BondType, n): k for k, n in enumerate(_BOND_TYPE)}
_BOND_STEREO_INDEX = {getattr(Chem.BondStereo, n): k for k, n in enumerate(_BOND_STEREO)}


def _mol_rows(mol: Chem.Mol, xs: list, src: list, dst: list, attrs: list) -> tuple[int, int]:
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


def _featurize_chunk(smiles: Sequence[str]) -> dict[str, np.ndarray]:
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
        n, e = _mol_rows(mol, xs, src, dst, attrs)
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
    n, _ = _mol_rows(mol, xs, src, dst, attrs)
    x = torch.tensor(xs, dtype=torch.long).view(-1, 9)
    edge_index = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    edge_attr = torch.tensor(attrs, dtype=torch.long).view(-1, 3)
    if edge_index.numel():
        order = torch.argsort(edge_index[0] * n + edge_index[1])
        edge_index, edge_attr = edge_index[:, order], edge_attr[order]
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, num_nodes=n)


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
        """Collate graphs ``indices`` (``[B]`` long) into one PyG ``Batch`` with vectorised gathers; the
        batch also records ``item_index`` (``indices``) and ``item_store`` (this object).

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
        # which molecules these are, so that per-molecule results can be reused (FrozenTrunkCache)
        out.item_index, out.item_store = indices, self
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


#: Molecules per task handed to a worker process (large enough that pickling the result is cheap).
CHUNK = 1024
#: ``workers="auto"`` uses worker processes only for at least this many molecules (a pool costs ~0.1 s)...
AUTO_WORKERS_MIN = 4096
#: ... and only on machines with at least this many CPUs: on the project's 2-core machine, shared with other
#: work, 2 workers were slower than 1 process (bench/featurize.py).
AUTO_WORKERS_MIN_CPUS = 4


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, n: int) -> int:
    """Worker processes for ``n`` molecules: ``auto`` -> one per available CPU (at most 8) when ``n`` is at
    least :data:`AUTO_WORKERS_MIN` and there are at least :data:`AUTO_WORKERS_MIN_CPUS` CPUs, else 0
    (featurise in this process); an int is used as given (0 or 1 = none)."""
    if workers == "auto":
        cpus = _available_cpus()
        return min(cpus, 8) if n >= AUTO_WORKERS_MIN and cpus >= AUTO_WORKERS_MIN_CPUS else 0
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers must be 'auto' or an int >= 0, got {workers!r}")
    return workers if workers > 1 else 0


def _pool_context():
    """``fork`` where the platform has it (a worker runs RDKit and NumPy only, never torch, so forking a
    process that has torch threads is safe and avoids re-importing torch in every worker), else spawn."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _featurize_all(smiles: Sequence[str], workers: int, progress: bool) -> MoleculeGraphs:
    """Featurise ``smiles`` in chunks (in worker processes when ``workers`` > 1) and concatenate them."""
    from tqdm.auto import tqdm

    chunks = [smiles[i:i + CHUNK] for i in range(0, len(smiles), CHUNK)]
    bar = tqdm(total=len(smiles), desc="featurising molecules", unit="mol", disable=not progress, leave=False)
    parts = []
    if workers > 1 and len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_pool_context()) as pool:
            for chunk, part in zip(chunks, pool.map(_featurize_chunk, chunks)):  # map keeps the order
                parts.append(part)
                bar.update(len(chunk))
    else:
        for chunk in chunks:
            parts.append(_featurize_chunk(chunk))
            bar.update(len(chunk))
    bar.close()
    if not parts:
        return MoleculeGraphs.from_data_list([])
    nodes = torch.from_numpy(np.concatenate([p["nodes"] for p in parts]))
    edges = torch.from_numpy(np.concatenate([p["edges"] for p in parts]))
    zero = torch.zeros(1, dtype=torch.long)
    return MoleculeGraphs(x=torch.from_numpy(np.concatenate([p["x"] for p in parts])),
                          edge_index=torch.from_numpy(np.concatenate([p["edge_index"] for p in parts], axis=1)),
                          edge_attr=torch.from_numpy(np.concatenate([p["edge_attr"] for p in parts])),
                          node_ptr=torch.cat([zero, nodes.cumsum(0)]), edge_ptr=torch.cat([zero, edges.cumsum(0)]))


def featurize_smiles(canonical_smiles: Sequence[str], *, use_cache: bool = True, workers: int | str = "auto",
                     progress: bool = False) -> MoleculeGraphs:
    """Featurise already standardised SMILES (see :func:`standardize_smiles`), with an on-disk cache.

    The cache key is a SHA-256 of the featuriser version and the SMILES list, so a second call on the same
    molecules loads tensors instead of running RDKit (the warm path: one ``torch.load``). The cache is read
    with ``weights_only=True``. On a cold cache the molecules are featurised in chunks of :data:`CHUNK`, by
    worker processes when ``workers`` asks for them; the result does not depend on ``workers``. No torch
    object is built per molecule: each chunk becomes a few NumPy arrays.

    Args:
        canonical_smiles: ``M`` canonical SMILES strings.
        use_cache: read and write the cache.
        workers: processes for a cold featurisation: ``"auto"`` (see :func:`resolve_workers`), or a count
            (0 or 1 = in this process).
        progress: show a progress bar over molecules.

    Returns:
        :class:`MoleculeGraphs` of the ``M`` molecules, in input order.
    """
    canonical_smiles = list(canonical_smiles)
    path = cache_dir() / "molecules" / f"{_hash_smiles(canonical_smiles)}.pt"
    if use_cache and path.exists():
        try:
            return MoleculeGraphs(**torch.load(path, weights_only=True))
        except Exception:  # a corrupt or truncated cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    result = _featurize_all(canonical_smiles, resolve_workers(workers, len(canonical_smiles)), progress)
    if use_cache:
        from graphdel.io import atomic_torch_save

        atomic_torch_save(result.state(), path)
    return result


# ------------------------------------------------------------------------------------ probe targets

def molecular_properties(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """Deterministic RDKit properties of each molecule.

    Returns:
        ``{"logp": float64 [n] (Crippen MolLogP), "tpsa": float64 [n] (topological polar surface area),
        "aromatic": bool [n] (has at least one aromatic ring)}``.

    Raises:
        InvalidMoleculeError: a SMILES RDKit cannot parse (with its 1-based row).
    """
    logp, tpsa, arom = [], [], []
    for row, smi in enumerate(smiles, start=1):
        mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) and smi.strip() else None
        if mol is None:
            raise InvalidMoleculeError(f"cannot parse SMILES {smi!r}", row=row, smiles=smi)
        logp.append(Crippen.MolLogP(mol))
        tpsa.append(rdMolDescriptors.CalcTPSA(mol))
        arom.append(rdMolDescriptors.CalcNumAromaticRings(mol) > 0)
    return {"logp": np.asarray(logp, dtype=np.float64), "tpsa": np.asarray(tpsa, dtype=np.float64),
            "aromatic": np.asarray(arom, dtype=bool)}


def molecule_item_properties(corpus, item_ids: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
    """Probe targets of molecules (:data:`graphdel.data.pairs.ITEM_PROPERTIES` entry of ``"molecule"``, also
    used for depictions of molecules): :func:`molecular_properties` of ``corpus.items[id]`` (SMILES) ->
    ``{"logp": ([n], "regression"), "tpsa": ([n], "regression"), "aromatic": ([n] bool, "classification")}``."""
    props = molecular_properties([corpus.items[i] for i in item_ids])
    return {"logp": (props["logp"], "regression"), "tpsa": (props["tpsa"], "regression"),
            "aromatic": (props["aromatic"], "classification")}
