"""Benchmark: MultiDelete on a KG with the entity states shared by a step's terms, and without, side by side.

    python bench/kg_step_states.py --original RUN [--fraction 0.02] [--seed 0] [--close] [--repeats 1]

RUN is a trained KG run (``graphdel train --data wordnet --out RUN``, or the cached original a KG demo names
in its demo.json). One random triple request (``--fraction`` of the training triples, ``--seed``; with
``--close`` its retained mirror triples too) is unlearned with the KG model's recommended MultiDelete
settings, alternately with :meth:`~graphdel.models.kg_structure.KGStructure.step_states` (one full-graph GNN
pass with gradients per step, shared by L_MD, L_MKR, the neighbourhood and the link terms) and with the
protocol's default (a pass per term). Prints one JSON line per run and a summary line: wall time of each
and their ratio, and the largest weight difference between the two models (float order only: one
backward through the shared states instead of one per term).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", required=True)
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import torch

    import graphdel.api as api
    from graphdel.models.kg import KGTextModel
    from graphdel.models.protocol import ModalityModule

    original = api.Run.load(args.original)
    prepared = api.load_run_data(original, progress=False)
    request = api.make_request(original, random_amount=args.fraction, by="triple", seed=args.seed,
                               prepared=prepared)
    shared_states = KGTextModel.step_states
    times: dict[str, list[float]] = {"shared": [], "per_term": []}
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for variant in ("shared", "per_term"):
                KGTextModel.step_states = shared_states if variant == "shared" else ModalityModule.step_states
                start = time.perf_counter()
                out = api.forget(original, request, method="multidelete", out=f"{tmp}/{variant}-{repeat}",
                                 progress=False, prepared=prepared, close=args.close, device="cpu")
                method_s = out.metrics.get("wall_time_s", time.perf_counter() - start)
                times[variant].append(method_s)
                models[variant] = out.model.state_dict()
                print(json.dumps({"bench": "kg_step_states", "variant": variant, "repeat": repeat,
                                  "method_s": round(method_s, 2),
                                  "selected_forget": round(out.metrics["selected"]["scores"]["forget"], 4)}))
    KGTextModel.step_states = shared_states
    diff = max(float((models["shared"][k].float() - models["per_term"][k].float()).abs().max())
               for k in models["shared"] if models["shared"][k].is_floating_point())
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"bench": "kg_step_states", "summary": True, "pairs": len(request), "close": args.close,
                      "seed": args.seed, "shared_s": round(best["shared"], 2), "per_term_s": round(best["per_term"], 2),
                      "speedup": round(best["per_term"] / best["shared"], 2), "max_weight_diff": diff,
                      "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
