"""The KG joint model on a 10-entity hand-made KG: protocol, graph state, deletion from message passing."""

import ast
import json
from pathlib import Path

import pytest
import torch

import graphdel.api as api
from graphdel.data.kg_pairs import triples_of
from graphdel.distributed import ShardedSampler
from graphdel.encoders.relational import add_inverse_edges
from graphdel.models.joint import ModelConfig
from graphdel.models.kg import KGText, KGTextModel
from graphdel.runs import Run
from graphdel.training.loop import TrainConfig
from tests.data.test_kg_view import write_tiny_kg


def small_model_config():
    return ModelConfig(embed_dim=16, fusion_dim=16, fusion_heads=2,
                       extra={"dim": 16, "gnn_layers": 1, "gnn_dropout": 0.0})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("kgmodel")
    folder = write_tiny_kg(root / "kg")
    run = api.train(api.DataConfig(source=f"kg:{folder}", calibration_fraction=0.0),
                    TrainConfig(epochs=2, batch_size=8, device="cpu"), small_model_config(), out=root / "orig",
                    progress=False)
    return root, run


def graph_set(model):
    return {tuple(t) for t in model.graph.triples.tolist()}


def idx(model_run, h, r, t):
    store = api.load_run_data(model_run, progress=False).data.items
    e, rel = {x: i for i, x in enumerate(store.entities)}, {x: i for i, x in enumerate(store.relations)}
    return (e[h], rel[r], e[t])


def test_trained_model_metrics_and_graph(trained):
    _, run = trained
    assert isinstance(run.model, KGTextModel)
    assert len(graph_set(run.model)) == 12                              # every training triple, no val/test
    lp = run.metrics["splits"]["test"]["lp"]
    assert set(lp) == {"mrr", "hits@1", "hits@3", "hits@10", "n"} and lp["n"] == 4
    assert 0 < lp["mrr"] <= 1


def test_protocol_shapes_and_fused_interaction_is_the_triple_score(trained):
    _, run = trained
    prepared = api.load_run_data(run, progress=False)
    model = run.model.eval()
    rows = [prepared.corpus.index_of("tri:e0|likes|e1"), prepared.corpus.index_of("ent:e3")]
    batch = prepared.data.batch(torch.tensor(rows))
    assert batch.x.tolist()[1][1] == model.described_by and isinstance(batch.text, KGText)
    with torch.no_grad():
        zx, zt, fused = model.encode_x(batch.x), model.encode_text(batch.text), model.fuse(batch.x, batch.text)
        score = model.score_triples(torch.stack([batch.x[:, 0], batch.x[:, 1], batch.text.entity], 1))
    assert zx.shape == zt.shape == (2, 16) and fused.shape == (2, 16 + 16)
    assert torch.allclose(fused[0, 16:].sum(), score[0], atol=1e-5)
    # the declared parts: the fusion module's 16 dims, then the 16 of the DistMult interaction
    assert model.fused_parts() == (16, 16)
    perm = torch.tensor([1, 0])
    assert batch.text.select(perm).entity.tolist() == batch.text.entity[perm].tolist()
    with torch.no_grad():  # pairs: row 0's triple with row 1's description, then each row with its own
        pairs = torch.tensor([[0, 1], [1, 1], [0, 0]])
        crossed = model.fuse(batch.x, batch.text, pairs)
        alone = model.fuse(batch.x[:1], batch.text.select(torch.tensor([1])))
    assert torch.allclose(crossed[0], alone[0], atol=1e-6)
    assert torch.allclose(crossed[1:], fused[[1, 0]], atol=1e-6)


