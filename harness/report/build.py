"""`build_report`: export a study from the store into its folder (`harness.report.export`), then write
``report.md``, its CSVs and PNGs from the folder alone; `rebuild_report` does the second half for a
folder without any store, writing the sections (`harness.report.sections` and the modules beside their
computations) in the report's order. `write_index` writes ``reports/README.md``."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from harness.provenance import CHECKOUT, git_commit, is_clean
from harness.report.answer import answer_section, verdict_line
from harness.report.comparisons import N_BOOTSTRAP, comparison_table
from harness.report.document import ReportWriter
from harness.report.earlier_run import carry
from harness.report.export import FILES, export_study
from harness.report.folder import ReportData, load_folder
from harness.report.hypotheses import HYPOTHESES_FILE, verdicts
from harness.report.hypotheses import evaluate as evaluate_hypotheses
from harness.report.index import write_index
from harness.report.optuna_views import optuna_analysis_section, pareto_section
from harness.report.samples import samples_section
from harness.report.sections.curves import curves_section
from harness.report.sections.details import (
    appendix_section,
    compute_section,
    incomplete_section,
    objective_section,
    published_section,
)
from harness.report.sections.exploratory import comparisons_section, findings_section, power_section
from harness.report.sections.hearing import hearing_section
from harness.report.sections.methods import ablation_section, methods_section, mp_section, sweeps_section
from harness.report.sections.setup import header_section, setup_section
from harness.report.tables import duplicate_metrics
from harness.report.test_outputs import test_outputs_section
from harness.report.variance import variance_pairs, variance_section
from harness.vocabulary import VERDICT_TAG_PREFIX

__all__ = ["DirtyTree", "build_report", "dirty_reasons", "rebuild_report", "write_index"]

log = logging.getLogger("harness.report")


class DirtyTree(RuntimeError):
    """A report for the repository's reports/ from code that a commit cannot reproduce."""


def dirty_reasons(data: ReportData, report_commit: str) -> list[str]:
    """Why this report could not be reproduced from a commit (empty: it can)."""
    reasons = [f"trials ran at `{c}`" for c in data.provenance.get("trial_commits", []) if not is_clean(c)]
    if not is_clean(report_commit):
        reasons.append(f"the report was written at `{report_commit}`")
    return reasons


def _refusal(folder: Path, dirty: list[str]) -> DirtyTree:
    return DirtyTree(
        f"{folder}: not writing a report that a commit cannot reproduce ({'; '.join(dirty)}). "
        "Fix: commit, rerun the study from the clean tree, then `harness report`; or pass "
        "--allow-dirty (the report's title then says so)."
    )


def rebuild_report(folder: Path, n_boot: int | None = None, allow_dirty: bool = False) -> Path:
    """Write ``report.md`` (+ CSVs, PNGs, findings) in ``folder`` from its evidence files alone. The code
    doing it is recorded (``report_commit``) and held to the same rule as `build_report` when ``folder``
    is in the repository's ``reports/``; ``n_boot`` defaults to what the folder was built with."""
    folder = Path(folder)
    provenance_path = folder / FILES["provenance"]
    provenance = json.loads(provenance_path.read_text())
    provenance["report_commit"] = git_commit()
    provenance["n_boot"] = n_boot or provenance.get("n_boot", N_BOOTSTRAP)
    data = load_folder(folder)
    dirty = dirty_reasons(data, provenance["report_commit"])
    if dirty and _in_reports(folder) and not allow_dirty:
        raise _refusal(folder, dirty)
    provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
    data.provenance = provenance
    w = ReportWriter(folder)
    folded = duplicate_metrics(data)
    comparisons = comparison_table(data, n_boot=provenance["n_boot"], skip=folded)
    header_section(w, data, dirty)
    answer_section(w, data, evaluate_hypotheses(data, provenance["n_boot"]))  # the answer first
    ablation_section(w, data, folded)  # then the paper's tables, measured beside published: Table 3 first
    methods_section(w, data, folded)
    sweeps_section(w, data)
    mp_section(w, data)
    variance_section(w, data, variance_pairs(data, comparisons), provenance["n_boot"] // 5)
    setup_section(w, data)  # then the details
    findings_section(w, data, comparisons)
    pareto_section(w, data)
    optuna_analysis_section(w, data)
    curves_section(w, data)
    test_outputs_section(w, data)
    samples_section(w, data)
    hearing_section(w, data)
    comparisons_section(w, comparisons)
    power_section(w, comparisons)
    objective_section(w, data)
    compute_section(w, data)
    incomplete_section(w, data)
    published_section(w, data)
    appendix_section(w, data)
    path = w.write()
    if _in_reports(folder):
        write_index(CHECKOUT / "reports")
    return path


def _in_reports(folder: Path) -> bool:
    return Path(folder).resolve().is_relative_to(CHECKOUT / "reports")


def build_report(
    experiment_name: str,
    out_dir: Path,
    tracking_uri: str | None = None,
    allow_dirty: bool = False,
    log_to_parent: bool = True,
    n_boot: int = N_BOOTSTRAP,
) -> Path:
    """Export the study from the MLflow store at ``tracking_uri`` into ``out_dir`` and write its report.

    A report written into the repository's ``reports/`` must be reproducible: its trials ran at clean
    commits and this code is a clean commit; otherwise `DirtyTree` is raised (before anything in
    ``out_dir`` is touched), unless ``allow_dirty`` (then the title says so). With ``log_to_parent`` the
    files are logged to the study's run under ``report/``."""
    out_dir = Path(out_dir)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory(prefix="harness-report-") as scratch:
        staged = Path(scratch) / "evidence"
        export_study(client, experiment_name, staged, previous=out_dir)
        if out_dir.is_dir():
            carry(out_dir, staged)  # an earlier run of the same study that got further: quoted, checked
        dirty = dirty_reasons(load_folder(staged), git_commit())
        if dirty and _in_reports(out_dir) and not allow_dirty:
            raise _refusal(out_dir, dirty)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, out_dir)
    path = rebuild_report(out_dir, n_boot=n_boot, allow_dirty=True)
    if log_to_parent:
        _log_files(client, load_folder(out_dir).provenance.get("study_run"), out_dir)
    return path


def _log_files(client: MlflowClient, run_id: str | None, folder: Path) -> None:
    if run_id is None:
        log.warning("no study run: report not logged to MLflow")
        return
    client.log_artifacts(run_id, str(folder), "report")  # the whole folder in one call
    table = pd.read_csv(folder / HYPOTHESES_FILE) if (folder / HYPOTHESES_FILE).is_file() else pd.DataFrame()
    if not table.empty:  # the Answer on the study run, one tag per hypothesis (the UI's run page shows them)
        tags = [
            mlflow.entities.RunTag(f"{VERDICT_TAG_PREFIX}{r['hypothesis']}", verdict_line(r))
            for _, r in verdicts(table).iterrows()
        ]
        client.log_batch(run_id, tags=tags)
