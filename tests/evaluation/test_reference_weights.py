from types import SimpleNamespace

import pytest

from graphdel.data.corpus import Corpus
from graphdel.evaluation.reference_weights import ReferenceWeights, series_matched_weights

# Murcko series: A = benzene (three molecules), B = cyclohexane (one), D = pyridine (two), C acyclic (its own)
MOLECULES = {"A1": "Oc1ccccc1", "A2": "Cc1ccccc1", "A3": "Nc1ccccc1", "B1": "OC1CCCCC1", "C1": "CCO",
             "D1": "Cc1ccncc1", "D2": "Oc1ccncc1"}
ROW = {name: k for k, name in enumerate(MOLECULES)}


def _prepared(calibration: list[str], modality: str = "molecule"):
    names = list(MOLECULES)
    corpus = Corpus(source="test", modality=modality, pair_ids=[f"{n}#0" for n in names], item_ids=names,
                    texts=[f"text of {n}" for n in names], splits=["train"] * len(names),
                    items=dict(MOLECULES))
    cal = [ROW[n] for n in calibration]
    return SimpleNamespace(corpus=corpus, calibration=cal,
                           trained_rows=lambda: [r for r in range(len(names)) if r not in cal])


def _rows(*names: str) -> list[int]:
    return [ROW[n] for n in names]


def test_a_request_of_whole_series_weighs_only_calibration_pairs_without_a_relative():
    # B1 has no relative in training (A3 has A1 and A2); C1, D1, D2 lose every relative with the request
    prepared = _prepared(["B1", "A3"])
    w = series_matched_weights(prepared, _rows("C1", "D1", "D2"), _rows("A1", "A2"))
    assert w == ReferenceWeights({ROW["B1"]: 1.0, ROW["A3"]: 0.0}, 1.0, 0.5)


def test_a_request_that_leaves_relatives_weighs_the_related_pairs():
    prepared = _prepared(["B1", "A3"])
    w = series_matched_weights(prepared, _rows("A1"), _rows("A2", "C1", "D1", "D2"))
    assert w.weights == {ROW["B1"]: 0.0, ROW["A3"]: 1.0} and w.request_share == 0.0


def test_a_mixed_request_splits_the_weight_by_its_share():
    # D1 keeps D2; C1 (acyclic) has no relative: half of the request is without one
    prepared = _prepared(["B1", "A3", "A2"])
    w = series_matched_weights(prepared, _rows("C1", "D1"), _rows("A1", "D2"))
    assert w.weights == {ROW["B1"]: 0.5, ROW["A3"]: pytest.approx(0.25), ROW["A2"]: pytest.approx(0.25)}
    assert w.calibration_share == pytest.approx(1 / 3)
    assert "0.500 of the deleted pairs" in w.describe()


def test_no_weights_where_the_calibration_cannot_match_or_the_corpus_has_no_series():
    # every calibration pair has relatives, the request has none left: nothing to weigh towards
    assert series_matched_weights(_prepared(["A3"]), _rows("C1", "D1", "D2"), _rows("A1", "A2")) is None
    assert series_matched_weights(_prepared(["B1", "A3"], modality="image"), _rows("A1"), _rows("A2")) is None
    assert series_matched_weights(_prepared([]), _rows("A1"), _rows("A2")) is None
