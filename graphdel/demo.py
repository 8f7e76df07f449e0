"""``graphdel demo``: the whole story on the embedded corpus, end to end.

1. train the original model, or reuse a finished earlier run with the same resolved configuration and
   data (the *run cache*, :mod:`graphdel.run_cache`);
2. make the default deletion request: 5% of the training molecules, seed 0;
3. run Retrain and every registered method (Retrain is trained once and shared: it is both the
   ``retrain`` method's model and the evaluation reference);
4. evaluate them all (:func:`graphdel.evaluation.suite.evaluate_runs`) and write the report, the
   metrics and one evaluated certificate per run.

In the full setting steps 2-4 run for 3 requests (seeds 0, 1, 2; ``requests``), each against its own
Retrain; the first report adds each headline gap's mean ± spread over them (:mod:`graphdel.evaluation.spread`).

``quick`` (``graphdel demo --quick``) is a *smoke run*: a tiny model trained on a sample of the data, too
small to say anything about the methods. Its printed summary and its report open with
:data:`graphdel.evaluation.report.SMOKE_BANNER` and every verdict reads ``not judged`` (the numbers are all
shown); ``metrics.json`` records ``"smoke": true``.

An existing ``OUT`` is refused (an empty folder excepted) unless ``overwrite``: the old folder is then moved
aside to a hidden ``.OUT.<random>.old`` sibling, deleted once the new demo is complete, and put back if the
demo fails or is interrupted, so old and new results are never mixed.

Output folder::

    OUT/
      report.html, report.md, metrics.json, plots/   the report
      certificates/<method>.json                      evaluated deletion certificates
      runs/<method>/                                  the unlearned run folders
      request.json                                    the deletion request
      requests/seed-<S>/                              the same for each further request (full setting)
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from graphdel import api
from graphdel.config import ConfigMixin, check, check_types
from graphdel.device import resolve_device
from graphdel.errors import ConfigError, InvalidInputError, RunError, UnlearningNoOpError
from graphdel.evaluation.report import SMOKE_BANNER
from graphdel.evaluation.spread import spread_of
from graphdel.evaluation.suite import SuiteConfig, evaluate_runs, lp_table, short_table, spread_table, write_audit
from graphdel.forget_run import recorded_configs
from graphdel.io import atomic_write_json, remove_path
# the cache of trained originals, re-exported here where bench scripts and notebooks have always found it
from graphdel.run_cache import cached_train, run_cache_dir
from graphdel.runs import check_output
from graphdel.unlearning import available_methods, get_method, parse_overrides

__all__ = ["DemoConfig", "run_demo", "run_cache_dir", "cached_train", "QUICK_OVERRIDES"]

#: Method overrides for ``--quick`` so that the whole demo fits in a few minutes on a laptop CPU
#: (methods whose epochs pass over Dr get one pass).
QUICK_OVERRIDES: dict[str, list[str]] = {"ft": ["epochs=1"], "scrub": ["epochs=2", "retain_steps=4"],
}


@dataclass
class DemoConfig(ConfigMixin):
    """Settings of :func:`run_demo` (parsed, checked and round-tripped by the config kernel,
    :mod:`graphdel.config`; ``out/demo.json`` records them under ``config``).

    Attributes:
        out: the output folder (must not exist, or be empty, unless ``overwrite``); a path is kept as text.
        overwrite: replace an existing ``out`` whole (see the module docstring).
        accept_modified: use a cached original whose weights or config.json changed since it was written.
        quick: the small setting (:func:`graphdel.api.quick_configs` and :data:`QUICK_OVERRIDES`): a smoke
            run, reported with every verdict "not judged" (see the module docstring).
        data: dataset spec (default: the embedded ``drugs`` corpus).
        fraction: share of the training units (``by``) to delete (a number >= 1: how many units).
        forget: the ids of the units (``by``) to delete instead of a random ``fraction`` (e.g. a KG
            relation for ``by="relation"``).
        close: (knowledge graphs) every run, Retrain included, deletes the request's retained mirror triples
            too (``graphdel forget --close``).
        by: the request granularity (``molecule`` for molecule–text data, ``triple`` for a KG).
        seed: seed of the request, the unlearning runs and the evaluation.
        requests: how many requests the deletion is measured on (``None``: 3 in the full setting with a random
            request, else 1); request ``k`` is drawn with seed ``seed + k``, and the report adds each headline
            gap's mean ± spread over them (:mod:`graphdel.evaluation.spread`).
        methods: methods to run besides Retrain (default: every registered method).
        lira_shadows, lira_epochs: the optional LiRA attack (0 = off).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: where the original, every method, Retrain and the
            evaluation compute (:func:`graphdel.device.resolve_device`).
        progress: progress bars and step lines.
        overrides: ``{method: ["key=value", ...]}`` added to each method's settings.
    """

    out: str = "out/demo"
    quick: bool = False
    data: str = "drugs"
    fraction: float = 0.05
    forget: list[str] | None = None
    close: bool = False
    by: str = "molecule"
    seed: int = 0
    requests: int | None = None
    methods: list[str] | None = None
    lira_shadows: int = 0
    lira_epochs: int | None = None
    device: str = "auto"
    progress: bool = True
    overrides: dict = field(default_factory=dict)
    overwrite: bool = False
    accept_modified: bool = False

    config_name = "demo config"

    def __post_init__(self) -> None:
        # a Path (or a tuple of ids) given by hand is kept in the form config.json and --set use
        self.out = str(self.out) if isinstance(self.out, Path) else self.out
        self.forget = list(self.forget) if isinstance(self.forget, tuple) else self.forget
        self.methods = list(self.methods) if isinstance(self.methods, tuple) else self.methods
        check_types(self)
        check(self.requests is None or self.requests >= 1, f"requests must be >= 1, got {self.requests}")
        check(not (self.forget and (self.requests or 1) > 1),
              "requests > 1 draws random requests; it cannot be combined with forget (named units)")

    def request_seeds(self) -> list[int]:
        """The seeds of the requests the demo deletes (see ``requests``)."""
        n = self.requests if self.requests is not None else (1 if self.quick or self.forget else 3)
        return [self.seed + k for k in range(n)]


def run_demo(cfg: DemoConfig, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo (see the module docstring). Returns ``{"report": path of report.html, "audit": ...,
    "files": {...}, "wall_time_s": float}``."""
    log = log or (lambda s: print(s, flush=True))
    t_start = time.perf_counter()
    out = Path(cfg.out)
    # before any work: not inside a run, not over the run cache, not over an existing demo unless asked
    check_output(out, protect=[run_cache_dir(out)], overwrite=cfg.overwrite, allow_empty_folder=True)
    if cfg.methods is not None:  # an explicit list: [] or a blank name is a mistake, never "every method"
        bad = [m for m in cfg.methods if not isinstance(m, str) or not m.strip()]
        if not cfg.methods or bad:
            raise InvalidInputError(f"methods {list(cfg.methods)!r}: give one or more method names (an empty "
                                    "name or list is not 'every method')")
        dupes = sorted({m for m in cfg.methods if list(cfg.methods).count(m) > 1})
        if dupes or "retrain" in cfg.methods:
            raise InvalidInputError(f"methods {list(cfg.methods)!r}: "
                                    + (f"{', '.join(dupes)} named twice" if dupes else
                                       "retrain always runs, as the reference; leave it out"))
    methods = list(cfg.methods) if cfg.methods else [n for n, _, _ in available_methods() if n != "retrain"]
    overrides = {m: list(QUICK_OVERRIDES.get(m, [])) if cfg.quick else [] for m in methods}
    for m, extra in (cfg.overrides or {}).items():
        overrides.setdefault(m, []).extend(extra)
    for m in methods:  # refuse a bad method or key before any work
        parse_overrides(get_method(m).Config, overrides.get(m) or [])
    resolve_device(cfg.device)  # CUDA asked for without a GPU: said before any work
    with _replacing(out, cfg.overwrite):
        return _demo_steps(cfg, out, methods, overrides, cfg.device, log, t_start)


