"""Knowledge-graph sources: ``kg:PATH`` on tiny hand-made folders, and the embedded ``wordnet`` corpus."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from graphdel.data.kg import WN18RR_RELATIONS, kg_triples, load_kg
from graphdel.data.sources import available_sources, load_dataset
from graphdel.errors import InvalidInputError

# Train mentions 10 entities; entity2text.txt (when given) describes 9 of them (not "kitten") and "Snoopy",
# who is in no triple.
TRAIN = [
    ("puppy", "_hypernym", "dog"),
    ("kitten", "_hypernym", "cat"),
    ("dog", "_hypernym", "canine"),
    ("canine", "_hypernym", "carnivore"),
    ("cat", "_hypernym", "feline"),
    ("feline", "_hypernym", "carnivore"),
    ("carnivore", "_hypernym", "mammal"),
    ("dog", "_has_part", "tail_part"),
    ("cat", "_has_part", "tail_part"),
    ("dog", "_derivationally_related_form", "to_dog"),
    ("to_dog", "_derivationally_related_form", "dog"),
    ("dog", "_hypernym", "canine"),  # repeated line: collapsed
]
VALID = [
    ("cat", "_derivationally_related_form", "feline"),
    ("canine", "_hypernym", "carnivore"),  # already in train: dropped
]
TEST = [
    ("feline", "_has_part", "tail_part"),
    ("dog", "_hypernym", "wolf"),  # unknown entity: dropped
    ("mammal", "_similar_to", "carnivore"),  # unknown relation: dropped
    ("feline", "_has_part", "tail_part"),  # repeated line: collapsed
]
TEXTS = {
    "dog": "dog, domestic dog: a member of the genus Canis",
    "canine": "canine, canid: any of various fissiped mammals with nonretractile claws",
    "cat": "cat, true cat: feline mammal usually having thick soft fur",
    "feline": "feline, felid: any of various lithe-bodied roundheaded fissiped mammals",
    "carnivore": "carnivore: a terrestrial or aquatic flesh-eating mammal",
    "mammal": "mammal, mammalian: any warm-blooded vertebrate having the skin covered with hair",
    "tail_part": "tail: the posterior part of the body of a vertebrate",
    "puppy": "puppy: a young dog",
    "to_dog": "dog, chase, trail:\t go after with the intent to catch",  # a tab in a text becomes a space
    "Snoopy": "Snoopy: a beagle",
}
TEN = sorted({e for h, _, t in TRAIN for e in (h, t)})


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def kg_folder(tmp_path) -> Path:
    folder = tmp_path / "tiny_kg"
    folder.mkdir()
    write_lines(folder / "train.txt", TRAIN)
    write_lines(folder / "valid.txt", VALID)
    write_lines(folder / "test.txt", TEST)
    return folder


@pytest.fixture
def kg_folder_text(kg_folder) -> Path:
    write_lines(kg_folder / "entity2text.txt", TEXTS.items())
    return kg_folder


def test_sources_registered():
    assert "kg:PATH" in available_sources()
    assert "wordnet" in available_sources()


def test_kg_without_text(kg_folder):
    c = load_dataset(f"kg:{kg_folder}")
    assert c.source == f"kg:{kg_folder.resolve()}"
    assert c.modality == "kg"
    assert TEN == ["canine", "carnivore", "cat", "dog", "feline", "kitten", "mammal", "puppy", "tail_part",
                   "to_dog"]
    assert len(c) == 10
    assert c.item_ids == TEN
    assert c.pair_ids == [f"ent:{e}" for e in TEN]
    assert c.texts == ["canine", "carnivore", "cat", "dog", "feline", "kitten", "mammal", "puppy",
                       "tail part", "to dog"]
    assert c.splits == ["train"] * 10
    assert c.items == {e: e for e in TEN}
    triples = c.extra["triples"]
    assert triples["train"] == [list(t) for t in TRAIN[:11]]
    assert triples["val"] == [["cat", "_derivationally_related_form", "feline"]]
    assert triples["test"] == [["feline", "_has_part", "tail_part"]]
    assert c.extra["relations"] == ["_derivationally_related_form", "_has_part", "_hypernym"]
    assert c.extra["entities"] == TEN
    assert c.extra["entities_without_text"] == 0
    assert c.skipped == [
        {"row": 12, "id": "dog\t_hypernym\tcanine", "reason": "repeated triple (first at line 3), collapsed",
         "file": "train.txt"},
        {"row": 2, "id": "canine\t_hypernym\tcarnivore", "reason": "triple also in train.txt",
         "file": "valid.txt"},
        {"row": 2, "id": "dog\t_hypernym\twolf", "reason": "entity 'wolf' not in train.txt",
         "file": "test.txt"},
        {"row": 3, "id": "mammal\t_similar_to\tcarnivore",
         "reason": "relation '_similar_to' not in train.txt", "file": "test.txt"},
        {"row": 4, "id": "feline\t_has_part\ttail_part",
         "reason": "repeated triple (first at line 1), collapsed", "file": "test.txt"},
    ]
    assert kg_triples(c, "test") == [("feline", "_has_part", "tail_part")]
    assert c.content_hash() == load_dataset(f"kg:{kg_folder}").content_hash()


def test_kg_with_text(kg_folder_text):
    c = load_kg(kg_folder_text)
    paired = ["Snoopy"] + [e for e in TEN if e != "kitten"]
    assert len(c) == 10
    assert c.item_ids == paired
    assert c.pair_ids == [f"ent:{e}" for e in paired]
    assert c.texts == [TEXTS[e].replace("\t ", " ") for e in paired]
    assert dict(zip(c.item_ids, c.texts))["to_dog"] == "dog, chase, trail: go after with the intent to catch"
    assert c.splits == ["train"] * 10
    assert c.extra["entities"] == ["Snoopy"] + TEN
    assert c.extra["entities_without_text"] == 1  # kitten: in the graph, no pair
    assert "kitten" in c.items and "Snoopy" in c.items
    assert [len(c.extra["triples"][s]) for s in ("train", "val", "test")] == [11, 1, 1]
    assert [(s["file"], s["row"]) for s in c.skipped] == [
        ("train.txt", 12), ("valid.txt", 2), ("test.txt", 2), ("test.txt", 3), ("test.txt", 4)]


def test_kg_partial_text_and_gz(kg_folder):
    # entity2text.txt.gz listing only two entities (one twice): the others stay in the graph without a pair.
    with gzip.open(kg_folder / "entity2text.txt.gz", "wt", encoding="utf-8") as f:
        f.write("dog\tdog: a canine\ncat\tcat: a feline\ndog\tdog: a canine\n")
    c = load_kg(kg_folder)
    assert c.item_ids == ["cat", "dog"]
    assert c.texts == ["cat: a feline", "dog: a canine"]
    assert c.extra["entities"] == TEN
    assert c.extra["entities_without_text"] == 8
    assert len(c.extra["triples"]["train"]) == 11


def test_content_hash_follows_texts_and_triples(kg_folder):
    before = load_kg(kg_folder, source="kg").content_hash()
    write_lines(kg_folder / "test.txt", TEST[:1])
    assert load_kg(kg_folder, source="kg").content_hash() == before  # same kept triples
    write_lines(kg_folder / "train.txt", TRAIN[:10] + [("cat", "_hypernym", "mammal")])
    changed = load_kg(kg_folder, source="kg").content_hash()
    assert changed != before
    write_lines(kg_folder / "entity2text.txt", TEXTS.items())
    assert load_kg(kg_folder, source="kg").content_hash() != changed


@pytest.mark.parametrize("line, found", [
    ("dog\t_hypernym", "2 tab-separated fields"),
    ("dog\t_hypernym\tcanine\textra", "4 tab-separated fields"),
    ("dog _hypernym canine", "1 tab-separated field"),
    ("dog\t\tcanine", "an empty field"),
])
def test_malformed_line_names_file_and_line(kg_folder, line, found):
    (kg_folder / "valid.txt").write_text("cat\t_hypernym\tfeline\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as e:
        load_kg(kg_folder)
    msg = str(e.value)
    assert f"{kg_folder / 'valid.txt'}, line 3" in msg
    assert found in msg


def test_bad_files(kg_folder):
    (kg_folder / "test.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="test.txt is empty"):
        load_kg(kg_folder)
    (kg_folder / "test.txt").write_bytes(b"dog\t_hypernym\t\xff\n")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        load_kg(kg_folder)
    (kg_folder / "test.txt").unlink()
    with pytest.raises(InvalidInputError, match="lacks test.txt"):
        load_kg(kg_folder)
    with pytest.raises(InvalidInputError, match="is not a folder"):
        load_kg(kg_folder / "train.txt")
    with pytest.raises(InvalidInputError, match="no such file or folder"):
        load_dataset(f"kg:{kg_folder / 'nope'}")


def test_entity_text_errors(kg_folder):
    path = kg_folder / "entity2text.txt"
    path.write_text("dog\tdog: a canine\ncat cat: a feline\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"entity2text.txt, line 2: expected 'entity id<TAB>text'"):
        load_kg(kg_folder)
    path.write_text("dog\tdog: a canine\ncat\t  \ndog\tanother text\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"line 2, id 'cat': empty text"):
        load_kg(kg_folder)
    c = load_kg(kg_folder, skip_invalid=True)
    assert c.item_ids == ["dog"] and c.texts == ["dog: a canine"]
    assert [(s["row"], s["file"]) for s in c.skipped[-2:]] == [(2, "entity2text.txt"), (3, "entity2text.txt")]
    assert "already has a different text at line 1" in c.skipped[-1]["reason"]


def test_both_plain_and_gz_refused(kg_folder):
    with gzip.open(kg_folder / "train.txt.gz", "wt") as f:
        f.write("a\tr\tb\n")
    with pytest.raises(InvalidInputError, match="holds both train.txt and train.txt.gz"):
        load_kg(kg_folder)


def test_wordnet_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHDEL_DATA_DIR", str(tmp_path))
    with pytest.raises(InvalidInputError, match="embedded 'wordnet' dataset is missing"):
        load_dataset("wordnet")


def test_wordnet_shipped():
    c = load_dataset("wordnet")
    assert c.source == "wordnet" and c.modality == "kg"
    entities = c.extra["entities"]
    triples = c.extra["triples"]
    assert len(entities) >= 10_000
    assert sum(len(v) for v in triples.values()) >= 30_000
    assert c.extra["relations"] == sorted(WN18RR_RELATIONS)
    assert len(c) == len(entities) and c.extra["entities_without_text"] == 0
    assert c.skipped == []
    train_entities = {e for h, _, t in triples["train"] for e in (h, t)}
    assert train_entities == set(entities)
    train = {tuple(t) for t in triples["train"]}
    symmetric = {"_derivationally_related_form", "_also_see", "_verb_group", "_similar_to"}
    for split in ("val", "test"):
        assert len(triples[split]) > 0.04 * len(train)
        for h, r, t in triples[split]:
            assert h in train_entities and t in train_entities
            assert (h, r, t) not in train
            assert r not in symmetric or (t, r, h) not in train
    texts = dict(zip(c.item_ids, c.texts))
    assert texts["02084071.n"].startswith("dog, domestic dog, Canis familiaris: a member of the genus Canis")
    assert all("_" not in text.split(":")[0] for text in c.texts)
    # hypernym direction: (hyponym, _hypernym, hypernym), dog -> canine.
    assert ["02084071.n", "_hypernym", "02083346.n"] in triples["train"] + triples["val"] + triples["test"]


# ------------------------------------------------ the WN18RR and FB15k-237 layouts, descriptions, stats
#: FB15k-237's layout: Freebase mids and relation paths, tab-separated, no header.
FB_TRAIN = [("/m/027rn", "/location/country/form_of_government", "/m/06cx9"),
            ("/m/017dcd", "/tv/tv_program/regular_cast./tv/regular_tv_appearance/actor", "/m/06v8s0"),
            ("/m/07s9rl0", "/media_common/netflix_genre/titles", "/m/0170z3"),
            ("/m/0170z3", "/film/film/genre", "/m/07s9rl0"),
            ("/m/027rn", "/location/country/form_of_government", "/m/0170z3")]
FB_VALID = [("/m/06cx9", "/location/country/form_of_government", "/m/0170z3")]
FB_TEST = [("/m/017dcd", "/film/film/genre", "/m/07s9rl0")]
FB_TEXTS = {"/m/027rn": "Dominican Republic: a country in the Caribbean",
            "/m/06cx9": "Republic: a form of government",
            "/m/07s9rl0": "Drama: a film genre",
            "/m/0170z3": "American History X: a 1998 film"}


def test_fb15k237_layout_with_a_tsv_of_descriptions(tmp_path):
    from graphdel.data.kg import triple_of_row, with_triple_pairs
    from graphdel.data.requests import DeletionRequest

    folder = tmp_path / "fb"
    folder.mkdir()
    for name, rows in (("train", FB_TRAIN), ("valid", FB_VALID), ("test", FB_TEST)):
        write_lines(folder / f"{name}.txt", rows)
    write_lines(folder / "entity2text.tsv", FB_TEXTS.items())
    c = load_dataset(f"kg:{folder}")
    assert c.extra["entities"] == sorted({e for h, _, t in FB_TRAIN for e in (h, t)})
    assert c.item_ids == sorted(FB_TEXTS) and c.extra["entities_without_text"] == 2   # /m/017dcd, /m/06v8s0
    assert dict(zip(c.item_ids, c.texts))["/m/0170z3"] == "American History X: a 1998 film"
    assert [len(c.extra["triples"][s]) for s in ("train", "val", "test")] == [5, 1, 1]
    # the ids survive the training view and a triple request written with spaces
    view = with_triple_pairs(c)
    req = DeletionRequest.from_ids(view, ["/m/0170z3 /film/film/genre /m/07s9rl0"], by="triple")
    assert triple_of_row(view, req.rows(view)[0]) == FB_TRAIN[3]
    (folder / "entity2text.txt").write_text("/m/027rn\tDominican Republic\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="holds both entity2text.txt and entity2text.tsv: keep one"):
        load_kg(folder)


def test_wn18rr_layout_keeps_offset_ids_as_written(tmp_path):
    folder = tmp_path / "wn"
    folder.mkdir()
    write_lines(folder / "train.txt", [("00260881", "_hypernym", "00260622"),
                                       ("01332730", "_derivationally_related_form", "03122748"),
                                       ("03122748", "_derivationally_related_form", "01332730"),
                                       ("00260622", "_hypernym", "00001740")])
    write_lines(folder / "valid.txt", [("00260881", "_hypernym", "00001740")])
    write_lines(folder / "test.txt", [("01332730", "_hypernym", "00001740")])
    c = load_kg(folder)
    assert c.extra["entities"] == ["00001740", "00260622", "00260881", "01332730", "03122748"]
    assert c.extra["triples"]["test"] == [["01332730", "_hypernym", "00001740"]]


@pytest.mark.parametrize("file, text, where, what", [
    ("train.txt", "/m/027rn\t/location/country/form_of_government\n", "line 1", "found 2 tab-separated fields"),
    ("valid.txt", "/m/06cx9\t/film/film/genre\t/m/0170z3\t\n", "line 1", "found 4 tab-separated fields"),
    ("test.txt", "/m/017dcd /film/film/genre /m/07s9rl0\n", "line 1", "found 1 tab-separated field"),
    ("entity2text.tsv", "/m/027rn\tDominican Republic\n/m/06cx9 Republic\n", "line 2",
     "expected 'entity id<TAB>text'"),
    ("entity2text.tsv", "/m/027rn\tDominican Republic\n/m/06cx9\t \n", "line 2, id '/m/06cx9'", "empty text"),
    ("entity2text.tsv", "id\tdescription\n/m/027rn\tDominican Republic\n", "line 1", "looks like a header"),
])
def test_a_bad_row_is_named_in_a_one_line_error(tmp_path, capsys, file, text, where, what):
    from graphdel.cli import main

    folder = tmp_path / "fb"
    folder.mkdir()
    for name, rows in (("train", FB_TRAIN), ("valid", FB_VALID), ("test", FB_TEST)):
        write_lines(folder / f"{name}.txt", rows)
    (folder / file).write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError) as e:
        load_kg(folder)
    message = str(e.value)
    assert message.startswith(f"{folder / file}, {where}") and what in message and "\n" not in message
    assert main(["data", "stats", f"kg:{folder}"]) == 2
    err = capsys.readouterr().err
    assert err == f"graphdel: error: {message}\n"


def test_kg_stats_counts_entities_relations_triples_and_relation_frequencies(kg_folder_text):
    from graphdel.data.kg import kg_stats

    assert kg_stats(load_kg(kg_folder_text)) == {
        # Snoopy has a text and no triple, kitten a triple and no text
        "entities": {"total": 11, "with_text": 10, "without_text": 1},
        "relations": 3,
        "triples": {"train": 11, "val": 1, "test": 1, "total": 13},
        "relation_frequencies": [
            {"relation": "_hypernym", "train": 7, "val": 0, "test": 0, "total": 7},
            {"relation": "_derivationally_related_form", "train": 2, "val": 1, "test": 0, "total": 3},
            {"relation": "_has_part", "train": 2, "val": 0, "test": 1, "total": 3},
        ],
    }
    with pytest.raises(InvalidInputError, match="is not a knowledge graph"):
        kg_stats(load_dataset("drugs"))
