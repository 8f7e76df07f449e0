import copy

import pytest
import torch

from graphdel.unlearning import unlearn
from graphdel.unlearning.scrub import contrastive_kl


def test_kl_zero_for_identical_and_positive_otherwise(original, samplers):
    b = samplers["forget"].sample(8, torch.Generator().manual_seed(0))
    assert contrastive_kl(original, original, b, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    other = copy.deepcopy(original)
    with torch.no_grad():
        other.text_proj[0].weight.add_(0.3)
    assert contrastive_kl(other, original, b, 4.0).item() > 0


def test_max_steps_push_df_away_from_teacher(original, make_ctx, samplers):
    res = unlearn(original, make_ctx(), "scrub", ["lr=1e-2", "epochs=1", "max_epochs=1", "retain_steps=1",
                                                  "batch_size=8", "selection=last", "pool_size=8"])
    phases = [r["phase"] for r in res.log if "phase" in r]
    assert phases.index("max") < phases.index("min")
    maxes = [r["forget_kl"] for r in res.log if r.get("phase") == "max"]
    assert maxes[0] == pytest.approx(0.0, abs=1e-6)
    b = samplers["forget"].sample(8, torch.Generator().manual_seed(0))
    assert contrastive_kl(res.model, original, b, 4.0).item() > 1e-4
