"""Bad input: files, molecules, deletion requests, data mismatch and configs.

Every case asserts the project's own error type *and* that the message names what is wrong (row, id, key
or file), and, where a run is involved, that nothing was written.
"""

from __future__ import annotations

import gzip
import json
import shutil
import warnings

import pytest

import graphdel as gd
from graphdel import api
from graphdel.cli import main
from graphdel.data.molecules import MAX_HEAVY_ATOMS, MAX_SMILES_CHARS
from graphdel.data.requests import DeletionRequest
from graphdel.data.sources import MAX_FIELD_BYTES, MAX_TEXT_CHARS, load_dataset
from graphdel.errors import ConfigError, InvalidInputError, InvalidMoleculeError, RequestError, RunError
from graphdel.runs import Run
from graphdel.training.loop import TrainConfig
from graphdel.unlearning import get_method, parse_overrides

from tests.conftest import TINY_MOLECULES
from tests.reliability.conftest import write_tiny_csv

HEADER = "id,smiles,text,split\n"
GOOD = "eth,CCO,Ethanol is a primary alcohol.,train\nben,c1ccccc1,Benzene is an arene.,train\n"


def load_bytes(tmp_path, data: bytes, name: str = "x.csv", spec: str = "csv", **kw):
    """Write ``data`` to ``tmp_path/name`` and load it with the ``spec`` source."""
    path = tmp_path / name
    path.write_bytes(data)
    return load_dataset(f"{spec}:{path}", **kw)


# ------------------------------------------------------------------------------------------------ files

@pytest.mark.parametrize("header,missing", [
    ("id,smiles,caption,split", "'text'"),
    ("id,SMILE,text,split", "'smiles'"),
    ("id,split", "'smiles', 'text'"),
])
def test_csv_missing_columns_are_named(tmp_path, header, missing):
    with pytest.raises(InvalidInputError, match=f"missing columns? {missing}"):
        load_bytes(tmp_path, (header + "\na,CCO,x,train\n").encode())


def test_chebi_wrong_columns_are_named(tmp_path):
    with pytest.raises(InvalidInputError, match="missing column 'description'"):
        load_bytes(tmp_path, b"CID\tSMILES\ttext\n1\tCCO\tEthanol.\n", "x.txt", "chebi20")


def test_kg_line_with_wrong_field_count_names_file_and_line(tmp_path):
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.txt").write_text("a\tr\tb\nb\tr\n")
    (folder / "valid.txt").write_text("a\tr\tb\n")
    (folder / "test.txt").write_text("a\tr\tb\n")
    with pytest.raises(InvalidInputError, match=r"train\.txt, line 2: expected 3 tab-separated fields"):
        load_dataset(f"kg:{folder}")


def test_row_with_extra_field_names_the_line(tmp_path):
    with pytest.raises(InvalidInputError, match=r"line 4: expected 4 fields .* found 5"):
        load_bytes(tmp_path, (HEADER + GOOD + "x,CCC,Propane.,train,extra\n").encode())


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf"], ids=["empty", "blank-lines", "bom-only"])
@pytest.mark.parametrize("name,spec", [("x.csv", "csv"), ("x.txt", "chebi20")])
def test_empty_file_is_refused(tmp_path, data, name, spec):
    with pytest.raises(InvalidInputError, match="is empty"):
        load_bytes(tmp_path, data, name, spec)


def test_header_only_file_has_no_rows(tmp_path):
    with pytest.raises(InvalidInputError, match="no rows"):
        load_bytes(tmp_path, HEADER.encode())


@pytest.mark.parametrize("data,match", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"looks binary: NUL byte at line 3, byte offset 8"),
    (HEADER.encode() + b"a,CCO,x\x00y,train\n", r"looks binary: NUL byte at line 2"),
    (bytes(range(0x80, 0x100)) * 4, r"not valid UTF-8: bad byte at line 1, byte offset 0"),
])
def test_binary_junk_is_refused(tmp_path, data, match):
    with pytest.raises(InvalidInputError, match=match):
        load_bytes(tmp_path, data)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_not_read(device):
    """/dev/zero would be read forever; without the check /dev/null would say "is empty" instead."""
    with pytest.raises(InvalidInputError, match=f"{device} is not a regular file"):
        load_dataset(f"csv:{device}")


def test_corrupt_gzip_is_refused(tmp_path):
    data = gzip.compress((HEADER + GOOD).encode())[:-8]  # truncated
    with pytest.raises(InvalidInputError, match="not a valid gzip file"):
        load_bytes(tmp_path, data, "x.csv.gz")


def test_line_longer_than_the_csv_field_limit(tmp_path):
    big = "a" * (MAX_FIELD_BYTES + 1)
    with pytest.raises(InvalidInputError, match=r"line 2: malformed CSV: field larger than field limit"):
        load_bytes(tmp_path, (HEADER + f"x,CCO,{big},train\n").encode())


