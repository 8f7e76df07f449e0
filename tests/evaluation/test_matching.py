"""The matching-head metrics: partners, balanced accuracy, and pool-k re-ranking wired to the right pairs."""

import numpy as np
import pytest
import torch
from torch import nn

from graphdel.api import prepare, quick_configs
from graphdel.evaluation.embed import embed_pairs
from graphdel.evaluation.matching import (balanced_accuracy, matching_accuracies, matching_metrics,
                                          matching_partners, pool_rerank)
from graphdel.evaluation.retrieval import PairEmbeddings, Ranks, pool_candidate_scores
from graphdel.evaluation.suite import _derangement
from graphdel.models.joint import build_model
from graphdel.models.protocol import ModalityModule


def _aligned(n: int) -> torch.Tensor:
    """``[n, 2]``: item i with text i, what ``fuse`` reads without ``pairs``."""
    return torch.arange(n)[:, None].expand(n, 2)


class SimilarityHead(ModalityModule):
    """A model whose matching logit of (x, t) is ``sign`` times their cosine similarity: re-ranking by it is
    re-ranking by similarity (sign 1) or by its reverse (sign -1), so the expected ranks are known."""

    def __init__(self, model: nn.Module, sign: float) -> None:
        super().__init__()
        self.model, self.sign = model, sign

    def encode_x(self, x):
        return self.model.encode_x(x)

    def encode_text(self, text):
        return self.model.encode_text(text)

    def fuse(self, x, text, pairs=None):
        z_x, z_t = self.encode_x(x), self.encode_text(text)
        pairs = _aligned(z_x.size(0)) if pairs is None else pairs
        return self.sign * (z_x[pairs[:, 0]] * z_t[pairs[:, 1]]).sum(1, keepdim=True)

    def match_logits(self, fused):
        return fused.squeeze(-1)


@pytest.fixture
def tiny(tiny_csv):
    """``(model, prepared)``: an untrained quick-config molecule model and the 12-molecule corpus."""
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    torch.manual_seed(0)
    return build_model(model_cfg).eval(), prepare(data_cfg, model_cfg, progress=False)


def test_balanced_accuracy_hand_made():
    # true pairs: 2 of 4 at or above 0.5; false pairs: 3 of 4 below 0.5
    assert balanced_accuracy(np.array([0.5, 0.9, 0.1, 0.49]), np.array([0.2, 0.0, 0.5, 0.3])) == 0.5 * (0.5 + 0.75)


def test_partners_are_the_suites_random_ones_and_the_most_similar_text_of_another_item():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.8]]), dim=1)
    items = torch.tensor([0, 0, 1, 2])  # pairs 0 and 1 are two captions of one item
    emb = PairEmbeddings(z, z, items, torch.arange(4))
    random_j, hard_j = matching_partners(emb, seed=3)
    assert random_j.tolist() == _derangement(items.numpy(), 3).tolist()
    # pair 0's most similar text is pair 1's, but that is its own item's: the next one, pair 3's, is taken
    assert hard_j.tolist() == [3, 3, 3, 2]


def test_matching_accuracies_score_the_partners_of_matching_partners(tiny):
    model, prepared = tiny
    head = SimilarityHead(model, 1.0)
    pairs = prepared.sets()["train"]
    emb = embed_pairs(head, pairs, with_matching=True)
    sim = emb.z_x @ emb.z_t.t()
    random_j, hard_j = matching_partners(emb, seed=0)
    i = torch.arange(len(emb))
    out = matching_accuracies(head, pairs, emb, seed=0)
    assert out["match_bal_acc"] == pytest.approx(balanced_accuracy(torch.sigmoid(sim.diag()),
                                                                    torch.sigmoid(sim[i, random_j])))
    assert out["match_hard_bal_acc"] == pytest.approx(balanced_accuracy(torch.sigmoid(sim.diag()),
                                                                         torch.sigmoid(sim[i, hard_j])))


class OracleHead(SimilarityHead):
    """A model whose matching logit is +1 for a true pair and -1 for any other: it knows each batch's items
    (``x.item_index``) and recognises each text by its cached features. Re-ranked by it, a target anywhere in
    its top k comes first; fused with the wrong item or text, it does not."""

    def __init__(self, model: nn.Module, data) -> None:
        super().__init__(model, 1.0)
        self.texts = data.text.pooled  # [n_texts, H]
        self.text_item = torch.full((self.texts.size(0),), -1, dtype=torch.long)
        self.text_item[data.text_index] = data.item_index  # one item per text in the tiny corpus

    def fuse(self, x, text, pairs=None):
        which = torch.cdist(text.pooled.float(), self.texts.float()).argmin(1)
        pairs = _aligned(which.numel()) if pairs is None else pairs
        return torch.where(self.text_item[which[pairs[:, 1]]] == x.item_index[pairs[:, 0]], 1.0, -1.0)[:, None]


def test_rerank_by_a_perfect_head_puts_every_target_of_the_top_k_first(tiny):
    model, prepared = tiny
    # every pair of the corpus as distractors: pools of 12 (the run's distractor set gives pools of 3)
    pairs, distractors = prepared.sets()["train"], prepared.data.subset(range(len(prepared.data)))
    emb, d_emb = embed_pairs(model, pairs), embed_pairs(model, distractors)
    scores, _ = pool_candidate_scores(emb, d_emb, pool_size=64)
    plain = Ranks.of_scores(scores)
    assert scores.size(1) == 12 and bool((plain.tied == 0).all())  # no ties: the expected ranks are exact
    oracle = OracleHead(model, prepared.data)
    for top_k in (2, 4, 6, 12):
        out = pool_rerank(oracle, pairs, emb, distractors, d_emb, top_k=top_k)
        inside = plain.above < top_k
        assert out["g2t_acc"] == pytest.approx(float(inside.double().mean()))
        assert out["g2t_mrr"] == pytest.approx(float(torch.where(inside, 1.0, 1.0 / (plain.above + 1.0)).mean()))
        assert out["sim_g2t_acc"] == float((plain.above == 0).double().mean())
    assert 0 < float((plain.above < 4).double().mean()) < 1  # some targets inside the top 4, some outside


