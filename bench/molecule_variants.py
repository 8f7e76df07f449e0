"""Benchmark: a molecule method run with one of graphdel's speed-ups and with the path it replaced, side by
side.

    python bench/molecule_variants.py --original RUN
        --compare partial_cache|distractor_memo|pooled_texts|pool_product|item_table|step_inputs|
                  item_index|item_rows
        [--fraction 0.05] [--by molecule] [--seed 0] [--methods multidelete] [--repeats 2]

RUN is a trained molecule run (``graphdel train --out RUN``, or the cached original a demo names in its
demo.json). ``--compare`` names the speed-up:

* ``partial_cache``: the frozen-state cache of the graph encoder
  (:class:`graphdel.encoders.graph.FrozenTrunkCache`) serves the molecules of a batch it holds and computes
  only the others; the reference serves a batch only when it holds every molecule of it and otherwise
  computes the whole batch, as before. A molecule's states computed in a smaller batch may differ in the
  last bits, so the weights need not be equal bit for bit.
* ``distractor_memo``: :func:`graphdel.evaluation.retrieval.draw_distractors` returns a remembered draw when
  its inputs are equal to a recent call's; the reference draws every time, as before. The same indices, so
  the same run bit for bit.
* ``pool_product``: pool-k scores by one matrix product per block with the distinct distractors
  (:func:`graphdel.evaluation.retrieval.pool_candidate_scores`); the reference gathers each pool and sums
  row-wise products, as before. Not the same bits (a product rounds otherwise), so the kept step and the
  logged scores say whether anything a run decides changed.
* ``item_table``: while the whole item side is frozen, ``encode_x`` reads the molecules' embeddings from a
  per-molecule table (:class:`graphdel.models.frozen_items.FrozenItemEmbeddings`); the reference computes
  them from the cached node states at every call, as before. An embedding computed in a batch of other
  molecules may differ in its last bits, so the weights need not be equal bit for bit.
* ``step_inputs``: a MultiDelete run whose terms never fuse draws its update batches without token states
  (:meth:`graphdel.unlearning.trainer.Trainer.draw_without_tokens`), and the molecule model's item-side
  determinism check reads the stochastic modules gathered when its item table was attached; the reference
  gathers the token states and walks every module on each ``encode_x`` call, as before. The same numbers,
  so the same run bit for bit.
* ``item_index``: the molecule model's item-embedding index (:mod:`graphdel.models.frozen_items`) on, in a
  folder of the bench's own that is empty before the first run, so that the first run with it builds and
  writes the index and the later ones read it; the reference runs with the index off, as before. A
  molecule's embedding read from the index was computed in another batch and may differ in its last bits.
  ``served`` is the number of molecules the run's first table read from the index.
* ``item_rows``: the update batches of a MultiDelete run whose terms never fuse name their molecules by row
  (:class:`graphdel.models.protocol.ItemRows`), their graphs built only where the item table lacks them; the
  reference builds every batch's graphs, as before. Both with the item index on (as ``item_index``), so that
  after the first run every molecule is read from it. The same numbers, so the same run bit for bit.
* ``pooled_texts``: a texts-only sample carries no token states where the pooled state is cached, and
  ``encode_text`` reads the text encoder's ``sentence`` (the pooled state, its tokens never converted); the
  reference gathers every text's token states and runs the forward pass, as before. The same numbers, so
  the same run bit for bit.

One random request (``--fraction`` of the training units ``--by``, ``--seed``) is unlearned by each method
of ``--methods`` with the molecule model's recommended settings, alternately with the speed-up and with the
reference. Prints one JSON line per run (the method's seconds as the run records them, the kept step,
every evaluation's Df score, the share of molecules the cache served or of draws remembered) and a summary
line per method: its wall time each way (the fastest of the repeats) and their ratio, whether both kept
the same step and logged the same scores to three decimals, and the largest weight difference between
the two models.
"""

from __future__ import annotations

import argparse
import json

import torch

from _common import (add_variant_arguments, alternating_runs, emit, load, machine, original_and_request,
                     row_wise_pool, variant_summary)


def whole_batches(self, batch, compute):
    """Reference of ``partial_cache``: :meth:`FrozenTrunkCache.states` serving whole batches only."""
    items, store = getattr(batch, "item_index", None), getattr(batch, "item_store", None)
    if items is None or store is None:
        return None
    self._stores[id(store)] = store
    keys = [(id(store), int(i)) for i in items.tolist()]
    found = [self._states.get(k) for k in keys]
    if all(f is not None for f in found):
        self.hits += len(keys)
        for k in keys:
            self._states.move_to_end(k)
        return torch.cat(found) if found else compute(batch)
    self.misses += len(keys)
    with torch.no_grad():
        h = compute(batch)
    for k, part in zip(keys, h.split((batch.ptr[1:] - batch.ptr[:-1]).tolist())):
        if k not in self._states:
            self._states[k] = part.clone()
            self._nodes += part.size(0)
    while self._nodes > self.max_nodes and self._states:
        _, old = self._states.popitem(last=False)
        self._nodes -= old.size(0)
    return h


