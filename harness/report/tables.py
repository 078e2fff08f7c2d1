"""The report's tables, each from the folder's files: methods (greedy and sampled decoding), reward
ablation, parameter sweeps, compute, trials that did not finish, and the runs behind each configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.comparisons import factor_groups, reference_config
from harness.report.document import display_cells, fmt_num, stats_columns
from harness.report.folder import Config, ReportData
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
    "sweep_table",
]

COMPUTE_COLUMNS = (WALL_TIME, GENERATED_TOKENS, TRAINED_TOKENS, TRAIN_STEPS, BEST_STEP)


def metric_stats(config: Config, sampled: bool = False) -> dict[str, tuple[float, float, int]]:
    return {m: config.stats(metric_key(TEST, m, sampled)) for m in METRICS}


def duplicate_metrics(data: ReportData) -> dict[str, str]:
    """{folded metric: the metric it equals}: metrics whose per-example greedy scores equal another's on
    every example of every run are reported once (ROUGE-1 folds into ROUGE-L, otherwise the later
    metric into the earlier)."""
    pe = data.per_example
    if pe.empty:
        return {}
    greedy = pe[pe["decoding"] == "greedy"]
    out: dict[str, str] = {}
    for i, first in enumerate(METRICS):
        for second in METRICS[i + 1 :]:
            if first in out or second in out or first not in greedy or second not in greedy:
                continue
            a, b = greedy[first].to_numpy(float), greedy[second].to_numpy(float)
            if len(a) and np.all(np.isfinite(a)) and np.array_equal(a, b):
                folded, kept = (first, second) if (first, second) == ("rouge1", "rougeL") else (second, first)
                out[folded] = kept
    return out


def method_table(configs: list[Config], sampled: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per configuration: mean ± std over seeds of every metric (numeric CSV, shown markdown)."""
    numeric = pd.DataFrame(
        [
            {"Model": c.model, "Method": c.name, "seeds": len(c.rows), **stats_columns(metric_stats(c, sampled))}
            for c in configs
        ]
    )
    shown = pd.DataFrame(
        {"Model": numeric["Model"], "Method": numeric["Method"], "seeds": numeric["seeds"], **display_cells(numeric)}
    )
    return numeric, shown


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
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Table 3 style: rows = training reward, the metrics + AVG, best per column in bold. AVG is the mean
    of the configuration's metric means over the metrics every row has, each metric once (``folded``
    metrics, identical to another, are left out); the metrics used are returned."""
    numeric = pd.DataFrame(
        [
            {
                "train_reward": c.params["grpo.reward"],
                "config": c.name,
                "seeds": len(c.rows),
                **stats_columns(metric_stats(c, sampled)),
            }
            for c in group
        ]
    )
    used = [m for m in METRICS if m not in folded and numeric[f"{METRIC_NAMES[m]} mean"].notna().all()]
    numeric["AVG"] = numeric[[f"{METRIC_NAMES[m]} mean" for m in used]].mean(axis=1) if used else np.nan
    bold = {METRIC_NAMES[m]: best_rows(numeric[f"{METRIC_NAMES[m]} mean"]) for m in METRICS}
    best_avg = best_rows(numeric["AVG"])
    shown = pd.DataFrame(
        {
            "Training reward": numeric["train_reward"],
            **display_cells(numeric, bold),
            "AVG": [f"**{fmt_num(v)}**" if i in best_avg else fmt_num(v) for i, v in enumerate(numeric["AVG"])],
            "seeds": numeric["seeds"],
        }
    )
    return numeric, shown, used


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