def test_too_long_caption_names_row_and_id(tmp_path):
    text = "word " * (MAX_TEXT_CHARS // 5 + 1)
    with pytest.raises(InvalidInputError, match=rf"row 4, id 'x#0': text of {MAX_TEXT_CHARS + 4} characters"):
        load_bytes(tmp_path, (HEADER + GOOD + f"x,CCC,{text},train\n").encode())


def test_too_long_smiles_is_refused_before_parsing(tmp_path):
    smiles = "C" * (MAX_SMILES_CHARS + 1)
    with pytest.raises(InvalidMoleculeError, match=rf"row 4, id 'big': SMILES of {MAX_SMILES_CHARS + 1} characters"):
        load_bytes(tmp_path, (HEADER + GOOD + f"big,{smiles},A long chain.,train\n").encode())


def test_non_utf8_caption_names_the_line(tmp_path):
    data = (HEADER + GOOD).encode() + "x,CCC,Caf\xe9 molecule.,train\n".encode("latin-1")
    with pytest.raises(InvalidInputError, match=r"not valid UTF-8: bad byte at line 4"):
        load_bytes(tmp_path, data)


def test_mojibake_is_kept_verbatim(tmp_path):
    """Valid UTF-8 that was once mis-decoded ("CafÃ©") cannot be told from real text: it is loaded
    verbatim, so the content hash and the deletion hashes cover exactly the bytes that were read."""
    corpus = load_bytes(tmp_path, (HEADER + GOOD + "x,CCC,CafÃ© is â€œpropaneâ€\x9d.,train\n").encode())
    assert corpus.texts[corpus.index_of("x#0")] == "CafÃ© is â€œpropaneâ€\x9d."


def test_unterminated_quote_is_malformed_csv(tmp_path):
    with pytest.raises(InvalidInputError, match="malformed CSV"):
        load_bytes(tmp_path, (HEADER + GOOD + 'x,CCC,"never closed,train\n').encode())


def test_duplicated_pair_ids_name_both_rows(tmp_path):
    data = "pair_id,smiles,text,split\np1,CCO,Ethanol.,train\np2,CCC,Propane.,train\np1,CCN,Ethylamine.,train\n"
    with pytest.raises(InvalidInputError, match=r"duplicated pair ids \(1\): 'p1' at row 2, row 4"):
        load_bytes(tmp_path, data.encode())


def test_one_id_with_two_structures_is_refused(tmp_path):
    data = HEADER + "m1,CCO,Ethanol.,train\nm1,CCC,Propane.,train\n"
    with pytest.raises(InvalidInputError, match=r"row 3, id 'm1': molecule id 'm1' has SMILES 'CCC' here but 'CCO' at row 2"):
        load_bytes(tmp_path, data.encode())


def test_duplicated_column_names_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"duplicated column names \['text'\]"):
        load_bytes(tmp_path, b"smiles,text,TEXT\nCCO,a,b\n")


# -------------------------------------------------------------------------------------------- molecules

@pytest.mark.parametrize("smiles", ["C1CC(", "xyz", "C(C)(C)(C)(C)C", "c1cccc1", "[Xx]"],
                         ids=["unclosed", "letters", "pentavalent-C", "bad-aromatic", "no-element"])
def test_invalid_smiles_names_row_and_id(tmp_path, smiles):
    with pytest.raises(InvalidMoleculeError) as err:
        load_bytes(tmp_path, (HEADER + GOOD + f"bad,{smiles},Broken.,train\n").encode())
    assert (err.value.row, err.value.item_id, err.value.smiles) == (4, "bad", smiles)
    assert str(err.value).startswith("row 4, id 'bad': ")


def test_skip_invalid_leaves_bad_rows_out_and_lists_them(tmp_path):
    data = HEADER + GOOD + "bad,C1CC(,Broken.,train\nh2,[H][H],Hydrogen.,train\n"
    corpus = load_bytes(tmp_path, data.encode(), skip_invalid=True)
    assert corpus.pair_ids == ["eth#0", "ben#0"]
    assert [(s["row"], s["id"]) for s in corpus.skipped] == [(4, "bad"), (5, "h2")]
    assert "cannot parse" in corpus.skipped[0]["reason"] and "no heavy atom" in corpus.skipped[1]["reason"]


