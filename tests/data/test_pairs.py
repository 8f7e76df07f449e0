import torch

from graphdel.api import prepare, quick_configs
from graphdel.models.registry import build_model


def test_sample_texts_draws_the_pairs_sample_draws_without_their_items(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    pairs = prepare(data_cfg, model_cfg, progress=False).data.subset(range(2, 12))
    whole = pairs.sample(5, torch.Generator().manual_seed(3))
    texts = pairs.sample_texts(5, torch.Generator().manual_seed(3))
    assert texts.x is None and whole.x is not None
    assert texts.rows.tolist() == whole.rows.tolist() and texts.items.tolist() == whole.items.tolist()
    # the pooled states alone: texts without items are encoded, never fused
    assert whole.text.pooled is not None and torch.equal(texts.text.pooled, whole.text.pooled)
    assert texts.text.hidden.shape == (5, 0, whole.text.hidden.size(2)) and texts.text.mask.shape == (5, 0)
    model = build_model(model_cfg).eval()
    assert torch.equal(model.encode_text(texts.text), model.encode_text(whole.text))
    assert texts.to("cpu").x is None  # a texts-only batch moves like any other


def test_item_properties_are_computed_once_per_item_and_corpus(tiny_csv, monkeypatch):
    import copy

    import numpy as np

    from graphdel.data import molecules
    from graphdel.data.pairs import item_properties
    from graphdel.data.sources import load_dataset

    corpus = load_dataset(f"csv:{tiny_csv}")
    ids = corpus.item_list()
    direct = molecules.molecule_item_properties(corpus, ids[2:9])
    asked: list[list[str]] = []
    real = molecules.molecular_properties
    monkeypatch.setattr(molecules, "molecular_properties",
                        lambda smiles: asked.append(list(smiles)) or real(smiles))
    item_properties(corpus, ids[2:6])
    got = item_properties(corpus, ids[2:9])
    assert [len(a) for a in asked] == [4, 3]  # the second call computes only the three new molecules
    assert sorted(got) == sorted(direct)
    for name, (values, kind) in direct.items():
        assert got[name][1] == kind and got[name][0].dtype == values.dtype
        assert np.array_equal(got[name][0], values)
    item_properties(copy.copy(corpus), ids[2:4])  # another corpus object is computed afresh
    assert [len(a) for a in asked] == [4, 3, 2]


def test_a_set_without_tokens_draws_the_same_pairs_with_their_items_and_pooled_states_alone(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    pairs = prepare(data_cfg, model_cfg, progress=False).data.subset(range(2, 12), "train")
    bare = pairs.without_tokens()
    assert bare.name == "train" and bare.rows.tolist() == pairs.rows.tolist() and pairs.tokens
    whole, part = (s.sample(5, torch.Generator().manual_seed(3)) for s in (pairs, bare))
    assert part.rows.tolist() == whole.rows.tolist() and torch.equal(part.x.x, whole.x.x)
    assert torch.equal(part.text.pooled, whole.text.pooled) and part.text.hidden.shape[:2] == (5, 0)
    passes = [[b.rows.tolist() for b in s.batches(4, shuffle=True,
                                                   generator=torch.Generator().manual_seed(1))]
              for s in (pairs, bare)]
    assert passes[0] == passes[1] and all(b.text.mask.shape[1] == 0 for b in bare.batches(4))
