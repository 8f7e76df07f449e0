"""Every registered unlearning method on a tiny image–text model, through the same engine and API as the
graph models; then the evaluation suite, report and certificates on the results."""

from __future__ import annotations

import pytest
import torch

import graphdel.api as api
from graphdel.errors import ConfigError
from graphdel.io import sha256_file
from graphdel.models.image import ImageTextModel
from graphdel.unlearning import available_methods
from tests.models.test_image_model import make_tiny_image_run

#: One step (or one short pass) per method: Df is 2 images x 2 captions = one batch of 4.
ONE_STEP = {"retrain": None, "dtd": ["steps=1", "batch_size=4"], "scrub": ["epochs=1", "max_epochs=1",
                                                                            "batch_size=4"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("imageunlearn")
    run = make_tiny_image_run(root)
    prepared = api.load_run_data(run, progress=False)
    request = api.make_request(run, random_amount=2, by="image", seed=0, prepared=prepared)
    return root, run, prepared, request


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", [name for name, _, _ in available_methods()])
def test_every_method_runs_on_an_image_text_model(setup, method):
    root, run, prepared, request = setup
    assert len(request) == 4
    weights = sha256_file(run.path / "model.safetensors")
    before = _state(run.model)
    overrides = ONE_STEP.get(method, ["epochs=1", "batch_size=4"])
    if method == "gnndelete":  # needs a model with a deletion operator over a graph neighbourhood
        with pytest.raises(ConfigError, match="needs a model with a deletion operator"):
            api.forget(run, request, method=method, overrides=overrides, out=root / method, progress=False,
                       prepared=prepared)
        return
    out = api.forget(run, request, method=method, overrides=overrides, out=root / method, progress=False,
                     prepared=prepared)
    assert isinstance(out.model, ImageTextModel)
    assert sha256_file(run.path / "model.safetensors") == weights          # the original is untouched
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())
    changed = [k for k, v in out.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{method} left every weight unchanged"
    splits = out.metrics["splits"]
    assert splits["forget"]["n"] == 4 and 0 < splits["forget"]["pool64"]["g2t_mrr"] <= 1
    if method != "retrain":
        assert out.metrics["selected"]["steps"] >= 1
    if method == "multidelete":  # the image model's recommended settings, recorded with the run
        assert out.config["method_config"]["representation"] == "similarity"
    assert (out.path / "certificate.json").is_file()
    assert set(out.config["excluded_ids"]) >= set(request.pair_ids)


def test_suite_report_and_certificates_on_image_runs(setup):
    from graphdel.evaluation.certificate import verify_certificate
    from graphdel.evaluation.suite import SuiteConfig, evaluate_runs, write_audit

    root, run, prepared, request = setup
    runs = [root / "multidelete", root / "retrain"]
    for method, path in zip(("multidelete", "retrain"), runs):  # made by the test above, unless run alone
        if not path.is_dir():
            api.forget(run, request, method=method, overrides=ONE_STEP.get(method, ["epochs=1", "batch_size=4"]),
                       out=path, progress=False, prepared=prepared)
    audit = evaluate_runs(runs, config=SuiteConfig(chunks=2), progress=False, log=lambda s: None)
    md = audit["results"]["models"]["multidelete"]
    assert set(md["splits"]) >= {"forget", "retain", "test"} and "t2g" in md["splits"]["forget"]
    assert "mean" in md["distinguishability"] and md["distinguishability"]["score"] == "similarity"
    # the two-tower image model has no matching head: no matching column, AUC or attack signal read from one
    assert "matching" not in md["distinguishability"] and "match_prob" not in md["membership"].get("signal_auc", {})
    assert all("match_bal_acc" not in entry for entry in md["splits"].values())
    # probes on image embeddings: content statistics of the image files
    assert set(md["probes"]) == {"brightness", "colourfulness", "warm"}
    assert md["probes"]["warm"]["fit_n"] >= 3
    assert "attack_auc" in md["membership"] or "note" in md["membership"]
    files = write_audit(root / "report", audit)
    assert (root / "report" / "report.html").is_file()
    cert = next(p for p in files if str(p).startswith("certificates/") and "multidelete" in str(p))
    result = verify_certificate(files[cert], metrics=False)
    assert result.holds, result.failed


def test_demo_image_scenario_and_its_cached_original(tmp_path, capsys):
    import json

    from graphdel.cli import main
    from tests.data.test_images import write_imagefolder

    folder = write_imagefolder(tmp_path / "images", n=24)
    args = ["demo", "--quick", "--modality", "image", "--data", f"imagefolder:{folder}", "--methods", "multidelete"]
    assert main(args + ["--out", str(tmp_path / "d1")]) == 0
    metrics = json.loads((tmp_path / "d1" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"original", "retrain", "multidelete"}
    assert metrics["request"]["modality"] == "image"
    assert "image→text retrieval" in (tmp_path / "d1" / "report.md").read_text()
    capsys.readouterr()
    # the image recipe's resolved config (encoder settings included) matches the cached original
    assert main(args + ["--out", str(tmp_path / "d2")]) == 0
    assert "reusing the cached original model" in capsys.readouterr().out
    assert main(["demo", "--kg", "--modality", "image", "--out", str(tmp_path / "d3")]) == 2
