"""`build_report`: the report's sections, in order, written into ``out_dir`` and logged to the study's
parent run."""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from harness.report.document import ReportWriter, display_cells, fmt_num, slug, stats_columns
from harness.report.plots import plot_curves, plot_mp_bars, plot_sweep, training_curves
from harness.report.published import PUBLISHED_TABLES, PUBLISHED_TITLE, published_tables
from harness.report.runs import (METRIC_NAMES, METRICS, MP_PARAM, REWARD_PARAM, STATES, Config, Study, load_study,
                                 metric_stats, task_models, varying_params)
from harness.report.significance import N_BOOTSTRAP, ExampleScores, significance_shown, significance_table
from harness.report.tables import (COMPUTE_METRICS, SWEEPS, compute_table, factor_groups, incomplete_table,
                                   method_comparison, relative_improvements, reward_ablation, runs_table,
                                   sweep_table)

log = logging.getLogger("harness.report")


# --------------------------------------------------------------------------------------------------
# Sections


def _header(w: ReportWriter, study: Study) -> None:
    counts = {s: sum(t.state == s for t in study.trials) for s in STATES}
    other = len(study.trials) - sum(counts.values())
    states = ", ".join(f"{s} {k}" for s, k in counts.items()) + (f", other {other}" if other else "")
    w.text(f"# Study report: {study.name}",
           f"- Generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
           f"- Tracking URI: `{study.tracking_uri}` (experiment `{study.name}`, id {study.experiment_id})",
           f"- Parent (study) run: `{study.parent_run_id or 'none found'}`",
           f"- Produced by: `{study.parent_tags.get('harness.command', 'unknown')}` at commit "
           f"`{study.parent_tags.get('harness.git_commit', 'unknown')}` on "
           f"{study.parent_tags.get('harness.machine', 'an unrecorded machine')}",
           f"- Trials: {len(study.trials)} ({states}); configurations: {len(study.configs)}",
           "- Tracing: every number below is computed from the COMPLETE trial runs listed per configuration "
           "in [Appendix: runs per configuration](#appendix-runs-per-configuration) (MLflow run ids).",
           "- Cells are `mean ± std (n=k)` over seeds; std is the sample standard deviation (ddof=1), "
           "n the trials that logged the metric. Metrics are x100. FAIL / PRUNED / RUNNING trials are "
           "never averaged in.")


def _method_section(w: ReportWriter, study: Study) -> None:
    w.text("## Method comparison (test set)")
    if not study.configs:
        w.text("No COMPLETE trials yet: nothing to compare.")
    for task in sorted({c.task for c in study.configs}):
        configs = [c for c in study.configs if c.task == task]
        numeric = method_comparison(configs)
        shown = pd.DataFrame({"Model": numeric["Model"], "Method": numeric["Method"], **display_cells(numeric)})
        w.text(f"### Task `{task}`")
        w.table(slug("method_comparison", task), numeric, shown, "Greedy decoding, best validation checkpoint.")
        sampled = method_comparison(configs, prefix="test/sampled/")
        if sampled[[f"{METRIC_NAMES[m]} n" for m in METRICS]].to_numpy().sum() > 0:
            shown = pd.DataFrame({"Model": sampled["Model"], "Method": sampled["Method"], **display_cells(sampled)})
            w.table(slug("method_comparison_sampled", task), sampled, shown,
                    "Sampled decoding (`test/sampled/*`, averaged over sampling passes).")
        rel = relative_improvements(configs)
        if not rel.empty:
            shown = rel.copy()
            for m in METRICS:
                shown[METRIC_NAMES[m]] = [fmt_num(v, sign=True, suffix="%") for v in rel[METRIC_NAMES[m]]]
            w.table(slug("relative_improvement", task), rel, shown,
                    "Relative improvement (%) of the mean over the base / SFT mean of the same model "
                    "(reference in parentheses: the config labelled base / sft, else the best-BLEU one).")


