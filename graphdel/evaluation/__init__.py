"""Evaluation: the metrics, the suite that runs them on a model, the report and the certificate.

The modules are imported by name; importing this package loads none of them. How a metric is added:
docs/extending.md.

* metrics: ``derangements`` (each pair's partner of another item: the suite's mismatched pairs and the
  engine's unrelated texts), ``retrieval`` (pool-k retrieval, the one score; its ranks in ``ranks``, hard candidates and
  re-ranking in ``rerank``), ``embed`` (embedding pairs, the pool score), ``distinguishability`` (Df-vs-Dr
  AUC), ``membership`` (membership inference), ``probes`` (unimodal probes, drift), ``matching`` (the
  matching head: true vs random and hard partners, re-ranking), ``neighbours`` (near-neighbour leakage),
  ``link_prediction`` (knowledge graphs),
  ``per_example`` (the per-example privacy audit: its ε rules in ``epsilon_rules``, U-LiRA in ``ulira``, the
  checks of its signal arrays in ``signal_arrays``);
* ``metrics``: the registry of the audit's metrics (:func:`~graphdel.evaluation.metrics.register_metric`:
  a function of one model's signals with a typed result, where it is judged and how the report titles it)
  and the built-in ones;
* ``run_data``: a run's data, featurised and split into the pair sets every model is evaluated on;
  ``reference_weights``: the calibration pairs weighted to look like a request (its share of molecules
  without a scaffold relative), for the reference unlearning stops at;
* ``suite``: every metric of the audit on one model, and the comparison with Retrain and the original; its
  parts are ``suite_model`` (one model: pair sets, metrics, comparison), ``suite_signals`` (per-pair
  signals), ``suite_attacks`` (distinguishability, membership attacks, LiRA), ``suite_runs`` (run folders to
  one evaluation) and ``suite_output`` (report folder with certificates, terminal tables);
* ``spread``: the headline gaps of several requests as mean ± spread (the demo's full mode);
* ``summary``: gaps, the summary score and the targets, judged once (``judgement``) for the suite and the
  report;
* ``report``, ``audit_report``, ``compare``: report.md / report.html / metrics.json and plots, the audit's
  section of it (its audit folders read and checked in ``audit_files``), and one request's outcome across
  modalities; the report's parts are ``report_format`` (formatting, shared with the audit's section),
  ``report_verdicts`` (roles, verdicts, the headline table), ``report_plots`` (figures) and ``report_render``
  (Markdown and HTML);
* ``certificate``: the deletion certificate and its verification (``certificate_build``,
  ``certificate_verify`` with ``certificate_checks`` and ``certificate_recompute``, what they find and how
  they compare values in ``certificate_result``).
"""

__all__ = ["audit_files", "audit_report", "certificate", "certificate_build", "certificate_checks",
           "certificate_recompute", "certificate_result", "certificate_verify", "compare", "derangements",
           "distinguishability", "embed", "epsilon_rules", "link_prediction", "matching", "membership", "metrics",
           "neighbours", "per_example", "probes", "ranks", "reference_weights", "report", "report_format",
           "report_plots", "report_render", "report_verdicts", "rerank", "retrieval", "run_data", "signal_arrays",
           "spread",
           "suite", "suite_attacks", "suite_model", "suite_output", "suite_runs", "suite_signals", "summary",
           "ulira"]
