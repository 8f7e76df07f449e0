"""A KG pair set's triples read from the item store's columns are those its batches carry."""

import pytest
import torch

from graphdel import api
from graphdel.data.kg_pairs import pair_triples, triples_of
from tests.data.test_kg_view import write_tiny_kg


class _BatchesOnly:
    """A sampler that is not a pair set (as a data-parallel shard is not): read from its batches."""

    def __init__(self, pairs):
        self.pairs = pairs

    def batches(self, batch_size):
        return self.pairs.batches(batch_size)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = write_tiny_kg(tmp_path_factory.mktemp("kgpairs") / "kg")
    data_cfg, model_cfg, _ = api.quick_configs(f"kg:{folder}")
    return api.prepare(data_cfg, model_cfg, progress=False).data


def test_store_columns_equal_the_batches_head_relation_and_described_entity(data):
    rows = list(range(len(data)))[::-1]  # every pair, triples and entity descriptions, out of corpus order
    pairs = data.subset(rows, "all")
    columns = pair_triples(pairs)
    from_batches = torch.cat([torch.stack([b.x[:, 0], b.x[:, 1], b.text.entity], dim=1)
                              for b in pairs.batches(5)])
    assert torch.equal(columns, from_batches)
    store = data.items
    e, r = {x: i for i, x in enumerate(store.entities)}, {x: i for i, x in enumerate(store.relations)}
    triple, entity = data.corpus.index_of("tri:e0|likes|e1"), data.corpus.index_of("ent:e3")
    assert columns[rows.index(triple)].tolist() == [e["e0"], r["likes"], e["e1"]]
    assert columns[rows.index(entity)].tolist() == [e["e3"], store.described_by, e["e3"]]


def test_triples_of_reads_the_store_for_a_pair_set_and_the_batches_otherwise(data):
    pairs = data.subset(list(range(len(data))), "all")
    relations = len(data.items.relations)
    assert pair_triples(_BatchesOnly(pairs)) is None
    from_store, from_batches = triples_of(pairs, relations), triples_of(_BatchesOnly(pairs), relations)
    assert torch.equal(from_store, from_batches)
    triples = sum(p.startswith("tri:") for p in data.corpus.pair_ids)
    assert from_store.size(0) == triples  # entity pairs left out