def _group_labels(prefix: str, groups: list[list[Config]], factor: str) -> list[tuple[str, str]]:
    """(file name, caption) per factor group: ``prefix_task_model``, plus ``_k`` and the settings the
    group holds fixed when a task/model has several groups."""
    per_tm: dict[tuple[str, str], list[list[Config]]] = defaultdict(list)
    for group in groups:
        per_tm[(group[0].task, group[0].model)].append(group)
    out = []
    for group in groups:
        task, model = group[0].task, group[0].model
        siblings = per_tm[(task, model)]
        caption = f"Task `{task}`, model `{model}`."
        if len(siblings) == 1:
            out.append((slug(prefix, task, model), caption))
            continue
        keys = [k for k in varying_params([c for g in siblings for c in g]) if k != factor]
        held = ", ".join(f"{k}={group[0].params.get(k)}" for k in keys)
        out.append((slug(prefix, task, model, str(siblings.index(group))), f"{caption} Held fixed: {held}."))
    return out


def _ablation_section(w: ReportWriter, study: Study) -> None:
    groups = factor_groups(study.configs, REWARD_PARAM)
    if not groups:
        return
    w.text("## Reward ablation (GRPO trained with each reward)")
    for group, (name, caption) in zip(groups, _group_labels("reward_ablation", groups, REWARD_PARAM)):
        numeric, shown, used = reward_ablation(group)
        avg = "the six metrics" if len(used) == len(METRICS) else ", ".join(METRIC_NAMES[m] for m in used)
        w.table(name, numeric, shown,
                f"{caption} Rows: training reward; AVG = mean of {avg} (of the means); best per column in bold.")


def _sweep_section(w: ReportWriter, study: Study) -> None:
    for factor, title in SWEEPS.items():
        groups = factor_groups(study.configs, factor)
        if not groups:
            continue
        w.text(f"## Sweep: {title} (`{factor}`)")
        labels = _group_labels(slug("sweep", factor.split(".")[-1]), groups, factor)
        for group, (name, caption) in zip(groups, labels):
            numeric, shown = sweep_table(group, factor)
            w.table(name, numeric, shown, caption)
            w.figure(name, plot_sweep(group, factor, f"{group[0].task} / {group[0].model}: {title}"),
                     f"{title} sweep")


def _mp_section(w: ReportWriter, study: Study) -> None:
    groups = factor_groups(study.configs, MP_PARAM)
    if not groups:
        return
    w.text("## MP-GRPO on / off")
    for group, (name, caption) in zip(groups, _group_labels("mp_grpo", groups, MP_PARAM)):
        numeric = pd.DataFrame([{MP_PARAM: c.params[MP_PARAM], "config": c.name, **stats_columns(metric_stats(c))}
                                for c in group])
        shown = pd.DataFrame({MP_PARAM: numeric[MP_PARAM], **display_cells(numeric), "Config": numeric["config"]})
        w.table(name, numeric, shown, caption)
    w.figure("mp_grpo", plot_mp_bars(groups), "MP-GRPO on/off")


def _curves_section(w: ReportWriter, study: Study, client: MlflowClient) -> None:
    first = True
    for (task, model), configs in task_models(study.configs).items():
        curves = training_curves(client, configs)
        if curves.empty:
            continue
        if first:
            w.text("## Training curves (mean over seeds, band = ± std)")
            first = False
        name = slug("curves", task, model)
        _curves_csv(w, name, curves)
        w.figure(name, plot_curves(curves, f"{task} / {model}"), f"training curves {task} {model}")


def _curves_csv(w: ReportWriter, name: str, curves: pd.DataFrame) -> None:
    path = w.out_dir / f"{name}.csv"
    curves.to_csv(path, index=False)
    w.files.append(path)
    w.text(f"<sub>Data: `{path.name}`</sub>")


def _significance_section(w: ReportWriter, study: Study, scores: ExampleScores) -> None:
    first = True
    for (task, model), group in task_models(study.configs).items():
        numeric = significance_table(group, scores)
        if numeric.empty:
            continue
        if first:
            w.text("## Significance (paired bootstrap)", "",
                   f"{N_BOOTSTRAP:,} resamples of test examples (seed 0); each example's score averaged over "
                   "the seeds of its configuration first. Δ = mean(A − B), 95% percentile CI, two-sided p.")
            first = False
        w.table(slug("significance", task, model), numeric, significance_shown(numeric),
                f"Task `{task}`, model `{model}`.")