def test_train_skip_invalid_reports_the_skipped_rows(tmp_path, capsys):
    rows = "".join(f"{n},{s},{t},{sp}\n" for n, s, t, sp in [
        ("a", "CCO", "Ethanol.", "train"), ("b", "CCC", "Propane.", "train"), ("c", "CCN", "Ethylamine.", "train"),
        ("d", "c1ccccc1", "Benzene.", "train"), ("bad", "C1CC(", "Broken.", "train"),
        ("v", "CC(C)=O", "Acetone.", "val"), ("t", "c1ccncc1", "Pyridine.", "test")])
    (tmp_path / "d.csv").write_text(HEADER + rows)
    out = tmp_path / "run"
    assert main(["train", "--data", f"csv:{tmp_path / 'd.csv'}", "--out", str(out), "--quick", "--epochs", "1",
                 "--device", "cpu"]) == 2
    assert "graphdel: error: row 6, id 'bad'" in capsys.readouterr().err and not out.exists()
    assert main(["train", "--data", f"csv:{tmp_path / 'd.csv'}", "--out", str(out), "--quick", "--epochs", "1",
                 "--device", "cpu", "--skip-invalid", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped_invalid"] == 1  # stdout holds the JSON and nothing else
    assert "graphdel: skipped row 6, id 'bad': RDKit cannot parse SMILES 'C1CC('" in captured.err
    assert Run.load(out).config["data"]["skipped"][0]["id"] == "bad"


@pytest.mark.parametrize("smiles", ["[H][H]", "[H]", "[2H][2H]", "[H+]"])
def test_molecule_without_heavy_atom_is_refused(tmp_path, smiles):
    with pytest.raises(InvalidMoleculeError, match=r"row 4, id 'h': SMILES .* has no heavy atom"):
        load_bytes(tmp_path, (HEADER + GOOD + f"h,{smiles},Hydrogen.,train\n").encode())


def test_huge_molecule_limit_is_exact(tmp_path):
    ok = load_bytes(tmp_path, (HEADER + GOOD + f"big,{'C' * MAX_HEAVY_ATOMS},A long alkane.,train\n").encode())
    assert ok.items["big"] == "C" * MAX_HEAVY_ATOMS
    with pytest.raises(InvalidMoleculeError, match=rf"row 4, id 'big': SMILES has {MAX_HEAVY_ATOMS + 1} heavy atoms, "
                                                   rf"more than the limit of {MAX_HEAVY_ATOMS}"):
        load_bytes(tmp_path, (HEADER + GOOD + f"big,{'C' * (MAX_HEAVY_ATOMS + 1)},Longer.,train\n").encode())


# --------------------------------------------------------------------------------------------- requests

@pytest.fixture(scope="module")
def corpus(tiny_source):
    return load_dataset(f"csv:{tiny_source}")


def test_unknown_ids_are_named(corpus):
    with pytest.raises(RequestError, match=r"pair ids not in this run's data \(csv:[^)]*\): 2 ids: 'nope#0', 'aspirin'"):
        DeletionRequest.from_ids(corpus, ["aspirin#0", "nope#0", "aspirin"], by="pair")


def test_duplicated_ids_are_collapsed_with_a_warning(corpus):
    with pytest.warns(UserWarning, match=r"duplicate ids collapsed .*'ethanol#0'"):
        req = DeletionRequest.from_ids(corpus, ["ethanol#0", " ethanol#0 ", "benzene#0"], by="pair")
    assert req.pair_ids == ("ethanol#0", "benzene#0")


def test_duplicated_ids_in_a_saved_request_are_refused(corpus, tmp_path):
    saved = DeletionRequest.from_ids(corpus, ["ethanol#0"], by="pair").to_json(corpus)
    saved["pairs"] *= 2
    saved["count"] = 2
    (tmp_path / "r.json").write_text(json.dumps(saved))
    with pytest.raises(InvalidInputError, match=r"duplicated pair ids: 1 id: 'ethanol#0'"):
        DeletionRequest.from_file(corpus, tmp_path / "r.json")


@pytest.mark.parametrize("ids,where", [(["pyridine#0"], "val"), (["naphthalene#0"], "test"),
                                       (["acetone"], "val")])
def test_val_and_test_ids_are_refused(corpus, ids, where):
    by = "molecule" if "#" not in ids[0] else "pair"
    with pytest.raises(RequestError, match=rf"not in the training split .*'{ids[0]} \({where}\)'"):
        DeletionRequest.from_ids(corpus, ids, by=by)


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n   \n# another\n"])
def test_empty_request_file_is_refused(corpus, tmp_path, content):
    (tmp_path / "ids.txt").write_text(content)
    with pytest.raises((RequestError, InvalidInputError), match="empty request|is empty"):
        DeletionRequest.from_file(corpus, tmp_path / "ids.txt")


@pytest.mark.parametrize("ids", [[], ["", "  "]])
def test_empty_id_list_is_refused(corpus, ids):
    with pytest.raises(RequestError, match="empty request: no ids given"):
        DeletionRequest.from_ids(corpus, ids)


@pytest.mark.parametrize("ids", [None, 7])
def test_ids_that_are_not_a_list_are_a_request_error(corpus, ids):
    with pytest.raises(RequestError, match="ids must be an iterable of strings"):
        DeletionRequest.from_ids(corpus, ids)


def test_whole_training_set_is_refused_unless_forced(corpus):
    train = [corpus.pair_ids[r] for r in corpus.rows("train")]
    with pytest.raises(RequestError, match=r"covers all 8 forgettable training pairs.*nothing would be left to retain"
                                           r".*force=True \(--force\)"):
        DeletionRequest.from_ids(corpus, train)
    assert len(DeletionRequest.from_ids(corpus, train, force=True)) == 8


def test_whole_training_set_through_the_cli_names_force(tiny_run, tmp_path, capsys):
    ids = tmp_path / "all.txt"
    prepared = api.load_run_data(tiny_run, progress=False)
    ids.write_text("\n".join(prepared.corpus.pair_ids[r] for r in prepared.trained_rows()))
    assert main(["forget", "--model", str(tiny_run.path), "--forget", str(ids), "--method", "neggrad",
                 "--out", str(tmp_path / "f")]) == 2
    assert "covers all 7 forgettable training pairs" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_calibration_ids_are_refused(tiny_run):
    held_out = tiny_run.calibration_ids[0]
    with pytest.raises(RequestError, match=rf"held out for calibration, never trained on.*'{held_out}'"):
        api.make_request(tiny_run, ids=[held_out], by="pair")


def test_non_utf8_id_file_is_refused(corpus, tmp_path):
    (tmp_path / "ids.txt").write_bytes(b"ethanol#0\nbenz\xe8ne#0\n")
    with pytest.raises(InvalidInputError, match=r"not valid UTF-8: bad byte at line 2"):
        DeletionRequest.from_file(corpus, tmp_path / "ids.txt")


@pytest.mark.parametrize("mutate,error,match", [
    (lambda d: d["pairs"][0].update(sha256="0" * 64), RequestError, "content of these pairs differs"),
    (lambda d: d.update(by="../../etc"), RequestError, "unknown request granularity by='../../etc'"),
    (lambda d: d.update(selected="ethanol#0"), InvalidInputError, "'selected' must be a list"),
    (lambda d: d.update(count=5), InvalidInputError, "'count' is 5 but 1 pairs"),
    (lambda d: d.update(version=2), InvalidInputError, "unsupported request version 2"),
    (lambda d: d.update(pairs=[]), InvalidInputError, "'pairs' must be a non-empty list"),
    (lambda d: d.update(seed="0"), InvalidInputError, "'seed' must be an integer or null"),
], ids=["hash", "by", "selected", "count", "version", "no-pairs", "seed"])
def test_tampered_request_json_is_refused(corpus, tmp_path, mutate, error, match):
    saved = DeletionRequest.from_ids(corpus, ["ethanol#0"], by="pair").to_json(corpus)
    mutate(saved)
    (tmp_path / "r.json").write_text(json.dumps(saved))
    with pytest.raises(error, match=match):
        DeletionRequest.from_file(corpus, tmp_path / "r.json")


def test_deeply_nested_request_json_is_refused(corpus, tmp_path):
    (tmp_path / "r.json").write_text('{"pairs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        DeletionRequest.from_file(corpus, tmp_path / "r.json")


def test_id_file_read_by_forget_names_pairs_not_molecules(tmp_path):
    """``forget(run, "ids.txt")`` reads pair ids, like ``graphdel forget --forget``: a pair id must not widen
    the request to every pair of its molecule."""
    rows = [("aspirin", "CC(=O)Oc1ccccc1C(=O)O", "Aspirin is an acetate ester.", "train"),
            ("aspirin", "CC(=O)Oc1ccccc1C(=O)O", "Aspirin is a benzoic acid.", "train"),
            *TINY_MOLECULES[1:]]
    src = write_tiny_csv(tmp_path / "d.csv", rows)
    run = gd.train(f"csv:{src}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "orig", quick=True,
                   progress=False)
    target = next(p for p in ("aspirin#0", "aspirin#1") if p not in run.calibration_ids)
    (tmp_path / "ids.txt").write_text(target + "\n")
    new = api.forget(run, tmp_path / "ids.txt", method="neggrad", overrides=["epochs=1"], out=tmp_path / "f",
                     progress=False)
    assert [p["pair_id"] for p in json.loads((new.path / "request.json").read_text())["pairs"]] == [target]


# ----------------------------------------------------------------------------------------------- mismatch

def test_changed_data_is_refused_unless_forced(tiny_run, tmp_path, capsys):
    copy = tmp_path / "tiny.csv"
    shutil.copy(tiny_run.data_source.split(":", 1)[1], copy)
    copy.write_text(copy.read_text().replace("Naphthalene is a fused", "Naphthalene is an edited fused"))
    run = tiny_run  # pointed at the edited copy with --data (source=), as after moving the data
    with pytest.raises(RunError, match=r"has changed since .* was trained \(content hash [0-9a-f]{12} != "
                                       rf"{run.data_hash[:12]}\); pass force"):
        api.load_run_data(run, progress=False, source=f"csv:{copy}")
    target = next(p for p in ("ethanol#0", "benzene#0") if p not in run.calibration_ids)
    (tmp_path / "ids.txt").write_text(target + "\n")
    cmd = ["forget", "--model", str(run.path), "--forget", str(tmp_path / "ids.txt"), "--method", "neggrad",
           "--set", "epochs=1", "--data", f"csv:{copy}", "--out", str(tmp_path / "f")]
    assert main(cmd) == 2
    assert "has changed since" in capsys.readouterr().err and not (tmp_path / "f").exists()
    assert main(cmd + ["--force-data"]) == 0
    new_hash = load_dataset(f"csv:{copy}").content_hash()
    assert Run.load(tmp_path / "f").data_hash == new_hash != run.data_hash  # records the data really used


# ------------------------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("override,match", [
    ("bogus=1", r"unknown config key 'bogus' for MultiDeleteConfig; valid keys: .*alpha"),
    ("terms.nope=1", r"unknown config key 'terms\.nope'"),
    ("alpha=high", r"config key 'alpha': expected float, got 'high'"),
    ("alpha=nan", r"config key 'alpha': expected float, got 'nan'"),
    ("epochs=2.5", r"config key 'epochs': expected int, got '2.5'"),
    ("early_stop=perhaps", r"config key 'early_stop': expected bool"),
    ("distance=huber", r"config key 'distance': expected one of"),
    ("lr=__import__('os').system('true')", r"config key 'lr': expected float"),
    ("lr=-1", r"lr must be a positive number"),
    ("alpha", r"override 'alpha' is not of the form key=value"),
])
def test_method_config_errors_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        parse_overrides(get_method("multidelete").Config, [override])


def test_cli_refuses_a_bad_key_before_any_work(tiny_run, tmp_path, capsys, monkeypatch):
    # the data is never loaded: the override is checked right after the (cheap) run folder check
    import graphdel.api

    monkeypatch.setattr(graphdel.api, "load_run_data", lambda *a, **k: pytest.fail("data loaded"))
    assert main(["forget", "--model", str(tiny_run.path), "--forget-random", "1", "--method", "multidelete",
                 "--set", "alhpa=0.5", "--out", str(tmp_path / "o")]) == 2
    assert "unknown config key 'alhpa'" in capsys.readouterr().err
    assert main(["forget", "--model", str(tiny_run.path), "--forget-random", "1", "--method", "multidel",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown unlearning method 'multidel'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # a missing run folder is said first, without importing torch (tests/test_cli.py checks the imports)
    assert main(["forget", "--model", str(tmp_path / "none"), "--forget-random", "1", "--method", "multidel",
                 "--out", str(tmp_path / "o")]) == 2
    assert "run folder" in capsys.readouterr().err


@pytest.mark.parametrize("fields,match", [
    ({"epochs": "3"}, r"'epochs': expected int, got '3'"),
    ({"lr": None}, r"'lr': expected float, got None"),
    ({"batch_size": True}, r"'batch_size': expected int, got True"),
    ({"lr": float("nan")}, r"'lr': expected float, got nan"),
    ({"epochs": 0}, r"'epochs': value 0 is out of range"),
    ({"weight_decay": -1.0}, r"'weight_decay': value -1.0 is out of range"),
    ({"device": "gpu"}, r"'device': value 'gpu' is out of range"),
])
def test_training_config_errors_name_the_key(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**fields)


def test_cli_train_refuses_negative_epochs(tmp_path, capsys):
    assert main(["train", "--data", "csv:/nonexistent.csv", "--out", str(tmp_path / "r"), "--epochs", "-2"]) == 2
    assert "'epochs': value -2 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize("edit,error,match", [
    (lambda c: c["train"].update(bogus=1), ConfigError, r"config\.json: unknown training config key 'bogus'"),
    (lambda c: c["train"].update(lr="fast"), ConfigError, r"config\.json: training config key 'lr': expected float"),
    (lambda c: c["model"].update(bogus=1), ConfigError, r"config\.json: model config: .*'bogus'"),
    (lambda c: c["data"].pop("content_hash"), RunError, r"'data\.content_hash' must be a string"),
    (lambda c: c.pop("train"), RunError, r"missing or malformed section 'train'"),
], ids=["train-unknown", "train-type", "model-unknown", "no-hash", "no-train"])
def test_edited_run_config_is_refused_naming_the_key(tiny_run, tmp_path, edit, error, match):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    edit(config)
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    with pytest.raises(error, match=match):
        Run.load(tmp_path / "run")


@pytest.mark.parametrize("content,match", [(b"[1, 2]", "expected a JSON object, found list"),
                                           (b"{\"kind\": \"tr\xe9in\"}", "unreadable JSON \\(UnicodeDecodeError"),
                                           (b"{" * 5, "unreadable JSON \\(JSONDecodeError")])
def test_unreadable_run_config_is_a_run_error(tiny_run, tmp_path, content, match):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    (tmp_path / "run" / "config.json").write_bytes(content)
    with pytest.raises(RunError, match=match):
        Run.load(tmp_path / "run")


def test_warnings_are_not_errors_for_good_input(corpus):
    """The happy path raises nothing and warns nothing (so the refusals above are specific)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        req = DeletionRequest.from_ids(corpus, ["ethanol#0"], by="pair")
    assert req.pair_ids == ("ethanol#0",)


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000, b"{\"unlearned_weights_sha256\": 1, "
                                     b"\"unlearned_path\": 5, \"original_path\": [1]}"],
                         ids=["not-utf8", "nested", "wrong-types"])
def test_malformed_certificate_is_a_user_error(tmp_path, capsys, content):
    (tmp_path / "cert.json").write_bytes(content)
    code = main(["verify", str(tmp_path / "cert.json")])
    captured = capsys.readouterr()
    if content.startswith(b"{"):  # readable but wrong: every check that can be made fails, no traceback
        assert code == 1 and "FAIL        version: missing from the certificate" in captured.out
    else:
        assert code == 2 and "graphdel: error: cannot read certificate" in captured.err


# ------------------------------------------------------------------------- nonsense reported as success
# Inputs that used to train or delete "successfully" while meaning nothing. New names are imported inside
# the tests, so that each test (not the whole module) fails on code without them.

def _graphdel_warnings(record) -> list[str]:
    """The messages of the GraphdelWarnings in ``record`` (a ``warnings.catch_warnings(record=True)`` list)."""
    from graphdel.errors import GraphdelWarning

    return [str(w.message) for w in record if issubclass(w.category, GraphdelWarning)]


def test_cli_train_refuses_zero_epochs(tmp_path, capsys):
    """``--epochs 0`` used to mean "the default" (4 or 15 epochs); TrainConfig refuses 0 once it gets it."""
    assert main(["train", "--data", "csv:/nonexistent.csv", "--out", str(tmp_path / "r"), "--epochs", "0"]) == 2
    assert "'epochs': value 0 is out of range" in capsys.readouterr().err


def test_excluding_every_training_pair_is_refused(tiny_source, tmp_path):
    """Excluding every training pair used to train on 0 pairs (loss 0.0) and write a finished-looking run."""
    corpus = load_dataset(f"csv:{tiny_source}")
    train_ids = [corpus.pair_ids[r] for r in corpus.rows("train")]
    with pytest.raises(InvalidInputError, match=r"^nothing to train on: the training set 'train' is empty: all 8 "
                                                rf"training pairs of csv:{tiny_source} are excluded \(--exclude\)"):
        gd.train(f"csv:{tiny_source}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "run", quick=True,
                 exclude=train_ids, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("data,empty", [
    ("smiles,text\nCCO,Ethanol.\nc1ccccc1,Benzene.\nCC(=O)O,Acetic acid.\n",
     r"the val split is empty \(pairs per split: train 2, val 0, test 1\)"),
    ("smiles,text,split\nCCO,Ethanol.,train\nCCC,Propane.,train\nCCN,Ethylamine.,train\nCCCl,Chloroethane.,train\n",
     r"the val and test splits are empty \(pairs per split: train 4, val 0, test 0\)"),
], ids=["three-rows-scaffold-split", "no-val-no-test"])
def test_corpus_with_an_empty_split_is_refused(tmp_path, data, empty):
    """A 3-row CSV (scaffold-split: no val) or one without val/test rows used to train without a word."""
    (tmp_path / "d.csv").write_text(data)
    with pytest.raises(InvalidInputError, match=rf"^csv:{tmp_path / 'd.csv'}: {empty}"):
        gd.train(f"csv:{tmp_path / 'd.csv'}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "run",
                 quick=True, progress=False)
    assert not (tmp_path / "run").exists()


def test_tiny_val_and_test_splits_are_warned_about_in_one_line(tiny_source, tmp_path):
    """The tiny corpus has 2 val and 2 test pairs: it trains, with one warning line saying so."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gd.train(f"csv:{tiny_source}", TrainConfig(epochs=1, batch_size=4), out=tmp_path / "run", quick=True,
                 progress=False)
    expected = (f"csv:{tiny_source}: val has 2 pairs and test has 2 pairs, fewer than 10: scores on so few "
                "pairs are noise (and early stopping on val close to random)")
    assert expected in _graphdel_warnings(record)
    w = next(w for w in record if str(w.message) == expected)
    # printed as one line without a source path (not Python's "file.py:12: UserWarning: ..." plus code line)
    assert warnings.formatwarning(w.message, w.category, w.filename, w.lineno) == f"graphdel: warning: {expected}\n"