def draw_every_time(query_items, query_rows, distractor_items, *, pool_size=64, seed=0):
    """Reference of ``distractor_memo``: :func:`draw_distractors` without its memory."""
    from graphdel.evaluation import retrieval

    as_numpy = [torch.as_tensor(t).long().reshape(-1).cpu().numpy()
                for t in (query_items, query_rows, distractor_items)]
    return torch.from_numpy(retrieval._draw(*as_numpy, pool_size - 1, seed))


def with_tokens(self, index, tokens=True):
    """Reference of ``pooled_texts``: :meth:`TextFeatures.select` gathering the token states every time."""
    from graphdel.models.protocol import TextFeatures

    index = index.to(self.hidden.device)
    pooled = None if self.pooled is None else self.pooled.index_select(0, index)
    return TextFeatures(self.hidden.index_select(0, index), self.mask.index_select(0, index), pooled)


def through_forward(self, text):
    """Reference of ``pooled_texts``: the sentence embedding read from the whole forward pass."""
    return self.forward(text)[2]


def walking_every_module(self):
    """Reference of ``step_inputs``: the item side's determinism check walking every module on each call."""
    if self.graph_encoder.training and self.graph_encoder.config.dropout > 0:
        return False
    stochastic = (torch.nn.Dropout, torch.nn.modules.batchnorm._BatchNorm)
    return not any(m.training for m in (*self.graph_encoder.modules(), *self.x_projection.modules())
                   if isinstance(m, stochastic))


def switch(compare: str):
    """``use(variant)`` for ``compare``: installs the speed-up (``"fast"``) or its reference
    (``"reference"``), and ``served()``: the share of molecules the caches of the runs since the last
    ``use`` served (``partial_cache``, ``item_table``), or the share of distractor draws not drawn again
    (``distractor_memo``)."""
    from graphdel.encoders.graph import FrozenTrunkCache
    from graphdel.evaluation import retrieval
    from graphdel.models.molecule import MoleculeTextModel

    if compare == "pooled_texts":
        from graphdel.encoders.text import TextEncoder
        from graphdel.models.protocol import TextFeatures

        fast_parts = (TextFeatures.select, TextEncoder.sentence)

        def use_texts(variant: str) -> None:
            TextFeatures.select, TextEncoder.sentence = (fast_parts if variant == "fast"
                                                         else (with_tokens, through_forward))

        def restore_texts() -> None:
            TextFeatures.select, TextEncoder.sentence = fast_parts
        return use_texts, lambda: None, restore_texts
    if compare == "item_index":
        return index_switch()
    if compare == "item_rows":
        use_index, served_from_index, restore_index = index_switch()

        def use_rows(variant: str) -> None:
            use_index("fast")  # on for both: after the first run every molecule is read from it
            MoleculeTextModel.reads_item_rows = variant == "fast"

        def restore_rows() -> None:
            MoleculeTextModel.reads_item_rows = True
            restore_index()
        return use_rows, served_from_index, restore_rows
    if compare == "step_inputs":
        from graphdel.unlearning.trainer import Trainer

        fast_parts = (Trainer.draw_without_tokens, MoleculeTextModel._item_side_deterministic)

        def use_inputs(variant: str) -> None:
            Trainer.draw_without_tokens, MoleculeTextModel._item_side_deterministic = (
                fast_parts if variant == "fast" else (lambda self: None, walking_every_module))

        def restore_inputs() -> None:
            Trainer.draw_without_tokens, MoleculeTextModel._item_side_deterministic = fast_parts
        return use_inputs, lambda: None, restore_inputs
    if compare == "item_table":
        from graphdel.models.frozen_items import FrozenItemEmbeddings

        return counted_switch(FrozenItemEmbeddings, "embeddings", lambda self, batch, compute: None)
    if compare == "pool_product":
        product = retrieval._pool_scores

        def use_pool(variant: str) -> None:
            retrieval._pool_scores = product if variant == "fast" else row_wise_pool

        def restore_pool() -> None:
            retrieval._pool_scores = product
        return use_pool, lambda: None, restore_pool
    if compare == "distractor_memo":
        fast_draw, draw, calls = retrieval.draw_distractors, retrieval._draw, {"calls": 0, "drawn": 0}

        def counted(function, key):
            def wrapped(*args, **kwargs):
                calls[key] += 1
                return function(*args, **kwargs)
            return wrapped

        def use_draw(variant: str) -> None:
            retrieval._draw_memo.clear()
            calls.update(calls=0, drawn=0)
            retrieval._draw = counted(draw, "drawn")
            retrieval.draw_distractors = counted(fast_draw if variant == "fast" else draw_every_time, "calls")

        def remembered() -> float | None:
            return round(1 - calls["drawn"] / calls["calls"], 3) if calls["calls"] else None

        def restore_draw() -> None:
            retrieval.draw_distractors, retrieval._draw = fast_draw, draw
        return use_draw, remembered, restore_draw

    return counted_switch(FrozenTrunkCache, "states", whole_batches)


