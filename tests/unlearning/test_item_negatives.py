"""Unrelated texts are of another *item*: with several captions per item (molecule/image), the item-aware
derangement, negative_texts, RandomPair and SalUn never pair a Df pair with a caption of its own item."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graphdel.distributed
from graphdel.errors import ConfigError
from graphdel.evaluation.suite import _derangement
from graphdel.models.protocol import BatchShard, PairBatch, TextFeatures
from graphdel.unlearning import UnlearningContext, unlearn
from graphdel.unlearning.losses import derangement, item_derangement, negative_texts

from .toy import H, T, X_DIM, ToyModel, ToySampler

N_ITEMS, CAPTIONS = 24, 2  # pairs 2k and 2k + 1 are two captions of item k


class MultiCaptionData:
    """Toy pairs with ``CAPTIONS`` texts per item: the pairs of an item share its x, each has its own text."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        n = N_ITEMS * CAPTIONS
        self.items = torch.arange(n) // CAPTIONS
        self.x = torch.randn(N_ITEMS, X_DIM, generator=g)[self.items]
        proj = torch.randn(X_DIM, T * H, generator=g) / math.sqrt(X_DIM)
        self.hidden = (self.x @ proj).view(n, T, H) + torch.randn(n, T, H, generator=g)
        self.mask = torch.ones(n, T, dtype=torch.bool)

    def batch(self, rows: torch.Tensor) -> PairBatch:
        rows = rows.long()
        return PairBatch(self.x[rows], TextFeatures(self.hidden[rows], self.mask[rows]), rows.clone(),
                         items=self.items[rows].clone())

    def text_items(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[b]`` the item whose caption each of ``hidden [b, T, H]`` is (texts are unique)."""
        same = (hidden[:, None] == self.hidden[None]).flatten(2).all(-1)  # [b, n]
        assert bool((same.sum(1) == 1).all())
        return self.items[same.float().argmax(1)]


@pytest.fixture(scope="module")
def mc():
    return MultiCaptionData()


# ------------------------------------------------------------------------------------------ the helper
def test_item_derangement_never_returns_a_pair_of_the_same_item():
    for seed in range(300):
        g = torch.Generator().manual_seed(seed)
        n = 2 + seed % 40
        items = torch.randint(0, 2 + seed % 5, (n,), generator=g)  # heavy repetition: 2 to 6 items
        if items.unique().numel() < 2:
            continue
        j = item_derangement(items, torch.Generator().manual_seed(seed))
        assert j.shape == (n,) and j.dtype == torch.long and 0 <= int(j.min()) and int(j.max()) < n
        assert bool((items[j] != items).all()), (items.tolist(), j.tolist())
        # seeded: the same draw for the same seed
        assert torch.equal(j, item_derangement(items, torch.Generator().manual_seed(seed)))


def test_with_one_pair_per_item_it_is_the_plain_derangement():
    """Data with one text per item draws exactly what it drew before items were read."""
    for seed in range(50):
        n = 2 + seed % 30
        items = torch.randperm(n, generator=torch.Generator().manual_seed(100 + seed)) * 7
        assert torch.equal(item_derangement(items, torch.Generator().manual_seed(seed)),
                           derangement(n, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("items", [[3], [5, 5], [1, 1, 1, 1]])
def test_item_derangement_needs_two_items(items):
    with pytest.raises(ValueError, match="at least 2 distinct items"):
        item_derangement(torch.tensor(items))


def test_the_suite_derangement_is_the_same_helper():
    items = np.array([0, 0, 1, 2, 2, 3, 3, 3])
    for seed in range(20):
        j = _derangement(items, seed)
        assert (items[j] != items).all()
        assert j.tolist() == item_derangement(torch.as_tensor(items), torch.Generator().manual_seed(seed)).tolist()
    assert _derangement(np.array([4, 4]), 0) is None


# ------------------------------------------------------------------------------------- negative_texts
def test_negative_texts_never_take_a_caption_of_the_pairs_item(mc):
    everything = ToySampler(mc, range(N_ITEMS * CAPTIONS))
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        df = everything.sample(4 + seed % 12, g)
        texts, idx = negative_texts(df, source="df", generator=g)
        assert torch.equal(texts.hidden, df.text.hidden[idx])
        assert bool((df.items[idx] != df.items).all())
        assert bool((mc.text_items(texts.hidden) != df.items).all())
        # Dr drawn from the same items (a request deleting one caption leaves the other in Dr)
        dr = everything.sample(len(df), g)
        texts, idx = negative_texts(df, source="dr", dr=dr, generator=g)
        assert bool((mc.text_items(texts.hidden) != df.items).all())


def test_a_df_batch_of_one_item_takes_its_unrelated_texts_from_dr(mc):
    one_item = mc.batch(torch.tensor([6, 7]))  # the two captions of item 3
    lone = mc.batch(torch.tensor([8]))
    dr = mc.batch(torch.tensor([9, 10, 11, 12, 13]))  # row 9 is the other caption of the lone pair's item
    for seed in range(30):
        for df in (one_item, lone):
            texts, idx = negative_texts(df, source="df", dr=dr, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(texts.hidden, dr.text.hidden[idx])
            assert bool((mc.text_items(texts.hidden) != df.items).all())
    with pytest.raises(ConfigError, match="fewer than 2 distinct items"):
        negative_texts(one_item, source="df")


def test_sharded_negative_texts_derange_the_global_batch_by_its_items(mc, monkeypatch):
    """Under torchrun every process deranges the *global* batch with the global items (gathered), as one
    process would; faked here with two shards of one global batch and the gather they would do."""
    rows = torch.tensor([0, 1, 2, 3, 4, 5, 20, 21])  # 4 items of 2 captions
    whole = mc.batch(rows)
    shards = []
    for rank in range(2):
        part = mc.batch(rows[4 * rank:4 * rank + 4])
        part.shard = BatchShard(rank, 2, 4 * rank, 8, fetch=lambda pos: mc.batch(rows[pos]))
        shards.append(part)
    monkeypatch.setattr(graphdel.distributed, "gather", lambda t: whole.items)  # only items are gathered here
    for seed in range(30):
        idx = torch.cat([negative_texts(s, source="df", generator=torch.Generator().manual_seed(seed))[1]
                         for s in shards])
        assert torch.equal(idx, item_derangement(whole.items, torch.Generator().manual_seed(seed)))
        assert bool((whole.items[idx] != whole.items).all())


# -------------------------------------------------------------------------------- RandomPair and SalUn
class SpyToy(ToyModel):
    """The toy model recording the texts of every batch its training loss is computed on."""

    seen: list[PairBatch] = []

    def training_loss(self, batch: PairBatch) -> torch.Tensor:
        SpyToy.seen.append(PairBatch(batch.x, TextFeatures(batch.text.hidden.detach().clone(), batch.text.mask),
                                     batch.rows.clone(), batch.items))
        return super().training_loss(batch)


@pytest.mark.parametrize("method,source,df_rows,dr_rows", [
    ("randompair", "df", range(0, 8), None),        # 4 items x 2 captions: derangement within Df
    ("randompair", "dr", range(0, 8), None),
    ("salun", "df", range(0, 8), None),
    ("salun", "dr", range(0, 8), None),
    ("randompair", "df", [0, 1], None),             # one item's two captions: random texts from Dr
    ("salun", "df", [2], None),                     # a lone caption; its item's other caption (3) is in Dr
    ("randompair", "dr", [0, 2, 4, 6], [1, 3, 5, 7, 8]),  # by-pair request: Dr is mostly the Df items' captions
    ("randompair", "df", [2], [3, 4]),              # a lone caption; Dr: its own other caption and one more
])
def test_random_texts_are_never_a_caption_of_the_pairs_own_item(original, mc, method, source, df_rows, dr_rows):
    df_rows = list(df_rows)
    dr_rows = dr_rows or [r for r in range(N_ITEMS * CAPTIONS) if r not in df_rows]
    ctx = UnlearningContext(forget=ToySampler(mc, df_rows), retain=ToySampler(mc, dr_rows), progress=False)
    model = SpyToy()
    model.load_state_dict(original.state_dict())
    SpyToy.seen = []
    unlearn(model.eval(), ctx, method, [f"text_source={source}", "epochs=3", "batch_size=8", "selection=last",
                                        "pool_size=4", "lr=1e-3"])
    relabelled = 0
    for b in SpyToy.seen:
        text_items = mc.text_items(b.text.hidden)
        true_pairs = bool(torch.equal(b.text.hidden, mc.hidden[b.rows]))
        if true_pairs:  # a Dr batch, or a Df batch of SalUn's saliency
            continue
        relabelled += 1
        assert set(b.rows.tolist()) <= set(df_rows)
        assert bool((text_items != mc.items[b.rows]).all()), (b.rows.tolist(), text_items.tolist())
        assert b.items is not None and torch.equal(b.items, mc.items[b.rows])  # Df items kept as positives
    assert relabelled == 3  # one relabelled Df batch per epoch