def test_rerank_by_similarity_changes_nothing_and_by_its_reverse_reverses_the_top_k(tiny):
    model, prepared = tiny
    pairs, distractors = prepared.sets()["train"], prepared.data.subset(range(len(prepared.data)))
    emb, d_emb = embed_pairs(model, pairs), embed_pairs(model, distractors)
    scores, _ = pool_candidate_scores(emb, d_emb, pool_size=64)
    above = Ranks.of_scores(scores).above.double()
    same = pool_rerank(SimilarityHead(model, 1.0), pairs, emb, distractors, d_emb, top_k=6)
    assert same["g2t_acc"] == same["sim_g2t_acc"] and same["g2t_mrr"] == pytest.approx(same["sim_g2t_mrr"])
    # reversed over the top k: a target inside it, `above` candidates above it, has the k - 1 - above
    # candidates of the top k below it above it after; a target outside keeps its rank. Any other text
    # fused with the query than the k - 1 most similar would give other ranks.
    for top_k in (4, 6):
        reverse = pool_rerank(SimilarityHead(model, -1.0), pairs, emb, distractors, d_emb, top_k=top_k)
        expected = torch.where(above < top_k, 1.0 / (top_k - above), 1.0 / (above + 1.0))
        assert reverse["g2t_mrr"] == pytest.approx(float(expected.mean()))


def test_a_perfect_head_has_balanced_accuracy_one(tiny):
    model, prepared = tiny
    pairs = prepared.sets()["train"]
    oracle = OracleHead(model, prepared.data)
    emb = embed_pairs(oracle, pairs, with_matching=True)
    assert matching_accuracies(oracle, pairs, emb) == {"match_bal_acc": 1.0, "match_hard_bal_acc": 1.0}


def test_matching_metrics_layout(tiny):
    model, prepared = tiny
    sets = prepared.sets()
    out = matching_metrics(model, {"val": sets["val"], "test": sets["test"], "empty": sets["train"].data.subset([])},
                           prepared.distractors(), top_k=2)
    assert set(out) == {"val", "test"}
    for entry in out.values():
        assert set(entry) == {"match_bal_acc", "match_hard_bal_acc", "rerank"}
        assert set(entry["rerank"]) == {"top_k", "k", "g2t_acc", "g2t_mrr", "sim_g2t_acc", "sim_g2t_mrr"}


class ScaledSimilarityHead(SimilarityHead):
    """:class:`SimilarityHead` whose logit is ``sign`` times the cosine and whose inverse temperature is
    ``scale``: BLIP's re-ranking score is then ``(scale + sign) * cosine``."""

    def __init__(self, model: nn.Module, sign: float, scale: float) -> None:
        super().__init__(model, sign)
        self.scale = scale

    def temperature_scale(self):
        return torch.tensor(self.scale)


def test_head_plus_similarity_adds_the_contrastive_logit_to_the_heads(tiny):
    model, prepared = tiny
    pairs, distractors = prepared.sets()["train"], prepared.data.subset(range(len(prepared.data)))
    emb, d_emb = embed_pairs(model, pairs), embed_pairs(model, distractors)
    above = Ranks.of_scores(pool_candidate_scores(emb, d_emb, pool_size=64)[0]).above.double()
    # a head reversing similarity, outweighed by the contrastive logit (scale 3 + sign -1 = 2 > 0): the
    # order of similarity, nothing moves; by the head alone the top k is reversed
    weak = ScaledSimilarityHead(model, -1.0, 3.0)
    both = pool_rerank(weak, pairs, emb, distractors, d_emb, top_k=4, score="head+similarity")
    assert both["g2t_mrr"] == pytest.approx(both["sim_g2t_mrr"])
    head = pool_rerank(weak, pairs, emb, distractors, d_emb, top_k=4)
    expected = torch.where(above < 4, 1.0 / (4 - above), 1.0 / (above + 1.0))
    assert head["g2t_mrr"] == pytest.approx(float(expected.mean()))
    # a head reversing it more strongly than the contrastive logit holds it (0.5 - 1 < 0): reversed again
    strong = pool_rerank(ScaledSimilarityHead(model, -1.0, 0.5), pairs, emb, distractors, d_emb, top_k=4,
                         score="head+similarity")
    assert strong["g2t_mrr"] == pytest.approx(float(expected.mean()))
    with pytest.raises(ValueError, match="re-ranking score 'sum'"):
        pool_rerank(weak, pairs, emb, distractors, d_emb, score="sum")


def test_a_model_declares_how_it_is_reranked(tiny):
    from graphdel.evaluation.matching import RERANK_SCORE, RERANK_TOP_K, rerank_settings
    from graphdel.models.joint import MoleculeTextModel

    model, _ = tiny
    assert isinstance(model, MoleculeTextModel) and rerank_settings(model) == ("head+similarity", 8)
    assert rerank_settings(SimilarityHead(model, 1.0)) == (RERANK_SCORE, RERANK_TOP_K) == ("head", 4)
