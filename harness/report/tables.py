"""The report's tables, each from the folder's files: methods (greedy and sampled decoding), reward
ablation, parameter sweeps, compute, trials that did not finish, and the runs behind each configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.comparisons import factor_groups, level_key, reference_config
from harness.report.document import display_cells, fmt_num, stats_columns
from harness.report.folder import Config, ReportData
from harness.report.paper import REWARD_TABLE, published_score
from harness.report.published import published_tables
from harness.vocabulary import (
    BASE_EVAL,
    BEST_STEP,
    GENERATED_TOKENS,
    METRIC_NAMES,
    METRICS,
    PARAMS_TRAINABLE,
    SFT,
    TEST,
    TRAIN_STEPS,
    TRAINED_TOKENS,
    WALL_TIME,
    metric_key,
)

__all__ = [
    "COMPUTE_COLUMNS",
    "compute_table",
    "duplicate_metrics",
    "incomplete_table",
    "method_table",
    "relative_improvements",
    "reward_ablation",
    "runs_table",
    "side_by_side",
    "sweep_table",
]

COMPUTE_COLUMNS = (WALL_TIME, GENERATED_TOKENS, TRAINED_TOKENS, TRAIN_STEPS, BEST_STEP)


def metric_stats(config: Config, sampled: bool = False) -> dict[str, tuple[float, float, int]]:
    return {m: config.stats(metric_key(TEST, m, sampled)) for m in METRICS}


def duplicate_metrics(data: ReportData) -> dict[str, dict[str, str]]:
    """Per task, {folded metric: the metric it equals}: metrics whose per-example greedy scores equal
    another's on every example of every run of that task are shown and compared once (ROUGE-1 folds into
    ROUGE-L, otherwise the later metric into the earlier). The rule is the same for every report and
    task: spoken QA's templated answers fold ROUGE-1 into ROUGE-L wherever they are scored."""
    pe = data.per_example
    if pe.empty:
        return {}
    greedy = pe[pe["decoding"] == "greedy"]
    runs = {
        task: {r for c in data.configs if c.task == task for r in c.run_ids} for task in {c.task for c in data.configs}
    }
    out: dict[str, dict[str, str]] = {}
    for task, ids in sorted(runs.items()):
        rows = greedy[greedy["run_id"].isin(ids)]
        found: dict[str, str] = {}
        for i, first in enumerate(METRICS):
            for second in METRICS[i + 1 :]:
                if first in found or second in found or first not in rows or second not in rows:
                    continue
                a, b = rows[first].to_numpy(float), rows[second].to_numpy(float)
                if len(a) and np.all(np.isfinite(a)) and np.array_equal(a, b):
                    folded, kept = (first, second) if (first, second) == ("rouge1", "rougeL") else (second, first)
                    found[folded] = kept
        if found:
            out[task] = found
    return out


def method_table(configs: list[Config], sampled: bool = False, folded: dict[str, str] | None = None):
    """One row per configuration in the paper's row order (base, SFT, GRPO, MP-GRPO): mean ± std over seeds
    of every metric beside the paper's row for that configuration (`harness.report.paper`), AVG as the
    paper's (the six metrics) and ranks by it (numeric CSV, shown markdown)."""
    return side_by_side(configs, [c.name for c in configs], "Method", sampled, folded or {})


