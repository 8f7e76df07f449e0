"""Inferable facts of a KG deletion on hand-made graphs: mirror relations learned from the graph, the
mirrored / path / not-inferable classes, the mirror closure and a closed request's record."""

import dataclasses
import json

import pytest

from graphdel.data.kg import load_kg, with_triple_pairs
from graphdel.data.kg_facts import (MIRRORED, NOT_INFERABLE, PATH, MirrorPair, MirrorRelations, audit_and_close,
                                    audit_request, close_request, describe_record, find_inferable,
                                    learn_mirror_relations, mirror_closure, mirror_rows, shortest_path_within,
                                    retained_graph)
from graphdel.data.requests import DeletionRequest
from graphdel.errors import InvalidInputError, RequestError

# "sim" is symmetric (3 pairs both ways), "parent"/"child" an inverse pair with one parent triple unmirrored,
# "likes" mirrors itself on 2 triples only (under a support of 3), "near" once in 3 (share under 0.5).
LEARN = [("a", "sim", "b"), ("b", "sim", "a"), ("c", "sim", "d"), ("d", "sim", "c"), ("e", "sim", "f"),
         ("f", "sim", "e"),
         ("a", "parent", "c"), ("c", "child", "a"), ("b", "parent", "d"), ("d", "child", "b"),
         ("e", "parent", "a"), ("a", "child", "e"), ("f", "parent", "b"),
         ("a", "likes", "f"), ("b", "likes", "c"), ("c", "likes", "b"),
         ("a", "near", "d"), ("d", "near", "a"), ("b", "near", "e"), ("c", "near", "f")]


def pairs(relations):
    return [(p.relation, p.mirror, round(p.share, 4), p.mirrored, p.triples) for p in relations.pairs]


def test_learn_mirror_relations_exact():
    learned = learn_mirror_relations(LEARN, min_share=0.5, min_support=3)
    assert pairs(learned) == [("child", "parent", 1.0, 3, 3), ("parent", "child", 0.75, 3, 4),
                              ("sim", "sim", 1.0, 6, 6)]
    assert [p.symmetric for p in learned.pairs] == [False, False, True]
    assert [p.mirror for p in learned.mirrors_of("parent")] == ["child"] and learned.mirrors_of("likes") == ()
    # a support of 2 lets "likes" in (2 of 3 triples); "near" (2 of 4 mirror each other) is at 0.5
    low = learn_mirror_relations(LEARN, min_share=0.5, min_support=2)
    assert ("likes", "likes", 0.6667, 2, 3) in pairs(low) and ("near", "near", 0.5, 2, 4) in pairs(low)
    assert all(p.relation != "near" for p in learn_mirror_relations(LEARN, min_share=0.51, min_support=2).pairs)
    # repeats count once; a self-loop is not its own mirror
    again = learn_mirror_relations(LEARN + LEARN[:2] + [("a", "sim", "a")], min_share=0.5, min_support=3)
    assert ("sim", "sim", round(6 / 7, 4), 6, 7) in pairs(again)
    assert learned.to_json()[0] == {"relation": "child", "mirror": "parent", "share": 1.0, "mirrored": 3,
                                    "triples": 3}


def test_learn_mirror_relations_refuses_bad_input():
    with pytest.raises(InvalidInputError, match="triples row 1: expected a .head, relation, tail. triple"):
        learn_mirror_relations([("a", "r", "b"), ("a", "r")])
    with pytest.raises(InvalidInputError, match="min_share"):
        learn_mirror_relations(LEARN, min_share=0.0)
    with pytest.raises(InvalidInputError, match="min_support"):
        learn_mirror_relations(LEARN, min_support=0)


RELATIONS = MirrorRelations((MirrorPair("child", "parent", 1.0, 3, 3), MirrorPair("parent", "child", 1.0, 3, 3),
                             MirrorPair("sim", "sim", 1.0, 6, 6)))
# b - e - d is a 2-hop path; c - a - b - e a 3-hop one; f has only a self-loop; g is in no triple.
RETAINED = [("b", "sim", "a"), ("c", "child", "a"), ("b", "parent", "e"), ("d", "likes", "e"), ("f", "likes", "f")]


