"""The report's details after the comparisons: selection by the study's objective, compute per
configuration, the trials that did not finish, the paper's published tables and the appendix of
MLflow run ids."""

from __future__ import annotations

import pandas as pd
import yaml

from harness.report.document import ReportWriter, fmt_num, slug
from harness.report.folder import ReportData
from harness.report.published import PUBLISHED_TABLES, PUBLISHED_TITLE, published_tables
from harness.report.tables import COMPUTE_COLUMNS, compute_table, incomplete_table, runs_table

__all__ = ["appendix_section", "compute_section", "incomplete_section", "objective_section", "published_section"]


def objective_section(w: ReportWriter, data: ReportData) -> None:
    """Studies that optimise a validation metric (tuning, selection): every configuration by the study's
    objective, and the best of each task and method."""
    objective = (yaml.safe_load(data.study_text) or {}).get("objective", {}) if data.study_text else {}
    if not isinstance(objective, dict):  # several objectives: the Pareto section shows them
        return
    metric, direction = objective.get("metric", "test/bleu"), objective.get("direction", "maximize")
    if not metric.startswith("val/") or metric not in data.per_seed or not data.configs:
        return
    rows = [
        {
            "task": c.task,
            "method": c.method,
            "config": c.name,
            "seeds": len(c.rows),
            "mean": c.stats(metric)[0],
            "std": c.stats(metric)[1],
        }
        for c in data.configs
    ]
    table = pd.DataFrame(rows).sort_values(["task", "method", "mean"], ascending=[True, True, direction != "maximize"])
    best = table.groupby(["task", "method"], sort=True).head(1)
    w.text(
        f"## Selection by the study's objective (`{metric}`, {direction})",
        "",
        "Validation at each seed's selected checkpoint, mean ± std over seeds; the test set played no part. "
        "Best per task and method: "
        + "; ".join(f"`{r.task}` {r.method}: **{r.config}** ({fmt_num(r.mean)})" for r in best.itertuples())
        + ".",
    )
    shown = table.assign(**{metric: [f"{fmt_num(m)} ± {fmt_num(s)}" for m, s in zip(table["mean"], table["std"])]})
    w.table("objective", table, shown.drop(columns=["mean", "std"]))


def compute_section(w: ReportWriter, data: ReportData) -> None:
    numeric = compute_table(data.configs)
    if numeric.empty:
        return
    shown = numeric.copy()
    for k, digits in zip(COMPUTE_COLUMNS, (1, 0, 0, 0, 1)):
        shown[f"{k} mean"] = [fmt_num(v, digits) for v in numeric[f"{k} mean"]]
    shown["trainable params"] = [fmt_num(v / 1e6, 2, suffix=" M") for v in numeric["trainable params"]]
    w.text(
        "## Compute (mean per configuration)",
        "",
        "Wall time of the trial (data, model, training, validations and test; a reused trial shows the "
        "original's). `best = last step`: seeds whose selected checkpoint was the last evaluation (still "
        "improving when training stopped; a longer run might do better).",
    )
    w.table("compute", numeric, shown)


def incomplete_section(w: ReportWriter, data: ReportData) -> None:
    table = incomplete_table(data.trials)
    w.text(
        "## Trials that did not finish",
        "",
        "Listed only (pruned trials with their last validation BLEU and step); excluded from every table above.",
    )
    if table.empty:
        w.text("None.")
    else:
        w.table("trials_not_complete", table)


def published_section(w: ReportWriter, data: ReportData) -> None:
    tasks = {c.task for c in data.configs}
    tables = {
        name: t
        for name, t in published_tables().items()
        if name not in PUBLISHED_TABLES or PUBLISHED_TABLES[name][0] in tasks or not tasks
    }
    if not tables:
        return
    w.text(
        f"## {PUBLISHED_TITLE}",
        "",
        "Copied from Elmakies et al., *Advancing Speech Understanding in Speech-Aware Language Models with GRPO*, "
        "arXiv:2509.16990v1 (Granite-Speech 2B/8B, LibriSQA / CoVoST2). For orientation only: different models, "
        "data and scale; not comparable cell by cell with the measured tables.",
    )
    for name, table in tables.items():
        caption = PUBLISHED_TABLES.get(name, ("", name))[1]
        shown = table.apply(lambda col: [fmt_num(v) if isinstance(v, float) else v for v in col])
        w.table(slug("published", name.removesuffix(".csv")), table, shown, f"*Published* {caption}")


def appendix_section(w: ReportWriter, data: ReportData) -> None:
    w.text(
        "## Appendix: runs per configuration", "", "<details><summary>MLflow run ids of every configuration</summary>"
    )
    if data.configs:
        w.table("runs", runs_table(data.configs))
    w.text("</details>")