def _compute_section(w: ReportWriter, study: Study) -> None:
    numeric = compute_table(study.configs)
    if numeric.empty:
        return
    shown = numeric.copy()
    for k, digits in zip(COMPUTE_METRICS, (1, 0, 1, 1)):
        shown[f"{k} mean"] = [fmt_num(v, digits) for v in numeric[f"{k} mean"]]
    w.text("## Compute (mean per configuration)")
    w.table("compute", numeric, shown)


def _incomplete_section(w: ReportWriter, study: Study) -> None:
    table = incomplete_table(study.trials)
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    w.text("## Failed, pruned and incomplete trials", "",
           f"FAIL {counts.get('FAIL', 0)}, PRUNED {counts.get('PRUNED', 0)}, RUNNING (incomplete) "
           f"{counts.get('RUNNING', 0)}. Listed only; excluded from every table above.")
    if not table.empty:
        w.table("trials_not_complete", table)


def _published_section(w: ReportWriter, study: Study) -> None:
    tasks = {c.task for c in study.configs} | {t.task for t in study.trials}
    tables = {name: t for name, t in published_tables().items()
              if name not in PUBLISHED_TABLES or PUBLISHED_TABLES[name][0] in tasks or not tasks}
    if not tables:
        return
    w.text(f"## {PUBLISHED_TITLE}", "",
           "Copied from Elmakies et al., *Advancing Speech Understanding in Speech-Aware Language Models "
           "with GRPO*, arXiv:2509.16990v1 (Granite-Speech 2B/8B, LibriSQA / CoVoST2). Shown for orientation "
           "only: different models, data and scale; not comparable cell by cell with the measured tables.")
    for name, table in tables.items():
        caption = PUBLISHED_TABLES.get(name, ("", name))[1]
        shown = table.apply(lambda col: [fmt_num(v) if isinstance(v, float) else v for v in col])
        w.table(slug("published", name.removesuffix(".csv")), table, shown, f"*Published* {caption}")


def _appendix(w: ReportWriter, study: Study) -> None:
    w.text("## Appendix: runs per configuration", "",
           "<details><summary>MLflow run ids of every configuration</summary>")
    if study.configs:
        w.table("runs", runs_table(study.configs))
    w.text("</details>")


# --------------------------------------------------------------------------------------------------


def build_report(experiment_name: str, out_dir: Path, tracking_uri: str | None = None, published: bool = True,
                 log_to_parent: bool = True) -> Path:
    """Write ``report.md`` + CSVs + PNGs for one study into ``out_dir``; returns the report.md path.

    Everything is read from the MLflow store at ``tracking_uri`` (default: MLflow's current one).
    With ``log_to_parent`` the written files are logged to the study's parent run under ``report/``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    study = load_study(client, experiment_name)
    study.tracking_uri = uri
    w = ReportWriter(out_dir)
    _header(w, study)
    _method_section(w, study)
    _ablation_section(w, study)
    _sweep_section(w, study)
    _mp_section(w, study)
    _curves_section(w, study, client)
    with tempfile.TemporaryDirectory(prefix="harness-report-") as scratch:
        _significance_section(w, study, ExampleScores(uri, Path(scratch)))
    _compute_section(w, study)
    _incomplete_section(w, study)
    if published:
        _published_section(w, study)
    _appendix(w, study)
    path = w.write()
    if log_to_parent:
        _log_files(client, study, w.files)
    return path


def _log_files(client: MlflowClient, study: Study, files: list[Path]) -> None:
    if study.parent_run_id is None:
        log.warning("study %s has no parent run (tag harness.role=study): report not logged", study.name)
        return
    for path in files:
        client.log_artifact(study.parent_run_id, str(path), artifact_path="report")