@pytest.mark.parametrize("method", ["multidelete", "gnndelete", "retrain"])
def test_deleted_triple_leaves_the_graph_and_message_passing(trained, method):
    root, run = trained
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    out = api.forget(run, req, method=method, out=root / f"f-{method}", progress=False,
                     overrides=None if method == "retrain" else ["epochs=1", "batch_size=2"])
    deleted = idx(run, "e0", "likes", "e1")
    for model in (out.model, Run.load(out.path).model):                 # in memory and reloaded
        assert deleted not in graph_set(model) and len(graph_set(model)) == 11
        ei, et = model.edges()
        h, r, t = deleted
        assert not ((ei[0] == h) & (ei[1] == t) & (et == r)).any()
        assert not ((ei[0] == t) & (ei[1] == h) & (et == r + model.num_relations)).any()
        # the states are exactly those of the encoder run on the retained graph
        model.eval()
        with torch.no_grad():
            keep = torch.tensor([list(x) for x in sorted(graph_set(run.model) - {deleted})])
            ref, _ = model.encoder(*add_inverse_edges(keep, model.num_relations), model.entity_text,
                                   model.deletion)
            assert torch.allclose(model.entity_states()[0], ref, atol=1e-6)
    assert deleted in graph_set(run.model)                                # the original is untouched
    assert "lp" in out.metrics["splits"]["forget"]


def test_facts_hidden_leave_the_graph_for_the_block_only(trained):
    import copy

    _, run = trained
    model = copy.deepcopy(run.model).eval()
    prepared = api.load_run_data(run, progress=False)
    hidden = prepared.data.subset([prepared.corpus.index_of("tri:e0|likes|e1")], "hidden")
    before = graph_set(model)
    with torch.no_grad():
        states = model.entity_states()[0].clone()
        with model.facts_hidden(hidden):
            assert graph_set(model) == before - {idx(run, "e0", "likes", "e1")}
            inside = model.entity_states()[0].clone()       # message passing without the hidden edge
        assert graph_set(model) == before
        assert torch.equal(model.entity_states()[0], states) and not torch.allclose(inside, states)
        with pytest.raises(RuntimeError, match="inside"), model.facts_hidden(hidden):
            raise RuntimeError("inside")
        assert graph_set(model) == before                   # restored on an error too
        with model.facts_hidden(None):
            assert graph_set(model) == before


def test_entity_request_removes_all_its_edges(trained):
    root, run = trained
    req = api.make_request(run, ids=["e0"], by="entity")
    out = api.forget(run, req, method="retrain", out=root / "f-entity", progress=False)
    e0 = idx(run, "e0", "likes", "e1")[0]
    assert all(e0 not in (h, t) for h, _, t in graph_set(out.model))
    assert len(graph_set(out.model)) == 9
    # its description is gone from the entity features (Retrain never had it), the others are kept
    assert not out.model.entity_text[e0].any() and run.model.entity_text[e0].any()
    others = [i for i in range(out.model.num_entities) if i != e0]
    assert torch.equal(out.model.entity_text[others], run.model.entity_text[others])


def test_entity_descriptions_enter_the_encoder_and_multidelete_erases_them(trained):
    root, run = trained
    req = api.make_request(run, ids=["e0"], by="entity")
    out = api.forget(run, req, method="multidelete", out=root / "f-entity-md", progress=False,
                     overrides=["epochs=1", "batch_size=2"])
    e0 = idx(run, "e0", "likes", "e1")[0]
    assert not out.model.entity_text[e0].any() and not Run.load(out.path).model.entity_text[e0].any()
    # the original's entity states depend on the description features
    model = run.model.eval()
    with torch.no_grad():
        with_text = model.encoder(*model.edges(), model.entity_text)[0]
        without = model.encoder(*model.edges(), torch.zeros_like(model.entity_text))[0]
    assert not torch.allclose(with_text, without)


def test_forget_metrics_have_collateral_and_auroc(trained):
    root, run = trained
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    out = api.forget(run, req, method="retrain", out=root / "f-collateral", progress=False)
    splits = out.metrics["splits"]
    # Df-vs-Dr convention (Df 0, Dr 1): the share of (retained, deleted) triple pairs with the retained one
    # scored higher, over the triples `forget` evaluated: Df (one triple) and its |Df|-pair Dr sample
    prepared = api.load_run_data(run, progress=False)
    sets = api.evaluation_sets(prepared, req.rows(prepared.corpus), seed=0)
    model = out.model.eval()
    with torch.no_grad():
        s_df = model.score_triples(triples_of(sets["forget"], model.num_relations))
        s_dr = model.score_triples(triples_of(sets["retain"], model.num_relations))
    assert s_df.numel() == 1 and s_dr.numel() == 1 and s_df != s_dr     # no tie: the value is 0 or 1
    assert splits["forget"]["lp"]["auroc_vs_retain"] == (1.0 if s_dr > s_df else 0.0)
    # 1 hop: retained training triples touching e0 or e1; 2 hops: a superset
    e0, _, e1 = idx(run, "e0", "likes", "e1")
    touching = [t for t in graph_set(out.model) if {t[0], t[2]} & {e0, e1}]
    assert splits["collateral@1"]["lp"]["n"] == 2 * len(touching)      # both directions
    assert splits["collateral@2"]["lp"]["n"] >= splits["collateral@1"]["lp"]["n"]


