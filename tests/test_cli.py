"""The report / verify / demo subcommands of the `graphdel` command."""

import json

import pytest

import graphdel as gd
from graphdel import api
from graphdel.cli import build_parser, main
from graphdel.training.loop import TrainConfig


def test_new_commands_are_listed():
    help_text = build_parser().format_help()
    for cmd in ("report", "verify", "demo", "train", "forget", "evaluate"):
        assert cmd in help_text
    demo_help = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    assert "--quick" in demo_help and "--data" not in demo_help  # --data is an advanced, hidden option


def test_report_command(tiny_csv, tmp_path, capsys):
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, ids=["aspirin#0", "ethanol#0"], by="pair", prepared=prepared)
    paths = [api.forget(original, request, method=m, out=tmp_path / m, progress=False, prepared=prepared,
                        overrides=None if m == "retrain" else ["epochs=1"]).path
             for m in ("retrain", "multidelete", "neggrad")]
    out = tmp_path / "rep"
    assert main(["report", *map(str, paths), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {(out / 'report.html').resolve()}" in printed
    for rel in ("report.md", "report.html", "metrics.json", "certificates/multidelete.json",
                "certificates/neggrad.json", "certificates/retrain.json", "plots/attack_roc.png"):
        assert (out / rel).is_file(), rel
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["summary"]["scores"]["ranking"]) == {"multidelete", "neggrad"}
    first_screen = (out / "report.md").read_text().split("| model |")[0]
    assert "multidelete" in first_screen and "neggrad" in first_screen  # verdicts come first
    assert main(["verify", str(out / "certificates" / "neggrad.json")]) == 0

    # evaluate --reference runs the same suite for one run and writes its results as JSON
    single = tmp_path / "single.json"
    assert main(["evaluate", "--model", str(paths[1]), "--reference", str(paths[0]), "--out", str(single)]) == 0
    results = json.loads(single.read_text())
    assert set(results["models"]) == {"original", "retrain", "multidelete"}
    assert results["models"]["retrain"]["role"] == "reference"


def test_report_refuses_too_few_shadows_and_non_runs(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r"), "--lira-shadows", "2"]) == 2
    assert "at least 4" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "graphdel: error:" in capsys.readouterr().err


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-1e-6"])
def test_verify_refuses_a_tolerance_that_is_not_a_finite_number_at_least_zero(tmp_path, capsys, tolerance):
    (tmp_path / "c.json").write_text("{}")
    assert main(["verify", str(tmp_path / "c.json"), f"--tolerance={tolerance}"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"graphdel: error: --tolerance must be a finite number >= 0, got {float(tolerance)!r}"


def test_verify_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 the certificate holds" in out and "1 it does NOT hold" in out
    assert "3 it could not be checked" in out


@pytest.mark.parametrize("methods", [",", "multidelete,", ",neggrad", "multidelete,,neggrad", " , "])
def test_demo_refuses_an_empty_method_name(tmp_path, capsys, methods):
    """An empty name in --methods is a mistake, never "every method" (which would run for hours)."""
    assert main(["demo", "--quick", "--methods", methods, "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"graphdel: error: --methods {methods!r}: empty method name in the list; give comma-separated "
                   "names, e.g. multidelete,neggrad")
    assert not (tmp_path / "d").exists()


def test_demo_config_refuses_an_empty_or_repeated_method_list(tmp_path):
    from graphdel.demo import DemoConfig, run_demo
    from graphdel.errors import InvalidInputError

    for methods, match in (([], r"methods \[\]: give one or more method names"),
                           (["neggrad", "neggrad"], "neggrad named twice"),
                           (["retrain"], "retrain always runs, as the reference")):
        with pytest.raises(InvalidInputError, match=match):
            run_demo(DemoConfig(out=tmp_path / "d", quick=True, methods=methods, progress=False), log=lambda s: None)
    assert not (tmp_path / "d").exists()


def test_new_output_and_integrity_options_are_documented():
    choices = build_parser()._subparsers._group_actions[0].choices
    for cmd, flags in {"forget": ["--accept-modified", "--data"], "evaluate": ["--overwrite", "--accept-modified",
                       "--data"], "report": ["--overwrite", "--accept-modified", "--data"],
                       "demo": ["--overwrite", "--accept-modified"], "compare": ["--overwrite"]}.items():
        text = choices[cmd].format_help()
        assert all(flag in text for flag in flags), cmd
    assert "--overwrite" not in choices["train"].format_help()  # a run is never replaced
    assert "--overwrite" not in choices["forget"].format_help()
