"""Verifying deletion certificates: :func:`verify_certificate` checks every field a certificate asserts
against the run folders and the corpus, re-evaluating the metrics, and names each field that no longer
holds (the format: :mod:`graphdel.evaluation.certificate`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphdel.evaluation.certificate_build import (_EVALUATED_FIELDS, _WEIGHTS, AUDIT_ENTRY_FIELDS,
                                                   CERTIFICATE_VERSION, FORGET_POOL_SEED, FORGET_POOL_SIZE,
                                                   REQUIRED_FIELDS, _certified_flat, _not_judged, _read_json,
                                                   _verdict, parent_certificate_sha256, retrieval_only,
                                                   structural_change)
from graphdel.io import canonical_json_sha256, sha256_file
from graphdel.runs import is_quick_config

_MISSING = object()


def _param_change_norm(original_weights: Path, unlearned_weights: Path) -> float:
    """:func:`graphdel.runs.parameter_change_norm` (what ``forget`` certifies) of two weight files."""
    from safetensors.torch import load_file

    from graphdel.runs import parameter_change_norm

    return parameter_change_norm(load_file(str(original_weights)), load_file(str(unlearned_weights)))


# ------------------------------------------------------------------------------ verification

@dataclass
class VerifyResult:
    """Outcome of :func:`verify_certificate`.

    Attributes:
        checks: ``(name, ok, detail)``, one per certified field (named by its dotted path) plus
            ``request.pairs`` (the requested pairs' content), ``weights_changed``, ``chain`` (earlier
            certificates) and ``run`` (the run's config.json or request.json unreadable); ``ok`` is True,
            False, or None for a check that could not be made (e.g. the original run moved).
        unreachable: why nothing about the run could be checked (its folder was not found), else None.
    """

    checks: list = field(default_factory=list)
    unreachable: str | None = None

    @property
    def failed(self) -> list:
        """The ``(name, False, detail)`` checks that failed."""
        return [c for c in self.checks if c[1] is False]

    @property
    def not_checked(self) -> list:
        """The ``(name, None, detail)`` checks that could not be made."""
        return [c for c in self.checks if c[1] is None]

    @property
    def status(self) -> str:
        """``"does not hold"`` when a check failed, else ``"cannot check"`` when the run was not found,
        else ``"holds"``."""
        if self.failed:
            return "does not hold"
        return "cannot check" if self.unreachable is not None else "holds"

    @property
    def holds(self) -> bool:
        """True when the run was found and no check failed (checks that could not be made do not count
        against it; see :attr:`not_checked`)."""
        return self.status == "holds"


def _get(obj, path: str):
    """The value at the dotted ``path`` of nested dicts, or :data:`_MISSING`."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _close(a: float, b: float, tol: float) -> bool:
    """``a`` and ``b`` within ``tol`` (absolute up to magnitude 1, relative above, e.g. a weight norm)."""
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _diff(recorded, actual, tol: float, prefix: str = "") -> list[str]:
    """Where ``recorded`` and ``actual`` differ: numbers beyond ``tol``, anything else unequal, and keys
    present on one side only (so a removed or an added entry is a difference too)."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(recorded) | set(actual), key=str):
            sub = f"{prefix}.{k}" if prefix else str(k)
            if k not in actual:
                out.append(f"{sub}: recorded {recorded[k]!r}, absent when recomputed")
            elif k not in recorded:
                out.append(f"{sub}: missing from the certificate (recomputed {actual[k]!r})")
            else:
                out += _diff(recorded[k], actual[k], tol, sub)
        return out
    same = _close(recorded, actual, tol) if _is_number(recorded) and _is_number(actual) else recorded == actual
    return [] if same else [f"{prefix + ': ' if prefix else ''}recorded {recorded!r}, found {actual!r}"]


def _summary(diffs: list[str]) -> str:
    """The first differences, and how many more."""
    return "; ".join(diffs[:5]) + (f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else "")


def _hash_of(folder: Path | None) -> str | None:
    """SHA-256 of ``folder/model.safetensors``, or None when the folder or file is not there."""
    if folder is None or not (folder / _WEIGHTS).is_file():
        return None
    return sha256_file(folder / _WEIGHTS)


def _folder(path) -> Path | None:
    """``path`` as a folder when it is a non-empty string naming an existing directory, else None."""
    if isinstance(path, str) and path and Path(path).is_dir():
        return Path(path)
    return None


def _locate_run(cert: dict, cert_path: Path) -> Path | None:
    recorded = cert.get("unlearned_path")
    if isinstance(recorded, str) and recorded and (Path(recorded) / _WEIGHTS).is_file():
        return Path(recorded)
    if (cert_path.parent / _WEIGHTS).is_file():
        return cert_path.parent
    return None


def _recompute_retrieval(model, prepared, df_rows: list[int], *, seed: int, pool_size: int, pool_seed: int,
                         device: str = "auto") -> dict:
    """Retrieval of ``model`` on the evaluation sets of a request (:func:`graphdel.evaluation.run_data.evaluation_sets`
    drawn with ``seed``), ranked against the run's distractor set, as ``api.forget`` computes it
    (``seed`` = the forget seed, :data:`FORGET_POOL_SIZE`, :data:`FORGET_POOL_SEED`) and the report does
    (its seed, pool size and the seed again for the pools).

    Every retrieval number :func:`verify_certificate` compares is computed here, so a change of the scorer
    is followed in one place. ``model`` is scored on ``device`` (moved there and back).
    """
    from graphdel.evaluation.run_data import evaluation_sets
    from graphdel.evaluation.suite import retrieval_metrics

    sets = evaluation_sets(prepared, df_rows, seed)
    return retrieval_only(retrieval_metrics(model, sets, prepared.distractors(), pool_size=pool_size,
                                            seed=pool_seed, device=device))


def _recompute_audit_aucs(model, prepared, df_rows: list[int], *, seed: int, pool_size: int, chunks: int,
                          device: str = "auto") -> tuple[Any, Any]:
    """``(Df-vs-Dr AUC mean, membership attack AUC)`` of ``model`` as the report computes them
    (:func:`graphdel.evaluation.suite.evaluate_model` on :func:`~graphdel.evaluation.suite.suite_sets`, no
    probes)."""
    from graphdel.evaluation.suite import SuiteConfig, evaluate_model, suite_sets

    sets = suite_sets(prepared, df_rows, chunks=chunks, seed=seed)
    entry, _ = evaluate_model(model, sets, config=SuiteConfig(seed=seed, chunks=chunks, pool_size=pool_size,
                                                               probes=False, device=device),
                              corpus=prepared.corpus)
    return (entry.get("distinguishability") or {}).get("mean"), (entry.get("membership") or {}).get("attack_auc")


def _check_tolerance(tolerance) -> None:
    from graphdel.errors import InvalidInputError

    if not _is_number(tolerance) or not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidInputError(f"tolerance must be a finite number >= 0, got {tolerance!r}")


def _read_certificate(cert_path: Path) -> dict:
    from graphdel.errors import RunError

    try:
        cert = json.loads(cert_path.read_text(encoding="utf-8"))
    # ValueError: bad JSON or non-UTF-8 bytes; RecursionError: absurdly nested brackets (a file from elsewhere)
    except (OSError, ValueError, RecursionError) as e:
        raise RunError(f"cannot read certificate {cert_path}: {type(e).__name__}: {e}") from e
    known = {p.split(".")[0] for p in _EVALUATED_FIELDS}
    # Any certificate field makes it a certificate (with the others reported missing); none, another file.
    if not isinstance(cert, dict) or not known & set(cert):
        raise RunError(f"{cert_path} is not a graphdel deletion certificate")
    return cert


#: Checks that need the data and the models (re-evaluation); "not checked" with ``metrics=False``.
_FORGET_RECOMPUTED = ("procedure.structural_change", "metrics.splits")
_EVALUATED_RECOMPUTED = _FORGET_RECOMPUTED + (
    "evaluation.seed", "evaluation.pool_size", "evaluation.chunks", "evaluation.splits",
    "evaluation.distinguishability", "evaluation.attack_auc", "evaluation.vs_retrain", "evaluation.thresholds",
    "evaluation.verdict")


class _Verifier:
    """The checks of :func:`verify_certificate` on one certificate (they share the located runs)."""

    def __init__(self, cert: dict, cert_path: Path, tolerance: float, metrics: bool, progress: bool,
                 device: str = "auto") -> None:
        self.cert, self.cert_path, self.tol = cert, cert_path, tolerance
        self.metrics, self.progress, self.device = metrics, progress, device
        self.res = VerifyResult()
        # The kind follows the content, so that a certificate relabelled "forget" cannot shed its
        # evaluation part's checks (and the "kind" check then fails).
        self.kind = "evaluated" if "evaluation" in cert else "forget"
        fields = REQUIRED_FIELDS.get(cert.get("version"), REQUIRED_FIELDS[CERTIFICATE_VERSION])
        self.fields = fields[self.kind]
        self.missing = {p for p in self.fields if _get(cert, p) is _MISSING}

    # -------------------------------------------------------------------- helpers
    def add(self, name: str, ok: bool | None, detail: str) -> None:
        """Record a check, unless its field is missing (reported once, as missing)."""
        if name not in self.missing:
            self.res.checks.append((name, ok, detail))

    def skip(self, names, why: str) -> None:
        """Record ``names`` as not checked, for the reason ``why``."""
        for name in names:
            self.add(name, None, why)

    def value(self, name: str):
        return _get(self.cert, name)

    def equal(self, name: str, actual, where: str) -> None:
        """The field ``name`` must equal ``actual`` (numbers within the tolerance), found in ``where``."""
        diffs = _diff(self.value(name), actual, self.tol)
        self.add(name, not diffs, f"matches {where}" if not diffs else f"differs from {where}: {_summary(diffs)}")

    # -------------------------------------------------------------------- the checks
    def run(self) -> VerifyResult:
        for name in sorted(self.missing, key=self.fields.index):
            self.res.checks.append((name, False, "missing from the certificate"))
        self.check_form()
        run_path = _locate_run(self.cert, self.cert_path)
        if run_path is None:
            self.res.unreachable = (f"the unlearned run was not found (recorded path "
                                    f"{self.cert.get('unlearned_path')!r}, nor a run next to {self.cert_path})")
            return self.res
        self.run_path = run_path
        self.config = _read_json(run_path / "config.json")
        self.request = _read_json(run_path / "request.json")
        metrics = _read_json(run_path / "metrics.json")
        self.run_metrics = metrics if isinstance(metrics, dict) else {}
        if not isinstance(self.config, dict) or not isinstance(self.request, dict):
            self.res.checks.append(("run", False, f"{run_path}: config.json or request.json is missing or "
                                                  "unreadable"))
            return self.res
        parent = _folder((self.config.get("parent") or {}).get("path"))
        self.parent_path = parent
        self.original_path = (_folder(self.value("original_path")) if self.kind == "evaluated" else None) or parent
        self.original_sha = _hash_of(self.original_path)
        # The original's weights are used (norm, structure, targets) only when they are the certified ones.
        self.original_ok = (self.original_sha is not None
                            and self.original_sha == self.value("original_weights_sha256"))
        self.original_run = None
        # A smoke run (quick original; a forget run's config.json records the original's data block) is not
        # judged from version 3 on: its targets' "passed" and the verdict read NOT_JUDGED.
        self.smoke = self.cert.get("version") != 2 and is_quick_config(self.config)
        self.check_run_files()
        self.check_audits()
        self.check_weights()
        self.check_original_integrity()
        self.check_chain()
        self.check_data_and_metrics()
        return self.res

    def check_form(self) -> None:
        """``version`` and ``kind``, and no field that nothing verifies."""
        version = self.cert.get("version")
        self.add("version", version in REQUIRED_FIELDS, f"{version!r}" + (
            "" if version in REQUIRED_FIELDS else f": this graphdel verifies versions {sorted(REQUIRED_FIELDS)}"))
        kind = self.cert.get("kind")
        self.add("kind", kind == self.kind, f"{kind!r}" + ("" if kind == self.kind else (
            f", but the certificate {'has' if self.kind == 'evaluated' else 'lacks'} an evaluation part")))
        top = {p.split(".")[0] for p in self.fields}
        blocks = {p.split(".")[0] for p in self.fields if "." in p}
        for key, val in self.cert.items():
            unknown = [key] if key not in top else (
                [f"{key}.{k}" for k in val if f"{key}.{k}" not in self.fields]
                if key in blocks and isinstance(val, dict) else [])
            version = self.cert.get("version") if self.cert.get("version") in REQUIRED_FIELDS else CERTIFICATE_VERSION
            for name in unknown:
                self.res.checks.append((name, False, f"not a field of a version-{version} {self.kind} "
                                                     "certificate: nothing verifies it"))

    def check_run_files(self) -> None:
        """Fields read off the run's own files: weights, config, request, method, data source, the
        procedure's counters."""
        config, request, run = self.config, self.request, self.run_path
        self.unlearned_sha = sha256_file(run / _WEIGHTS)
        self.equal("unlearned_weights_sha256", self.unlearned_sha, f"{run / _WEIGHTS}")
        if self.kind == "evaluated":
            # the path holds the certified run: the run found there has the certified weights and config
            recorded = self.value("unlearned_path")
            there = isinstance(recorded, str) and bool(recorded) and Path(recorded).resolve() == run.resolve()
            certified = (self.unlearned_sha == self.value("unlearned_weights_sha256")
                         and canonical_json_sha256(config) == self.value("config_sha256"))
            self.add("unlearned_path", there and certified, f"{recorded!r} " + (
                "holds the certified run" if there and certified else
                "holds a run with other weights or config than the certified ones" if there else
                f"is not where the run was found ({run})"))
        self.equal("config_sha256", canonical_json_sha256(config), f"{run}/config.json")
        self.equal("request", request, f"{run}/request.json")
        self.equal("request_sha256", canonical_json_sha256(request), f"{run}/request.json")
        self.equal("method", config.get("method"), "config.json")
        self.equal("method_config", config.get("method_config", {}), "config.json")
        self.equal("data.source", (config.get("data") or {}).get("source"), "config.json")
        selected = self.run_metrics.get("selected") or {}
        for name, key in (("procedure.steps", "steps"), ("procedure.epochs_run", "epochs_run"),
                          ("procedure.selected_epoch", "epoch")):
            self.equal(name, selected.get(key), "metrics.json 'selected'")

    def check_audits(self) -> None:
        """``evaluation.audit``: each recorded audit file still hashes as recorded, says what the entry says
        (method, settings, models, ``--originals``, the original's weights) and audits this certificate's
        request and method. A file that is not there is not checked (it may have moved); a failure names
        the file."""
        if "evaluation.audit" not in self.fields:
            return
        entries = self.value("evaluation.audit")
        if not isinstance(entries, list):
            self.add("evaluation.audit", False, f"must be a list of audit entries, got {type(entries).__name__}")
            return
        if not entries:
            self.add("evaluation.audit", True, "no per-example audit recorded (none of this method was given "
                                               "to the report)")
            return
        problems, unreachable, held = [], [], []
        for i, entry in enumerate(entries):
            problem = self._audit_problem(i, entry)
            if problem is None:
                held.append(entry["file"])
            elif problem.startswith("unreachable: "):
                unreachable.append(problem.removeprefix("unreachable: "))
            else:
                problems.append(problem)
        if problems:
            self.add("evaluation.audit", False, problems[0] + (f" (+{len(problems) - 1} more)"
                                                               if len(problems) > 1 else ""))
        elif unreachable:
            self.add("evaluation.audit", None, "; ".join(unreachable))
        else:
            self.add("evaluation.audit", True, f"{len(held)} audit file(s) hash as recorded and audit this "
                                               f"request and method: {', '.join(held)}")

    def _audit_problem(self, i: int, entry) -> str | None:
        """What is wrong with the ``i``-th ``evaluation.audit`` entry (one line naming its file), a line
        starting ``"unreachable: "`` when its file is not there, or None when it holds."""
        if not isinstance(entry, dict) or any(k not in entry for k in AUDIT_ENTRY_FIELDS):
            missing = [k for k in AUDIT_ENTRY_FIELDS if not isinstance(entry, dict) or k not in entry]
            return f"entry {i} lacks {', '.join(missing)}"
        path = Path(str(entry["file"]))
        if entry["request_sha256"] != self.value("request_sha256"):
            return (f"{path} audits another deletion request (sha256 {str(entry['request_sha256'])[:12]}…) than "
                    f"this certificate's ({str(self.value('request_sha256'))[:12]}…)")
        if entry["method"] != self.value("method"):
            return f"{path} audits the method {entry['method']!r}, not this run's {self.value('method')!r}"
        if entry["original_weights_sha256"] != self.value("original_weights_sha256"):
            return f"{path} audits another original model than this certificate's"
        if not path.is_file():
            return f"unreachable: the audit file {path} is not reachable"
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            return (f"{path} changed since the report: sha256 {actual[:16]}…, recorded "
                    f"{str(entry['sha256'])[:16]}…")
        data = _read_json(path)
        if not isinstance(data, dict):
            return f"{path} is not an audit file"
        request = canonical_json_sha256(data.get("request"))
        if request != self.value("request_sha256"):
            return (f"{path} audits another deletion request (sha256 {request[:12]}…) than this certificate's "
                    f"({str(self.value('request_sha256'))[:12]}…)")
        found = {"request_sha256": request, "method": data.get("method"),
                 "settings": data.get("settings"), "models": data.get("models"),
                 "originals": data.get("originals"),
                 "original_weights_sha256": (data.get("original") or {}).get("weights_sha256")}
        wrong = [k for k, v in found.items() if v != entry[k]]
        if wrong:
            # the file is the recorded one, so the certificate's entry was edited
            return f"{path} says {wrong[0]} {found[wrong[0]]!r}, the certificate records {entry[wrong[0]]!r}"
        return None

    def original_unusable(self) -> str:
        """Why the original's weights cannot be used (when :attr:`original_ok` is False)."""
        if self.original_sha is None:
            where = self.value("original_path") if self.kind == "evaluated" else None
            return f"the original run {where or (self.config.get('parent') or {}).get('path')!r} is not reachable"
        return "the original weights differ from the certified ones"

    def check_weights(self) -> None:
        """The original weights, that the weights changed at all, and the norm of the change."""
        recorded = self.value("original_weights_sha256")
        in_config = (self.config.get("parent") or {}).get("weights_sha256")
        if recorded != in_config:
            self.add("original_weights_sha256", False, f"differs from config.json's parent.weights_sha256 "
                                                       f"({str(in_config)[:16]}…)")
        elif self.original_sha is None:
            self.add("original_weights_sha256", None, f"matches config.json; {self.original_unusable()}, its "
                                                      "weights were not hashed")
        else:
            self.add("original_weights_sha256", self.original_ok, f"{self.original_path / _WEIGHTS}: " + (
                "matches" if self.original_ok else f"sha256 {self.original_sha[:16]}… differs"))
        if self.kind == "evaluated":
            path = self.value("original_path")
            if _folder(path) is None:
                self.add("original_path", None, f"{path!r} is not reachable")
            else:
                ok = _hash_of(Path(path)) == recorded
                self.add("original_path", ok, f"{path} " + ("holds" if ok else "does not hold")
                         + " the certified original weights")
        # Byte-identical to the original (as forget recorded it, or as its file is now): nothing was unlearned
        # unless something was removed from the model's structure.
        identical = self.unlearned_sha in {in_config, self.original_sha} - {None}
        structural = self.value("procedure.structural_change")
        unchanged = identical and structural is None
        self.res.checks.append(("weights_changed", not unchanged, (
            "the unlearned weights are byte-identical to the original's and no structural change is recorded: "
            "nothing was unlearned") if unchanged else "the unlearned weights differ from the original's"
            if not identical else f"weights identical to the original's, structural change {structural!r}"))
        if not self.original_ok:
            self.add("procedure.param_change_norm", None, self.original_unusable())
            return
        norm = _param_change_norm(self.original_path / _WEIGHTS, self.run_path / _WEIGHTS)
        self.equal("procedure.param_change_norm", norm, "the norm recomputed from the two weight files")

    def check_original_integrity(self) -> None:
        """``original_integrity``: a trained original's weights and config.json against its integrity record
        (:func:`graphdel.runs.integrity_changes`). A change holds only when forget accepted exactly it
        (``--accept-modified``, recorded in config.json as ``parent.accepted_modifications``). Not made for an
        unreachable original (``original_weights_sha256`` says so) nor an unlearned one (the chain walk
        checks it against its own certificate)."""
        from graphdel.runs import integrity_changes

        folder = self.original_path
        original_config = _read_json(folder / "config.json") if folder is not None else None
        if not isinstance(original_config, dict) or original_config.get("kind") != "train":
            return
        changes = integrity_changes(folder)
        if changes is None:
            self.res.checks.append(("original_integrity", None, f"{folder} has no integrity record (written before "
                                                                "graphdel recorded one)"))
            return
        if not self.original_ok:  # weights other than the certified ones: original_weights_sha256 fails already
            changes = [c for c in changes if c["file"] != "model.safetensors"]
        if not changes:
            self.res.checks.append(("original_integrity", True, f"{folder}: " + (
                "weights and config.json as trained" if self.original_ok else
                "config.json as trained (its weights: see original_weights_sha256)")))
            return
        accepted = (self.config.get("parent") or {}).get("accepted_modifications") or []
        key = lambda c: (c.get("file"), c.get("sha256")) if isinstance(c, dict) else None  # noqa: E731
        files = ", ".join(c["file"] for c in changes)
        if {key(c) for c in changes} <= {key(c) for c in accepted}:
            self.res.checks.append(("original_integrity", True, f"{folder}: {files} changed since it was trained; "
                                    "forget accepted exactly this (--accept-modified, recorded in config.json)"))
        else:
            self.res.checks.append(("original_integrity", False, f"{folder}: {files} changed since it was trained "
                                    "and forget did not accept it"))

    def check_chain(self) -> None:
        """``previous_certificate_sha256`` against the parent's certificate.json file, then the chain of
        earlier certificates while their runs are reachable."""
        recorded = self.value("previous_certificate_sha256")
        parent = self.parent_path
        if parent is None or not (parent / "config.json").is_file():
            where = (self.config.get("parent") or {}).get("path")
            self.add("previous_certificate_sha256", None, f"the parent run {where!r} is not reachable")
            return
        expected = parent_certificate_sha256(parent)
        ok = recorded == expected
        self.add("previous_certificate_sha256", ok, (
            f"{parent}/certificate.json hashes as recorded" if ok and expected else
            f"null: the parent {parent} is a trained run" if ok else
            f"recorded {str(recorded)[:16]}…, but {parent}/certificate.json "
            + (f"hashes to {expected[:16]}…" if expected else "is absent (or the parent is a trained run)")))
        if recorded is not None and ok:
            self.res.checks.append(("chain", *_walk_chain(parent)))

    def check_data_and_metrics(self) -> None:
        """Corpus content hash, each requested pair's content hash, then every recorded metric re-evaluated."""
        from graphdel.data.requests import pair_hash
        from graphdel.errors import GraphdelError
        from graphdel.evaluation import run_data

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
        from graphdel.evaluation import run_data
        from graphdel.models.joint import ModelConfig
        from graphdel.runs import Run

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
        from graphdel.evaluation.summary import forget_gap, thresholds
        from graphdel.runs import Run

        settings = {k: self.value(f"evaluation.{k}") for k in ("seed", "pool_size", "chunks")}
        invalid = [k for k, v in settings.items()
                   if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1)]
        for k, v in settings.items():
            # Settings are only inputs: an edited one shows as metrics that are not reproduced.
            self.add(f"evaluation.{k}", k not in invalid, f"{v!r}, " + (
                "the metrics below are re-evaluated with it" if k not in invalid else "not a valid setting"))
        reference = self.check_reference()
        scores = ("evaluation.splits", "evaluation.distinguishability", "evaluation.attack_auc")
        judged = ("evaluation.vs_retrain", "evaluation.thresholds")
        if invalid:
            self.skip(scores + judged, "the evaluation settings are invalid")
            self.check_verdict(None, recomputed=False, why="the evaluation settings are invalid")
            return
        seed, pool_size, chunks = settings["seed"], settings["pool_size"], settings["chunks"]

        def evaluate(model) -> dict:
            splits = _recompute_retrieval(model, prepared, df_rows, seed=seed, pool_size=pool_size,
                                          pool_seed=seed, device=self.device)
            dist, attack = _recompute_audit_aucs(model, prepared, df_rows, seed=seed, pool_size=pool_size,
                                                 chunks=chunks, device=self.device)
            return {"splits": splits, "distinguishability": dist, "attack_auc": attack}

        mine = evaluate(run.model)
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
        ref = mine if is_reference else evaluate(ref_run.model)
        gaps = forget_gap(_certified_flat(mine["splits"], mine["distinguishability"], mine["attack_auc"]),
                          _certified_flat(ref["splits"], ref["distinguishability"], ref["attack_auc"]))
        self.equal("evaluation.vs_retrain", gaps, "the gaps of the re-evaluated run and reference")
        if is_reference:
            self.check_verdict(None, recomputed=True, why="no targets for the reference itself")
            return
        if self.original_run is None:
            self.skip(["evaluation.thresholds"], self.original_unusable())
            self.check_verdict(None, recomputed=False, why=self.original_unusable())
            return
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
    from graphdel.errors import RequestError

    ids = [p.get("pair_id") for p in request.get("pairs") or [] if isinstance(p, dict)]
    unknown = [p for p in ids if not corpus.has_pair(p)]
    if unknown or not ids:
        raise RequestError(f"the run's request.json names pairs absent from the corpus: {unknown[:5]}")
    return [corpus.index_of(p) for p in ids]