@pytest.mark.parametrize("name,content,line", [
    ("train.txt", "head\trelation\ttail\na\tr\tb\nb\tr\tc\n", 1),
    ("valid.txt", "\nsubject\tpredicate\tobject\na\tr\tb\n", 2),
    ("entity2text.txt", "id\ttext\na\tThe letter a.\nb\tThe letter b.\n", 1),
], ids=["train-header", "valid-header-after-a-blank-line", "entity2text-header"])
def test_kg_header_line_is_refused_naming_file_and_line(tmp_path, name, content, line):
    """A header line used to load as a triple ``head relation tail`` (or an entity ``id`` described "text")."""
    folder = tmp_path / "kg"
    folder.mkdir()
    for f, text in {"train.txt": "a\tr\tb\nb\tr\tc\n", "valid.txt": "a\tr\tb\n", "test.txt": "b\tr\tc\n",
                    name: content}.items():
        (folder / f).write_text(text)
    header = content.strip().split("\n")[0].replace("\t", "\\\\t")
    with pytest.raises(InvalidInputError, match=rf"{name}, line {line}: '{header}' looks like a header .*"
                                                "delete it"):
        load_dataset(f"kg:{folder}")


def test_kg_line_of_header_words_used_as_data_is_kept(tmp_path):
    """An entity really named ``head`` (it recurs on other lines) is data, not a header."""
    folder = tmp_path / "kg"
    folder.mkdir()
    (folder / "train.txt").write_text("head\trelation\ttail\nhead\trelation\tbody\n")
    (folder / "valid.txt").write_text("tail\trelation\tbody\n")
    (folder / "test.txt").write_text("body\trelation\ttail\n")
    assert load_dataset(f"kg:{folder}").extra["triples"]["train"][0] == ["head", "relation", "tail"]


