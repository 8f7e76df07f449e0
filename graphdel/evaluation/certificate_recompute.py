"""Verifying deletion certificates, the checks that re-evaluate: the corpus and the requested pairs' content
hashes, the structural change on the original model, retrieval as ``forget`` computed it and, for an
evaluated certificate, the report's metrics, the gaps to Retrain, the targets and the verdict.

Every number is recomputed with the evaluation suite on the run's data (:mod:`graphdel.evaluation.run_data`),
which is why verification sits above the suite while building a certificate sits below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphdel.data.requests import pair_hash
from graphdel.errors import GraphdelError, RequestError
from graphdel.evaluation import run_data
from graphdel.evaluation.certificate_build import (_WEIGHTS, FORGET_POOL_SEED, FORGET_POOL_SIZE, _certified_flat,
                                                   _not_judged, _read_json, _verdict, retrieval_only, structural_change)
from graphdel.evaluation.certificate_checks import CertificateChecks, _folder, _hash_of
from graphdel.evaluation.run_data import evaluation_sets
from graphdel.evaluation.suite import SuiteConfig, evaluate_model, retrieval_metrics, suite_sets
from graphdel.evaluation.summary import forget_gap, thresholds
from graphdel.io import canonical_json_sha256
from graphdel.models.joint import ModelConfig
from graphdel.runs import Run


def _recompute_retrieval(model, prepared, df_rows: list[int], *, seed: int, pool_size: int, pool_seed: int,
                         device: str = "auto") -> dict:
    """Retrieval of ``model`` on the evaluation sets of a request (:func:`graphdel.evaluation.run_data.evaluation_sets`
    drawn with ``seed``), ranked against the run's distractor set, as ``api.forget`` computes it
    (``seed`` = the forget seed, :data:`FORGET_POOL_SIZE`, :data:`FORGET_POOL_SEED`) and the report does
    (its seed, pool size and the seed again for the pools).

    Every retrieval number :func:`verify_certificate` compares is computed here, so a change of the scorer
    is followed in one place. ``model`` is scored on ``device`` (moved there and back).
    """
    sets = evaluation_sets(prepared, df_rows, seed)
    return retrieval_only(retrieval_metrics(model, sets, prepared.distractors(), pool_size=pool_size,
                                            seed=pool_seed, device=device))


def _recompute_audit_aucs(model, prepared, df_rows: list[int], *, seed: int, pool_size: int, chunks: int,
                          device: str = "auto") -> tuple[Any, Any]:
    """``(Df-vs-Dr AUC mean, membership attack AUC)`` of ``model`` as the report computes them
    (:func:`graphdel.evaluation.suite.evaluate_model` on :func:`~graphdel.evaluation.suite.suite_sets`, no
    probes)."""
    sets = suite_sets(prepared, df_rows, chunks=chunks, seed=seed)
    entry, _ = evaluate_model(model, sets, config=SuiteConfig(seed=seed, chunks=chunks, pool_size=pool_size,
                                                               probes=False, device=device),
                              corpus=prepared.corpus)
    return (entry.get("distinguishability") or {}).get("mean"), (entry.get("membership") or {}).get("attack_auc")


#: Checks that need the data and the models (re-evaluation); "not checked" with ``metrics=False``.
_FORGET_RECOMPUTED = ("procedure.structural_change", "metrics.splits")
_EVALUATED_RECOMPUTED = _FORGET_RECOMPUTED + (
    "evaluation.seed", "evaluation.pool_size", "evaluation.chunks", "evaluation.splits",
    "evaluation.distinguishability", "evaluation.attack_auc", "evaluation.vs_retrain", "evaluation.thresholds",
    "evaluation.verdict")


class RecomputedChecks(CertificateChecks):
    """:class:`~graphdel.evaluation.certificate_checks.CertificateChecks` plus the checks that need the data
    and the models (skipped as not checked with ``metrics=False``)."""

    def check_data_and_metrics(self) -> None:
        """Corpus content hash, each requested pair's content hash, then every recorded metric re-evaluated."""
        data = self.config.get("data") or {}
        recomputed = _EVALUATED_RECOMPUTED if self.kind == "evaluated" else _FORGET_RECOMPUTED
        try:
            corpus = run_data.load_corpus(run_data.DataConfig(**{k: v for k, v in data.items()
                                                                 if k in run_data.DataConfig.__dataclass_fields__}))
            content_hash, why = corpus.content_hash(), ""
        except (GraphdelError, OSError) as e:  # e.g. a csv: source that was moved
            corpus, content_hash = None, None
            why = f"the corpus {data.get('source')!r} could not be loaded ({e})"
        if self.value("data.content_hash") != data.get("content_hash"):
            self.add("data.content_hash", False, "differs from config.json's data.content_hash")
        elif corpus is None:
            self.add("data.content_hash", None, why)
        else:
            ok = content_hash == data.get("content_hash")
            self.add("data.content_hash", ok, f"corpus {data.get('source')} " + (
                "hashes as recorded" if ok else f"now hashes to {content_hash[:16]}…"))
        request = self.value("request")
        pairs = request.get("pairs") if isinstance(request, dict) else None
        if corpus is None:
            self.add("request.pairs", None, why)
        elif not isinstance(pairs, list) or not pairs:
            self.add("request.pairs", False, "the certified request lists no pairs")
        else:
            def holds(p) -> bool:
                if not isinstance(p, dict) or not corpus.has_pair(p.get("pair_id")):
                    return False
                row = corpus.index_of(p["pair_id"])
                return pair_hash(corpus.items[corpus.item_ids[row]], corpus.texts[row]) == p.get("sha256")

            bad = [p.get("pair_id") if isinstance(p, dict) else p for p in pairs if not holds(p)]
            self.add("request.pairs", not bad, f"all {len(pairs)} requested pairs hash as recorded" if not bad
                     else f"{len(bad)} requested pairs are gone or changed in the corpus: {bad[:5]}")
        if corpus is None or content_hash != data.get("content_hash"):
            self.check_reference()
            self.skip(recomputed, why or "the corpus is not the one the run was trained on")
            return
        if not self.metrics:
            self.check_reference()
            self.skip(recomputed, "not re-evaluated (metrics off)")
            return
        try:
            self.recompute(corpus)
        except Exception as e:  # a corrupted or foreign weights file can fail to load in many ways
            done = {c[0] for c in self.res.checks}
            msg = str(e) if isinstance(e, GraphdelError) else f"{type(e).__name__}: {e}"
            for name in recomputed:
                if name not in done:
                    self.add(name, False, f"could not re-evaluate: {msg}")

    def check_reference(self) -> Path | None:
        """``evaluation.reference`` (a reachable Retrain run of the same request) and its weights hash;
        returns the reference folder when it is the certified one, else None."""
        if self.kind != "evaluated":
            return None
        ref, ref_sha = self.value("evaluation.reference"), self.value("evaluation.reference_weights_sha256")
        if ref is None:
            self.add("evaluation.reference", True, "null: no Retrain reference, forgetting is not judged")
            self.add("evaluation.reference_weights_sha256", ref_sha is None,
                     "null, as there is no reference" if ref_sha is None else "set, but there is no reference")
            return None
        folder = _folder(ref)
        if folder is None or not (folder / _WEIGHTS).is_file():
            self.skip(["evaluation.reference", "evaluation.reference_weights_sha256"],
                      f"the reference run {ref!r} is not reachable")
            return None
        ref_config = _read_json(folder / "config.json") or {}
        ref_request = _read_json(folder / "request.json")
        problems = []
        if ref_config.get("method") != "retrain":
            problems.append(f"its method is {ref_config.get('method')!r}, not 'retrain'")
        if ref_request is None or canonical_json_sha256(ref_request) != canonical_json_sha256(self.request):
            problems.append("it unlearned another request")
        self.add("evaluation.reference", not problems,
                 f"{ref}: " + ("a Retrain run of the same request" if not problems else "; ".join(problems)))
        actual = _hash_of(folder)
        self.add("evaluation.reference_weights_sha256", actual == ref_sha, f"{folder / _WEIGHTS}: "
                 + ("matches" if actual == ref_sha else f"sha256 {actual[:16]}… differs"))
        return folder if actual == ref_sha and not problems else None

    def recompute(self, corpus) -> None:
        """Re-evaluate what the run's data and models give: the structural change and every metric, on the
        same pairs, seeds and distractors."""
        run = Run.load(self.run_path, check=False)  # verify hashes its files itself and reports each change
        # run_data.load_run_data without loading the corpus again (the one hashed above)
        data = run_data.DataConfig(**{k: v for k, v in run.config["data"].items()
                                      if k in run_data.DataConfig.__dataclass_fields__})
        prepared = run_data.prepare(data, ModelConfig.from_dict(run.config["model"]), exclude=run.excluded_ids,
                                    corpus=corpus, progress=self.progress)
        df_rows = _request_rows(corpus, self.request)
        if not self.original_ok:
            self.add("procedure.structural_change", None, self.original_unusable())
        else:
            self.original_run = Run.load(self.original_path, check=False)  # checked in check_original_integrity
            forget = prepared.data.subset(sorted(set(df_rows)), "forget")  # Df as forget passed it
            self.equal("procedure.structural_change", structural_change(self.original_run.model, forget),
                       "the change recomputed on the original model")
        again = _recompute_retrieval(run.model, prepared, df_rows, seed=int(self.config.get("seed", 0)),
                                     pool_size=FORGET_POOL_SIZE, pool_seed=FORGET_POOL_SEED,
                                     device=self.device)
        self.equal("metrics.splits", again, f"retrieval re-evaluated (tolerance {self.tol:g})")
        if self.kind == "evaluated":
            self.recompute_evaluation(run, prepared, df_rows)

    def recompute_evaluation(self, run, prepared, df_rows: list[int]) -> None:
        """The evaluation part: retrieval, AUCs, gaps to Retrain, targets and verdict."""
        settings, invalid = self.check_settings()
        reference = self.check_reference()
        scores = ("evaluation.splits", "evaluation.distinguishability", "evaluation.attack_auc")
        judged = ("evaluation.vs_retrain", "evaluation.thresholds")
        if invalid:
            self.skip(scores + judged, "the evaluation settings are invalid")
            self.check_verdict(None, recomputed=False, why="the evaluation settings are invalid")
            return
        mine = self.evaluate(run.model, prepared, df_rows, settings)
        for key in ("splits", "distinguishability", "attack_auc"):
            self.equal(f"evaluation.{key}", mine[key], f"the re-evaluation (tolerance {self.tol:g})")
        is_reference = reference is not None and reference.resolve() == self.run_path.resolve()
        if self.value("evaluation.reference") is None or is_reference:
            # without a reference, and for the reference itself, nothing is judged against Retrain
            for name in judged if not is_reference else judged[1:]:
                self.equal(name, {}, "an empty record (nothing is judged against Retrain)")
            if not is_reference:
                self.check_verdict(None, recomputed=True, why="no targets")
                return
        if reference is None:
            why = "the reference run is not reachable or not the certified one"
            self.skip(judged, why)
            self.check_verdict(None, recomputed=False, why=why)
            return
        ref_run = Run.load(reference, check=False)  # its weights hash was checked by check_reference
        ref = mine if is_reference else self.evaluate(ref_run.model, prepared, df_rows, settings)
        gaps = forget_gap(_certified_flat(mine["splits"], mine["distinguishability"], mine["attack_auc"]),
                          _certified_flat(ref["splits"], ref["distinguishability"], ref["attack_auc"]))
        self.equal("evaluation.vs_retrain", gaps, "the gaps of the re-evaluated run and reference")
        if is_reference:
            self.check_verdict(None, recomputed=True, why="no targets for the reference itself")
            return
        if run.config.get("method") == "retrain":  # a further Retrain (the report's spread row): not judged
            self.equal("evaluation.thresholds", {}, "an empty record (a Retrain is not judged)")
            self.check_verdict(None, recomputed=True, why="no targets for a Retrain")
            return
        if self.original_run is None:
            self.skip(["evaluation.thresholds"], self.original_unusable())
            self.check_verdict(None, recomputed=False, why=self.original_unusable())
            return
        self.check_targets(run, ref_run, mine, ref, prepared, df_rows, settings)

    def check_settings(self) -> tuple[dict, list[str]]:
        """``evaluation.seed``, ``pool_size`` and ``chunks``: ``(settings, invalid)``, the recorded values and
        the names of those that are not valid settings (each recorded as a check)."""
        settings = {k: self.value(f"evaluation.{k}") for k in ("seed", "pool_size", "chunks")}
        invalid = [k for k, v in settings.items()
                   if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1)]
        for k, v in settings.items():
            # Settings are only inputs: an edited one shows as metrics that are not reproduced.
            self.add(f"evaluation.{k}", k not in invalid, f"{v!r}, " + (
                "the metrics below are re-evaluated with it" if k not in invalid else "not a valid setting"))
        return settings, invalid

    def evaluate(self, model, prepared, df_rows: list[int], settings: dict) -> dict:
        """``{"splits", "distinguishability", "attack_auc"}`` of ``model`` re-evaluated with the certified
        ``settings`` (seed, pool size, chunks), as the report computed them."""
        seed, pool_size, chunks = settings["seed"], settings["pool_size"], settings["chunks"]
        splits = _recompute_retrieval(model, prepared, df_rows, seed=seed, pool_size=pool_size,
                                      pool_seed=seed, device=self.device)
        dist, attack = _recompute_audit_aucs(model, prepared, df_rows, seed=seed, pool_size=pool_size,
                                             chunks=chunks, device=self.device)
        return {"splits": splits, "distinguishability": dist, "attack_auc": attack}

    def check_targets(self, run, ref_run, mine: dict, ref: dict, prepared, df_rows: list[int],
                      settings: dict) -> None:
        """``evaluation.thresholds`` recomputed from the re-evaluated run (``mine``), reference (``ref``) and
        original (retrieval only), with the wall times of their metrics.json, then the verdict they give."""
        seed, pool_size = settings["seed"], settings["pool_size"]
        original = _recompute_retrieval(self.original_run.model, prepared, df_rows, seed=seed, pool_size=pool_size,
                                        pool_seed=seed, device=self.device)
        targets = thresholds({"splits": mine["splits"], "wall_time_s": run.metrics.get("wall_time_s")},
                             {"splits": ref["splits"], "wall_time_s": ref_run.metrics.get("wall_time_s")},
                             {"splits": original})
        if self.smoke:
            targets = _not_judged(targets)
        self.equal("evaluation.thresholds", targets, "the targets of the re-evaluated run, reference and original "
                   "(wall times from their metrics.json)" + ("; a smoke run: not judged" if self.smoke else ""))
        self.check_verdict(_verdict(targets, self.smoke), recomputed=True, why="the recomputed targets")

    def check_verdict(self, verdict: bool | None, *, recomputed: bool, why: str) -> None:
        """``evaluation.verdict`` against ``verdict`` when the targets were ``recomputed``; otherwise only its
        agreement with the recorded targets is checked (and the check is not made)."""
        recorded = self.value("evaluation.verdict")
        if recomputed:
            self.add("evaluation.verdict", recorded == verdict,
                     f"{recorded!r}" + ("" if recorded == verdict else f", but {why} give {verdict!r}"))
            return
        targets = self.value("evaluation.thresholds")
        implied = _verdict(targets, self.smoke) if isinstance(targets, dict) else None
        if recorded != implied:
            self.add("evaluation.verdict", False, f"{recorded!r}, but the recorded targets give {implied!r}")
        else:
            self.add("evaluation.verdict", None, f"agrees with the recorded targets, but {why} to recompute them")


def _request_rows(corpus, request: dict) -> list[int]:
    """Corpus rows of a request file's pairs (read as ``api`` reads a forgotten run's request: without the
    "still forgettable" check, since the run no longer trains on them)."""
    ids = [p.get("pair_id") for p in request.get("pairs") or [] if isinstance(p, dict)]
    unknown = [p for p in ids if not corpus.has_pair(p)]
    if unknown or not ids:
        raise RequestError(f"the run's request.json names pairs absent from the corpus: {unknown[:5]}")
    return [corpus.index_of(p) for p in ids]
