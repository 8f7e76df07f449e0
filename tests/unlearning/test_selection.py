import math

import pytest
import torch

from graphdel.unlearning.selection import (CalibratedSelector, pool_mrr, reached_reference, sampler_score,
                                           select_index)

from .toy import ToyModel


class _Sim:
    def sim(self, a, b):
        return a @ b.t()


def test_pool_mrr_perfect_and_worst():
    z = torch.eye(10)
    assert pool_mrr(_Sim(), z, z, pool_size=5, repeats=3) == pytest.approx(1.0)
    # every x prefers a wrong text: rank 2 in a pool of 2
    zx = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zt = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert pool_mrr(_Sim(), zx, zt, pool_size=64) == pytest.approx(0.5)
    assert math.isnan(pool_mrr(_Sim(), zx[:1], zt[:1]))


def test_pool_mrr_is_seeded():
    g = torch.Generator().manual_seed(0)
    zx, zt = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g)
    a = pool_mrr(_Sim(), zx, zt, pool_size=16, seed=3)
    assert a == pool_mrr(_Sim(), zx, zt, pool_size=16, seed=3)


def test_reached_reference_smooths():
    assert not reached_reference([0.9, 0.6], [0.7, 0.7], smooth=2)  # mean 0.75 > 0.7
    assert reached_reference([0.9, 0.6, 0.7], [0.7, 0.7, 0.7], smooth=2)
    assert reached_reference([0.8, 0.75], [0.7, 0.7], smooth=2, margin=0.1)
    assert not reached_reference([], [])


def test_select_index_closest_then_retain():
    recs = [dict(forget=0.95, reference=0.7, retain=0.95),
            dict(forget=0.71, reference=0.7, retain=0.80),
            dict(forget=0.69, reference=0.7, retain=0.90),
            dict(forget=0.40, reference=0.7, retain=0.99)]
    idx, reason = select_index(recs, tolerance=0.02)
    assert idx == 2 and "retain" in reason
    idx, _ = select_index(recs, tolerance=0.0)
    assert idx in (1, 2)
    # over-forgetting is penalised like under-forgetting
    assert select_index([dict(forget=0.3, reference=0.7, retain=1.0), dict(forget=0.8, reference=0.7, retain=0.5)],
                        tolerance=0.0)[0] == 1


def test_selector_falls_back_to_val(make_ctx, original):
    sel = CalibratedSelector(make_ctx(calibration=None), pool_size=8)
    assert sel.reference_name == "val" and sel.notes
    rec = sel.evaluate(original, epoch=0, step=0)
    assert set(rec) >= {"forget", "reference", "retain"}
    _, info = sel.select()
    assert info["reference"] == "val"


def test_scoring_restores_training_flags(samplers):
    model = ToyModel().train()
    sampler_score(model, samplers["forget"], pool_size=8)
    assert all(m.training for m in model.modules())


def test_the_untouched_copy_is_never_selected_when_an_update_exists():
    from graphdel.unlearning.selection import select_index

    records = [{"epoch": 0, "forget": 0.80, "reference": 0.70, "retain": 0.90},
               {"epoch": 1, "forget": 0.79, "reference": 0.70, "retain": 0.85}]
    index, _ = select_index(records, tolerance=0.05)
    assert index == 1
    assert select_index(records[:1])[0] == 0  # nothing else to choose from