def test_multidelete_takes_the_kg_recommendation_and_the_caller_overrides_it(trained):
    root, run = trained
    assert api.with_model_defaults(run.model, "multidelete", None) == ["batch_size=128", "epochs=2", "lr=0.003",
                                                                       "min_epochs=0", "distance=part_mse",
                                                                       "near_weight=1.0", "link_weight=1.0",
                                                                       "trainable=encoder.entity",
                                                                       "select_rule=sum", "eval_steps=4",
                                                                       "min_steps=24"]
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    out = api.forget(run, req, method="multidelete", overrides=["epochs=1"], out=root / "f-defaults", progress=False)
    cfg = out.config["method_config"]
    assert (cfg["batch_size"], cfg["epochs"], cfg["lr"], cfg["dropout"], cfg["min_epochs"]) == (128, 1, 3e-3, False, 0)
    assert cfg["distance"] == "part_mse"


def test_engine_has_no_kg_specific_code():
    engine = Path(api.__file__).parent / "unlearning"
    for path in engine.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(".kg" in n or n.endswith("kg") for n in names), (path, names)
            name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else "")
            low = name.lower()
            assert not any(w in low for w in ("kg", "triple", "relation", "entity")), (path, name)


def test_an_unseen_names_only_kg_folder_trains_forgets_and_evaluates_by_cli(tmp_path):
    """A WN18RR-layout folder without entity2text.txt: the entity names become the texts, unchanged code."""
    import json

    from graphdel.cli import main

    folder = tmp_path / "names_only"
    folder.mkdir()
    animals = ["dog_n_01", "cat_n_01", "wolf_n_01", "lion_n_01", "canine_n_02", "feline_n_01",
               "carnivore_n_01", "mammal_n_01", "pet_n_01", "pack_n_06"]
    train = [(0, "_hypernym", 4), (2, "_hypernym", 4), (1, "_hypernym", 5), (3, "_hypernym", 5),
             (4, "_hypernym", 6), (5, "_hypernym", 6), (6, "_hypernym", 7), (0, "_similar_to", 8),
             (1, "_similar_to", 8), (2, "_member_of", 9), (3, "_member_of", 9), (8, "_hypernym", 7)]
    for name, rows in (("train", train), ("valid", [(0, "_hypernym", 6)]), ("test", [(1, "_hypernym", 6)])):
        (folder / f"{name}.txt").write_text("".join(f"{animals[h]}\t{r}\t{animals[t]}\n" for h, r, t in rows))
    run, forgotten, report = tmp_path / "run", tmp_path / "forgot", tmp_path / "eval.json"
    assert main(["train", "--data", f"kg:{folder}", "--out", str(run), "--quick", "--epochs", "1"]) == 0
    ids = tmp_path / "ids.txt"
    ids.write_text("tri:wolf_n_01|_member_of|pack_n_06\n")
    assert main(["forget", "--model", str(run), "--forget", str(ids), "--by", "triple", "--method", "multidelete",
                 "--set", "epochs=1", "--set", "batch_size=2", "--out", str(forgotten)]) == 0
    assert main(["evaluate", "--model", str(forgotten), "--forget", str(forgotten / "request.json"),
                 "--out", str(report)]) == 0
    loaded = Run.load(forgotten)
    texts = api.load_run_data(loaded, progress=False).corpus.texts
    assert "dog n 01" in texts                                          # underscores became spaces
    store = api.load_run_data(loaded, progress=False).data.items
    e = {x: i for i, x in enumerate(store.entities)}
    r = {x: i for i, x in enumerate(store.relations)}
    assert (e["wolf_n_01"], r["_member_of"], e["pack_n_06"]) not in graph_set(loaded.model)
    metrics = json.loads(report.read_text())
    assert "lp" in json.dumps(metrics)