def test_find_inferable_classes_each_deleted_triple():
    deleted = [("a", "sim", "b"),       # its mirror (b, sim, a) is retained
               ("a", "parent", "c"),    # its inverse (c, child, a) is retained
               ("b", "likes", "d"),     # b - e - d
               ("e", "parent", "d"),    # (d, likes, e) links them directly, under another relation
               ("c", "likes", "e"),     # 3 hops: c - a - b - e
               ("c", "likes", "f"),     # f is linked to nothing but itself
               ("f", "sim", "f"),       # a self-loop: never a path
               ("a", "likes", "g")]     # g is in no retained triple
    audit = find_inferable(deleted, RETAINED, RELATIONS)
    assert audit.kinds() == [MIRRORED, MIRRORED, PATH, PATH, NOT_INFERABLE, NOT_INFERABLE, NOT_INFERABLE,
                             NOT_INFERABLE]
    assert audit.facts[0].mirrors == (("b", "sim", "a"),) and audit.facts[1].mirrors == (("c", "child", "a"),)
    assert audit.facts[2].path == (("b", "parent", "e"), ("d", "likes", "e"))
    assert audit.facts[3].path == (("d", "likes", "e"),)
    assert audit.counts() == {MIRRORED: 2, PATH: 2, NOT_INFERABLE: 4} and audit.inferable_share() == 0.5
    # the bound: 3 hops find c - a - b - e; 1 hop keeps only the direct link
    three = find_inferable(deleted, RETAINED, RELATIONS, max_hops=3)
    assert three.kinds()[4] == PATH
    assert three.facts[4].path == (("c", "child", "a"), ("b", "sim", "a"), ("b", "parent", "e"))
    assert find_inferable(deleted, RETAINED, RELATIONS, max_hops=1).kinds()[2:4] == [NOT_INFERABLE, PATH]
    summary = audit.summary()
    assert summary["triples"] == 8 and summary["counts"] == {MIRRORED: 2, PATH: 2, NOT_INFERABLE: 4}
    assert summary["examples"][PATH][0] == {"triple": ["b", "likes", "d"], "kind": PATH, "mirrors": [],
                                            "path": [["b", "parent", "e"], ["d", "likes", "e"]]}
    assert json.loads(json.dumps(summary)) == summary
    assert describe_record(summary) == ("inferable: 4 of 8 deleted triples still stated or implied by the "
                                        "retained graph (mirrored 2, path <= 2 hops 2, not inferable 4)")


def test_deleted_triples_leave_the_retained_graph():
    # both directions deleted: neither is mirrored, and their own edge is no path (a - c, b - e remain)
    both = find_inferable([("a", "sim", "b"), ("b", "sim", "a")], RETAINED + [("a", "sim", "b")], RELATIONS)
    assert both.kinds() == [NOT_INFERABLE, NOT_INFERABLE]
    # repeats collapse; the order of the request is kept
    again = find_inferable([("b", "likes", "d"), ("a", "sim", "b"), ("b", "likes", "d")], RETAINED, RELATIONS)
    assert [f.triple for f in again.facts] == [("b", "likes", "d"), ("a", "sim", "b")]
    with pytest.raises(InvalidInputError, match="max_hops"):
        find_inferable([("a", "sim", "b")], RETAINED, RELATIONS, max_hops=0)
    with pytest.raises(InvalidInputError, match="deleted row 0"):
        find_inferable(["a sim b"], RETAINED, RELATIONS)


def test_shortest_path_within_is_bounded_and_shortest():
    graph = retained_graph([(0, "r", 1), (1, "r", 2), (2, "r", 3), (3, "r", 4), (0, "r", 5), (5, "r", 4)])
    assert shortest_path_within(graph, 0, 4, 2) == [0, 5, 4]          # not the 4-hop way round
    assert shortest_path_within(graph, 0, 3, 2) is None                # 3 hops either way round
    assert shortest_path_within(graph, 0, 3, 3) in ([0, 1, 2, 3], [0, 5, 4, 3])
    assert shortest_path_within(graph, 0, 1, 1) == [0, 1] and shortest_path_within(graph, 0, 9, 5) is None


def test_mirror_closure_follows_mirrors_of_mirrors():
    chain = MirrorRelations((MirrorPair("p", "q", 1.0, 5, 5), MirrorPair("q", "s", 1.0, 5, 5)))
    added = mirror_closure([("a", "p", "b")], [("b", "q", "a"), ("a", "s", "b"), ("b", "p", "a")], chain)
    assert list(added) == [("b", "q", "a"), ("a", "s", "b")]
    assert added[("a", "s", "b")][0] == ("b", "q", "a") and added[("a", "s", "b")][1].mirror == "s"
    assert mirror_closure([("a", "p", "b")], [("b", "p", "a")], chain) == {}


