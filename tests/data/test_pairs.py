import torch

from graphdel.api import prepare, quick_configs


def test_sample_texts_draws_the_pairs_sample_draws_without_their_items(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    pairs = prepare(data_cfg, model_cfg, progress=False).data.subset(range(2, 12))
    whole = pairs.sample(5, torch.Generator().manual_seed(3))
    texts = pairs.sample_texts(5, torch.Generator().manual_seed(3))
    assert texts.x is None and whole.x is not None
    assert texts.rows.tolist() == whole.rows.tolist() and texts.items.tolist() == whole.items.tolist()
    assert torch.equal(texts.text.hidden, whole.text.hidden) and torch.equal(texts.text.mask, whole.text.mask)
    assert texts.to("cpu").x is None  # a texts-only batch moves like any other