def _forgotten_copy(run, ids, by):
    import copy

    prepared = api.load_run_data(run, progress=False)
    req = api.make_request(run, ids=ids, by=by, prepared=prepared)
    model = copy.deepcopy(run.model)
    removed = model.forget_structure(prepared.data.subset(req.rows(prepared.corpus), "forget"))
    return model, removed


def _seeded_row(table, row):
    std = (2.0 / (table.shape[0] + table.shape[1])) ** 0.5
    return torch.randn(table.shape[1], generator=torch.Generator().manual_seed(row)) * std


def test_a_deleted_relation_and_entity_get_embeddings_retrain_never_trained(trained):
    _, run = trained
    rel, ent = run.model.encoder.relation.weight, run.model.encoder.entity.weight
    R = run.model.num_relations
    # a whole relation: both its directions re-drawn from the initial distribution, nothing else moves
    model, removed = _forgotten_copy(run, ["part_of"], "relation")
    r = idx(run, "e3", "part_of", "e4")[1]
    new = model.encoder.relation.weight.detach()
    assert removed == 6                                           # every part_of triple left the graph
    assert torch.allclose(new[r], _seeded_row(new, r)) and torch.allclose(new[r + R], _seeded_row(new, r + R))
    others = [i for i in range(new.shape[0]) if i not in (r, r + R)]
    assert torch.equal(new[others], rel.detach()[others])
    assert torch.equal(model.encoder.entity.weight, ent)
    # an entity: its row re-drawn once its last triple and its description are gone
    model, _ = _forgotten_copy(run, ["e0"], "entity")
    e0 = idx(run, "e0", "likes", "e1")[0]
    new = model.encoder.entity.weight.detach()
    assert torch.allclose(new[e0], _seeded_row(new, e0)) and not torch.allclose(new[e0], ent.detach()[e0])
    assert torch.equal(new[[i for i in range(new.shape[0]) if i != e0]], ent.detach()[[i for i in range(new.shape[0]) if i != e0]])
    # one triple of a relation that keeps others: no embedding moves
    model, removed = _forgotten_copy(run, ["tri:e0|likes|e1"], "triple")
    assert removed == 1
    assert torch.equal(model.encoder.relation.weight, rel) and torch.equal(model.encoder.entity.weight, ent)


def test_retain_neighbourhood_is_the_retained_triples_sharing_an_entity_with_a_deleted_one(trained):
    _, run = trained
    prepared = api.load_run_data(run, progress=False)
    corpus = prepared.corpus
    forget_rows = [corpus.index_of("tri:e0|likes|e1")]
    retain_rows = [r for r in prepared.trained_rows() if r not in forget_rows]
    near = run.model.retain_neighbourhood(prepared.data.subset(forget_rows, "forget"),
                                          prepared.data.subset(retain_rows, "retain"))
    ids = sorted(corpus.pair_ids[r] for r in near.rows.tolist())
    # every other training triple with e0 or e1 at either end; no entity-description pair
    assert ids == ["tri:e0|part_of|e5", "tri:e1|likes|e2", "tri:e9|likes|e0"]
    # a sampler that is not a pair set (a data-parallel shard holds part of the retained set): none
    shard = ShardedSampler(prepared.data.subset(retain_rows, "retain"), rank=0, world_size=2)
    assert run.model.retain_neighbourhood(prepared.data.subset(forget_rows, "forget"), shard) is None


def test_multidelete_holds_the_neighbourhood_with_a_second_retention_term(trained):
    root, run = trained
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    out = api.forget(run, req, method="multidelete", overrides=["epochs=1", "min_epochs=1"],
                     out=root / "f-near", progress=False)
    log = json.loads((out.path / "log.json").read_text())
    assert [r["pairs"] for r in log if r.get("phase") == "near"] == [3]
    updates = [r for r in log if r.get("phase") == "update"]
    assert updates and all("mkr_near" in r for r in updates)


