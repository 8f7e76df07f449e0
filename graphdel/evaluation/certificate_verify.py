"""Verifying deletion certificates: :func:`verify_certificate` checks every field a certificate asserts
against the run folders and the corpus, re-evaluating the metrics, and names each field that no longer
holds (the format: :mod:`graphdel.evaluation.certificate`). The checks that read files only are in
:mod:`graphdel.evaluation.certificate_checks`, those that re-evaluate in
:mod:`graphdel.evaluation.certificate_recompute`; :func:`verify_certificate` runs them in order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from graphdel.evaluation.certificate_build import _EVALUATED_FIELDS, _read_json
from graphdel.evaluation.certificate_checks import VerifyResult, _folder, _hash_of, _is_number, _locate_run
from graphdel.evaluation.certificate_recompute import RecomputedChecks
from graphdel.runs import is_quick_config

__all__ = ["VerifyResult", "verify_certificate"]


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


class _Verifier(RecomputedChecks):
    """The checks of :func:`verify_certificate` on one certificate (they share the located runs)."""

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
