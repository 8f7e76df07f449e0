"""docs/extending.md runs as written, and what it claims holds.

The Python blocks of the document are executed in order in one namespace (they form one program), with
every registry they add to restored afterwards, so the method, source, featuriser, granularity and model
class the document registers do not leak into other tests. The checks then read that namespace: the
wrapper is short and satisfies the protocol, MultiDelete and a baseline really unlearn the wrapped model,
the added method was listed and documented, the metric's gaps are the differences they claim, and the
colour modality went through training, a request, forgetting, loading and evaluation.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of ``text``, in order."""
    return _BLOCK.findall(text)


@contextlib.contextmanager
def registries_restored() -> Iterator[None]:
    """Snapshot every registry docs/extending.md adds to and put each back as it was afterwards.

    The built-in entries are registered first (``load_modalities`` loads every recorded modality,
    ``graphdel.unlearning`` the methods), so the snapshot holds them. Restoring also matters
    because the registries refuse a second class under a taken name: executing the document twice in one
    process would otherwise fail on its own earlier registrations."""
    import graphdel.unlearning  # noqa: F401  (registers the built-in methods)
    from graphdel.modalities import MODALITIES, load_modalities
    from graphdel.data import granularities, pairs, sources
    from graphdel.evaluation import metrics
    from graphdel.models import joint
    from graphdel.unlearning import registry as methods

    load_modalities()  # every recorded modality's sources, featurisers, views, granularities...
    for name in MODALITIES:
        joint.MODEL_TYPES[name]  # ...and model class  # noqa: B018
    registries: list[Any] = [methods._METHODS, methods._ALIASES, sources._SOURCES, pairs.ITEM_FEATURIZERS,
                             pairs.ITEM_PROPERTIES, pairs.CORPUS_VIEWS, granularities._GRANULARITIES,
                             joint.MODEL_TYPES, pairs._USES_MODEL_CONFIG, metrics.METRICS]
    saved = [r.copy() for r in registries]
    try:
        yield
    finally:
        for registry, before in zip(registries, saved):
            registry.clear()
            registry.update(before)


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> dict[str, Any]:
    """The namespace the document's blocks leave behind, plus ``_methods_while_registered``."""
    from graphdel.unlearning import available_methods

    # a module of its own, as a reader's interpreter or script would be (dataclasses look their module up)
    module = types.ModuleType("extending_doc")
    with pytest.MonkeyPatch.context() as mp, registries_restored():
        # module scope runs before the per-test cache fixture: keep caches and run folders in tmp
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("runs")))
        mp.setitem(sys.modules, module.__name__, module)
        for k, block in enumerate(python_blocks(DOC.read_text(encoding="utf-8"))):
            # dont_inherit: not this file's `from __future__ import annotations`, the document's own flags
            code = compile(block, f"{DOC}, python block {k + 1}", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102
        namespace = dict(module.__dict__)
        namespace["_methods_while_registered"] = [name for name, _, _ in available_methods()]
    return namespace


def test_the_wrapper_is_one_block_of_fewer_than_50_lines():
    blocks = [b for b in python_blocks(DOC.read_text(encoding="utf-8")) if "class Wrapped(" in b]
    assert len(blocks) == 1 and "class Pairs:" in blocks[0]  # the model's protocol and the data's sampler
    code = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(code) < 50, f"the wrapper has {len(code)} non-blank lines"


def test_the_wrapped_model_follows_the_protocol(doc):
    from graphdel.models.protocol import ModalityModel, PairSampler

    assert not isinstance(doc["TwoTower"](), ModalityModel)  # the user's model alone is not one
    assert isinstance(doc["original"], ModalityModel)
    assert isinstance(doc["Pairs"](range(4)), PairSampler)
    batch = doc["Pairs"](range(4)).batch(torch.arange(4))
    z_x, z_t = doc["original"].encode_x(batch.x), doc["original"].encode_text(batch.text)
    assert z_x.shape == z_t.shape == (4, 16)
    assert torch.allclose(z_x.norm(dim=-1), torch.ones(4))
    # fuse and the matching head of a fusion-free model: the matching logit is the scaled cosine similarity
    cosine = doc["original"].sim(z_x, z_t).diagonal()
    assert torch.allclose(doc["original"].match_logits(doc["original"].fuse(batch.x, batch.text)),
                          doc["original"].model.logit_scale.exp() * cosine, atol=1e-5)
    # pairs: item 0 with text 1, item 2 with text 0
    crossed = doc["original"].fuse(batch.x, batch.text, torch.tensor([[0, 1], [2, 0]]))
    assert torch.allclose(crossed.sum(-1), doc["original"].sim(z_x, z_t)[[0, 2], [1, 0]], atol=1e-5)


@pytest.mark.parametrize("result", ["multidelete", "neggrad_plus"])
def test_multidelete_and_a_baseline_unlearn_the_wrapped_model(doc, result):
    original, res, ctx, sim = doc["original"], doc[result], doc["ctx"], doc["mean_similarity"]
    before, after = dict(original.named_parameters()), dict(res.model.named_parameters())
    assert any(not torch.equal(after[n], p) for n, p in before.items() if n != "model.logit_scale")
    assert torch.equal(after["model.logit_scale"], before["model.logit_scale"])  # the temperature is frozen
    assert res.selected["epoch"] >= 1  # a checkpoint after at least one update was kept
    df_drop = sim(original, ctx.forget) - sim(res.model, ctx.forget)
    dr_drop = sim(original, ctx.retain) - sim(res.model, ctx.retain)
    assert df_drop > 0.2, df_drop  # measured: 0.789 -> 0.380 (MultiDelete), 0.449 (NegGrad+)
    assert df_drop > 2 * dr_drop, (df_drop, dr_drop)  # selective: the retained pairs lose far less


def test_unlearning_left_the_original_as_it_was_trained(doc):
    again = doc["train"](doc["Pairs"]([*doc["forget_rows"], *doc["retain_rows"]]))
    trained, kept = again.state_dict(), doc["original"].state_dict()
    assert trained.keys() == kept.keys()
    assert all(torch.equal(trained[k], kept[k]) for k in kept)


def test_the_added_method_was_listed_documented_and_is_gone_afterwards(doc):
    from graphdel.errors import ConfigError
    from graphdel.unlearning import available_methods, get_method
    from graphdel.unlearning.settings import method_settings

    assert "decouple-ft" in doc["_methods_while_registered"]
    settings = method_settings(doc["DecoupleFinetuneConfig"])
    assert {s.key for s in settings if s.own} == {"lr", "retain_weight"}
    assert all(s.help for s in settings)  # what tests/unlearning/test_settings.py asks of every method
    assert doc["decoupled"].config["retain_weight"] == 2.0  # the --set style override reached the config
    ctx, sim = doc["ctx"], doc["mean_similarity"]
    assert sim(doc["decoupled"].model, ctx.forget) < sim(doc["original"], ctx.forget) - 0.1
    # the registries were restored: the example method is no longer there, the built-in ones are
    names = [name for name, _, _ in available_methods()]
    assert "decouple-ft" not in names and "multidelete" in names
    with pytest.raises(ConfigError, match="unknown unlearning method 'decouple-ft'"):
        get_method("decouple-ft")


def test_the_metric_is_compared_with_retrain_and_the_original(doc):
    from graphdel.evaluation.metrics import METRICS

    ctx, sim = doc["ctx"], doc["mean_similarity"]
    method, retrained, original = doc["multidelete"].model, doc["retrained"], doc["original"]
    # the registered metric is the mean true-pair similarity, which section 1's function computes as well
    judged = doc["judged"]
    assert judged["vs_retrain"]["splits.forget.pair_sim"] == pytest.approx(
        sim(method, ctx.forget) - sim(retrained, ctx.forget), abs=1e-6)
    assert judged["vs_original"]["splits.retain.pair_sim"] == pytest.approx(
        sim(method, ctx.retain) - sim(original, ctx.retain), abs=1e-6)
    assert "splits.retain.pair_sim" not in judged["vs_retrain"]  # each side against its own reference
    assert "splits.forget.pool16.g2t_mrr" in judged["vs_retrain"]  # retrieval beside it, judged alike
    assert "pair_sim" not in METRICS  # registered by the document only while it ran


def test_the_colour_modality_trains_forgets_loads_and_evaluates(doc):
    from graphdel.data.requests import available_granularities
    from graphdel.data.sources import available_sources
    from graphdel.models.joint import MODEL_TYPES
    from graphdel.runs import Run

    request, corpus = doc["request"], doc["load_colours"](None)
    hue = doc["CHANNELS"][int(doc["rgb_of"](corpus, ["c03"]).argmax())]
    hues = {doc["CHANNELS"][int(doc["rgb_of"](corpus, [corpus.item_ids[corpus.index_of(p)]]).argmax())]
            for p in request.pair_ids}
    assert request.by == "hue" and hues == {hue}
    assert {corpus.splits[corpus.index_of(p)] for p in request.pair_ids} == {"train"}
    assert len(request.pair_ids) == 13  # every trained colour of that hue (calibration colours held back)
    reloaded, saved = doc["reloaded"].state_dict(), doc["forgotten"].model.state_dict()
    assert type(doc["reloaded"]) is doc["ColourTextModel"] and doc["reloaded"] is not doc["forgotten"].model
    assert reloaded.keys() == saved.keys() and all(torch.equal(reloaded[k], saved[k]) for k in saved)
    assert [step.chain for step in doc["history"]] == ["ok"]
    brightness = doc["audit"].results["models"]["multidelete"]["probes"]["brightness"]
    assert set(brightness) >= {"forget", "test", "fit_n"}
    # registrations undone: nothing of the colour modality is left for other tests
    assert "colours" not in available_sources() and "hue" not in available_granularities()
    assert "colour" not in MODEL_TYPES
    with pytest.raises(ValueError, match="unknown modality 'colour'"):  # its module must be imported to load
        Run.load(doc["forgotten"].path).model  # noqa: B018