def side_by_side(
    configs: list[Config], labels: list[str], key: str, sampled: bool, folded: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured beside published, one row per configuration (``labels``: its row name, column ``key``).
    Numeric: ``<metric> mean/std/n``, ``<metric> paper``, ``AVG`` (mean of the six metric means, the
    paper's definition), ``AVG paper`` (where the paper has all six), ``rank`` / ``rank paper`` (1 = best
    AVG). Shown: each metric once (a folded metric shares its twin's column), "here" then "paper"."""
    rows = []
    for label, c in zip(labels, configs):
        stats = metric_stats(c, sampled)
        published = {m: published_score(c, m) for m in METRICS}
        row = {key: label, "config": c.name, "seeds": len(c.rows), **stats_columns(stats)}
        row.update({f"{METRIC_NAMES[m]} paper": v[0] if v else np.nan for m, v in published.items()})
        row["AVG"] = float(np.mean([stats[m][0] for m in METRICS]))
        row["AVG paper"] = float(np.mean([published[m][0] for m in METRICS])) if all(published.values()) else np.nan
        rows.append(row)
    numeric = pd.DataFrame(rows)
    numeric["rank"] = numeric["AVG"].rank(ascending=False, method="min")
    numeric["rank paper"] = numeric["AVG paper"].rank(ascending=False, method="min")
    bold = {METRIC_NAMES[m]: best_rows(numeric[f"{METRIC_NAMES[m]} mean"]) for m in METRICS}
    cells = display_cells(numeric, bold)
    shown = {key: numeric[key], "seeds": numeric["seeds"]}
    for m in METRICS:
        if m in folded:
            continue
        twins = [m, *(f for f, kept in folded.items() if kept == m)]
        name = " = ".join(METRIC_NAMES[t] for t in sorted(twins, key=METRICS.index))
        shown[name] = cells[METRIC_NAMES[m]]
        shown[f"{name} (paper)"] = [
            " / ".join(fmt_num(r[f"{METRIC_NAMES[t]} paper"]) for t in sorted(twins, key=METRICS.index))
            for r in numeric.to_dict("records")
        ]
    best_avg = best_rows(numeric["AVG"])
    shown["AVG"] = [f"**{fmt_num(v)}**" if i in best_avg else fmt_num(v) for i, v in enumerate(numeric["AVG"])]
    shown["AVG (paper)"] = [fmt_num(v) for v in numeric["AVG paper"]]
    shown["rank"] = [fmt_num(v, 0) for v in numeric["rank"]]
    shown["rank (paper)"] = [fmt_num(v, 0) for v in numeric["rank paper"]]
    return numeric, pd.DataFrame(shown)


def relative_change(value: float, reference: float) -> float:
    """Relative improvement in percent of ``value`` over ``reference`` (NaN when undefined)."""
    if not np.isfinite(value) or not np.isfinite(reference) or reference == 0:
        return float("nan")
    return 100.0 * (value - reference) / reference


def relative_improvements(configs: list[Config], sampled: bool = False) -> pd.DataFrame:
    """Relative change (%) of each method's mean over the base and the SFT reference of its model."""
    rows = []
    base, sft = reference_config(configs, BASE_EVAL, "base"), reference_config(configs, SFT, "sft")
    for c in configs:
        for ref, kind in ((base, "base"), (sft, "SFT")):
            if ref is None or c is ref or c.method == BASE_EVAL or (kind == "SFT" and c.method == SFT):
                continue
            ours, theirs = metric_stats(c, sampled), metric_stats(ref, sampled)
            rows.append(
                {
                    "Model": c.model,
                    "Method": c.name,
                    "over": f"{kind} ({ref.name})",
                    **{METRIC_NAMES[m]: relative_change(ours[m][0], theirs[m][0]) for m in METRICS},
                }
            )
    return pd.DataFrame(rows)


def best_rows(values: pd.Series) -> set[int]:
    finite = values.dropna()
    return set() if finite.empty else {i for i, v in enumerate(values) if v == finite.max()}


def reward_ablation(
    group: list[Config],
    folded: dict[str, str],
    sampled: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3 beside the measured one: rows = training reward in the paper's row order (the rewards it
    did not train with last), the metrics here and published, AVG as the paper's (all six metrics) and
    ranks by it."""
    paper = published_tables().get(REWARD_TABLE[0], pd.DataFrame())
    order = list(paper["train_reward"]) if "train_reward" in paper else []

    def paper_order(c: Config) -> tuple:
        reward = str(c.params["grpo.reward"])
        return (order.index(reward) if reward in order else len(order), level_key(reward))

    ranked = sorted(group, key=paper_order)
    numeric, shown = side_by_side(
        ranked, [str(c.params["grpo.reward"]) for c in ranked], "Training reward", sampled, folded
    )
    return numeric.rename(columns={"Training reward": "train_reward"}), shown


def sweep_table(group: list[Config], factor: str, sampled: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    numeric = pd.DataFrame(
        [
            {
                factor: c.params[factor],
                "config": c.name,
                "seeds": len(c.rows),
                **stats_columns(metric_stats(c, sampled)),
            }
            for c in group
        ]
    )
    shown = pd.DataFrame({factor: numeric[factor], **display_cells(numeric), "seeds": numeric["seeds"]})
    return numeric, shown


def compute_table(configs: list[Config]) -> pd.DataFrame:
    """Per configuration: mean wall time, generated and trained tokens, steps, best step; how many seeds
    selected their last evaluation (still improving when training stopped); how many were reused."""
    rows = []
    for c in configs:
        steps, best = c.values(TRAIN_STEPS), c.values(BEST_STEP)
        at_end = int(np.sum((steps > 0) & (best == steps)))
        rows.append(
            {
                "Task": c.task,
                "Model": c.model,
                "Config": c.name,
                "seeds": len(c.rows),
                **{f"{k} mean": c.stats(k)[0] for k in COMPUTE_COLUMNS},
                "trainable params": c.stats(PARAMS_TRAINABLE)[0],
                "best = last step": f"{at_end}/{len(c.rows)}" if np.nanmax(steps, initial=0) > 0 else "—",
                "reused": int((c.rows["reused_from"] != "").sum()),
            }
        )
    return pd.DataFrame(rows)


def incomplete_table(trials: pd.DataFrame) -> pd.DataFrame:
    if trials.empty:
        return trials
    rows = trials[trials["state"] != "COMPLETE"]
    return rows[
        [
            "trial",
            "label",
            "state",
            "mlflow_status",
            "task",
            "seed",
            "last_val_step",
            "last_val_bleu",
            "error",
            "run_id",
        ]
    ].reset_index(drop=True)


def runs_table(configs: list[Config]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Task": c.task,
                "Model": c.model,
                "Config": c.name,
                "label": c.label,
                "seeds": ", ".join(str(s) for s in c.seeds),
                "trials": ", ".join(str(int(t)) for t in c.rows["trial"] if pd.notna(t)),
                "run ids": ", ".join(c.run_ids),
                "reused from": ", ".join(r for r in c.rows["reused_from"] if r) or "—",
            }
            for c in configs
        ]
    )


def sweeps(data: ReportData) -> list[tuple[str, list[Config]]]:
    """(factor, levels) of every searched parameter with >= 2 levels among GRPO configurations, except
    the reward (its own section)."""
    return [
        (factor, group)
        for factor in data.swept
        if factor != "grpo.reward"
        for group in factor_groups(data.configs, factor)
    ]
