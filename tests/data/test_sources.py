import gzip
import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphdel.data import sources
from graphdel.data.corpus import Corpus
from graphdel.data.sources import (MAX_TEXT_CHARS, available_sources, clean_text, load_dataset,
                                   molecule_corpus, register_source)
from graphdel.errors import InvalidInputError, InvalidMoleculeError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE_CANON = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
IBUPROFEN_CANON = "CC(C)Cc1ccc(C(C)C(=O)O)cc1"

CHEBI_TRAIN = [
    ("2244", ASPIRIN, 'Aspirin is a member of the class of benzoic acids. It has a role as a "NSAID".'),
    ("2519", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "Caffeine is a trimethylxanthine."),
    ("702", "CCO", "Ethanol is a primary alcohol."),
    ("241", "c1ccccc1", "Benzene is a six-membered aromatic ring."),
    ("3672", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Ibuprofen is a monocarboxylic acid."),
    ("2244", ASPIRIN, "Acetylsalicylic acid, an analgesic."),
]
CHEBI_VAL = [
    ("1983", "CC(=O)Nc1ccc(O)cc1", "Paracetamol is a member of phenols."),
    ("517045", "CC(=O)[O-].[Na+]", "Sodium acetate is an organic sodium salt."),
]
CHEBI_TEST = [
    ("4763", "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O", "Phenobarbital is a barbiturate."),
    ("2153", "Cn1c(=O)c2[nH]cnc2n(C)c1=O", "Theophylline is a dimethylxanthine."),
]


def write_chebi(path: Path, rows) -> Path:
    body = "CID\tSMILES\tdescription\n" + "".join("\t".join(r) + "\n" for r in rows)
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def chebi_dir(tmp_path):
    d = tmp_path / "chebi"
    d.mkdir()
    write_chebi(d / "train.txt", CHEBI_TRAIN)
    write_chebi(d / "validation.txt", CHEBI_VAL)
    write_chebi(d / "test.txt", CHEBI_TEST)
    return d


def test_available_sources():
    assert {"drugs", "chebi20:PATH", "csv:PATH"} <= set(available_sources())


def test_chebi_folder(chebi_dir):
    c = load_dataset(f"chebi20:{chebi_dir}")
    assert isinstance(c, Corpus) and c.modality == "molecule"
    assert c.source == f"chebi20:{chebi_dir.resolve()}"
    assert c.pair_ids == ["CID:2244#0", "CID:2519#0", "CID:702#0", "CID:241#0", "CID:3672#0", "CID:2244#1",
                          "CID:1983#0", "CID:517045#0", "CID:4763#0", "CID:2153#0"]
    assert c.splits == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    assert c.item_ids[5] == "CID:2244"
    assert c.items == {
        "CID:2244": ASPIRIN, "CID:2519": CAFFEINE_CANON, "CID:702": "CCO", "CID:241": "c1ccccc1",
        "CID:3672": IBUPROFEN_CANON, "CID:1983": "CC(=O)Nc1ccc(O)cc1", "CID:517045": "CC(=O)[O-]",
        "CID:4763": "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O", "CID:2153": "Cn1c(=O)c2[nH]cnc2n(C)c1=O"}
    assert c.removed_fragments == {"CID:517045": ["[Na+]"]}
    assert c.texts[0] == 'Aspirin is a member of the class of benzoic acids. It has a role as a "NSAID".'
    assert c.skipped == []


def test_chebi_single_file_is_scaffold_split(tmp_path):
    f = write_chebi(tmp_path / "all.txt", CHEBI_TRAIN + CHEBI_VAL + CHEBI_TEST)
    c = load_dataset(f"chebi20:{f}")
    assert c.source == f"chebi20:{f.resolve()}"
    split = dict(zip(c.pair_ids, c.splits))
    # 9 molecules, cut-offs 7.2 (train) and 8.1 (train + val). Groups: benzene 4 (aspirin, benzene, ibuprofen,
    # paracetamol), xanthine 2 (caffeine, theophylline), acyclic 2 (ethanol, acetate), phenobarbital 1.
    # benzene -> train (4); then the two 2-groups in seeded-hash order: the first -> train (6), the second
    # overflows train (8 > 7.2) and val (8 > 8.1 is false: fits val); phenobarbital -> 6 + 1 <= 7.2 -> train.
    assert split["CID:2244#0"] == split["CID:2244#1"] == split["CID:241#0"] == split["CID:3672#0"] \
        == split["CID:1983#0"] == split["CID:4763#0"] == "train"
    assert split["CID:2519#0"] == split["CID:2153#0"]  # same scaffold, same split
    assert split["CID:702#0"] == split["CID:517045#0"]  # both acyclic
    assert sorted([split["CID:2519#0"], split["CID:702#0"]]) == ["train", "val"]
    assert "test" not in split.values()
    again = load_dataset(f"chebi20:{f}")
    assert again.splits == c.splits and again.content_hash() == c.content_hash()
    from graphdel.data.scaffold import scaffold_split
    expected = scaffold_split(c.items, seed=0)
    assert c.splits == [expected[i] for i in c.item_ids]


def test_chebi_wrong_field_count_names_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("CID\tSMILES\tdescription\n1\tCCO\tethanol\n2\tCCC\tpropane\textra\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.txt, line 3: expected 3 tab-separated fields"):
        load_dataset(f"chebi20:{f}")


def test_chebi_wrong_header(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("id\tsmiles\ttext\n1\tCCO\tethanol\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"missing columns 'CID', 'description'.*found columns"):
        load_dataset(f"chebi20:{f}")


def test_chebi_folder_missing_file(chebi_dir):
    (chebi_dir / "test.txt").unlink()
    with pytest.raises(InvalidInputError, match="lacks test.txt"):
        load_dataset(f"chebi20:{chebi_dir}")


def test_chebi_same_cid_different_smiles(chebi_dir):
    write_chebi(chebi_dir / "test.txt", CHEBI_TEST + [("2244", "CCO", "not aspirin")])
    with pytest.raises(InvalidInputError, match=r"test\.txt, row 4, id 'CID:2244'.*train.txt row 2"):
        load_dataset(f"chebi20:{chebi_dir}")
    c = load_dataset(f"chebi20:{chebi_dir}", skip_invalid=True)
    rec = c.skipped[0]
    assert (rec["row"], rec["id"], rec["file"]) == (4, "CID:2244", "test.txt")
    assert "CID:2244#2" not in c.pair_ids


def test_chebi_invalid_smiles_error_and_skip(chebi_dir):
    write_chebi(chebi_dir / "validation.txt", CHEBI_VAL + [("999", "C1CC(", "broken")])
    with pytest.raises(InvalidMoleculeError) as info:
        load_dataset(f"chebi20:{chebi_dir}")
    assert info.value.row == 4 and info.value.item_id == "CID:999"
    message = str(info.value)
    assert "row 4" in message and "'CID:999'" in message and "validation.txt" in message
    c = load_dataset(f"chebi20:{chebi_dir}", skip_invalid=True)
    assert len(c) == 10 and "CID:999" not in c.items
    assert len(c.skipped) == 1
    rec = c.skipped[0]
    assert (rec["row"], rec["id"], rec["file"]) == (4, "CID:999", "validation.txt")
    assert "cannot parse" in rec["reason"]


CSV_TEXT = (
    "id,smiles,text,split\n"
    "aspirin,CC(=O)Oc1ccccc1C(=O)O,\"Aspirin, an NSAID.\",train\n"
    "aspirin,CC(=O)Oc1ccccc1C(=O)O,\"Said \"\"aspirin\"\"\n  on two lines\",train\n"
    "caffeine,Cn1cnc2c1c(=O)n(C)c(=O)n2C,  A stimulant.  ,Validation\n"
    "ethanol,CCO,An alcohol.,test\n"
)


def test_csv_with_ids_and_splits(tmp_path, monkeypatch):
    f = tmp_path / "pairs.csv"
    f.write_text(CSV_TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    c = load_dataset("csv:pairs.csv")
    assert c.source == f"csv:{f.resolve()}"
    assert c.pair_ids == ["aspirin#0", "aspirin#1", "caffeine#0", "ethanol#0"]
    assert c.texts == ["Aspirin, an NSAID.", 'Said "aspirin" on two lines', "A stimulant.", "An alcohol."]
    assert c.splits == ["train", "train", "val", "test"]
    assert c.items["caffeine"] == CAFFEINE_CANON


def test_csv_default_ids_and_scaffold_split(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("SMILES,Text\nCC(=O)Oc1ccccc1C(=O)O,aspirin\n"
                 "OC(=O)c1ccccc1OC(C)=O,aspirin again\nCCO,ethanol\n", encoding="utf-8")
    c = load_dataset(f"csv:{f}")
    mid = "m:" + hashlib.sha1(ASPIRIN.encode()).hexdigest()[:12]
    eid = "m:" + hashlib.sha1(b"CCO").hexdigest()[:12]
    assert c.pair_ids == [f"{mid}#0", f"{mid}#1", f"{eid}#0"]
    assert c.items == {mid: ASPIRIN, eid: "CCO"}
    # two one-molecule groups, ordered by sha256("0:<scaffold>"): the first goes to train; the second
    # overflows both cut-offs (1.6 and 1.8 items) and goes to test. Both pairs of aspirin share its split.
    first = min(["c1ccccc1", ""], key=lambda s: hashlib.sha256(f"0:{s}".encode()).hexdigest())
    expected = {"c1ccccc1": "train", "": "test"} if first == "c1ccccc1" else {"c1ccccc1": "test", "": "train"}
    assert c.splits == [expected["c1ccccc1"], expected["c1ccccc1"], expected[""]]


def test_csv_pair_id_column_and_tsv(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("pair_id\tsmiles\ttext\tsplit\np1\tCCO\tethanol, \"quoted\"\ttrain\n"
                 "p2\tc1ccccc1\tbenzene\ttest\n", encoding="utf-8")
    c = load_dataset(f"csv:{f}")
    assert c.pair_ids == ["p1", "p2"] and c.texts[0] == 'ethanol, "quoted"'


def test_csv_invalid_smiles_names_row_and_id(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("id,smiles,text\nok,CCO,fine\nbad1,C1CC(,broken\n", encoding="utf-8")
    with pytest.raises(InvalidMoleculeError, match=r"row 3, id 'bad1'"):
        load_dataset(f"csv:{f}")
    c = load_dataset(f"csv:{f}", skip_invalid=True)
    assert c.pair_ids == ["ok#0"]
    assert len(c.skipped) == 1 and set(c.skipped[0]) == {"row", "id", "reason"}
    assert c.skipped[0]["row"] == 3 and c.skipped[0]["id"] == "bad1"


def test_csv_missing_column(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("smiles,desc\nCCO,ethanol\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"missing column 'text'; found columns \['smiles', 'desc'\]"):
        load_dataset(f"csv:{f}")


def test_csv_empty_text(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("id,smiles,text\na,CCO,ethanol\nb,CCC,  \t \n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"row 3, id 'b#0': empty text"):
        load_dataset(f"csv:{f}")
    c = load_dataset(f"csv:{f}", skip_invalid=True)
    assert c.skipped == [{"row": 3, "id": "b#0", "reason": "empty text"}]


def test_csv_unknown_split(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("smiles,text,split\nCCO,ethanol,holdout\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="row 2.*unknown split 'holdout'"):
        load_dataset(f"csv:{f}")


def test_csv_too_long_text(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("smiles,text\nCCO,ethanol\nCCC," + "a" * (MAX_TEXT_CHARS + 1) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"row 3.*longer than the limit of 100000"):
        load_dataset(f"csv:{f}")


def test_csv_duplicated_pair_ids(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("pair_id,smiles,text\nx,CCO,a\ny,CCC,b\nx,CCN,c\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"duplicated pair ids \(1\): 'x' at row 2, row 4"):
        load_dataset(f"csv:{f}")


def test_empty_file(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty"):
        load_dataset(f"csv:{f}")
    g = tmp_path / "blank.txt"
    g.write_bytes(b"\n \n")
    with pytest.raises(InvalidInputError, match="empty"):
        load_dataset(f"chebi20:{g}")


def test_header_only(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("smiles,text\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no rows"):
        load_dataset(f"csv:{f}")


def test_non_utf8_names_line(tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes(b"smiles,text\nCCO,ethanol\nCCC,caf\xe9\n")
    with pytest.raises(InvalidInputError,
                       match=r"latin\.csv is not valid UTF-8: bad byte at line 3, byte offset 31"):
        load_dataset(f"csv:{f}")


def test_binary_junk(tmp_path):
    f = tmp_path / "junk.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InvalidInputError, match="binary"):
        load_dataset(f"chebi20:{f}")


def test_bom_and_crlf(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes("\ufeffsmiles,text\r\nCCO,ethanol\r\n".encode("utf-8"))
    assert load_dataset(f"csv:{f}").texts == ["ethanol"]


def test_unknown_source_and_bad_specs(tmp_path):
    with pytest.raises(InvalidInputError,
                       match=r"unknown dataset source 'nope'.*chebi20:PATH, csv:PATH, (depictions, )?drugs"):
        load_dataset("nope")
    with pytest.raises(InvalidInputError, match="needs a path"):
        load_dataset("csv:")
    with pytest.raises(InvalidInputError, match="no such file"):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}")
    with pytest.raises(InvalidInputError, match="takes no argument"):
        load_dataset("drugs:x")
    with pytest.raises(InvalidInputError, match="is a folder"):
        load_dataset(f"csv:{tmp_path}")


def test_register_source_extends_registry(monkeypatch):
    monkeypatch.setattr(sources, "_SOURCES", sources._SOURCES.copy())

    @register_source("toy")
    def load_toy(_arg, *, skip_invalid=False):
        return molecule_corpus([(1, "p", "m", "CCO", "ethanol", "train")], source="toy")

    assert "toy" in available_sources()
    assert load_dataset("toy").pair_ids == ["p"]
    with pytest.raises(ValueError, match="already registered"):
        register_source("toy")(lambda a, *, skip_invalid=False: None)


def _write_drugs(folder: Path, lines: list[str]) -> None:
    (folder / "drugs").mkdir(parents=True, exist_ok=True)
    body = "pair_id\tmol_id\tsmiles\tsplit\ttext\n" + "".join(line + "\n" for line in lines)
    (folder / "drugs" / "drugs.tsv.gz").write_bytes(gzip.compress(body.encode("utf-8")))


def test_drugs(tmp_path, monkeypatch):
    _write_drugs(tmp_path, [
        "DB00945#0\tDB00945\tCC(=O)Oc1ccccc1C(=O)O\ttrain\tAspirin is an analgesic.",
        "DB00945#1\tDB00945\tCC(=O)Oc1ccccc1C(=O)O\ttrain\tIt has an ester group.",
        "DB00201#0\tDB00201\tCn1cnc2c1c(=O)n(C)c(=O)n2C\tval\tCaffeine is a stimulant.",
        "DB01050#0\tDB01050\tCC(C)Cc1ccc(cc1)C(C)C(=O)O\ttest\tIbuprofen is an NSAID.",
    ])
    monkeypatch.setenv("GRAPHDEL_DATA_DIR", str(tmp_path))
    c = load_dataset("drugs")
    assert c.source == "drugs"
    assert c.pair_ids == ["DB00945#0", "DB00945#1", "DB00201#0", "DB01050#0"]
    assert c.splits == ["train", "train", "val", "test"]
    assert c.items == {"DB00945": ASPIRIN, "DB00201": CAFFEINE_CANON, "DB01050": IBUPROFEN_CANON}


def test_drugs_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHDEL_DATA_DIR", str(tmp_path))
    with pytest.raises(InvalidInputError, match="GRAPHDEL_DATA_DIR"):
        load_dataset("drugs")
    (tmp_path / "drugs").mkdir()
    (tmp_path / "drugs" / "drugs.tsv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidInputError, match="not a valid gzip"):
        load_dataset("drugs")


def test_default_data_dir_is_repo_data(monkeypatch):
    monkeypatch.delenv("GRAPHDEL_DATA_DIR", raising=False)
    assert sources.data_dir() == Path(sources.__file__).resolve().parents[2] / "data"


def test_clean_text():
    assert clean_text("  a\tb \n\n c  d\r\ne ") == "a b c  d e"


def test_molecule_corpus_mixed_splits():
    with pytest.raises(InvalidInputError, match="split is given for some rows"):
        molecule_corpus([(1, None, "a", "CCO", "x", "train"), (2, None, "b", "CCC", "y", None)], source="t")


# ------------------------------------------------------------------------------------ property test

def _load_bytes(data: bytes, name: str, spec: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        try:
            c = load_dataset(f"{spec}:{path}", skip_invalid=True)
        except InvalidInputError:
            return
        assert len(c) > 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([("x.csv", "csv"), ("x.txt", "chebi20"), ("x.tsv", "csv")]))
def test_random_bytes_load_or_invalid_input(data, target):
    _load_bytes(data, *target)


_FIELD = st.one_of(st.sampled_from(["CCO", "c1ccccc1", "C1CC(", "", "[Na+]", "CC(=O)[O-].[Na+]", '"', "a,b"]),
                   st.text(max_size=20))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_FIELD, min_size=1, max_size=5), max_size=6),
       st.sampled_from([("x.csv", "csv", "smiles,text,split", ","),
                        ("x.txt", "chebi20", "CID\tSMILES\tdescription", "\t")]))
def test_random_text_load_or_invalid_input(rows, target):
    name, spec, header, sep = target
    body = header + "\n" + "\n".join(sep.join(r) for r in rows) + "\n"
    _load_bytes(body.encode("utf-8", "surrogatepass"), name, spec)