@contextmanager
def _replacing(out: Path, overwrite: bool) -> Iterator[None]:
    """With ``overwrite``, move an existing non-empty ``out`` aside to a hidden ``.OUT.<random>.old``
    sibling for the block; delete it when the block succeeds, put it back (removing what the block wrote)
    when it fails, so an old and a new demo are never mixed."""
    import secrets

    aside = None
    if overwrite and (out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir())))):
        aside = out.with_name(f".{out.name}.{secrets.token_hex(4)}.old")
        try:
            os.rename(out, aside)
        except OSError as e:
            raise RunError(f"cannot move the old {out} aside to replace it: {e.strerror or e}") from e
    try:
        yield
    except BaseException as e:
        if aside is not None:
            shutil.rmtree(out, ignore_errors=True)
            try:
                os.rename(aside, out)
            except OSError as err:
                raise RunError(f"the demo failed ({type(e).__name__}: {e}) and the old {out} could not be put "
                               f"back ({err.strerror or err}); it is kept as {aside}") from e
        raise
    if aside is not None:
        remove_path(aside)


def _demo_steps(cfg: DemoConfig, out: Path, methods: list[str], overrides: dict[str, list[str]], device: str,
                log: Callable[[str], None], t_start: float) -> dict[str, Any]:
    """Steps 1-4 of :func:`run_demo` (see the module docstring), writing into ``out``; the arguments are
    the ones :func:`run_demo` checked. The first request's folder is ``out``, the others'
    ``out/requests/seed-<seed>``, each with its runs and its report; the first report adds the spread."""
    clock = time.perf_counter()
    original, prepared, reused = _original_step(cfg, out, log)
    # where the demo's time went (demo.json "steps_s"): a user on a GPU asks why the demo is not only training
    steps = {"original": _step_times(time.perf_counter() - clock, None if reused else original),
             "requests": []}
    seeds = cfg.request_seeds()
    done = []  # (folder, audit, pairs, methods skipped) of each request
    for k, seed in enumerate(seeds):
        where = out if k == 0 else out / "requests" / f"seed-{seed}"
        if len(seeds) > 1:
            log(f"--- request {k + 1} of {len(seeds)} (seed {seed})")
        clock = time.perf_counter()
        request = _request_step(cfg, where, original, prepared, log, seed)
        runs, skipped = _unlearning_step(cfg, where, original, prepared, request, methods, overrides, device,
                                         log, seed)
        unlearning = time.perf_counter() - clock
        audit = _evaluation_step(cfg, original, prepared, runs, skipped, device, log, seed)
        steps["requests"].append({"seed": seed, "unlearning": round(unlearning, 2),
                                  "runs": round(sum(r.metrics["wall_time_s"] for r in runs), 2),
                                  "evaluation": round(time.perf_counter() - clock - unlearning, 2)})
        done.append((where, audit, len(request), skipped))
    clock = time.perf_counter()
    for where, audit, _, _ in done[1:]:
        write_audit(where, audit)
    audit = done[0][1]
    if len(done) > 1:
        audit["results"]["spread"] = spread_of([{"seed": s, "pairs": n, "models": a["results"]["models"]}
                                                for s, (_, a, n, _) in zip(seeds, done)])
    files = write_audit(out, audit)
    steps["report"] = round(time.perf_counter() - clock, 2)
    wall = time.perf_counter() - t_start
    _write_demo_json(cfg, out, original, reused, methods, overrides, done[0][3], wall, steps)
    _log_summary(audit, files, wall, log)
    return {"report": files["report.html"], "audit": audit, "files": files, "wall_time_s": wall}


