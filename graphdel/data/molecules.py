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
:mod:`graphdel.data.pairs` registers them beside the molecule featuriser.

The features and their fast path are in :mod:`graphdel.data.molecule_features`, the concatenated storage,
its featurisation and cache in :mod:`graphdel.data.molecule_graphs`; every name is imported from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import Crippen, rdMolDescriptors
from torch_geometric.data import Data

from graphdel.data.molecule_features import (ATOM_FEATURE_DIMS, BOND_FEATURE_DIMS, FEATURIZER_VERSION,
                                             atom_features, bond_features, mol_to_data)
from graphdel.data.molecule_graphs import (AUTO_WORKERS_MIN, AUTO_WORKERS_MIN_CPUS, CHUNK, MoleculeGraphs,
                                           cache_dir, featurize_smiles, resolve_workers)
from graphdel.errors import InvalidMoleculeError, shorten

#: A molecule larger than this many heavy atoms is refused: it is almost always a polymer or a
#: biologic written as SMILES, and one such graph can dominate a batch's memory.
MAX_HEAVY_ATOMS = 1000
#: A SMILES string longer than this is refused before RDKit parses it. RDKit's parse time and memory grow
#: with the string (about 1 s and hundreds of MB for a million atoms), so a runaway field (a whole file on
#: one line) must be refused on its length, not after parsing it. 20 characters per allowed heavy atom
#: leaves room for brackets, charges, stereo marks and ring closures.
MAX_SMILES_CHARS = 20 * MAX_HEAVY_ATOMS


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


def smiles_to_data(smiles: str, *, row: int | None = None, item_id: str | None = None) -> Data:
    """Standardise a SMILES string and featurise its largest organic fragment.

    The returned ``Data`` also carries ``smiles`` (canonical, of the kept fragment).
    """
    std = standardize_smiles(smiles, row=row, item_id=item_id)
    data = mol_to_data(Chem.MolFromSmiles(std.smiles))
    data.smiles = std.smiles
    return data



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
