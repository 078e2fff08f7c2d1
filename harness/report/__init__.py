"""Paper-style reports of a study, whose every number recomputes from files in the report's folder.

`build_report(study)` (``harness report``) first exports the study's evidence from the MLflow store
into ``reports/<study>/`` (`export`: per-seed results, per-example test scores, curves, resolved
configs, the study file, provenance), then writes ``report.md``, its CSVs and PNGs from that folder
alone (`rebuild_report`, ``harness report --from-folder``), and the index ``reports/README.md``.

Modules, in the order a report is built:

* `export`: MLflow store -> report folder (the files and their columns); `artifacts`: the files the
  runs logged (per-example test scores and answers, sample tables, resolved configs, the study file,
  the base model's hearing) read back into it.
* `folder`: the folder read back (`ReportData`, `Config`: a configuration = its seeds).
* `inference`: the seed-aware comparison of two configurations (two-level bootstrap, t-based CI and
  p-value, minimum detectable difference, seeds needed, Holm / BH adjustment).
* `comparisons`: which configurations are compared, and the adjusted comparison table.
* `findings`: the claims in fixed wording, each beside the paper's published direction.
* `tables`: methods, reward ablation, sweeps, compute, unfinished trials, runs.
* `plots`: validation curves with selected checkpoints, training curves, sweeps, MP-GRPO bars.
* `document`: cell and markdown formatting, `ReportWriter`.
* `published`: the paper's tables shipped in ``harness/published``.
* `sections`: the report's sections that only show what the modules above compute (setup, the paper's
  tables, exploratory comparisons, curves, hearing, details); `answer`, `variance`, `optuna_views`,
  `test_outputs` and `samples` write their sections beside their computations.
* `earlier_run`: an earlier run of the same study file that got further than the run replacing its
  folder (the committed full report under `make sweep`'s first round), carried into ``earlier_run/``,
  quoted by the Answer and checked trial by trial against this run.
* `build`: the sections in order, provenance rules (`DirtyTree`), `build_report`, `rebuild_report`,
  `write_index`.
"""

from harness.report.build import DirtyTree, build_report, rebuild_report, write_index
from harness.report.hypotheses import round_evidence
from harness.report.inference import Comparison, adjust, compare, seeds_needed

__all__ = [
    "Comparison",
    "DirtyTree",
    "adjust",
    "build_report",
    "compare",
    "rebuild_report",
    "round_evidence",
    "seeds_needed",
    "write_index",
]
