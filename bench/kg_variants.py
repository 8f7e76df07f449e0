"""Benchmark: a KG method run with one of graphdel's exact speed-ups and with the path it replaced, side by
side.

    python bench/kg_variants.py --original RUN
        --compare first_position|layer_gathers|rank_counts|store_columns [--fraction 0.02]
        [--seed 0] [--close] [--methods multidelete] [--repeats 2]

RUN is a trained KG run (``graphdel train --data wordnet --out RUN``, or the cached original a KG demo names
in its demo.json). ``--compare`` names the speed-up:

* ``first_position``: a fusion module with ``readout="first"`` computes its last layer for the first text
  position alone out of training mode (:func:`graphdel.models.layers._first_position`); the reference runs
  the whole layer on every position, then reads the first.
* ``layer_gathers``: the R-GCN layer gathers its messages with ``index_select``
  (:class:`graphdel.encoders.relational.CompGCNConv`); the reference gathers with advanced indexing, as
  before. With one thread both give the same bits (the summary's ``max_weight_diff`` is then 0).
* ``rank_counts``: a filtered rank is counted from one sum of signs over the scores
  (:func:`graphdel.evaluation.link_prediction._ranks_from_scores`); the reference counts the greater and
  the equal scores apart, as before. The same ranks, so the same run.
* ``store_columns``: a KG pair set's triples are read from the item store's columns
  (:func:`graphdel.data.kg_pairs.pair_triples`, used by ``triples_of`` and the retained neighbourhood);
  the reference builds the set's batches, text features included, and reads them from those, as before.

One random triple request (``--fraction`` of the training triples, ``--seed``; with ``--close`` its retained
mirror triples too) is unlearned by each method
of ``--methods`` (``retrain`` times a training run) with the KG model's recommended settings, alternately
with the speed-up and with the reference. Prints one JSON line per run and a summary line per method: its
wall time each way (the fastest of the repeats) and their ratio, whether both kept the same step, and the
largest weight difference between the two models.
"""

from __future__ import annotations

import argparse

import torch

from _common import (add_variant_arguments, alternating_runs, emit, load, machine, original_and_request,
                     variant_summary)


def full_last_layer(layer, h, memory, text_mask, item_mask):
    """Reference of ``first_position``: the whole decoder layer on every text position, the first read."""
    return layer(h, memory, tgt_key_padding_mask=~text_mask, memory_key_padding_mask=~item_mask)[:, 0]


def advanced_indexing_layer(self, x, rel, edge_index, edge_type):
    """Reference of ``layer_gathers``: :meth:`CompGCNConv.forward` gathering with ``tensor[index]``."""
    n = x.size(0)
    src, dst = edge_index[0], edge_index[1]
    out = self.w_self(x * self.self_rel)
    if src.numel():
        ones = torch.ones_like(dst, dtype=x.dtype)
        deg = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, dst, ones)
        norm = (deg[src].clamp(min=1) * deg[dst].clamp(min=1)).rsqrt().unsqueeze(1)
        inverse = edge_type >= self.num_relations
        aggregated = []
        for edges in (~inverse, inverse):
            e = edges.nonzero().squeeze(1)
            msg = x[src[e]] * rel[edge_type[e]] * norm[e]
            aggregated.append(torch.zeros_like(x).index_add_(0, dst[e], msg))
        out = out + self.w_out(aggregated[0]) + self.w_in(aggregated[1])
    out = torch.tanh(self.norm(out / 3.0 + self.bias))
    return self.dropout(out), self.w_rel(rel)


def counted_apart(scores, target):
    """Reference of ``rank_counts``: the greater and the equal scores counted in two passes."""
    greater = (scores > target[:, None]).float().sum(1)
    equal = (scores == target[:, None]).float().sum(1) - 1.0
    return 1.0 + greater + 0.5 * equal


def from_batches(sampler):
    """Reference of ``store_columns``: ``(head, relation, tail)`` of every pair read from its built batches,
    text features included, as ``triples_of`` and the retained neighbourhood read them before."""
    columns = [torch.stack([b.x[:, 0], b.x[:, 1], b.text.entity], dim=1).cpu() for b in sampler.batches(4096)]
    return torch.cat(columns) if columns else torch.zeros(0, 3, dtype=torch.long)


def switch(compare: str):
    """``use(variant)`` for ``compare``: installs the speed-up (``"fast"``) or its reference
    (``"reference"``) everywhere the function is looked up."""
    import graphdel.data.kg_pairs as kg_pairs
    import graphdel.encoders.relational as relational
    import graphdel.evaluation.link_prediction as link_prediction
    import graphdel.models.kg_structure as kg_structure
    import graphdel.models.layers as layers

    if compare == "first_position":
        places, reference = [(layers, "_first_position")], full_last_layer
    elif compare == "rank_counts":
        places, reference = [(link_prediction, "_ranks_from_scores")], counted_apart
    elif compare == "store_columns":
        places, reference = [(kg_pairs, "pair_triples"), (kg_structure, "pair_triples")], from_batches
    else:
        places, reference = [(relational.CompGCNConv, "forward")], advanced_indexing_layer
    fast = [getattr(owner, name) for owner, name in places]

    def use(variant: str) -> None:
        for (owner, name), function in zip(places, fast):
            setattr(owner, name, function if variant == "fast" else reference)
    return use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_variant_arguments(parser, fraction=0.02)
    parser.add_argument("--compare", required=True,
                        choices=["first_position", "layer_gathers", "rank_counts", "store_columns"])
    parser.add_argument("--close", action="store_true")
    args = parser.parse_args()
    start_load = load()
    api, original, prepared, request = original_and_request(args, by="triple")
    use = switch(args.compare)
    times: dict[str, dict[str, list[float]]] = {}
    models: dict[str, dict] = {}
    steps: dict[str, dict] = {}
    for method, repeat, variant, out_dir in alternating_runs(args.methods.split(","), args.repeats, use):
        out = api.forget(original, request, method=method, out=out_dir, progress=False, prepared=prepared,
                         close=args.close, device="cpu")
        selected = out.metrics.get("selected") or {}
        times.setdefault(method, {"fast": [], "reference": []})[variant].append(out.metrics["wall_time_s"])
        models.setdefault(method, {})[variant] = out.model.state_dict()
        steps.setdefault(method, {})[variant] = selected.get("step")
        emit({"bench": "kg_variants", "compare": args.compare, "method": method, "variant": variant,
              "repeat": repeat, "method_s": round(out.metrics["wall_time_s"], 2),
              "seconds": selected.get("seconds"), "kept_step": selected.get("step")})
    use("fast")
    for method in times:
        emit({"bench": "kg_variants", "summary": True, "compare": args.compare, "method": method,
              "pairs": len(request), "seed": args.seed, "close": args.close,
              **variant_summary(times[method], models[method]),
              "same_kept_step": steps[method]["fast"] == steps[method]["reference"],
              "machine": machine(start_load)})

if __name__ == "__main__":
    main()