def test_same_cid_in_train_and_test_is_refused_naming_both_lines(tmp_path):
    """ChEBI CID 2244 in train.txt and test.txt used to be accepted: its test score measured memorisation."""
    folder = tmp_path / "chebi"
    folder.mkdir()
    files = {"train.txt": [("2244", "CC(=O)Oc1ccccc1C(=O)O", "Aspirin."), ("702", "CCO", "Ethanol.")],
             "validation.txt": [("241", "c1ccccc1", "Benzene.")],
             "test.txt": [("280", "O=C=O", "Carbon dioxide."), ("2244", "CC(=O)Oc1ccccc1C(=O)O", "An analgesic.")]}
    for name, rows in files.items():
        (folder / name).write_text("CID\tSMILES\tdescription\n" + "".join("\t".join(r) + "\n" for r in rows))
    with pytest.raises(InvalidInputError, match=r"^test\.txt, row 3, id 'CID:2244': molecule id 'CID:2244' is in "
                                                r"the test split here but in the train split at train\.txt row 2"):
        load_dataset(f"chebi20:{folder}")
    corpus = load_dataset(f"chebi20:{folder}", skip_invalid=True)  # --skip-invalid leaves the test row out
    assert [(s["file"], s["row"], s["id"]) for s in corpus.skipped] == [("test.txt", 3, "CID:2244")]
    assert corpus.splits[corpus.item_ids.index("CID:2244")] == "train" and "CID:2244#1" not in corpus.pair_ids


