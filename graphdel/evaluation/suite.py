"""The evaluation suite: connects models and pair sets to the metric functions.

:func:`retrieval_metrics` is the retrieval part alone (used by training and ``forget``).
:func:`evaluate_model` runs every metric of the audit on one model; :func:`compare_to_references` adds
the gaps to Retrain (forget side) and the changes from the original (retain side);
:func:`train_shadows` and :func:`lira_membership` are the (costly, optional) LiRA attack;
:func:`evaluate_runs` evaluates the unlearned runs of one request, and :func:`save_audit` writes the report
with their certificates.

The suite is cut along its concepts; every name is importable from here:

* :mod:`graphdel.evaluation.suite_model` -- one model: :class:`SuiteConfig`, the pair sets
  (:func:`suite_sets`, described there with ``match_acc`` and ``match_bal_acc``), :func:`evaluate_model`,
  :func:`compare_to_references`, :func:`retrieval_metrics`;
* :mod:`graphdel.evaluation.suite_signals` -- the per-pair signals of one model on one pair set
  (:class:`PairSignals`, :func:`pair_signals`, :data:`SIGNAL_NAMES`);
* :mod:`graphdel.evaluation.suite_attacks` -- Df-vs-Dr distinguishability, the signal membership attack and
  LiRA (:func:`train_shadows`, :func:`lira_membership`);
* :mod:`graphdel.evaluation.suite_runs` -- run folders to one evaluation (:func:`evaluate_runs`,
  :data:`MEMORY_KEYS`);
* :mod:`graphdel.evaluation.suite_output` -- the report folder and certificates (:func:`write_audit`,
  :func:`save_audit`), the terminal tables (:func:`short_table`, :func:`lp_table`) and :class:`Audit`.
"""

from __future__ import annotations

from graphdel.evaluation import suite_signals
from graphdel.evaluation.suite_attacks import lira_membership, signal_membership, train_shadows
from graphdel.evaluation.suite_model import (RETRIEVAL_SPLITS, SuiteConfig, compare_to_references,
                                             evaluate_model, retrieval_metrics, suite_sets)
from graphdel.evaluation.suite_output import Audit, lp_table, save_audit, short_table, spread_table, write_audit
from graphdel.evaluation.suite_runs import MEMORY_KEYS, evaluate_runs
from graphdel.evaluation.suite_signals import SIGNAL_NAMES, PairSignals, pair_signals

__all__ = ["retrieval_metrics", "SuiteConfig", "suite_sets", "PairSignals", "pair_signals", "evaluate_model",
           "compare_to_references", "train_shadows", "lira_membership", "MEMORY_KEYS", "SIGNAL_NAMES",
           "RETRIEVAL_SPLITS", "evaluate_runs", "write_audit", "save_audit", "short_table", "lp_table", "spread_table",
           "Audit"]

# Two helpers the tests reach here under the private names they had before the cut
# (tests/evaluation/test_matching.py, test_membership.py, test_suite.py and
# tests/unlearning/test_item_negatives.py).
_derangement = suite_signals._derangement
_signal_membership = signal_membership
