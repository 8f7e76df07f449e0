import numpy as np
import pytest
import torch

from graphdel.errors import InvalidMoleculeError
from graphdel.evaluation.probes import embedding_drift, linear_probe, molecular_properties


def test_molecular_properties():
    props = molecular_properties(["c1ccccc1", "CCO", "C1CCCCC1"])
    assert props["aromatic"].tolist() == [True, False, False]
    assert props["logp"] == pytest.approx([1.6866, -0.0014, 2.3406], abs=1e-4)
    assert props["tpsa"] == pytest.approx([0.0, 20.23, 0.0], abs=1e-2)
    assert props["aromatic"].dtype == bool


def test_molecular_properties_bad_smiles():
    with pytest.raises(InvalidMoleculeError, match="row 2"):
        molecular_properties(["CCO", "not a smiles"])


def test_regression_probe_linear_target():
    rng = np.random.default_rng(0)
    w = rng.normal(size=8)
    x_tr, x_ev = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
    out = linear_probe(torch.tensor(x_tr), x_tr @ w, {"test": (x_ev, x_ev @ w)})
    assert out["kind"] == "regression"
    assert out["sets"]["test"]["r2"] > 0.999
    assert out["sets"]["test"]["n"] == 100


def test_regression_probe_noise():
    rng = np.random.default_rng(1)
    out = linear_probe(rng.normal(size=(1000, 8)), rng.normal(size=1000),
                       {"noise": (rng.normal(size=(500, 8)), rng.normal(size=500)),
                        "const": (rng.normal(size=(5, 8)), np.ones(5)),
                        "one": (rng.normal(size=(1, 8)), np.ones(1))})
    assert abs(out["sets"]["noise"]["r2"]) < 0.05
    assert out["sets"]["const"]["r2"] is None and out["sets"]["const"]["reason"] == "constant target"
    assert out["sets"]["one"]["r2"] is None


def test_regression_probe_mae_is_in_target_units():
    # an exact linear target: the fitted probe is nearly exact, so its MAE is ~0 on any set, even a
    # narrow one where R² (relative to the set's own spread) means little
    x = np.random.default_rng(3).normal(size=(50, 2))
    y = 2.0 * x[:, 0] - x[:, 1] + 3.0
    xe = np.array([[0.1, 0.15], [0.2, 0.25], [0.4, 0.4]])
    ye = 2.0 * xe[:, 0] - xe[:, 1] + 3.0
    out = linear_probe(x, y, {"narrow": (xe, ye), "shifted": (xe, ye + 2.0)})
    assert out["sets"]["narrow"]["mae"] == pytest.approx(0.0, abs=0.05)
    assert out["sets"]["shifted"]["mae"] == pytest.approx(2.0, abs=0.05)  # every prediction 2 units low
    single = linear_probe(x, y, {"one": (xe[:1], np.array([10.0]))})["sets"]["one"]
    assert single["r2"] is None and single["mae"] is not None


def test_classification_probe():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4))
    y = x[:, 0] > 0
    xe = rng.normal(size=(50, 4))
    xe[:, 0] += np.sign(xe[:, 0]) * 0.5  # margin: perfectly separable by the first coordinate
    single = np.abs(xe[:10]) + 0.5
    out = linear_probe(x, y, {"test": (xe, xe[:, 0] > 0), "positives": (single, np.ones(10, bool))},
                       kind="classification")
    assert out["sets"]["test"]["accuracy"] > 0.95
    assert out["sets"]["test"]["roc_auc"] > 0.99
    assert out["sets"]["positives"]["roc_auc"] is None
    assert "single class" in out["sets"]["positives"]["reason"]
    assert out["sets"]["positives"]["accuracy"] is not None
    with pytest.raises(ValueError):
        linear_probe(x, np.ones(200), {}, kind="classification")
    with pytest.raises(ValueError):
        linear_probe(x, y, {}, kind="ranking")


def test_embedding_drift():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert embedding_drift(a, a) == pytest.approx({"mean_cos": 1.0, "min_cos": 1.0})
    b = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    out = embedding_drift(a, b)
    assert out["min_cos"] == pytest.approx(-1.0)
    assert out["mean_cos"] == pytest.approx((2 ** -0.5 - 1) / 2)
    with pytest.raises(ValueError):
        embedding_drift(a, b[:1])
