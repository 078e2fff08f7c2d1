"""Paper-style comparison reports of a study, built from the MLflow store only (issue #4).

`build_report(study)` reads the finished trial runs of one study's experiment through the MLflow
public API (``MlflowClient.search_runs``, ``get_metric_history``, ``mlflow.artifacts.download_artifacts``)
and writes to ``out_dir``: ``report.md``, one CSV per table and PNG plots; it then logs the same
files as artifacts of the study's parent run under ``report/``.

Conventions (also stated in every report):

* A *configuration* is the set of COMPLETE trials sharing the label and every parameter except
  ``seed``; its cells are ``mean ± std (n=k)`` over those trials, std being the sample standard
  deviation (ddof=1; "n/a" when n=1), n the trials that logged that metric.
* FAIL / PRUNED / RUNNING trials are counted and listed, never averaged in.
* Significance: paired bootstrap (`paired_bootstrap`) on per-example test scores, each example's
  score first averaged over the seeds of its configuration.
* Published figures (``harness/published``) are shown in their own section, never beside measured
  numbers in one table.

Modules, in the order a report is built:

* `runs`: trials and configurations read from the store (`Trial`, `Config`, `Study`, `load_study`,
  `group_configs`) and per-configuration mean / std / n (`metric_stats`).
* `document`: cell and markdown formatting (`fmt_cell`, `md_table`, ...) and `ReportWriter`.
* `tables`: the comparison tables (method comparison, relative improvement, reward ablation,
  factor groups and sweeps, compute, incomplete trials, runs per configuration).
* `significance`: `paired_bootstrap` and the significance tables over per-example scores.
* `plots`: sweep, MP-GRPO and training-curve figures.
* `published`: the paper's published tables shipped in ``harness/published``.
* `build`: the report's sections and `build_report`, the entry point of ``harness report``.
"""

from harness.report.build import build_report
from harness.report.document import fmt_cell
from harness.report.published import PUBLISHED_TITLE
from harness.report.runs import Trial, group_configs
from harness.report.significance import paired_bootstrap
from harness.report.tables import factor_groups

__all__ = ["PUBLISHED_TITLE", "Trial", "build_report", "factor_groups", "fmt_cell", "group_configs",
           "paired_bootstrap"]
