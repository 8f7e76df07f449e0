"""Shared fixtures: tiny real molecule corpora written to temporary files, and an isolated cache."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

# Every model in the tests is tiny: intra-op threads only add start-up and contention overhead (measured:
# a tiny training took 20 s with 2 threads on a busy 2-core machine, 0.3 s with 1).
torch.set_num_threads(1)

# Real molecules with short factual captions (name + class), split by hand.
TINY_MOLECULES = [
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O", "Aspirin is an acetate ester and a benzoic acid.", "train"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "Caffeine is a trimethylxanthine, a purine alkaloid.", "train"),
    ("ethanol", "CCO", "Ethanol is a primary alcohol.", "train"),
    ("benzene", "c1ccccc1", "Benzene is an aromatic hydrocarbon.", "train"),
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Ibuprofen is a propanoic acid with an isobutylphenyl group.", "train"),
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1", "Paracetamol is an acetamide and a phenol.", "train"),
    ("triethylamine", "CCN(CC)CC", "Triethylamine is a tertiary amine.", "train"),
    ("cyclohexanol", "OC1CCCCC1", "Cyclohexanol is a secondary alcohol.", "train"),
    ("pyridine", "c1ccncc1", "Pyridine is an azaarene.", "val"),
    ("acetone", "CC(C)=O", "Acetone is a methyl ketone.", "val"),
    ("naphthalene", "c1ccc2ccccc2c1", "Naphthalene is a fused bicyclic arene.", "test"),
    ("sodium acetate", "CC(=O)[O-].[Na+]", "Sodium acetate is the sodium salt of acetic acid.", "test"),
]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped on a machine without a CUDA device (bench/gpu.sh runs them there)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session writes featurisation caches to its own folder, never to the user's. The molecule
    model's item-embedding index is off, as by default, whatever the shell says (a test counting what a run
    computes must not depend on the runs before it); tests/models/test_frozen_items.py turns it on."""
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("GRAPHDEL_ITEM_INDEX", "off")


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    """A CSV source with the 12 molecules above (columns id, smiles, text, split)."""
    path = tmp_path / "tiny.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "smiles", "text", "split"])
        for name, smiles, text, split in TINY_MOLECULES:
            w.writerow([name.replace(" ", "_"), smiles, text, split])
    return path


def spy_training_sets(monkeypatch) -> list[set[str]]:
    """Make ``train_model`` record the pair ids of every training set it is given (it still trains), where
    the verbs call it: :mod:`graphdel.api` (training) and :mod:`graphdel.forget_run` (Retrain); returns the
    list the ids are appended to, one set per call."""
    from graphdel import api, forget_run

    seen: list[set[str]] = []
    real = api.train_model

    def spy(model, train, val, config, **kw):
        seen.append({train.data.corpus.pair_ids[r] for r in train.rows.tolist()})
        return real(model, train, val, config, **kw)

    monkeypatch.setattr(api, "train_model", spy)
    monkeypatch.setattr(forget_run, "train_model", spy)
    return seen