def _walk_chain(folder: Path, limit: int = 1000) -> tuple[bool | None, str]:
    """Check the certificates of ``folder`` and of its unlearned ancestors, newest first, while their runs
    are reachable: each one's weights, config and request hashes, its original weights against its parent's
    file, and its ``previous_certificate_sha256`` against the parent's certificate. Metrics of earlier runs
    are not re-evaluated. Returns ``(ok, detail)``: True when the walk reached a trained run, None when it
    stopped at an unreachable run, False at the first certificate that does not hold."""
    seen = []
    while len(seen) < limit:
        cert = _read_json(folder / "certificate.json")
        config = _read_json(folder / "config.json")
        request = _read_json(folder / "request.json")
        if not isinstance(cert, dict) or not isinstance(config, dict):
            return False, f"{folder}: certificate.json or config.json missing or unreadable"
        problems = []
        if cert.get("unlearned_weights_sha256") != _hash_of(folder):
            problems.append("unlearned_weights_sha256")
        if cert.get("config_sha256") != canonical_json_sha256(config):
            problems.append("config_sha256")
        if request is None or cert.get("request_sha256") != canonical_json_sha256(request):
            problems.append("request_sha256")
        parent_info = config.get("parent") or {}
        if cert.get("original_weights_sha256") != parent_info.get("weights_sha256"):
            problems.append("original_weights_sha256")
        parent = _folder(parent_info.get("path"))
        reachable = parent is not None and (parent / "config.json").is_file()
        if reachable:
            if _hash_of(parent) != cert.get("original_weights_sha256"):
                problems.append("original_weights_sha256 (parent's weights)")
            if parent_certificate_sha256(parent) != cert.get("previous_certificate_sha256"):
                problems.append("previous_certificate_sha256")
        if problems:
            return False, f"{folder}/certificate.json does not hold: {', '.join(problems)}"
        seen.append(str(folder))
        if not reachable:
            return None, (f"{len(seen)} earlier certificate(s) hold ({', '.join(seen)}); the run before, "
                          f"{parent_info.get('path')!r}, is not reachable: the rest is not checked")
        if (_read_json(parent / "config.json") or {}).get("kind") != "forget":
            return True, f"{len(seen)} earlier certificate(s) hold back to the trained run {parent}"
        folder = parent
    return False, f"the chain is longer than {limit} runs (a cycle?)"


