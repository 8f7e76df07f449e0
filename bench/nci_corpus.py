"""Build a second molecule–text corpus from data inside the installed RDKit package, for checks that
must run on molecules and captions no graphdel setting was chosen on.

Source: ``rdkit/Data/NCI/first_5K.smi``, the first 5,000 structures of the NCI open database (National
Cancer Institute DTP, a U.S. government work) as shipped with RDKit. Captions are facts computed with RDKit
from the structure alone (formula, heavy atoms, rings, functional groups, weight, H-bond donors and
acceptors, rotatable bonds, polar surface area), so the retrieval task is "which molecule does this description fit" with no names to lean on,
unlike the embedded ``drugs`` corpus. Salts and solvents are stripped (the largest organic fragment is kept, as graphdel's loader does),
molecules RDKit cannot parse and duplicate structures are left out;
the splits come from graphdel's scaffold split (the CSV has no ``split`` column).

    python bench/nci_corpus.py --out /tmp/nci5k.csv       # then: graphdel train --data csv:/tmp/nci5k.csv ...

Prints one JSON line (rows written, rows skipped, source file and RDKit version).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from rdkit import Chem, RDConfig, RDLogger, rdBase
from rdkit.Chem import Descriptors, Lipinski, rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize

#: (name, SMARTS) of the functional groups a caption names, in this order
GROUPS = [
    ("carboxylic acid", "C(=O)[OX2H1,OX1-]"), ("ester", "[#6]C(=O)O[#6]"), ("amide", "C(=O)[NX3]"),
    ("ketone", "[#6][CX3](=O)[#6]"), ("aldehyde", "[CX3H1](=O)[#6]"), ("hydroxyl", "[OX2H][CX4,c]"),
    ("ether", "[OD2]([#6])[#6]"), ("primary amine", "[NX3H2][#6]"), ("nitro", "[N+](=O)[O-]"),
    ("nitrile", "C#N"), ("sulfonyl", "S(=O)(=O)"), ("thiol or thioether", "[SX2]"), ("phosphorus", "[P]"),
    ("fluorine", "[F]"), ("chlorine", "[Cl]"), ("bromine", "[Br]"), ("iodine", "[I]"),
    ("charged atom", "[+,-]"),
]
PATTERNS = [(name, Chem.MolFromSmarts(smarts)) for name, smarts in GROUPS]


def caption(mol: Chem.Mol) -> str:
    """A one-sentence description of ``mol`` computed from its structure."""
    rings = rdMolDescriptors.CalcNumRings(mol)
    aromatic = rdMolDescriptors.CalcNumAromaticRings(mol)
    groups = [name for name, pattern in PATTERNS if mol.HasSubstructMatch(pattern)]
    ring_text = "no rings" if rings == 0 else f"{rings} ring{'s' if rings > 1 else ''} ({aromatic} aromatic)"
    group_text = ", ".join(groups) if groups else "no listed functional group"
    return (f"{rdMolDescriptors.CalcMolFormula(mol)}; {mol.GetNumHeavyAtoms()} heavy atoms, {ring_text}; "
            f"{group_text}; molecular weight {Descriptors.MolWt(mol):.0f}; "
            f"{Lipinski.NumHDonors(mol)} H-bond donors, {Lipinski.NumHAcceptors(mol)} acceptors; "
            f"{rdMolDescriptors.CalcNumRotatableBonds(mol)} rotatable bonds; polar surface area "
            f"{rdMolDescriptors.CalcTPSA(mol):.0f}.")


def build(source: Path, out: Path) -> dict:
    """Write ``out`` (columns ``id``, ``smiles``, ``text``) from the SMILES file ``source``; the counts."""
    RDLogger.DisableLog("rdApp.*")
    largest = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose
    seen: set[str] = set()
    rows, skipped = [], {"unparsable": 0, "duplicate": 0, "single atom": 0}
    for line in source.read_text().splitlines():
        if not line.strip():
            continue
        smiles, ident = line.split()[:2]
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            skipped["unparsable"] += 1
            continue
        # the caption describes what the graph encoder reads: the largest fragment (salts and solvents off)
        mol = largest(mol)
        if mol.GetNumHeavyAtoms() < 2:  # nothing for a graph encoder to read
            skipped["single atom"] += 1
            continue
        canonical = Chem.MolToSmiles(mol)
        if canonical in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(canonical)
        rows.append({"id": f"NSC{ident}", "smiles": canonical, "text": caption(mol)})
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "smiles", "text"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)  # atomic: a reader never sees half a corpus
    return {"rows": len(rows), "skipped": skipped, "distinct_captions": len({r["text"] for r in rows}),
            "source": str(source.relative_to(Path(RDConfig.RDDataDir).parent)), "rdkit": rdBase.rdkitVersion}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    source = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    print(json.dumps({"bench": "nci_corpus", "out": str(args.out), **build(source, args.out)}))


if __name__ == "__main__":
    sys.exit(main())
