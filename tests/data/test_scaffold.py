import hashlib
import random

import pytest

from graphdel.data.scaffold import murcko_scaffold, scaffold_groups, scaffold_split
from graphdel.errors import InvalidInputError, InvalidMoleculeError

MOLS = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "benzene": "c1ccccc1",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "theophylline": "Cn1c(=O)c2[nH]cnc2n(C)c1=O",
    "ethanol": "CCO",
    "acetate": "CC(=O)[O-]",
    "phenobarbital": "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O",
    "cyclohexanol": "OC1CCCCC1",
}


def test_murcko_scaffold_exact():
    assert murcko_scaffold("CC(=O)Oc1ccccc1C(=O)O") == "c1ccccc1"
    assert murcko_scaffold("CC(C)Cc1ccc(cc1)C(C)C(=O)O") == "c1ccccc1"
    assert murcko_scaffold("Cn1cnc2c1c(=O)n(C)c(=O)n2C") == "O=c1[nH]c(=O)c2[nH]cnc2[nH]1"
    assert murcko_scaffold("CCC1(c2ccccc2)C(=O)NC(=O)NC1=O") == "O=C1NC(=O)C(c2ccccc2)C(=O)N1"
    assert murcko_scaffold("OC1CCCCC1") == "C1CCCCC1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("CC(=O)[O-]") == ""


def test_murcko_scaffold_invalid_names_id():
    with pytest.raises(InvalidMoleculeError, match="'m1'"):
        murcko_scaffold("C1CC(", item_id="m1")


def test_scaffold_groups():
    groups = scaffold_groups(MOLS)
    assert groups["c1ccccc1"] == ["aspirin", "benzene", "ibuprofen", "paracetamol"]
    assert groups[""] == ["acetate", "ethanol"]
    assert groups["O=c1[nH]c(=O)c2[nH]cnc2[nH]1"] == ["caffeine", "theophylline"]


def test_scaffold_split_exact():
    # 10 items, cut-offs 8 (train) and 9 (train+val). Groups by size: benzene 4, xanthine 2, acyclic 2
    # -> train (4+2+2 = 8); the two singletons are ordered by the seeded hash: the first fits val, the
    # second goes to test.
    split = scaffold_split(MOLS)
    assert {k for k, v in split.items() if v == "train"} == {
        "aspirin", "benzene", "ibuprofen", "paracetamol", "caffeine", "theophylline", "ethanol", "acetate"}
    assert sorted(v for k, v in split.items() if k in ("phenobarbital", "cyclohexanol")) == ["test", "val"]
    # equal-size groups are ordered by sha256(f"{seed}:{scaffold}")
    key = {s: hashlib.sha256(f"0:{s}".encode()).hexdigest()
           for s in ("C1CCCCC1", "O=C1NC(=O)C(c2ccccc2)C(=O)N1")}
    first = min(key, key=key.get)
    assert (split["cyclohexanol"] == "val") == (first == "C1CCCCC1")
    assert split["phenobarbital"] == "val" and split["cyclohexanol"] == "test"


def test_scaffold_split_deterministic_and_order_free():
    a = scaffold_split(MOLS, seed=3)
    items = list(MOLS.items())
    random.Random(1).shuffle(items)
    b = scaffold_split(dict(items), seed=3)
    assert a == b
    assert scaffold_split(MOLS, seed=3) == a
    # every scaffold sits in exactly one split
    for members in scaffold_groups(MOLS).values():
        assert len({a[m] for m in members}) == 1


def test_scaffold_split_seed_only_breaks_ties():
    seen = {tuple(sorted(scaffold_split(MOLS, seed=s).items())) for s in range(20)}
    assert len(seen) == 2  # phenobarbital and cyclohexanol swap val/test; nothing else moves
    for s in range(20):
        split = scaffold_split(MOLS, seed=s)
        assert split["aspirin"] == split["caffeine"] == split["ethanol"] == "train"


def test_scaffold_split_singletons_counts():
    eight = {f"m{i}": "C" * (i + 1) + "C1CC1" for i in range(8)}  # one scaffold (cyclopropane)
    assert set(scaffold_split(eight).values()) == {"train"}  # the largest group always goes to train
    distinct = {"a": "c1ccccc1", "b": "C1CC1", "c": "C1CCC1", "d": "C1CCCC1", "e": "C1CCCCC1",
                "f": "C1CCCCCC1", "g": "c1ccncc1", "h": "c1ccoc1"}
    counts = {s: list(scaffold_split(distinct).values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 6, "val": 1, "test": 1}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.1, 0.2), (1.2, -0.1, -0.1), ("a", 0, 0)])
def test_scaffold_split_bad_fractions(fractions):
    with pytest.raises(InvalidInputError, match="fractions"):
        scaffold_split(MOLS, fractions=fractions)


def test_scaffold_split_invalid_smiles():
    with pytest.raises(InvalidMoleculeError, match="'bad'"):
        scaffold_split({"ok": "CCO", "bad": "C1CC("})


def test_corpus_scaffolds_are_computed_once_then_read_from_the_cache(monkeypatch, tmp_path):
    from graphdel.data import scaffold

    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    items = {"phenol": "Oc1ccccc1", "toluene": "Cc1ccccc1", "ethanol": "CCO", "pyridinol": "Oc1ccncc1"}
    expected = {"phenol": "c1ccccc1", "toluene": "c1ccccc1", "ethanol": "", "pyridinol": "c1ccncc1"}
    assert scaffold.corpus_scaffolds(items) == expected
    [cached] = (tmp_path / "scaffolds").iterdir()
    monkeypatch.setattr(scaffold, "murcko_scaffold",
                        lambda *a, **k: pytest.fail("recomputed a cached scaffold"))
    assert scaffold.corpus_scaffolds(items) == expected
    monkeypatch.undo()
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    cached.write_text("{not json")  # a damaged cache file is computed again, not trusted
    assert scaffold.corpus_scaffolds(items) == expected


def test_corpus_scaffolds_name_the_item_whose_smiles_fails(monkeypatch, tmp_path):
    from graphdel.data.scaffold import corpus_scaffolds

    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path))
    with pytest.raises(InvalidMoleculeError, match="broken"):
        corpus_scaffolds({"fine": "CCO", "broken": "C1CC("})