# A KG folder: "sim" symmetric on 3 pairs (6 triples, default thresholds), "up" a chain.
KG_TRAIN = [("e0", "sim", "e1"), ("e1", "sim", "e0"), ("e2", "sim", "e3"), ("e3", "sim", "e2"),
            ("e4", "sim", "e5"), ("e5", "sim", "e4"), ("e0", "up", "e2"), ("e2", "up", "e4"), ("e3", "up", "e4"),
            ("e4", "up", "e6"), ("e1", "up", "e3"), ("e5", "up", "e7")]


def write_mirror_kg(folder):
    """A 8-entity KG with a symmetric relation (also used by tests/test_api.py and tests/test_cli.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", KG_TRAIN), ("valid", [("e1", "up", "e5")]),
                       ("test", [("e0", "up", "e4"), ("e3", "up", "e6")])):
        (folder / f"{name}.txt").write_text("".join("\t".join(r) + "\n" for r in rows))
    kinds = ["a bird", "a tree", "a stone", "a river"]
    (folder / "entity2text.txt").write_text("".join(f"e{i}\tentity {i}, {kinds[i % 4]} of the mirror graph\n"
                                                    for i in range(8)))
    return folder


def train_mirror_kg(root, *, calibration_fraction: float = 0.0, calibration_seed: int = 0):
    """A tiny KG model trained on :func:`write_mirror_kg`'s graph under ``root`` (``root/kg``, ``root/orig``).
    ``calibration_fraction=0.25, calibration_seed=4`` holds out ``e2 sim e3``, whose mirror stays trained."""
    from graphdel import api
    from graphdel.models.joint import ModelConfig
    from graphdel.training.loop import TrainConfig

    folder = write_mirror_kg(root / "kg")
    return api.train(api.DataConfig(source=f"kg:{folder}", calibration_fraction=calibration_fraction,
                                    calibration_seed=calibration_seed),
                     TrainConfig(epochs=2, batch_size=8, device="cpu"),
                     ModelConfig(embed_dim=16, fusion_dim=16, fusion_heads=2,
                                 extra={"dim": 16, "gnn_layers": 1, "gnn_dropout": 0.0}),
                     out=root / "orig", progress=False)


#: e0 sim e1 is mirrored, e2 up e4 has the path e2 - e3 - e4, e4 up e6 is 3 hops away (e4 - e5 - e7 ... e6).
REQUEST = ["e0 sim e1", "e2 up e4", "e4 up e6"]


@pytest.fixture
def view(tmp_path):
    return with_triple_pairs(load_kg(write_mirror_kg(tmp_path / "kg")))


def test_audit_and_close_a_request(view, tmp_path):
    train = view.rows("train")
    req = dataclasses.replace(DeletionRequest.from_ids(view, REQUEST, by="triple"), seed=7)  # a seed to keep
    df = req.rows(view)
    rest = [r for r in train if r not in df]
    audit = audit_request(view, df, rest)
    assert [p.to_json() for p in audit.relations.pairs] == [
        {"relation": "sim", "mirror": "sim", "share": 1.0, "mirrored": 6, "triples": 6}]
    assert {f.triple: f.kind for f in audit.facts} == {("e0", "sim", "e1"): MIRRORED, ("e2", "up", "e4"): PATH,
                                                        ("e4", "up", "e6"): NOT_INFERABLE}
    closed = close_request(view, req, rest, audit.relations, allowed_rows=train)
    assert closed.pair_ids == ("tri:e0|sim|e1", "tri:e1|sim|e0", "tri:e2|up|e4", "tri:e4|up|e6")
    assert closed.by == "triple" and closed.selected == tuple(REQUEST) and closed.seed == 7
    assert closed.added == ({"pair_id": "tri:e1|sim|e0", "reason": "mirror of tri:e0|sim|e1: 100.0% of the sim "
                             "triples are stated back by sim", "of": "tri:e0|sim|e1", "relation": "sim",
                             "mirror_relation": "sim", "share": 1.0},)
    assert closed.description.endswith("; plus 1 retained mirror triple stating the same fact backwards (closure)")
    # saved and read back, the record stays; closing again adds nothing and keeps it
    closed.save(tmp_path / "closed.json", view)
    saved = json.loads((tmp_path / "closed.json").read_text())
    assert saved["added"] == [dict(closed.added[0])] and saved["count"] == 4
    again = DeletionRequest.from_file(view, tmp_path / "closed.json")
    assert again.added == closed.added and again.pair_ids == closed.pair_ids
    rest2 = [r for r in train if r not in closed.rows(view)]
    assert close_request(view, again, rest2, audit.relations, allowed_rows=train) is again
    # a request nothing was added to is saved as before, without "added"
    assert "added" not in req.to_json(view)
    # the records of an earlier extension come first and stay
    earlier = {"pair_id": "tri:e2|sim|e3", "reason": "asked for later"}
    grown = DeletionRequest.from_ids(view, [*REQUEST, "e2 sim e3"], by="triple")
    grown = dataclasses.replace(grown, added=(earlier,))
    rest3 = [r for r in train if r not in grown.rows(view)]
    closed3 = close_request(view, grown, rest3, audit.relations, allowed_rows=train)
    assert [a["pair_id"] for a in closed3.added] == ["tri:e2|sim|e3", "tri:e1|sim|e0", "tri:e3|sim|e2"]


def test_mirror_rows_are_the_retained_triples_stating_them_backwards(view):
    # e0 sim e1 and e2 sim e3 are stated back by e1 sim e0 and e3 sim e2; "up" has no mirror relation
    rows = [view.index_of(p) for p in ("tri:e0|sim|e1", "tri:e2|sim|e3", "tri:e2|up|e4")]
    rest = [r for r in view.rows("train") if r not in rows]
    assert [view.pair_ids[r] for r in mirror_rows(view, rows, rest)] == ["tri:e1|sim|e0", "tri:e3|sim|e2"]
    # only among the rows given: a mirror outside them is not found (the relations learned on the whole
    # graph: without e1 sim e0, "sim" keeps 4 mirrored triples, under the support of 5)
    relations = learn_mirror_relations(KG_TRAIN)
    assert mirror_rows(view, rows, [r for r in rest if view.pair_ids[r] != "tri:e1|sim|e0"], relations) == \
        [view.index_of("tri:e3|sim|e2")]
    assert mirror_rows(view, [view.index_of("tri:e2|up|e4")], rest) == []


def test_audit_and_close_records_before_and_after(view):
    req = DeletionRequest.from_ids(view, REQUEST, by="triple")
    same, record = audit_and_close(view, req, view.rows("train"))
    assert same is req and record["counts"] == {MIRRORED: 1, PATH: 1, NOT_INFERABLE: 1} and "closure" not in record
    closed, record = audit_and_close(view, req, view.rows("train"), close=True)
    assert len(closed) == 4 and record["counts"] == {MIRRORED: 1, PATH: 1, NOT_INFERABLE: 1}
    # after the closure e0 - e1 is gone both ways (e0 - e2 - e3 - e1 is 3 hops): nothing stays mirrored
    assert record["closure"] == {"added": 1, "counts": {MIRRORED: 0, PATH: 1, NOT_INFERABLE: 3},
                                 "inferable_share": 0.25}
    assert record["seconds"] >= 0
    # an entity's description only: no triple, nothing to record
    desc = DeletionRequest.from_ids(view, ["ent:e7"], by="pair")
    assert audit_and_close(view, desc, view.rows("train"), close=True) == (desc, None)


def test_added_records_are_checked(view, tmp_path):
    req = DeletionRequest.from_ids(view, REQUEST, by="triple")
    with pytest.raises(RequestError, match="added record 0 names pair 'tri:e1|sim|e0', which the request"):
        DeletionRequest(req.pair_ids, req.by, None, "x", req.source_hash,
                        added=({"pair_id": "tri:e1|sim|e0", "reason": "mirror"},))
    with pytest.raises(RequestError, match="added record 0 must hold a string pair_id and reason"):
        DeletionRequest(req.pair_ids, req.by, None, "x", req.source_hash, added=({"pair_id": "tri:e0|sim|e1"},))
    saved = req.to_json(view)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**saved, "added": [{"pair_id": "tri:e7|up|e0", "reason": "?"}]}))
    with pytest.raises(InvalidInputError, match="bad.json: malformed deletion request: added record 0 names"):
        DeletionRequest.load(path)
    path.write_text(json.dumps({**saved, "added": "tri:e0|sim|e1"}))
    with pytest.raises(InvalidInputError, match="'added' must be a list of objects"):
        DeletionRequest.load(path)
