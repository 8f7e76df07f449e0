"""The item-embedding index: a frozen item side's table kept on disk and read by the next table of the same
item side and store (graphdel/models/frozen_items.py)."""

import pytest
import torch

from graphdel.errors import GraphdelWarning
from graphdel.models.frozen_items import INDEX_KIND

from tests.models.test_joint import _frozen_bottom_student, _tiny


@pytest.fixture
def index_on(tmp_path, monkeypatch):
    """The index on, in a cache of this test's own; returns the index folder."""
    monkeypatch.setenv("GRAPHDEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHDEL_ITEM_INDEX", "on")
    return tmp_path / "cache" / INDEX_KIND


def _text_side_student(tiny_csv):
    """``(prepared, student, teacher, computed)``: a student whose whole item side is frozen, and the item
    indices of every batch its item side computes."""
    prepared, model = _tiny(tiny_csv)
    student, teacher = _frozen_bottom_student(model, "text_projection")
    computed, embed = [], student._embed_items

    def spy(x):
        computed.append(x.item_index.tolist())
        return embed(x)

    student._embed_items = spy
    return prepared, student, teacher, computed


def _encode(model, prepared, rows):
    with torch.no_grad():
        return model.encode_x(prepared.data.batch(torch.tensor(rows)).x)


def test_an_index_is_kept_on_a_clean_exit_and_read_by_the_next_table(tiny_csv, index_on):
    prepared, student, teacher, computed = _text_side_student(tiny_csv)
    with student.share_frozen_states(teacher):  # not asked to keep its table: nothing written
        first = _encode(student, prepared, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert not index_on.exists()
    with student.share_frozen_states(teacher, save_index=True):
        first = _encode(student, prepared, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    files = list(index_on.iterdir())
    assert len(files) == 1 and files[0].name.startswith(student.item_side_digest()[:24])
    computed.clear()
    with student.share_frozen_states(teacher, save_index=True):
        again = _encode(student, prepared, [9, 0, 4])
        table = student.item_table
        assert list(table.read_from_index.values()) == [10]
        # the spot check recomputed 8 of the 10 held rows, evenly spread; nothing else was computed
        assert computed == [[0, 1, 2, 3, 5, 6, 7, 9]] and (table.hits, table.misses) == (3, 0)
        mixed = _encode(student, prepared, [10, 3])  # a molecule the index lacks is computed and added
        assert computed[-1] == [10] and (table.hits, table.misses) == (4, 1)
    assert torch.allclose(again, first[[9, 0, 4]], atol=1e-6)
    assert torch.allclose(mixed[1], first[3], atol=1e-6)
    saved = torch.load(files[0], weights_only=True)
    assert saved["known"].tolist() == [True] * 11 + [False] * (len(prepared.data.items) - 11)


def test_another_item_side_or_the_index_off_reads_nothing(tiny_csv, index_on, monkeypatch):
    prepared, student, teacher, computed = _text_side_student(tiny_csv)
    with student.share_frozen_states(teacher, save_index=True):
        _encode(student, prepared, [0, 1, 2])
    with torch.no_grad():
        student.graph_encoder.convs[0].nn[0].weight.add_(0.1)
        teacher.graph_encoder.convs[0].nn[0].weight.add_(0.1)
    computed.clear()
    with student.share_frozen_states(teacher, save_index=True):
        _encode(student, prepared, [0, 1, 2])
        assert student.item_table.read_from_index == {} and computed == [[0, 1, 2]]
    assert len(list(index_on.iterdir())) == 2  # one index per item side
    monkeypatch.delenv("GRAPHDEL_ITEM_INDEX")  # off unless asked for
    computed.clear()
    with student.share_frozen_states(teacher, save_index=True):
        _encode(student, prepared, [0, 1, 2, 3])
        assert student.item_table.read_from_index == {} and computed == [[0, 1, 2, 3]]
    assert len(list(index_on.iterdir())) == 2  # nothing written either


def test_an_index_failing_its_spot_check_or_damaged_is_computed_again_and_replaced(tiny_csv, index_on):
    prepared, student, teacher, computed = _text_side_student(tiny_csv)
    with student.share_frozen_states(teacher, save_index=True):
        first = _encode(student, prepared, [0, 1, 2])
    path = next(index_on.iterdir())
    saved = torch.load(path, weights_only=True)
    saved["embeddings"][1] += 1e-3  # a row the spot check recomputes, off by more than it allows
    torch.save(saved, path)
    computed.clear()
    with pytest.warns(GraphdelWarning, match="does not match the model's item side"):
        with student.share_frozen_states(teacher, save_index=True):
            served = _encode(student, prepared, [0, 1, 2])
            assert student.item_table.read_from_index == {}
    assert computed == [[0, 1, 2], [0, 1, 2]] and torch.equal(served, first)  # spot check, then the batch
    assert torch.equal(torch.load(path, weights_only=True)["embeddings"][:3], first)  # written again
    path.write_bytes(b"not an index")
    with pytest.warns(GraphdelWarning, match="could not be read"):
        with student.share_frozen_states(teacher):
            assert torch.equal(_encode(student, prepared, [0, 1, 2]), first)


def test_a_block_ending_in_an_error_keeps_no_index(tiny_csv, index_on):
    prepared, student, teacher, _ = _text_side_student(tiny_csv)
    with pytest.raises(KeyboardInterrupt):
        with student.share_frozen_states(teacher, save_index=True):
            _encode(student, prepared, [0, 1, 2])
            raise KeyboardInterrupt
    assert not index_on.exists() or not any(index_on.iterdir())


def test_a_second_text_side_multidelete_run_reads_the_index_and_ends_where_the_first_did(
        tiny_csv, tmp_path, index_on, monkeypatch):
    import graphdel as gd
    from graphdel import api
    from graphdel.models.frozen_items import FrozenItemEmbeddings
    from graphdel.training.loop import TrainConfig

    opened, open_index = [], FrozenItemEmbeddings._open_index

    def spy(self, *args):
        table = open_index(self, *args)
        opened.append(0 if table is None else int(table.known.sum()))
        return table

    monkeypatch.setattr(FrozenItemEmbeddings, "_open_index", spy)

    original = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "orig",
                        quick=True, progress=False)
    request = api.make_request(original, ids=["aspirin#0", "ethanol#0", "benzene#0"], by="pair")
    settings = ["epochs=2", "batch_size=2", "selection=last", "lr=1e-1", "optimizer=sgd",
                "trainable=text_projection"]
    first = api.forget(original, request, overrides=settings, out=tmp_path / "first", progress=False)
    written = list(index_on.iterdir())
    assert len(written) == 1 and written[0].name.startswith(original.model.item_side_digest()[:24])
    known = torch.load(written[0], weights_only=True)["known"]
    assert int(known.sum()) >= 3  # at least the deleted pairs' molecules
    opened.clear()
    second = api.forget(original, request, overrides=settings, out=tmp_path / "second", progress=False)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert any(not torch.equal(a[k], original.model.state_dict()[k]) for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert opened and opened[0] == int(known.sum())  # the run's first table started from the index
    read = [run.metrics["selected"]["items_from_index"] for run in (first, second)]
    assert read == [0, int(known.sum())]
    assert torch.load(written[0], weights_only=True)["known"].sum() >= known.sum()
