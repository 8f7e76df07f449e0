"""``graphdel compare``: one request's outcome on two modalities, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphdel.cli import main
from graphdel.data.requests import DeletionRequest
from graphdel.data.sources import load_dataset
from graphdel.errors import InvalidInputError
from graphdel.evaluation.compare import compare, load_outcome


def entry(role: str, df: float, test: float, attack: float, time_s: float, run: Path | None = None) -> dict:
    e = {"role": role, "method": role, "wall_time_s": time_s, "membership": {"attack_auc": attack},
         "splits": {"forget": {"pool64": {"g2t_mrr": df}}, "test": {"pool64": {"g2t_mrr": test}}}}
    if run is not None:
        e["path"] = str(run)
    return e


def save_request(corpus, pair_ids: list[str], path: Path) -> None:
    DeletionRequest.from_ids(corpus, pair_ids, by="pair").save(path, corpus)


def write_report(folder: Path, modality: str, numbers: dict[str, tuple], pair_ids: list[str], corpus) -> Path:
    """A report folder as `graphdel demo` leaves it: metrics.json, request.json (a real saved request of
    ``pair_ids``), and one run folder whose config.json names the modality."""
    run = folder / "runs" / "retrain"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": {"modality": modality, "source": f"src-{modality}"}}))
    models = {name: entry(*vals, run=run if name == "Retrain" else None) for name, vals in numbers.items()}
    (folder / "metrics.json").write_text(json.dumps({"schema": "graphdel.report/1", "models": models,
                                                     "request": {"source": f"src-{modality}"}}))
    save_request(corpus, pair_ids, folder / "request.json")
    return folder


GRAPH = {"original": ("original", 0.78, 0.56, 0.71, 400.0), "Retrain": ("reference", 0.70, 0.57, 0.63, 300.0),
         "multidelete": ("method", 0.74, 0.55, 0.69, 24.0)}
IMAGE = {"original": ("original", 0.90, 0.39, 0.80, 500.0), "Retrain": ("reference", 0.45, 0.40, 0.55, 200.0),
         "multidelete": ("method", 0.47, 0.385, 0.60, 10.0), "ft": ("method", 0.88, 0.40, 0.79, 30.0)}


def test_compare_lines_up_models_and_checks_the_request(tmp_path, tiny_csv):
    mols, images = load_dataset(f"csv:{tiny_csv}"), load_dataset(f"depictions:csv:{tiny_csv}")
    a = write_report(tmp_path / "graph", "molecule", GRAPH, ["aspirin#0", "ethanol#0"], mols)
    b = write_report(tmp_path / "image", "image", IMAGE, ["ethanol#0", "aspirin#0"], images)
    cmp = compare(a, b)
    assert cmp.same_request is True and cmp.overlap == (2, 2, 2)
    assert [n for n, _, _ in cmp.rows] == ["original", "Retrain", "multidelete", "ft"]
    _, g, i = cmp.rows[2]
    assert g["df_vs_retrain"] == pytest.approx(0.04) and g["test_vs_original"] == pytest.approx(-0.01)
    assert g["time_share"] == pytest.approx(0.08) and g["passes"] is True
    assert i["df_vs_retrain"] == pytest.approx(0.02) and i["time_share"] == pytest.approx(0.05)
    assert i["passes"] is True                      # test 0.385 is 0.005 below the original: within 0.02
    assert cmp.rows[3][1] == {} and cmp.rows[3][2]["passes"] is False      # FT only on the image side
    table = cmp.table()
    assert "graph (src-molecule)" in table and "image (src-image)" in table
    assert "the same 2 deleted pairs on both sides" in table
    assert "| multidelete | 0.740 (+0.040) | 0.550 (-0.010) | 0.69 | 24.0 s (8.0%) | PASS |" in table


def test_compare_flags_different_requests_and_the_cli_writes_files(tmp_path, tiny_csv, capsys):
    mols = load_dataset(f"csv:{tiny_csv}")
    a = write_report(tmp_path / "graph", "molecule", GRAPH, ["aspirin#0", "ethanol#0", "benzene#0"], mols)
    b = write_report(tmp_path / "image", "image", IMAGE, ["ethanol#0", "caffeine#0"], mols)
    assert compare(a, b).overlap == (1, 3, 2)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp.md")]) == 0
    out = capsys.readouterr().out
    assert "DIFFERENT deleted pairs (1 shared; 3 on the left, 2 on the right)" in out
    assert (tmp_path / "cmp.md").read_text().startswith("Left: graph")
    assert json.loads((tmp_path / "cmp.json").read_text())["same_request"] is False
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp.json")]) == 2


def test_load_outcome_refuses_other_folders(tmp_path):
    with pytest.raises(InvalidInputError, match="holds no metrics.json"):
        load_outcome(tmp_path)
    (tmp_path / "metrics.json").write_text("{\"splits\": {}}")
    with pytest.raises(InvalidInputError, match="neither a report folder"):
        load_outcome(tmp_path)


def test_an_unlearned_run_folder_is_an_outcome_of_one_model(tmp_path, tiny_csv):
    run = tmp_path / "md"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "multidelete", "data": {"modality": "image",
                                                                                   "source": "depictions"}}))
    save_request(load_dataset(f"csv:{tiny_csv}"), ["ethanol#0"], run / "request.json")
    (run / "metrics.json").write_text(json.dumps({"wall_time_s": 3.0, "splits": {
        "forget": {"pool64": {"g2t_mrr": 0.5}}, "test": {"pool64": {"g2t_mrr": 0.4}}}}))
    out = load_outcome(run)
    assert (out.modality, out.source, out.pair_ids) == ("image", "depictions", frozenset({"ethanol#0"}))
    assert list(out.models) == ["multidelete"] and out.models["multidelete"]["role"] == "method"
