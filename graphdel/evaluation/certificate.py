"""The deletion certificate: what was deleted, from which weights, into which weights, by what procedure.

Two kinds, both JSON objects of :data:`CERTIFICATE_VERSION` (3; version 2, without ``evaluation.audit``
and with smoke verdicts judged, is still verified as it was written):

* ``certificate.json`` in an unlearned run folder (kind ``"forget"``, written by :func:`graphdel.api.forget`
  through :func:`build_certificate`)::

      version, kind                      3, "forget"
      request, request_sha256            the request (pair ids and content hashes) and its canonical hash
      method, method_config              the method and its resolved hyperparameters
      config_sha256                      canonical hash of the run's config.json
      data.source, data.content_hash     the corpus and its content hash
      original_weights_sha256            SHA-256 of the weights the request was unlearned from
      unlearned_weights_sha256           SHA-256 of the run's model.safetensors
      procedure.steps, .epochs_run,      optimiser steps, epochs run and the epoch of the kept checkpoint
        .selected_epoch                    (null where a method has none; Retrain: its training epochs, no
                                           steps, and the epoch early stopping kept)
      procedure.param_change_norm        L2 norm of (unlearned - original) over every floating tensor
                                           (:func:`graphdel.runs.parameter_change_norm`)
      procedure.structural_change        what removing Df took from the training data the model stores
                                           (a KG model's graph: "N stored facts removed"), or null
      metrics.splits                     the retrieval part of the run's metrics.json
      previous_certificate_sha256        SHA-256 of the parent run's certificate.json file when the parent
                                           is itself an unlearned run, else null

* an *evaluated* certificate (kind ``"evaluated"``) in a report folder (``certificates/<run>.json``,
  :func:`evaluated_certificate`): every field above plus ``unlearned_path``, ``original_path`` and
  ``evaluation.{seed, pool_size, chunks, reference, reference_weights_sha256, splits, distinguishability,
  attack_auc, vs_retrain, thresholds, verdict, audit}`` (the audit's retrieval, Df-vs-Dr AUC, membership
  attack AUC, forget-side gaps to Retrain, the targets of :func:`graphdel.evaluation.summary.thresholds`
  and whether all passed, and the per-example privacy audits of the run's method given to the report:
  ``[{file, sha256, method, settings, models, originals, request_sha256, original_weights_sha256}]``,
  :func:`graphdel.evaluation.audit_report.certificate_entry`, empty when none was run). The run of a
  ``--quick`` (smoke) original is measured, not judged, as in the report: each target's ``passed`` and
  the ``verdict`` read :data:`NOT_JUDGED`.

``graphdel verify CERT`` (:func:`verify_certificate`) checks every one of these fields against the run
folders and the corpus, re-evaluating the metrics, and names each field that no longer holds.

The code is cut along what each part needs: :mod:`graphdel.evaluation.certificate_build` (building, below
the evaluation suite that writes evaluated certificates); verification, above the suite it re-evaluates
with, in :mod:`graphdel.evaluation.certificate_verify` (the entry point),
:mod:`graphdel.evaluation.certificate_checks` (the checks that read files) and
:mod:`graphdel.evaluation.certificate_recompute` (those that re-evaluate); and
:func:`graphdel.io.canonical_json_sha256` (the canonical hash, which run folders use too). Every name is
imported here, where it has always been found.
"""

from __future__ import annotations

from graphdel.evaluation.certificate_build import (AUDIT_ENTRY_FIELDS, CERTIFICATE_VERSION, FORGET_POOL_SEED,
                                                   FORGET_POOL_SIZE, NOT_JUDGED, REQUIRED_FIELDS, build_certificate,
                                                   evaluated_certificate, parent_certificate_sha256,
                                                   retrieval_only, structural_change)
from graphdel.evaluation.certificate_verify import VerifyResult, verify_certificate
from graphdel.io import canonical_json_sha256

__all__ = ["AUDIT_ENTRY_FIELDS", "CERTIFICATE_VERSION", "FORGET_POOL_SEED", "FORGET_POOL_SIZE", "NOT_JUDGED",
           "REQUIRED_FIELDS", "VerifyResult", "build_certificate", "canonical_json_sha256", "evaluated_certificate",
           "parent_certificate_sha256", "retrieval_only", "structural_change", "verify_certificate"]
