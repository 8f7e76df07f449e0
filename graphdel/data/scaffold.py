"""Bemis–Murcko scaffolds and the scaffold split.

A scaffold split puts every molecule that shares a Bemis–Murcko scaffold (ring systems plus the linkers
between them, side chains removed; Bemis & Murcko, J. Med. Chem. 1996) into the same split, so that
validation and test molecules belong to chemical series never seen in training. This is the split of
MoleculeNet (Wu et al., 2018) as implemented by DeepChem's ``ScaffoldSplitter``, made deterministic.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import Mapping, Sequence

from rdkit.Chem.Scaffolds import MurckoScaffold

from graphdel.data.molecules import parse_smiles
from graphdel.errors import InvalidInputError
from graphdel.io import atomic_write_json

SPLIT_NAMES = ("train", "val", "test")


def murcko_scaffold(smiles: str, *, item_id: str | None = None) -> str:
    """Canonical SMILES of the Bemis–Murcko scaffold of ``smiles`` (chirality dropped).

    Returns ``""`` for an acyclic molecule (no ring, hence no scaffold).

    Raises:
        InvalidMoleculeError: ``smiles`` cannot be parsed (the message names ``item_id`` when given).
    """
    mol = parse_smiles(smiles, item_id=item_id)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


@lru_cache(maxsize=1 << 17)
def cached_murcko_scaffold(smiles: str) -> str:
    """:func:`murcko_scaffold` memoised on the SMILES string (for repeated requests on one corpus)."""
    return murcko_scaffold(smiles)


def corpus_scaffolds(item_smiles: Mapping[str, str]) -> dict[str, str]:
    """Item id -> :func:`murcko_scaffold` of its SMILES, for a whole corpus at once, read from
    ``$GRAPHDEL_CACHE/scaffolds/<sha256 of the SMILES set>.json`` when that set was seen before.

    Why: RDKit's Murcko scaffold takes about 1.4 ms a molecule (11 s for the 6,442 molecules of ``drugs`` on
    one core), and every scaffold request and every request-matched calibration reference needs the
    scaffolds of the whole corpus.

    Raises:
        InvalidMoleculeError: a SMILES cannot be parsed (the message names its item id).
    """
    from graphdel.data.molecule_graphs import cache_dir

    unique = sorted(set(item_smiles.values()))
    digest = hashlib.sha256(json.dumps(unique).encode()).hexdigest()
    path = cache_dir() / "scaffolds" / f"{digest}.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict) or set(known) != set(unique):  # absent, unreadable or not this set
        known = {smiles: murcko_scaffold(smiles, item_id=item) for item, smiles in sorted(item_smiles.items())}
        try:
            atomic_write_json(known, path)
        except OSError:  # a read-only cache only costs the next process the same computation
            pass
    return {item: known[smiles] for item, smiles in item_smiles.items()}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"split fractions must be three numbers, got {fractions!r}") from e
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise InvalidInputError(
            "split fractions must be three non-negative numbers (train, val, test) summing to 1, "
            f"got {fractions!r}")
    return fr  # type: ignore[return-value]


def scaffold_groups(item_smiles: Mapping[str, str]) -> dict[str, list[str]]:
    """Scaffold SMILES -> item ids having it (sorted); acyclic molecules share the group ``""``."""
    groups: dict[str, list[str]] = {}
    for item_id in sorted(item_smiles):
        groups.setdefault(murcko_scaffold(item_smiles[item_id], item_id=item_id), []).append(item_id)
    return groups


def scaffold_split(item_smiles: Mapping[str, str], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                   seed: int = 0) -> dict[str, str]:
    """Assign each item to ``"train"``, ``"val"`` or ``"test"`` so that a scaffold never spans two splits.

    Algorithm (DeepChem's ``ScaffoldSplitter`` with a seeded tie break):

    1. group items by :func:`murcko_scaffold` (all acyclic molecules form one group, scaffold ``""``);
    2. order the groups by size, largest first; groups of equal size are ordered by
       ``sha256(f"{seed}:{scaffold}")``, so ``seed`` only reorders ties;
    3. with ``N`` items, ``c_train = fractions[0] * N`` and ``c_val = (fractions[0] + fractions[1]) * N``,
       walk the groups in that order: a group goes to train if train would then hold at most ``c_train``
       items, otherwise to val if train + val would then hold at most ``c_val`` items, otherwise to test.
       One deviation from DeepChem: the first (largest) group always goes to train, so a corpus dominated
       by one scaffold does not end up with an empty training set.

    Large, common scaffolds therefore land in train and val/test receive the rare ones, as in MoleculeNet.
    The result depends only on the set of ``(item id, SMILES)`` pairs, the fractions and the seed — not on
    dictionary order. On a handful of items val or test may be empty.

    Args:
        item_smiles: item id -> SMILES (canonical or not).
        fractions: train, val and test fractions, non-negative and summing to 1.
        seed: tie-break seed.

    Returns:
        item id -> split name.

    Raises:
        InvalidInputError: bad fractions; InvalidMoleculeError (a subclass) for an unparsable SMILES.
    """
    f_train, f_val, _ = _check_fractions(fractions)
    groups = scaffold_groups(item_smiles)
    n = len(item_smiles)
    c_train, c_val = f_train * n, (f_train + f_val) * n

    def tie(scaffold: str) -> str:
        return hashlib.sha256(f"{seed}:{scaffold}".encode()).hexdigest()

    order = sorted(groups, key=lambda s: (-len(groups[s]), tie(s)))
    out: dict[str, str] = {}
    n_train = n_val = 0
    eps = 1e-9
    for scaffold in order:
        members = groups[scaffold]
        if n_train == 0 or n_train + len(members) <= c_train + eps:
            split, n_train = "train", n_train + len(members)
        elif n_train + n_val + len(members) <= c_val + eps:
            split, n_val = "val", n_val + len(members)
        else:
            split = "test"
        for item_id in members:
            out[item_id] = split
    return out