def verify_certificate(cert_path: str | Path, *, tolerance: float = 1e-6, metrics: bool = True,
                       progress: bool = False, device: str = "auto") -> VerifyResult:
    """Check every field a certificate asserts and say whether it still holds.

    The unlearned run is found at the recorded ``unlearned_path`` or next to the certificate; if neither,
    nothing can be checked (:attr:`VerifyResult.status` ``"cannot check"``). Then one check per field,
    named by its dotted path (a field that is missing fails as ``missing``):

    * hashes: ``unlearned_weights_sha256`` (the run's weights file), ``original_weights_sha256`` (config's
      parent hash, and the original's file when reachable), ``config_sha256``, ``request`` and
      ``request_sha256`` (the run's request.json), ``data.content_hash`` (the corpus, reloaded),
      ``request.pairs`` (each requested pair's content hash in the corpus);
    * ``method``, ``method_config``, ``data.source``: the run's config.json;
    * ``procedure.steps``/``epochs_run``/``selected_epoch``: the ``selected`` block of metrics.json;
      ``procedure.param_change_norm``: recomputed from the two weight files
      (:func:`graphdel.runs.parameter_change_norm`) and ``procedure.structural_change`` on the original
      model (:func:`structural_change`, with the data), when the original is reachable and hashes as
      certified;
      ``weights_changed``: fails when the unlearned weights are byte-identical to the original's and no
      structural change is recorded;
    * ``previous_certificate_sha256``: the parent's certificate.json file hash; ``chain``: the earlier
      certificates' hashes, walking back while their runs are reachable;
    * ``metrics.splits``: retrieval re-evaluated as ``forget`` evaluated it (unless ``metrics`` is False);
    * evaluated certificates: ``unlearned_path``, ``original_path``, ``evaluation.reference`` (a Retrain
      run of the same request) and its weights hash, ``evaluation.splits``, ``distinguishability``,
      ``attack_auc`` (re-evaluated with the recorded seed, pool size and chunks), ``vs_retrain`` (from the
      run's and the reference's recomputed metrics), ``thresholds`` and ``verdict``
      (:func:`graphdel.evaluation.summary.thresholds` on the recomputed metrics of the run, the reference
      and the original).

    Numbers agree within ``tolerance`` (absolute up to magnitude 1, relative above). A check that cannot
    be made (a run moved, ``metrics=False``) is ``None``, reported as not checked, and does not fail the
    certificate. Metrics are re-evaluated on ``device`` (:func:`graphdel.device.resolve_device`); a GPU
    and the CPU may round differently, so a certificate is best verified on the kind of device its
    metrics were computed on.

    Raises:
        InvalidInputError: ``tolerance`` is not a finite number >= 0.
        RunError: the certificate cannot be read or is not a certificate.
        ConfigError: ``device`` is not here (CUDA without a GPU).
    """
    from graphdel.device import resolve_device

    _check_tolerance(tolerance)
    if metrics:
        resolve_device(device)  # said before any work
    cert_path = Path(cert_path)
    return _Verifier(_read_certificate(cert_path), cert_path, tolerance, metrics, progress, device).run()
