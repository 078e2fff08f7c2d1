"""The sections of a report, each a function ``<name>_section(w, data, ...)`` that writes its markdown,
tables and figures through a `harness.report.document.ReportWriter` from the report folder alone
(`harness.report.build` calls them in the report's order):

* `setup`: the header (trials, commands, commits, machines) and the setup (model, data, selection,
  decoding, metrics, per-configuration settings, statistics, provenance).
* `methods`: the paper's tables measured beside the published rows: methods, reward ablation,
  sweeps, MP-GRPO against GRPO.
* `exploratory`: the exploratory comparisons in fixed wording, the comparison table, the power of the
  primary comparisons.
* `curves`: validation and training curves.
* `hearing`: the base model's transcription errors per voice.
* `details`: selection by the study's objective, compute, unfinished trials, the published tables,
  the appendix of run ids.

The Answer (`harness.report.answer`), the variance (`harness.report.variance`), the Optuna views
(`harness.report.optuna_views`), test outputs and sample generations (`harness.report.test_outputs`,
`harness.report.samples`) are sections too, each beside the computation it shows.
"""