def test_link_scores_are_the_distmult_logits_of_both_directions_and_of_random_tails(trained):
    _, run = trained
    prepared = api.load_run_data(run, progress=False)
    model, corpus = run.model.eval(), prepared.corpus
    rows = [corpus.index_of("tri:e0|likes|e1"), corpus.index_of("ent:e3"), corpus.index_of("tri:e3|part_of|e4")]
    batch = prepared.data.batch(torch.tensor(rows))
    with torch.no_grad():
        pairs, scores, corrupted = model.link_scores(batch, 5, torch.Generator().manual_seed(0))
    R = model.num_relations
    (h1, r1, t1), (h2, r2, t2) = idx(run, "e0", "likes", "e1"), idx(run, "e3", "part_of", "e4")
    queries = [(h1, r1), (h2, r2), (t1, r1 + R), (t2, r2 + R)]   # tails first, then heads; the entity pair skipped
    assert pairs.tolist() == [0, 2, 0, 2]
    with torch.no_grad():
        assert torch.allclose(scores, model.score_triples(torch.tensor([(h1, r1, t1), (h2, r2, t2),
                                                                        (t1, r1 + R, h1), (t2, r2 + R, h2)])))
        drawn = torch.randint(model.num_entities, (5,), generator=torch.Generator().manual_seed(0))
        expected = torch.stack([model.score_triples(torch.tensor([(q, r, e) for e in drawn.tolist()]))
                                for q, r in queries])
    assert corrupted.shape == (4, 5) and torch.allclose(corrupted, expected)


def test_the_link_term_lowers_the_deleted_triples_decoder_score(trained):
    root, run = trained
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    common = ["lr=0.05", "epochs=5", "min_epochs=5", "selection=last", "min_steps=0"]  # 5 steps, the last kept
    runs = {w: api.forget(run, req, method="multidelete", overrides=common + [f"link_weight={w}"],
                          out=root / f"f-link-{w}", progress=False) for w in (0, 1)}
    log = json.loads((runs[1].path / "log.json").read_text())
    link = [r for r in log if r.get("phase") == "link"]
    assert len(link) == 1 and link[0]["pairs"] == 1 and link[0]["margin_mean"] > link[0]["target_mean"]
    hinge = [r["link"] for r in log if r.get("phase") == "update"]
    assert len(hinge) == 5 and all(a > b for a, b in zip(hinge, hinge[1:]))   # the margin comes down every step
    deleted = torch.tensor([idx(run, "e0", "likes", "e1")])
    with torch.no_grad():
        score = {w: float(r.model.eval().score_triples(deleted)) for w, r in runs.items()}
    assert score[1] < score[0] - 0.1


def test_step_states_run_the_graph_once_per_step_and_leave_multidelete_unchanged(trained, monkeypatch):
    from graphdel.models.protocol import ModalityModule

    root, run = trained
    passes = []
    original_forward = type(run.model.encoder).forward
    monkeypatch.setattr(type(run.model.encoder), "forward",
                        lambda self, *a, **k: passes.append(torch.is_grad_enabled()) or original_forward(self, *a, **k))
    req = api.make_request(run, ids=["e0 likes e1"], by="triple")
    # SGD: Adam turns float-order noise (one backward through the states, or one per term) into full steps
    overrides = ["epochs=2", "optimizer=sgd", "lr=0.05"]
    shared = api.forget(run, req, method="multidelete", overrides=overrides, out=root / "f-step-states", progress=False)
    with_memo = sum(passes)
    passes.clear()
    monkeypatch.setattr(KGTextModel, "step_states", ModalityModule.step_states)
    apart = api.forget(run, req, method="multidelete", overrides=overrides, out=root / "f-step-apart", progress=False)
    steps = sum(1 for r in shared.log if r.get("phase") == "update")
    assert steps >= 2 and with_memo == steps                 # one pass with gradients per step, all terms
    assert sum(passes) >= 3 * steps                          # L_MD, L_MKR, the neighbourhood and link terms
    a, b = shared.model.state_dict(), apart.model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