def test_a_duplicated_row_is_deleted_with_its_copy(tmp_path):
    """An exact duplicate row used to become two pairs: deleting one left its copy in Dr."""
    (tmp_path / "d.csv").write_text(HEADER + GOOD + "eth,CCO,Ethanol is a primary alcohol.,train\n"
                                    "x,CCN,Ethylamine.,train\nv,CC(C)=O,Acetone.,val\nt,c1ccncc1,Pyridine.,test\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        corpus = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert (f"{tmp_path / 'd.csv'}: 1 pair is an exact copy of another (same structure and text; first: 'eth#1' of "
            "'eth#0'); deleting one deletes every copy") in _graphdel_warnings(record)
    assert corpus.copies() == {0: [0, 2], 2: [0, 2]}
    for ids in (["eth#0"], ["eth#1"]):
        req = DeletionRequest.from_ids(corpus, ids, by="pair")
        assert req.pair_ids == ("eth#0", "eth#1")
        assert req.description == ("1 pairs given by id (by=pair); plus 1 exact copy of them under other ids "
                                   "(same item input and text)")


def test_one_structure_under_two_ids_is_one_molecule(tmp_path):
    """The same SMILES under two ids used to be two molecules: ``--by molecule`` left the other id in Dr."""
    (tmp_path / "d.csv").write_text(HEADER + GOOD + "alcohol,OCC,Ethyl alcohol is a solvent.,train\n"
                                    "x,CCN,Ethylamine.,train\nv,CC(C)=O,Acetone.,val\nt,c1ccncc1,Pyridine.,test\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        corpus = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert (f"{tmp_path / 'd.csv'}: 1 molecule id shares its structure with another id (first: 'alcohol' and "
            "'eth'); by=molecule and by=scaffold requests treat them as one molecule") in _graphdel_warnings(record)
    for ident in ("eth", "alcohol", "alcohol#0"):
        assert DeletionRequest.from_ids(corpus, [ident], by="molecule").pair_ids == ("eth#0", "alcohol#0")
    assert DeletionRequest.from_ids(corpus, ["alcohol"], by="scaffold").pair_ids == ("eth#0", "alcohol#0")
    # 3 training molecules, not 4: a random draw of every one is the whole training set
    with pytest.raises(RequestError, match="asked for 4 molecules but only 3 have forgettable training pairs"):
        DeletionRequest.random(corpus, 4, by="molecule")


def test_stripped_salts_are_listed_and_reported(tmp_path):
    """Salts used to be stripped without a word; a carbon-free salt became its largest ion."""
    rows = ("a,CC(=O)[O-].[Na+],Sodium acetate.,train\nb,CCN.Cl,Ethylamine hydrochloride.,train\n"
            "c,CCO,Ethanol.,train\nd,[Na+].[Cl-],Sodium chloride.,train\nv,CC(C)=O,Acetone.,val\n")
    (tmp_path / "d.csv").write_text(HEADER + rows)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        corpus = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert corpus.stripped == [{"row": 2, "id": "a#0", "removed": ["[Na+]"]},
                               {"row": 3, "id": "b#0", "removed": ["Cl"]}]
    assert (f"{tmp_path / 'd.csv'}: 2 of 5 rows had fragments (salts, solvents) removed from their SMILES, keeping "
            "the largest organic fragment (first: row 2, id 'a#0': removed '[Na+]'); listed in corpus.stripped"
            ) in _graphdel_warnings(record)
    assert corpus.items["d"] == "[Cl-].[Na+]"  # no organic fragment: kept whole, not reduced to '[Na+]'
    assert corpus.stats()["stripped_rows"] == 2


@pytest.mark.parametrize("amount", [1.0, 2.5, 0, -1, float("nan"), 3.0])
def test_random_amount_is_a_count_or_a_fraction_never_a_guess(corpus, amount):
    """``1.0`` used to delete one unit and ``2.5`` two: a float >= 1 is refused, not rounded."""
    with pytest.raises(RequestError, match="neither a count .* nor a fraction|must be a finite number"):
        DeletionRequest.random(corpus, amount, by="molecule")
    if amount in (1.0, 3.0):  # the same amounts as integers are counts
        assert len(DeletionRequest.random(corpus, int(amount), by="molecule").selected) == int(amount)


def test_random_amount_text_is_parsed_strictly():
    from graphdel.data.requests import parse_amount

    assert [parse_amount(t) for t in ("1", " 3 ", "+2", "0.05", ".5", "5e-2")] == [1, 3, 2, 0.05, 0.5, 0.05]
    assert isinstance(parse_amount("1"), int) and isinstance(parse_amount("0.5"), float)
    for text in ("1.0", "2.5", "0", "0.0", "-1", "-0.5", "nan", "inf", "1e3", "", "three", "1.0" * 1000):
        with pytest.raises(RequestError, match=r"^random amount '.*: expected a count, a whole number >= 1 "
                                               r"written without a decimal point"):
            parse_amount(text)


def test_cli_forget_random_refuses_a_decimal_count(tiny_run, tmp_path, capsys):
    assert main(["forget", "--model", str(tiny_run.path), "--forget-random", "1.0", "--method", "neggrad",
                 "--set", "epochs=1", "--out", str(tmp_path / "f")]) == 2
    assert "graphdel: error: random amount '1.0': expected a count" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_echoed_content_in_errors_is_capped(corpus, tmp_path):
    """A 100,000-deep JSON array read as an id file used to give a 200,052-character error line."""
    (tmp_path / "r.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RequestError) as err:
        DeletionRequest.from_file(corpus, tmp_path / "r.json")
    message = str(err.value)
    prefix = f"pair ids not in this run's data ({corpus.source}): 1 id: "
    hint = "; not one of the ids matched: was the request made for another dataset?"
    assert message.startswith(prefix + "'[[[")
    assert message.endswith("... (200000 characters)" + hint) and "\n" not in message
    assert len(message) <= len(prefix) + 300 + len("... (200000 characters)") + len(hint)
    # the same cap for a SMILES and an id read from a data file
    (tmp_path / "d.csv").write_text(HEADER + GOOD + f"{'m' * 50_000},{'C(' * 9_000},Unclosed.,train\n")
    with pytest.raises(InvalidMoleculeError) as err:
        load_dataset(f"csv:{tmp_path / 'd.csv'}")
    message = str(err.value)
    assert len(message) < 800 and "(50000 characters)" in message and "(18000 characters)" in message
