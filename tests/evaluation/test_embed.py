import torch

from graphdel.evaluation import suite_model
from graphdel.evaluation.embed import embed_pairs, gathered_embeddings
from graphdel.evaluation.retrieval import PairEmbeddings


def _emb(rows, offset=0.0):
    rows = torch.tensor(rows)
    z = torch.arange(2 * len(rows), dtype=torch.float32).reshape(-1, 2) + offset
    return PairEmbeddings(z, -z, rows // 2, rows)


def test_gathered_embeddings_take_each_row_from_the_sets_that_hold_it():
    a, b = _emb([10, 11, 12]), _emb([20, 11], offset=100.0)
    got = gathered_embeddings([a, b], torch.tensor([20, 11, 10]))
    assert got.rows.tolist() == [20, 11, 10] and got.items.tolist() == [10, 5, 5]
    assert got.z_x.tolist() == [[100.0, 101.0], [2.0, 3.0], [0.0, 1.0]]  # row 11 from the first set holding it
    assert torch.equal(got.z_t, -got.z_x) and got.match_prob is None
    assert gathered_embeddings([a, b], torch.tensor([10, 99])) is None  # a row no set holds
    texts_alone = PairEmbeddings(None, a.z_t, a.items, a.rows)
    assert gathered_embeddings([texts_alone], torch.tensor([10])) is None


def test_retrieval_metrics_gather_the_distractors_and_score_as_when_embedding_them(tiny_runs, monkeypatch):
    original, prepared, request, _ = tiny_runs
    sets = {n: s for n, s in prepared.sets().items() if n != "train"}
    distractors = prepared.distractors()
    gathered = suite_model.retrieval_metrics(original.model, sets, distractors)
    embedded = suite_model.retrieval_metrics(original.model, sets, embed_pairs(original.model, distractors))
    assert gathered == embedded
    calls = []
    real = suite_model.embed_pairs
    monkeypatch.setattr(suite_model, "embed_pairs", lambda model, pairs, **k: calls.append(pairs.name)
                        or real(model, pairs, **k))
    suite_model.retrieval_metrics(original.model, sets, distractors)
    assert "distractors" not in calls and sorted(calls) == sorted(sets)  # every distractor was in the sets
    suite_model.retrieval_metrics(original.model, {"test": sets["test"]}, distractors)
    assert calls[-1] == "distractors"  # none of them is a test pair: embedded
