"""The `graphdel` command: its subcommands, clean streams (results on stdout, only with --json as JSON;
progress on stderr), a start that imports no torch, one --device default, `methods` with settings."""

import json
import subprocess
import sys

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


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["forget", "--model", "x"],
                                  ["report"], ["nonsense"]])
def test_help_and_argument_errors_import_no_torch(argv):
    """`graphdel --help` took 17-19 s, nearly all of it importing torch_geometric -> torch._dynamo. The help
    and every argument error must come from argparse alone; bench/startup.py measures the time."""
    done = _fresh_python(f"""
import sys
from graphdel.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torch_geometric", "transformers", "rdkit") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "HEAVY="


def test_import_graphdel_is_light_and_its_names_load_on_use():
    done = _fresh_python("import sys, graphdel; a = 'torch' in sys.modules; graphdel.TrainConfig; "
                         "print(a, 'torch' in sys.modules, graphdel.Run.__module__)")
    assert done.stdout.split() == ["False", "True", "graphdel.runs"], done.stderr[-2000:]
    with pytest.raises(AttributeError, match="module 'graphdel' has no attribute 'nope'"):
        gd.nope  # noqa: B018
    # the verbs at the top are the API's own functions, and every exported name resolves
    assert (gd.forget, gd.make_request, gd.evaluate) == (api.forget, api.make_request, api.evaluate)
    from graphdel.history import deletion_history
    assert gd.deletion_history is deletion_history
    assert all(getattr(gd, name) is not None for name in gd.__all__)


def test_train_prints_its_result_alone_on_stdout_and_progress_on_stderr(tiny_csv, tmp_path, capsys):
    argv = ["train", "--data", f"csv:{tiny_csv}", "--quick", "--epochs", "1", "--device", "cpu"]
    assert main([*argv, "--json", "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # the whole of stdout is one JSON document (`| jq` works)
    assert result["run"] == str((tmp_path / "a").resolve()) or result["run"] == str(tmp_path / "a")
    assert result["best_epoch"] == 1 and set(result["splits"]) >= {"train", "val", "test"}
    assert "epoch 1: loss" in captured.err and "epoch 1" not in captured.out
    # without --json: the same facts for a person, still without progress lines
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"run: {result['run'].replace(str(tmp_path / 'a'), str(tmp_path / 'b'))}"
    assert lines[1].startswith("best epoch 1, ") and lines[1].endswith(" s, 0 invalid rows skipped")
    assert lines[2].split() == ["split", "pool-64", "g2t", "MRR", "g2t", "MRR"]
    assert {line.split()[0] for line in lines[3:]} == set(result["splits"])
    assert "epoch 1: loss" in captured.err and "{" not in captured.out


def test_data_stats_prints_a_table_or_json(tiny_csv, capsys):
    assert main(["data", "stats", f"csv:{tiny_csv}", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert main(["data", "stats", f"csv:{tiny_csv}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"csv:{tiny_csv} (molecule)"
    assert lines[1].split() == ["split", "pairs", "items", "texts"]
    train = stats["splits"]["train"]
    assert lines[2].split() == ["train", str(train["pairs"]), str(train["items"]), str(train["texts"])]
    assert lines[5].split() == ["total", *map(str, stats["total"].values())]


def test_every_command_has_one_device_default():
    choices = build_parser()._subparsers._group_actions[0].choices
    defaults = {name: next(a.default for a in p._actions if a.dest == "device")
                for name, p in choices.items() if any(a.dest == "device" for a in p._actions)}
    assert set(defaults) == {"train", "forget", "evaluate", "report", "verify", "demo", "audit"}
    assert set(defaults.values()) == {"auto"}


def test_forget_by_defaults_to_pair_whatever_the_request_form():
    forget = build_parser()._subparsers._group_actions[0].choices["forget"]
    base = ["--model", "m", "--out", "o"]
    assert forget.parse_args([*base, "--forget-random", "3"]).by == "pair"
    assert forget.parse_args([*base, "--forget", "ids.txt"]).by == "pair"


def test_methods_lists_each_methods_own_settings_and_every_setting_on_request(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert ("neggrad: Gradient ascent on Df's training loss, with a divergence guard.\n"
            "  [Golatkar et al., CVPR 2020; Thudi et al., Unrolling SGD, EuroS&P 2022]\n"
            "  settings: lr=1e-05 loss_bound=none (+29 common; `graphdel methods neggrad`)") in out
    assert "  settings: saliency_fraction=" not in out  # SalUn inherits RandomPair's; its own is listed first
    assert "salun:" in out and "text_source=dr retain_weight=1.0 saliency_fraction=0.5" in out
    assert main(["methods", "scrub"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("scrub: ") and rows[2].split() == ["setting", "default", "meaning"]
    assert [r.split(None, 2) for r in rows if r.split()[:1] == ["kd_temperature"]] == [
        ["kd_temperature", "4.0", "distillation temperature T (applied on top of the model's own logit scale)."]]
    assert main(["methods", "multidelete", "--json"]) == 0
    [described] = json.loads(capsys.readouterr().out)
    settings = {s["key"]: s for s in described["settings"]}
    assert settings["terms.ukr"] == {"key": "terms.ukr", "default": True, "own": True,
                                     "help": "use L_UKR, unimodal knowledge retention."}
    assert settings["lr"]["own"] is False and settings["epochs"] == {
        "key": "epochs", "default": 8, "own": True,
        "help": "passes over the method's epoch split (Df for most methods, Dr for FT/DtD)."}


def test_methods_refuses_an_unknown_name_in_one_line(capsys):
    assert main(["methods", "nope"]) == 2
    assert capsys.readouterr().err.startswith("graphdel: error: unknown unlearning method 'nope'; available: ")


def test_data_stats_of_a_kg_shows_its_mirror_relations(tmp_path, capsys):
    from tests.data.test_kg_facts import write_mirror_kg

    folder = write_mirror_kg(tmp_path / "kg")
    assert main(["data", "stats", f"kg:{folder}", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["mirror_relations"] == {"min_share": 0.5, "min_support": 5, "pairs": [
        {"relation": "sim", "mirror": "sim", "share": 1.0, "mirrored": 6, "triples": 6}]}
    assert main(["data", "stats", f"kg:{folder}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].startswith("mirror relations (share of a relation's training triples")
    assert lines[-2].split() == ["relation", "mirror", "share", "mirrored", "triples"]
    assert lines[-1].split() == ["sim", "sim", "1.0000", "6", "6"]


def test_forget_close_reports_and_extends_a_kg_request(tmp_path, capsys):
    from graphdel.models.joint import ModelConfig
    from tests.data.test_kg_facts import REQUEST, write_mirror_kg

    folder = write_mirror_kg(tmp_path / "kg")
    run = api.train(api.DataConfig(source=f"kg:{folder}", calibration_fraction=0.0),
                    TrainConfig(epochs=1, batch_size=8, device="cpu"),
                    ModelConfig(embed_dim=16, fusion_dim=16, fusion_heads=2, extra={"dim": 16, "gnn_layers": 1}),
                    out=tmp_path / "orig", progress=False)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(REQUEST) + "\n")
    assert main(["forget", "--model", str(run.path), "--forget", str(ids), "--by", "triple", "--close",
                 "--method", "retrain", "--device", "cpu", "--out", str(tmp_path / "closed")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "retrain: 4 pairs deleted in " + out[1].split(" in ")[1]
    assert out[-1] == ("inferable: 2 of 3 deleted triples still stated or implied by the retained graph (mirrored 1, "
                       "path <= 2 hops 1, not inferable 1); --close added 1 mirror triple, leaving 1 of 4 "
                       "inferable (mirrored 0, path 1)")
    saved = json.loads((tmp_path / "closed" / "request.json").read_text())
    assert [a["pair_id"] for a in saved["added"]] == ["tri:e1|sim|e0"]


def test_data_stats_of_a_kg_counts_entities_relations_triples_per_split_and_relation_frequencies(tmp_path, capsys):
    from graphdel.data.kg import kg_stats, load_kg
    from tests.data.test_kg import TEXTS, TRAIN, VALID, TEST, write_lines

    folder = tmp_path / "kg"
    folder.mkdir()
    for name, rows in (("train", TRAIN), ("valid", VALID), ("test", TEST), ("entity2text", TEXTS.items())):
        write_lines(folder / f"{name}.txt", rows)
    assert main(["data", "stats", f"kg:{folder}", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["graph"] == kg_stats(load_kg(folder))
    assert stats["graph"]["triples"] == {"train": 11, "val": 1, "test": 1, "total": 13}
    assert main(["data", "stats", f"kg:{folder}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("knowledge graph: 11 entities (10 with a text: the pairs above), 3 relations")
    assert [line.split() for line in lines[start + 1:start + 6]] == [
        ["split", "triples"], ["train", "11"], ["val", "1"], ["test", "1"], ["total", "13"]]
    assert lines[start + 6] == "relation frequencies (triples per split):"
    assert [line.split() for line in lines[start + 7:start + 11]] == [
        ["relation", "train", "val", "test", "total"], ["_hypernym", "7", "0", "0", "7"],
        ["_derivationally_related_form", "2", "1", "0", "3"], ["_has_part", "2", "0", "1", "3"]]
    # not a knowledge graph: no graph key
    assert main(["data", "stats", "drugs", "--json"]) == 0
    assert "graph" not in json.loads(capsys.readouterr().out)


def test_forget_says_what_the_kept_checkpoint_was_judged_against(tiny_csv, tmp_path, capsys):
    """The summary names the reference the run stopped at with its standard error over its pairs."""
    data = api.DataConfig(source=f"csv:{tiny_csv}", calibration_fraction=0.4)
    original = api.train(data, TrainConfig(epochs=2, batch_size=4), quick=True, out=tmp_path / "orig",
                         progress=False)
    assert main(["forget", "--model", str(original.path), "--forget-random", "2", "--method", "neggrad",
                 "--set", "epochs=1", "--out", str(tmp_path / "run"), "--json"]) == 0
    stopping = json.loads(capsys.readouterr().out)["stopping"]
    selected = json.loads((tmp_path / "run" / "metrics.json").read_text())["selected"]
    assert selected["reference_pairs"] == 3 and selected["reference_se"] > 0
    assert stopping == {"forget": round(selected["scores"]["forget"], 4),
                        "reference": round(selected["scores"]["reference"], 4), "reference_name": "calibration",
                        "reference_se": round(selected["reference_se"], 4), "reference_pairs": 3}
    assert main(["forget", "--model", str(original.path), "--forget-random", "2", "--method", "neggrad",
                 "--set", "epochs=1", "--out", str(tmp_path / "again")]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == (f"kept: Df selection score {stopping['forget']:.3f} against the calibration reference "
                    f"{stopping['reference']:.3f} ± {stopping['reference_se']:.3f} (standard error over its 3 "
                    "pairs)")
    # Retrain keeps no checkpoint against a reference: no such line
    assert main(["forget", "--model", str(original.path), "--forget-random", "2", "--method", "retrain",
                 "--out", str(tmp_path / "retrain"), "--json"]) == 0
    assert "stopping" not in json.loads(capsys.readouterr().out)


def test_forget_replay_runs_a_recorded_deletion_again(tiny_csv, tmp_path, capsys):
    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    assert main(["forget", "--model", str(original.path), "--forget-random", "2", "--method", "neggrad",
                 "--set", "epochs=1", "--seed", "5", "--out", str(tmp_path / "first"), "--json"]) == 0
    capsys.readouterr()
    assert main(["forget", "--replay", str(tmp_path / "first"), "--out", str(tmp_path / "again"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["replayed"] == str(tmp_path / "first") and result["method"] == "neggrad"
    assert ((tmp_path / "again" / "model.safetensors").read_bytes()
            == (tmp_path / "first" / "model.safetensors").read_bytes())
    # what the replayed run recorded is not asked for again
    assert main(["forget", "--replay", str(tmp_path / "first"), "--set", "epochs=2", "--seed", "1",
                 "--out", str(tmp_path / "third")]) == 2
    assert "drop --seed, --set" in capsys.readouterr().err and not (tmp_path / "third").exists()
    assert main(["forget", "--forget-random", "2", "--out", str(tmp_path / "fourth")]) == 2
    assert "--model RUN is required" in capsys.readouterr().err
