"""Evaluation: the metrics, the suite that runs them on a model, the report and the certificate.

The modules are imported by name; importing this package loads none of them. How a metric is added:
docs/extending.md.

* metrics: ``retrieval`` (pool-k retrieval, the one score), ``embed`` (embedding pairs, the pool score),
  ``distinguishability`` (Df-vs-Dr AUC), ``membership`` (membership inference), ``probes`` (unimodal
  probes, drift), ``matching`` (the matching head: true vs random and hard partners, re-ranking),
  ``neighbours`` (near-neighbour leakage), ``link_prediction`` (knowledge graphs),
  ``per_example`` (the per-example privacy audit);
* ``suite``: every metric of the audit on one model, and the comparison with Retrain and the original;
* ``summary``: gaps, the summary score and the targets;
* ``report``, ``audit_report``, ``compare``: report.md / report.html / metrics.json and plots, the audit's
  section of it, and one request's outcome across modalities;
* ``certificate``: the deletion certificate and its verification.
"""

__all__ = ["audit_report", "certificate", "compare", "distinguishability", "embed", "link_prediction",
           "matching", "membership", "neighbours", "per_example", "probes", "report", "retrieval", "suite", "summary"]