def _original_step(cfg: DemoConfig, out: Path, log: Callable[[str], None]):
    """Step 1: the original model, trained in the quick or the full setting on ``cfg.device``, or a cached
    one reused (:func:`cached_train`). Returns ``(run, prepared, reused)``."""
    if cfg.quick:
        data, model_config, train_config = api.quick_configs(cfg.data)
    else:
        data, model_config, train_config = api.DataConfig(source=cfg.data), api.ModelConfig(), api.TrainConfig()
    train_config = replace(train_config, device=cfg.device)

    if cfg.quick:
        log(SMOKE_BANNER)
    log(f"[1/4] original model ({'quick' if cfg.quick else 'full'} setting, data {cfg.data})")
    original, prepared, reused = cached_train(data, model_config, train_config, cache=run_cache_dir(out),
                                              progress=cfg.progress, log=log, quick=cfg.quick,
                                              accept_modified=cfg.accept_modified)
    log(f"      {original.path} ({_headline(original.metrics['splits']['test'])}"
        f"{', reused' if reused else ''})")
    return original, prepared, reused


def _request_step(cfg: DemoConfig, out: Path, original, prepared, log: Callable[[str], None], seed: int):
    """Step 2: the deletion request (``cfg.forget``'s ids, else a random ``cfg.fraction`` drawn with
    ``seed``), saved as ``out/request.json``."""
    if cfg.forget:
        log(f"[2/4] deletion request: {', '.join(cfg.forget)} (by {cfg.by})")
        request = api.make_request(original, ids=list(cfg.forget), by=cfg.by, prepared=prepared)
    else:
        amount = f"{cfg.fraction:g}" if cfg.fraction >= 1 else f"{100 * cfg.fraction:g}%"
        log(f"[2/4] deletion request: {amount} of the training units (by {cfg.by}), seed {seed}")
        request = api.make_request(original, random_amount=cfg.fraction, by=cfg.by, seed=seed, prepared=prepared)
    out.mkdir(parents=True, exist_ok=True)
    request.save(out / "request.json", prepared.corpus)
    log(f"      {len(request)} pairs to forget ({request.description})")
    return request