def index_switch():
    """``(use, served, restore)`` of ``item_index``: ``use("fast")`` turns the item-embedding index on, in a
    folder of the bench's own (empty at the start), ``use("reference")`` turns it off; ``served()`` is the
    number of rows the run's first table read from the index (0: it found none)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from graphdel.models import frozen_items

    folder, before = Path(tempfile.mkdtemp(prefix="item-index-")), os.environ.get("GRAPHDEL_ITEM_INDEX")
    open_index, where, opened = frozen_items.FrozenItemEmbeddings._open_index, frozen_items.cache_dir, []

    def counted(self, *args):
        table = open_index(self, *args)
        opened.append(0 if table is None else int(table.known.sum()))
        return table

    def use(variant: str) -> None:
        opened.clear()
        os.environ["GRAPHDEL_ITEM_INDEX"] = "on" if variant == "fast" else "off"
        frozen_items.cache_dir, frozen_items.FrozenItemEmbeddings._open_index = (lambda: folder), counted

    def restore() -> None:
        frozen_items.cache_dir, frozen_items.FrozenItemEmbeddings._open_index = where, open_index
        os.environ.pop("GRAPHDEL_ITEM_INDEX", None)
        if before is not None:
            os.environ["GRAPHDEL_ITEM_INDEX"] = before
        shutil.rmtree(folder, ignore_errors=True)
    return use, lambda: opened[0] if opened else None, restore


def counted_switch(cache_class, name: str, reference):
    """``(use, served, restore)`` for a cache whose method ``cache_class.name`` (``(self, batch, compute)``)
    counts ``hits`` and ``misses``: ``use("fast")`` installs the method, ``use("reference")`` installs
    ``reference``, both counted; ``served()`` is the share of hits since the last ``use``."""
    fast, counts = getattr(cache_class, name), {"hits": 0, "misses": 0}

    def counting(method):
        def wrapped(self, batch, compute):
            hits, misses = self.hits, self.misses
            out = method(self, batch, compute)
            counts["hits"] += self.hits - hits
            counts["misses"] += self.misses - misses
            return out
        return wrapped

    def use(variant: str) -> None:
        counts.update(hits=0, misses=0)
        setattr(cache_class, name, counting(fast if variant == "fast" else reference))

    def served() -> float | None:
        total = counts["hits"] + counts["misses"]
        return round(counts["hits"] / total, 3) if total else None

    def restore() -> None:
        setattr(cache_class, name, fast)
    return use, served, restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_variant_arguments(parser, fraction=0.05)
    parser.add_argument("--compare", required=True,
                        choices=["partial_cache", "distractor_memo", "pooled_texts", "pool_product",
                                 "item_table", "step_inputs", "item_index", "item_rows"])
    parser.add_argument("--by", default="molecule")
    args = parser.parse_args()
    start_load = load()
    api, original, prepared, request = original_and_request(args, by=args.by)
    use, served, restore = switch(args.compare)
    times: dict[str, dict[str, list[float]]] = {}
    models: dict[str, dict] = {}
    steps: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    for method, repeat, variant, out_dir in alternating_runs(args.methods.split(","), args.repeats, use):
        out = api.forget(original, request, method=method, out=out_dir, progress=False, prepared=prepared,
                         device="cpu")
        selected = out.metrics.get("selected") or {}
        log = json.loads((out_dir / "log.json").read_text())
        evaluations = [(e["step"], round(e["forget"], 3)) for e in log if e.get("eval")]
        times.setdefault(method, {"fast": [], "reference": []})[variant].append(out.metrics["wall_time_s"])
        models.setdefault(method, {})[variant] = out.model.state_dict()
        steps.setdefault(method, {})[variant] = selected.get("step")
        scores.setdefault(method, {})[variant] = evaluations
        emit({"bench": "molecule_variants", "compare": args.compare, "method": method, "variant": variant,
              "repeat": repeat, "method_s": round(out.metrics["wall_time_s"], 2),
              "seconds": selected.get("seconds"), "kept_step": selected.get("step"),
              "df_scores": evaluations, "served": served()})
    restore()
    for method in times:
        emit({"bench": "molecule_variants", "summary": True, "compare": args.compare, "method": method,
              "pairs": len(request), "by": args.by, "seed": args.seed,
              **variant_summary(times[method], models[method]),
              "same_kept_step": steps[method]["fast"] == steps[method]["reference"],
              "same_scores": scores[method]["fast"] == scores[method]["reference"],
              "machine": machine(start_load)})

if __name__ == "__main__":
    main()
