"""bench/hpo_kg.py, the second KG's builder, on tiny HPO-format files the test writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OBO = """format-version: 1.2

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000002
name: Tall stature
def: "A height above the norm." [HPO:x]
is_a: HP:0000005 ! Abnormal height

[Term]
id: HP:0000005
name: Abnormal height
is_a: HP:0000001 ! All

[Term]
id: HP:0000003
name: Seizure
is_a: HP:0000001 ! All

[Term]
id: HP:0000004
name: Rare sign
is_a: HP:0000002 ! Tall stature

[Term]
id: HP:0000006
name: Autosomal dominant inheritance
def: "One copy suffices." []

[Term]
id: HP:0000099
name: Old term
is_obsolete: true
"""

HEADER = ("database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\tonset\tfrequency\tsex\tmodifier"
          "\taspect\tbiocuration\n")


def annotation(disease, name, hp, aspect="P", qualifier=""):
    return f"{disease}\t{name}\t{qualifier}\t{hp}\tPMID:1\tPCS\t\t\t\t\t{aspect}\tHPO:x\n"


def write_tiny_hpo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hp.obo").write_text(OBO)
    rows = ["#version: test\n", HEADER]
    for d, name in (("OMIM:1", "Syndrome one"), ("OMIM:2", "Syndrome two")):
        rows += [annotation(d, name, hp) for hp in ("HP:0000002", "HP:0000003", "HP:0000005")]
    rows += [annotation("OMIM:1", "Syndrome one", "HP:0000004"),            # used by one disease only: left out
             annotation("OMIM:2", "Syndrome two", "HP:0000004", qualifier="NOT"),
             annotation("OMIM:1", "Syndrome one", "HP:0000006", aspect="I"),  # inheritance: always kept
             annotation("OMIM:1", "Syndrome one", "HP:0000099"),            # obsolete: left out
             annotation("ORPHA:5", "Orphan disease", "HP:0000002")]          # not OMIM: never drawn
    (folder / "phenotype.hpoa").write_text("".join(rows))
    (folder / "genes_to_phenotype.txt").write_text(
        "ncbi_gene_id\tgene_symbol\thpo_id\thpo_name\tfrequency\tdisease_id\n"
        "7\tABC1\tHP:0000002\tTall stature\t-\tOMIM:1\n7\tABC1\tHP:0000003\tSeizure\t-\tOMIM:1\n"
        "8\tXYZ2\tHP:0000002\tTall stature\t-\tORPHA:5\n")
    return folder


def _builder():
    spec = importlib.util.spec_from_file_location("bench_hpo_kg", ROOT / "bench" / "hpo_kg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_builder_keeps_shared_terms_inheritance_is_a_and_genes(tmp_path, monkeypatch):
    hpo = _builder()
    monkeypatch.setattr(hpo, "MIN_PHENOTYPES", 2)
    out = tmp_path / "kg"
    counts = hpo.build(write_tiny_hpo(tmp_path / "data"), out, diseases=5, seed=0)
    triples = sorted(line.split("\t") for name in ("train", "valid", "test")
                     for line in (out / f"{name}.txt").read_text().splitlines())
    assert triples == sorted([
        ["OMIM:1", "has_phenotype", "HP:0000002"], ["OMIM:1", "has_phenotype", "HP:0000003"],
        ["OMIM:2", "has_phenotype", "HP:0000002"], ["OMIM:2", "has_phenotype", "HP:0000003"],
        ["OMIM:1", "has_phenotype", "HP:0000005"], ["OMIM:2", "has_phenotype", "HP:0000005"],
        ["HP:0000002", "is_a", "HP:0000005"],                 # both ends kept; HP:0000005 -> HP:0000001 is not
        ["OMIM:1", "has_inheritance", "HP:0000006"], ["gene:ABC1", "gene_of", "OMIM:1"]])
    texts = dict(line.split("\t") for line in (out / "entity2text.txt").read_text().splitlines())
    assert texts == {"HP:0000002": "Tall stature: A height above the norm.", "HP:0000003": "Seizure",
                     "HP:0000005": "Abnormal height",
                     "HP:0000006": "Autosomal dominant inheritance: One copy suffices.",
                     "OMIM:1": "Syndrome one", "OMIM:2": "Syndrome two", "gene:ABC1": "gene ABC1"}
    assert counts["entities"] == 7 and counts["diseases"] == 2 and counts["genes"] == 1
    assert sum(counts["triples"].values()) == 9 and counts["relations"]["has_phenotype"] == 6


def test_is_a_links_kept_terms_and_obsolete_terms_are_dropped(tmp_path):
    hpo = _builder()
    data = write_tiny_hpo(tmp_path / "data")
    terms = hpo.read_terms(data / "hp.obo")
    assert "HP:0000099" not in terms and terms["HP:0000004"]["parents"] == ["HP:0000002"]
    names, rows = hpo.read_annotations(data / "phenotype.hpoa")
    assert ("OMIM:2", "P", "HP:0000004") not in rows and names["ORPHA:5"] == "Orphan disease"
