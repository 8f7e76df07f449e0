"""Tests of the shipped drug–text corpus ``data/drugs/drugs.tsv.gz`` and of its caption function.

They read the file as shipped (not a rebuild), so a stale or hand-edited corpus fails here.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.Scaffolds import MurckoScaffold

from graphdel.data.molecules import standardize_smiles

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data" / "drugs" / "drugs.tsv.gz"
BUILD = ROOT / "data" / "drugs" / "build.py"
HEADER = ["pair_id", "mol_id", "smiles", "split", "text"]


def _load_build() -> ModuleType:
    """Import ``data/drugs/build.py`` by path (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("graphdel_data_drugs_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Row:
    pair_id: str
    mol_id: str
    smiles: str
    split: str
    text: str
    scaffold: str
    formula: str


@pytest.fixture(scope="module")
def header_and_rows() -> tuple[list[str], list[Row]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        raw = list(reader)
    rows = []
    for fields in raw:
        assert len(fields) == len(HEADER), fields[:2]
        kept = Chem.MolFromSmiles(standardize_smiles(fields[2]).smiles)
        rows.append(Row(*fields, MurckoScaffold.MurckoScaffoldSmiles(mol=kept, includeChirality=False),
                        rdMolDescriptors.CalcMolFormula(kept)))
    return header, rows


@pytest.fixture(scope="module")
def rows(header_and_rows) -> list[Row]:
    return header_and_rows[1]


def test_header_exact(header_and_rows) -> None:
    assert header_and_rows[0] == HEADER


def test_size_and_unique_ids(rows) -> None:
    assert len(rows) >= 5000
    assert len({r.pair_id for r in rows}) == len(rows)
    assert len({r.mol_id for r in rows}) == len(rows)
    assert all(r.pair_id == f"{r.mol_id}#0" for r in rows)
    assert [r.mol_id for r in rows] == sorted(r.mol_id for r in rows)
    assert all(r.text.strip() for r in rows)


def test_splits_roughly_80_10_10(rows) -> None:
    counts = Counter(r.split for r in rows)
    assert set(counts) == {"train", "val", "test"}
    for split, target in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert abs(counts[split] / len(rows) - target) <= 0.03, counts


def test_no_scaffold_shared_between_train_and_test(rows) -> None:
    by_split: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for r in rows:
        by_split[r.split].add(r.scaffold)
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["val"]
    assert not by_split["val"] & by_split["test"]


def test_captions_never_state_the_molecular_formula(rows) -> None:
    leaks = [r.mol_id for r in rows if r.formula in r.text]
    assert not leaks, leaks[:10]


def test_every_smiles_parses(rows) -> None:
    assert all(Chem.MolFromSmiles(r.smiles) is not None for r in rows)


def test_aspirin_caption_exact() -> None:
    build = _load_build()
    text = build.describe("Aspirin", ["Acetylsalicylic acid", "2-acetoxybenzoic acid"],
                          "CC(=O)Oc1ccccc1C(=O)O")
    assert text == (
        "Aspirin (also known as Acetylsalicylic acid; 2-acetoxybenzoic acid) is a small molecule. "
        "It is a member of benzenes. It contains a carboxylic acid and an ester. "
        "It has 1 aromatic ring, no stereocentres, 1 H-bond donor, 3 acceptors and 2 rotatable bonds."
    )


def test_salt_and_brand_sentences() -> None:
    build = _load_build()
    text = build.describe("Betaxolol", ["Kerlone"], "CC(C)NCC(COC1=CC=C(C=C1)CCOCC2CC2)O.Cl",
                          brands=["Betoptic"])
    assert text.startswith("Betaxolol (also known as Kerlone) is a medium-sized molecule. "
                           "Its brand name is Betoptic. ")
    assert "It is supplied as a hydrochloride salt." in text
    assert "a secondary amine" in text


def test_build_refuses_other_source_versions(monkeypatch) -> None:
    build = _load_build()
    monkeypatch.setattr(build.importlib.metadata, "version", lambda name: "2.0.8")
    with pytest.raises(SystemExit, match="2.0.9"):
        build.check_source_version()