def _shared_retrain(cfg: DemoConfig, original, device: str, log: Callable[[str], None]) -> Callable:
    """``(prepared, dr_rows) -> TrainResult``: Retrain trained once per Dr and shared, so that the ``retrain``
    method's model and the evaluation reference are the same model (``retrain_fn`` of :func:`api.forget`)."""
    model_config, recorded = recorded_configs(original)
    retrained: dict[tuple, Any] = {}

    def retrain_fn(prep, dr_rows):
        key = tuple(sorted(dr_rows))
        if key not in retrained:
            log("      training Retrain from scratch on Dr (once; shared with the evaluation)")
            # on this demo's device, whatever device a cached original was trained on
            recipe = replace(recorded, device=device)
            retrained[key] = api.retrain_model(prep, dr_rows, model_config, recipe, progress=cfg.progress)
        return retrained[key]

    return retrain_fn


def _unlearning_step(cfg: DemoConfig, out: Path, original, prepared, request, methods: list[str],
                     overrides: dict[str, list[str]], device: str, log: Callable[[str], None], seed: int
                     ) -> tuple[list, dict[str, str]]:
    """Step 3: Retrain and then every method unlearn ``request`` from ``original`` into ``out/runs/<method>``.
    Returns ``(runs, skipped)``: the runs made, and ``{method: reason}`` for the methods left out because they
    do not apply to this model (only when the methods were not named by the caller) or because they left the
    model unchanged (nothing to certify: on a corpus too small to rank, the deleted pairs may already score
    as never-seen ones do, and a method that stops there deletes nothing)."""
    retrain_fn = _shared_retrain(cfg, original, device, log)
    log(f"[3/4] unlearning with retrain + {len(methods)} methods: {', '.join(methods)}")
    runs, skipped = [], {}
    for i, method in enumerate(["retrain"] + methods, start=1):
        log(f"      ({i}/{len(methods) + 1}) {method}"
            + (f" [{' '.join(overrides.get(method) or [])}]" if overrides.get(method) else ""))
        try:
            run = api.forget(original, request, method=method, overrides=overrides.get(method) or None,
                             out=out / "runs" / method, seed=seed, device=device, progress=cfg.progress,
                             prepared=prepared, retrain_fn=retrain_fn, accept_modified=cfg.accept_modified,
                             close=cfg.close)
        except ConfigError as e:  # a method that does not apply to this model (e.g. needs a hook)
            if method == "retrain" or cfg.methods:
                raise
            skipped[method] = str(e)
            log(f"            skipped: {e}")
            continue
        except UnlearningNoOpError as e:  # a finding about this request, not a failure of the demo
            skipped[method] = str(e)
            log(f"            deleted nothing: {e}")
            continue
        runs.append(run)
        log(f"            {run.metrics['wall_time_s']:.1f} s, Df {_headline(run.metrics['splits']['forget'])}")
    return runs, skipped


