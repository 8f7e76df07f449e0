import hashlib
import json
from pathlib import Path

import pytest

from graphdel.data import granularities
from graphdel.data.corpus import Corpus
from graphdel.data.requests import DeletionRequest, pair_hash, register_granularity
from graphdel.data.sources import load_dataset
from graphdel.errors import InvalidInputError, RequestError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ROWS = {
    "train.txt": [
        ("2244", ASPIRIN, "Aspirin is a member of benzoic acids."),
        ("2519", "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "Caffeine is a trimethylxanthine."),
        ("702", "CCO", "Ethanol is a primary alcohol."),
        ("241", "c1ccccc1", "Benzene is an aromatic ring."),
        ("3672", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "Ibuprofen is a monocarboxylic acid."),
        ("2244", ASPIRIN, "Acetylsalicylic acid, an analgesic."),
    ],
    "validation.txt": [
        ("1983", "CC(=O)Nc1ccc(O)cc1", "Paracetamol is a member of phenols."),
        ("517045", "CC(=O)[O-].[Na+]", "Sodium acetate is an organic sodium salt."),
    ],
    "test.txt": [
        ("4763", "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O", "Phenobarbital is a barbiturate."),
        ("2153", "Cn1c(=O)c2[nH]cnc2n(C)c1=O", "Theophylline is a dimethylxanthine."),
    ],
}
TRAIN_PAIRS = ["CID:2244#0", "CID:2519#0", "CID:702#0", "CID:241#0", "CID:3672#0", "CID:2244#1"]


def make_folder(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(exist_ok=True)
    for name, records in rows.items():
        body = "CID\tSMILES\tdescription\n" + "".join("\t".join(r) + "\n" for r in records)
        (folder / name).write_text(body, encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    return load_dataset(f"chebi20:{make_folder(tmp_path / 'chebi')}")


def test_by_pair(corpus):
    req = DeletionRequest.from_ids(corpus, ["CID:241#0", "CID:2244#1"])
    assert req.pair_ids == ("CID:241#0", "CID:2244#1")  # corpus row order
    assert req.by == "pair" and req.seed is None and req.source_hash == corpus.content_hash()
    assert req.rows(corpus) == [3, 5]
    assert len(req) == 2


def test_by_molecule_accepts_item_and_pair_ids(corpus):
    both = ("CID:2244#0", "CID:2244#1")
    assert DeletionRequest.from_ids(corpus, ["CID:2244"], by="molecule").pair_ids == both
    assert DeletionRequest.from_ids(corpus, ["CID:2244#1"], by="molecule").pair_ids == both
    req = DeletionRequest.from_ids(corpus, ["CID:702", "CID:2519"], by="molecule")
    assert set(req.pair_ids) == {"CID:702#0", "CID:2519#0"}
    assert req.selected == ("CID:702", "CID:2519")


def test_by_scaffold(corpus):
    # benzene series in training: aspirin (2 pairs), benzene, ibuprofen; paracetamol (val) is not taken
    req = DeletionRequest.from_ids(corpus, ["CID:241"], by="scaffold")
    assert set(req.pair_ids) == {"CID:2244#0", "CID:2244#1", "CID:241#0", "CID:3672#0"}
    # the xanthine series: caffeine (train) and theophylline (test): only the training pair
    assert DeletionRequest.from_ids(corpus, ["CID:2519"], by="scaffold").pair_ids == ("CID:2519#0",)
    # naming a test molecule whose series has training members forgets those members
    assert DeletionRequest.from_ids(corpus, ["CID:2153"], by="scaffold").pair_ids == ("CID:2519#0",)
    # an acyclic molecule is a series of its own (not "every acyclic molecule")
    assert DeletionRequest.from_ids(corpus, ["CID:702#0"], by="scaffold").pair_ids == ("CID:702#0",)


def test_scaffold_refused_for_other_modalities():
    kg = Corpus(source="toy", modality="kg", pair_ids=["a", "b"], item_ids=["x", "y"], texts=["t", "u"],
                splits=["train", "train"], items={"x": "X", "y": "Y"})
    with pytest.raises(RequestError, match="molecule corpora"):
        DeletionRequest.from_ids(kg, ["a"], by="scaffold")
    with pytest.raises(RequestError, match="molecule corpora"):
        DeletionRequest.random(kg, 1, by="scaffold")
    assert DeletionRequest.from_ids(kg, ["x"], by="molecule").pair_ids == ("a",)


def test_unknown_ids(corpus):
    with pytest.raises(RequestError, match=r"pair ids not in this run's data .*2 ids: 'nope', 'CID:2244'"):
        DeletionRequest.from_ids(corpus, ["CID:241#0", "nope", "CID:2244"])
    with pytest.raises(RequestError, match=r"molecule or pair ids not in this run's data.*1 id: 'CID:1'"):
        DeletionRequest.from_ids(corpus, ["CID:1"], by="molecule")
    many = [f"x{i}" for i in range(15)]
    with pytest.raises(RequestError, match=r"15 ids, first 10: 'x0'.*'x9'; not one of the ids matched: was the "
                       r"request made for another dataset\?$"):
        DeletionRequest.from_ids(corpus, many)


def test_an_id_outside_a_quick_sample_is_not_called_unknown_to_the_dataset(corpus):
    """A quick run trains on a sample; an id of the dataset outside it used to be "unknown ... in drugs"."""
    sample = corpus.sample_items(2, seed=0)
    outside = next(p for p in corpus.pair_ids if not sample.has_pair(p))
    inside = sample.pair_ids[0]
    n_items = len(set(corpus.item_ids))
    with pytest.raises(RequestError) as err:
        DeletionRequest.from_ids(sample, [inside, outside])
    assert str(err.value) == (f"pair ids not in this run's data ({corpus.source}, a sample of "
                              f"{len(set(sample.item_ids))} of its {n_items} items (--quick)): 1 id: {outside!r}")
    assert corpus.describe() == corpus.source and sample.sampled_from == n_items


def test_outside_training(corpus):
    with pytest.raises(RequestError,
                       match=r"not in the training split.*'CID:1983#0 \(val\)', 'CID:4763#0 \(test\)'"):
        DeletionRequest.from_ids(corpus, ["CID:241#0", "CID:1983#0", "CID:4763#0"])
    with pytest.raises(RequestError, match=r"not in the training split.*CID:4763 \(test\)"):
        DeletionRequest.from_ids(corpus, ["CID:4763"], by="scaffold")
    with pytest.raises(RequestError, match=r"not in the training split.*CID:517045 \(val\)"):
        DeletionRequest.from_ids(corpus, ["CID:517045"], by="molecule")


def test_held_out_for_calibration(corpus):
    allowed = {0, 1, 2, 4, 5}  # row 3 (benzene) held out
    with pytest.raises(RequestError, match=r"held out for calibration.*'CID:241#0'"):
        DeletionRequest.from_ids(corpus, ["CID:241#0"], allowed_rows=allowed)
    req = DeletionRequest.from_ids(corpus, ["CID:241"], by="scaffold", allowed_rows=allowed)
    assert set(req.pair_ids) == {"CID:2244#0", "CID:2244#1", "CID:3672#0"}
    with pytest.raises(RequestError, match="not training pairs"):
        DeletionRequest.from_ids(corpus, ["CID:241#0"], allowed_rows={0, 6})


def test_empty_request(corpus):
    with pytest.raises(RequestError, match="empty request"):
        DeletionRequest.from_ids(corpus, [])
    with pytest.raises(RequestError, match="empty request"):
        DeletionRequest.from_ids(corpus, ["  "])


def test_duplicates_collapsed_with_warning(corpus):
    with pytest.warns(UserWarning, match=r"duplicate ids collapsed.*'CID:241#0'"):
        req = DeletionRequest.from_ids(corpus, ["CID:241#0", "CID:702#0", "CID:241#0"])
    assert req.pair_ids == ("CID:702#0", "CID:241#0")


def test_whole_training_set_refused_unless_forced(corpus):
    with pytest.raises(RequestError, match="covers all 6 forgettable training pairs.*force=True"):
        DeletionRequest.from_ids(corpus, TRAIN_PAIRS)
    with pytest.raises(RequestError, match="covers all 5 forgettable"):
        DeletionRequest.from_ids(corpus, TRAIN_PAIRS[:5], allowed_rows={0, 1, 2, 3, 4})
    assert len(DeletionRequest.from_ids(corpus, TRAIN_PAIRS, force=True)) == 6


def test_unknown_granularity(corpus):
    with pytest.raises(RequestError,
                       match=r"unknown request granularity by=.atom.; known: .*molecule.*pair.*scaffold"):
        DeletionRequest.from_ids(corpus, ["CID:241#0"], by="atom")


def test_random_by_molecule(corpus):
    req = DeletionRequest.random(corpus, fraction=0.5, by="molecule", seed=0)
    # 5 training molecules, floor(2.5 + 0.5) = 3 drawn, each with all its training pairs
    assert len(req.selected) == 3 and req.seed == 0 and req.by == "molecule"
    expected = {p for p, i in zip(corpus.pair_ids, corpus.item_ids) if i in req.selected}
    assert set(req.pair_ids) == expected
    assert req == DeletionRequest.random(corpus, 0.5, by="molecule", seed=0)
    draws = {DeletionRequest.random(corpus, 0.5, seed=s).selected for s in range(10)}
    assert len(draws) > 1
    assert "random 3 molecules (0.5 of 5 training molecules), seed 0" == req.description


def test_random_exact_draw(corpus):
    import random

    units = sorted(["CID:2244", "CID:2519", "CID:702", "CID:241", "CID:3672"])
    chosen = sorted(random.Random(7).sample(units, 2))
    req = DeletionRequest.random(corpus, 2, by="molecule", seed=7)
    assert req.selected == tuple(chosen)


def test_random_by_pair_and_scaffold(corpus):
    req = DeletionRequest.random(corpus, n=2, by="pair", seed=1)
    assert len(req) == 2 and set(req.pair_ids) <= set(TRAIN_PAIRS)
    # training series: benzene (4 pairs), xanthine (1), acyclic:CID:702 (1)
    sc = DeletionRequest.random(corpus, 1, by="scaffold", seed=0)
    series = {"c1ccccc1": {"CID:2244#0", "CID:2244#1", "CID:241#0", "CID:3672#0"},
              "O=c1[nH]c(=O)c2[nH]cnc2[nH]1": {"CID:2519#0"}, "acyclic:CID:702": {"CID:702#0"}}
    assert set(sc.pair_ids) == series[sc.selected[0]]
    with pytest.raises(RequestError, match="covers all"):
        DeletionRequest.random(corpus, 3, by="scaffold")


def test_random_bad_amounts(corpus):
    with pytest.raises(RequestError, match="only 5 have"):
        DeletionRequest.random(corpus, 6, by="molecule")
    for bad in (0, -1, 1.5, float("nan"), True):
        with pytest.raises(RequestError):
            DeletionRequest.random(corpus, bad)
    with pytest.raises(RequestError, match="exactly one"):
        DeletionRequest.random(corpus)
    with pytest.raises(RequestError, match="exactly one"):
        DeletionRequest.random(corpus, 0.1, fraction=0.1)


def test_json_round_trip_and_exact_hash(corpus, tmp_path):
    req = DeletionRequest.from_ids(corpus, ["CID:2244"], by="molecule")
    d = req.to_json(corpus)
    assert d["count"] == 2 and d["by"] == "molecule" and d["seed"] is None
    assert d["source_hash"] == corpus.content_hash()
    assert "created_at" not in d
    expected = hashlib.sha256(b"CC(=O)Oc1ccccc1C(=O)O\nAspirin is a member of benzoic acids.").hexdigest()
    assert d["pairs"][0] == {"pair_id": "CID:2244#0", "item_id": "CID:2244", "sha256": expected}
    assert pair_hash(ASPIRIN, "Aspirin is a member of benzoic acids.") == expected
    path = tmp_path / "req.json"
    req.save(path, corpus)
    assert json.loads(path.read_text()) == d
    loaded = DeletionRequest.load(path)
    assert loaded == req
    assert loaded.verify_hashes(corpus) == []
    again = DeletionRequest.from_file(corpus, path)
    assert again == req
    path2 = tmp_path / "req2.json"
    again.save(path2, corpus)
    assert path2.read_bytes() == path.read_bytes()  # reproducible: no timestamp


def test_hash_detects_changed_content(corpus, tmp_path):
    req = DeletionRequest.from_ids(corpus, ["CID:241#0", "CID:702#0"])
    path = tmp_path / "req.json"
    req.save(path, corpus)
    rows = {k: list(v) for k, v in ROWS.items()}
    rows["train.txt"][2] = ("702", "CCO", "Ethanol, edited.")
    changed = load_dataset(f"chebi20:{make_folder(tmp_path / 'chebi2', rows)}")
    assert DeletionRequest.load(path).verify_hashes(changed) == ["CID:702#0"]
    with pytest.raises(RequestError, match=r"content of these pairs differs.*'CID:702#0'"):
        DeletionRequest.from_file(changed, path)
    with pytest.raises(RequestError, match="another corpus"):
        req.to_json(changed)


def test_json_revalidated_against_other_corpus_version(corpus, tmp_path):
    req = DeletionRequest.from_ids(corpus, ["CID:241#0"])
    path = tmp_path / "req.json"
    req.save(path, corpus)
    rows = {k: list(v) for k, v in ROWS.items()}
    rows["test.txt"][0] = ("4763", "CCC1(c2ccccc2)C(=O)NC(=O)NC1=O", "Phenobarbital, edited.")
    other = load_dataset(f"chebi20:{make_folder(tmp_path / 'chebi3', rows)}")
    with pytest.warns(UserWarning, match="different version of the corpus"):
        again = DeletionRequest.from_file(other, path)
    assert again.pair_ids == req.pair_ids and again.source_hash == other.content_hash()


def test_from_id_file(corpus, tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("# ids to forget\n\nCID:241#0\n  CID:2244#1  \n# CID:702#0\n", encoding="utf-8")
    req = DeletionRequest.from_file(corpus, f)
    assert req.pair_ids == ("CID:241#0", "CID:2244#1")
    g = tmp_path / "mols.txt"
    g.write_text("CID:2244\n", encoding="utf-8")
    assert DeletionRequest.from_file(corpus, g, by="molecule").pair_ids == ("CID:2244#0", "CID:2244#1")
    e = tmp_path / "empty.txt"
    e.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(RequestError, match="empty request"):
        DeletionRequest.from_file(corpus, e)
    b = tmp_path / "bad.txt"
    b.write_bytes(b"CID:241#0\n\xff\n")
    with pytest.raises(InvalidInputError, match="line 2"):
        DeletionRequest.from_file(corpus, b)
    with pytest.raises(InvalidInputError, match="cannot read"):
        DeletionRequest.from_file(corpus, tmp_path / "missing.txt")


def test_malformed_json_request(corpus, tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"format": "graphdel-deletion-request", "version": 1, "pairs": []}', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="malformed"):
        DeletionRequest.load(f)
    f.write_text('{"pairs": ', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        DeletionRequest.from_file(corpus, f)
    f.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not a graphdel deletion request"):
        DeletionRequest.load(f)


def test_register_granularity(corpus, monkeypatch):
    monkeypatch.setattr(granularities, "_GRANULARITIES", granularities._GRANULARITIES.copy())

    def by_first_word(c, ids):
        out = {}
        for word in ids:
            rows = [i for i, t in enumerate(c.texts) if t.split()[0] == word]
            if rows:
                out[word] = rows
        return out

    register_granularity("word", by_first_word, unit_name="words")
    req = DeletionRequest.from_ids(corpus, ["Ethanol"], by="word")
    assert req.pair_ids == ("CID:702#0",) and req.by == "word"
    with pytest.raises(RequestError, match="does not support random"):
        DeletionRequest.random(corpus, 1, by="word")
    with pytest.raises(ValueError, match="already registered"):
        register_granularity("word", by_first_word)
