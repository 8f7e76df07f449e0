"""Verifying deletion certificates, the checks that read files only: the certificate's form, the run's own
files, the recorded audits, the weights (and the norm of their change), the original's integrity record and
the chain of earlier certificates (:func:`_walk_chain`).

The certificate modules are one unit cut into files along what each needs (the format:
:mod:`graphdel.evaluation.certificate`; building: ``certificate_build``; these checks; the checks that
re-evaluate: ``certificate_recompute``; the entry point: ``certificate_verify``; the result and the
comparison of recorded with found values: ``certificate_result``), so they share private helpers.
"""

from __future__ import annotations

from pathlib import Path

from graphdel.evaluation.certificate_build import (_WEIGHTS, AUDIT_ENTRY_FIELDS, CERTIFICATE_VERSION,
                                                   REQUIRED_FIELDS, _read_json, parent_certificate_sha256)
# _is_number is imported from here by certificate_verify
from graphdel.evaluation.certificate_result import _MISSING, VerifyResult, _diff, _get, _is_number, _summary
from graphdel.io import canonical_json_sha256, sha256_file


def _param_change_norm(original_weights: Path, unlearned_weights: Path) -> float:
    """:func:`graphdel.runs.parameter_change_norm` (what ``forget`` certifies) of two weight files."""
    from safetensors.torch import load_file

    from graphdel.runs import parameter_change_norm

    return parameter_change_norm(load_file(str(original_weights)), load_file(str(unlearned_weights)))


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


class CertificateChecks:
    """The checks of :func:`~graphdel.evaluation.certificate.verify_certificate` on one certificate that read
    files only (its form, the run's files, the audits, the weights, the original's integrity, the chain);
    :class:`~graphdel.evaluation.certificate_recompute.RecomputedChecks` adds those that re-evaluate, and
    ``certificate_verify._Verifier.run`` locates the runs they share and calls them in order."""

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