def _evaluation_step(cfg: DemoConfig, original, prepared, runs: list, skipped: dict[str, str], device: str,
                     log: Callable[[str], None], seed: int) -> dict[str, Any]:
    """Step 4: evaluate one request's runs (:func:`graphdel.evaluation.suite.evaluate_runs`, seeded with
    ``seed``, on the original's data the demo prepared once); the caller writes the report, the metrics and
    the certificates. Returns the audit."""
    log("[4/4] evaluating")
    suite_cfg = SuiteConfig(seed=seed, lira_shadows=cfg.lira_shadows, lira_epochs=cfg.lira_epochs, device=device)
    audit = evaluate_runs(runs, config=suite_cfg, original=original, prepared=prepared,
                          progress=False, log=lambda s: log("      " + s.strip()))
    # --quick: a tiny model on a data sample is a smoke run; the report shows the numbers, judges nothing
    audit["results"]["smoke"] = audit["results"]["smoke"] or bool(cfg.quick)
    audit["results"]["request"]["run cache"] = str(original.path)
    if skipped:
        audit["results"]["request"]["methods skipped"] = skipped
    return audit


def _step_times(seconds: float, trained) -> dict[str, float | None]:
    """The original step's seconds split into ``training`` (the trained run's own ``wall_time_s``; ``None``
    when a cached original was reused) and ``data`` (the rest: loading, featurising, the frozen text pass,
    checking the cache)."""
    training = None if trained is None else trained.metrics["wall_time_s"]
    return {"total": round(seconds, 2), "training": None if training is None else round(training, 2),
            "data": round(seconds - (training or 0.0), 2)}


def _write_demo_json(cfg: DemoConfig, out: Path, original, reused: bool, methods: list[str],
                     overrides: dict[str, list[str]], skipped: dict[str, str], wall: float,
                     steps: dict[str, Any]) -> None:
    """``out/demo.json``: the demo's settings and what it did (time, original reused, methods skipped) and
    ``steps_s``, the seconds of each step: the original (its training and the rest), each request's
    unlearning (Retrain and every method; ``runs`` is the sum of the runs' own times, the rest is loading
    and saving them) and evaluation, and writing the reports."""
    atomic_write_json({"wall_time_s": wall, "quick": cfg.quick, "data": cfg.data, "original": str(original.path),
                       "original_reused": reused, "methods": methods, "overrides": overrides,
                       "skipped": skipped, "steps_s": steps, "config": cfg.to_dict()},
                      out / "demo.json")


def _log_summary(audit: dict[str, Any], files: dict[str, Any], wall: float,
                 log: Callable[[str], None]) -> None:
    """The closing lines: the short table, the link-prediction table (KG only), the spread over requests (when
    several), the time and the report."""
    log("")
    log(short_table(audit))  # opens with the smoke banner for a quick demo
    if lp_table(audit):
        log("")
        log(lp_table(audit))
    if spread_table(audit):
        log("")
        log(spread_table(audit))
    log("")
    log(f"demo finished in {wall:.0f} s")
    log(f"report: {files['report.html']}")


def _headline(split_metrics: dict) -> str:
    """``"link-prediction MRR 0.412"`` for a KG split, ``"pool-64 g2t MRR 0.563"`` otherwise."""
    if "lp" in split_metrics:
        return f"link-prediction MRR {split_metrics['lp']['mrr']:.3f}"
    return f"pool-64 g2t MRR {split_metrics['pool64']['g2t_mrr']:.3f}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `graphdel demo`")
