"""The KG training view (one pair per triple) and the triple / relation / entity request granularities."""

import pytest

from graphdel.data.kg import (load_kg, parse_triple_id, triple_of_row, triple_pair_id, with_triple_pairs)
from graphdel.data.requests import DeletionRequest
from graphdel.errors import RequestError

TRAIN = [("e0", "likes", "e1"), ("e1", "likes", "e2"), ("e2", "likes", "e3"), ("e3", "part_of", "e4"),
         ("e4", "part_of", "e5"), ("e5", "likes", "e6"), ("e6", "part_of", "e7"), ("e7", "likes", "e8"),
         ("e8", "part_of", "e9"), ("e9", "likes", "e0"), ("e0", "part_of", "e5"), ("e2", "part_of", "e7")]
VAL = [("e1", "likes", "e3")]
TEST = [("e3", "likes", "e5"), ("e6", "likes", "e8")]


def write_tiny_kg(folder):
    """A 10-entity, 2-relation KG with descriptions (also used by tests/models/test_kg_model.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", TRAIN), ("valid", VAL), ("test", TEST)):
        (folder / f"{name}.txt").write_text("".join("\t".join(r) + "\n" for r in rows))
    kinds = ["a bird", "a tree", "a stone", "a river", "a tool"]
    (folder / "entity2text.txt").write_text("".join(f"e{i}\tentity {i}, {kinds[i % 5]} of the tiny graph\n"
                                                    for i in range(10)))
    return folder


@pytest.fixture
def view(tmp_path):
    return with_triple_pairs(load_kg(write_tiny_kg(tmp_path / "kg")))


def test_view_rows(view):
    assert view.pair_ids[:10] == [f"ent:e{i}" for i in range(10)]
    assert len(view) == 10 + len(TRAIN) + len(VAL) + len(TEST)
    row = view.index_of("tri:e0|likes|e1")
    assert view.splits[row] == "train" and triple_of_row(view, row) == ("e0", "likes", "e1")
    assert view.texts[row] == view.texts[view.index_of("ent:e1")]      # the tail's description
    assert view.splits[view.index_of("tri:e1|likes|e3")] == "val"
    assert view.splits[view.index_of("tri:e6|likes|e8")] == "test"
    assert with_triple_pairs(view) is view                                  # idempotent
    assert triple_of_row(view, 0) is None


def test_parse_triple_ids():
    assert parse_triple_id("tri:a|r|b") == ("a", "r", "b")
    assert parse_triple_id("a\tr\tb") == ("a", "r", "b")
    assert parse_triple_id(" a  r b ") == ("a", "r", "b")
    assert parse_triple_id("a r") is None
    assert triple_pair_id("a", "r", "b") == "tri:a|r|b"


def test_triple_request(view):
    req = DeletionRequest.from_ids(view, ["e0 likes e1", "tri:e2|part_of|e7"], by="triple")
    assert req.pair_ids == ("tri:e0|likes|e1", "tri:e2|part_of|e7")
    with pytest.raises(RequestError, match="not in the training split"):
        DeletionRequest.from_ids(view, ["e6 likes e8"], by="triple")          # a test triple
    with pytest.raises(RequestError, match="triple ids not in this run.s data"):
        DeletionRequest.from_ids(view, ["e0 likes e9"], by="triple")


def test_relation_request_expands_to_its_training_triples(view):
    req = DeletionRequest.from_ids(view, ["part_of"], by="relation")
    expect = sorted(triple_pair_id(*t) for t in TRAIN if t[1] == "part_of")
    assert sorted(req.pair_ids) == expect                                     # val/test triples left out


def test_entity_request_expands_to_its_triples_and_description(view):
    req = DeletionRequest.from_ids(view, ["e0"], by="entity")
    expect = {"ent:e0"} | {triple_pair_id(*t) for t in TRAIN if "e0" in (t[0], t[2])}
    assert set(req.pair_ids) == expect and len(expect) == 4
    assert DeletionRequest.from_ids(view, ["ent:e0"], by="entity").pair_ids == req.pair_ids


def test_random_triple_request_is_seeded(view):
    a = DeletionRequest.random(view, n=3, by="triple", seed=0)
    b = DeletionRequest.random(view, n=3, by="triple", seed=0)
    assert a.pair_ids == b.pair_ids and len(a) == 3 and all(p.startswith("tri:") for p in a.pair_ids)
    assert all(view.splits[view.index_of(p)] == "train" for p in a.pair_ids)
