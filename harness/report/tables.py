"""The comparison tables: methods, relative improvement, reward ablation, factor sweeps, compute,
incomplete trials and the runs behind each configuration."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from harness.report.document import display_cells, fmt_num, stats_columns
from harness.report.runs import (METRIC_NAMES, METRICS, REWARD_PARAM, Config, Trial, metric_stats, summarize,
                                 task_models, varying_params)

COMPUTE_METRICS: tuple[str, ...] = ("wall_time_s", "generated_tokens", "train_steps", "best_step")
SWEEPS = {"grpo.group_size": "group size G", "grpo.beta": "KL beta"}


# --------------------------------------------------------------------------------------------------
# Tables


def reference_config(configs: list[Config], method: str, label: str, mp: bool = False) -> Config | None:
    """The baseline a comparison is made against: the config labelled ``label`` if there is one,
    else the one of ``method`` with the highest mean test BLEU (the most conservative baseline)."""
    candidates = [c for c in configs if c.method == method and (method != "grpo" or c.mp == mp)]
    exact = [c for c in candidates if c.label == label]
    pool = exact or candidates
    if not pool:
        return None
    return max(pool, key=lambda c: np.nan_to_num(metric_stats(c).at["bleu", "mean"], nan=-np.inf))


def method_comparison(configs: list[Config], prefix: str = "test/") -> pd.DataFrame:
    rows = [{"Model": c.model, "Method": c.name, **stats_columns(metric_stats(c, prefix))} for c in configs]
    return pd.DataFrame(rows)


def relative_change(value: float, reference: float) -> float:
    """Relative improvement in percent of ``value`` over ``reference`` (NaN when undefined)."""
    if not np.isfinite(value) or not np.isfinite(reference) or reference == 0:
        return float("nan")
    return 100.0 * (value - reference) / reference


def relative_improvements(configs: list[Config]) -> pd.DataFrame:
    """Relative change (%) of each method's mean over the base and the SFT reference of its model."""
    rows = []
    for (_, model), group in task_models(configs).items():
        base, sft = reference_config(group, "base-eval", "base"), reference_config(group, "sft", "sft")
        for c in group:
            for ref, kind in ((base, "base"), (sft, "SFT")):
                if ref is None or c is ref or c.method == "base-eval" or (kind == "SFT" and c.method == "sft"):
                    continue
                ours, theirs = metric_stats(c), metric_stats(ref)
                rows.append({"Model": model, "Method": c.name, "over": f"{kind} ({ref.name})",
                             **{METRIC_NAMES[m]: relative_change(ours.at[m, "mean"], theirs.at[m, "mean"])
                                for m in METRICS}})
    return pd.DataFrame(rows)


def factor_groups(configs: list[Config], factor: str) -> list[list[Config]]:
    """Sets of GRPO configs identical in every parameter but ``factor`` (seed aside), >= 2 values."""
    groups: dict[tuple, list[Config]] = defaultdict(list)
    for c in configs:
        if c.is_grpo and factor in c.params:
            groups[tuple(sorted((k, v) for k, v in c.params.items() if k != factor))].append(c)
    found = [g for g in groups.values() if len({c.params[factor] for c in g}) > 1]
    return [sorted(g, key=lambda c: (*_setting_key(c.params[factor]), c.name)) for g in found]


def as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")


def _setting_key(value: str) -> tuple:
    """Numbers ascending, then metric names in the paper's order (bleu, ..., meteor), then text."""
    return as_number(value), METRICS.index(value) if value in METRICS else len(METRICS), value


def best_rows(values: pd.Series) -> set[int]:
    finite = values.dropna()
    return set() if finite.empty else {i for i, v in enumerate(values) if v == finite.max()}


def reward_ablation(group: list[Config]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Table 3 style: rows = training reward, six metrics + AVG, best per column in bold.

    AVG is the mean of the per-configuration metric means over the metrics every row has (all six
    when all were logged); the metrics used are returned."""
    numeric = pd.DataFrame([{"train_reward": c.params[REWARD_PARAM], "config": c.name,
                             **stats_columns(metric_stats(c))} for c in group])
    means = numeric[[f"{METRIC_NAMES[m]} mean" for m in METRICS]]
    used = [m for m in METRICS if means[f"{METRIC_NAMES[m]} mean"].notna().all()]
    numeric["AVG"] = numeric[[f"{METRIC_NAMES[m]} mean" for m in used]].mean(axis=1) if used else np.nan
    bold = {METRIC_NAMES[m]: best_rows(numeric[f"{METRIC_NAMES[m]} mean"]) for m in METRICS}
    best_avg = best_rows(numeric["AVG"])
    shown = pd.DataFrame({"Training reward": numeric["train_reward"], **display_cells(numeric, bold),
                          "AVG": [f"**{fmt_num(v)}**" if i in best_avg else fmt_num(v)
                                  for i, v in enumerate(numeric["AVG"])],
                          "Config": numeric["config"]})
    return numeric, shown, used


def sweep_table(group: list[Config], factor: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    numeric = pd.DataFrame([{factor: c.params[factor], "config": c.name, **stats_columns(metric_stats(c))}
                            for c in group])
    shown = pd.DataFrame({factor: numeric[factor], **display_cells(numeric), "Config": numeric["config"]})
    return numeric, shown


def compute_table(configs: list[Config]) -> pd.DataFrame:
    rows = []
    for c in configs:
        stats = summarize(c.trials, list(COMPUTE_METRICS))
        rows.append({"Task": c.task, "Model": c.model, "Config": c.name, "n": len(c.trials),
                     **{f"{k} mean": stats.at[k, "mean"] for k in COMPUTE_METRICS}})
    return pd.DataFrame(rows)


def incomplete_table(trials: list[Trial]) -> pd.DataFrame:
    rows = [{"trial": t.number, "label": t.label, "state": t.state, "MLflow status": t.status,
             "task": t.task, "error": t.error, "run id": t.run_id}
            for t in trials if t.state != "COMPLETE"]
    return pd.DataFrame(rows, columns=["trial", "label", "state", "MLflow status", "task", "error", "run id"])


def runs_table(configs: list[Config]) -> pd.DataFrame:
    keys = [k for k in varying_params(configs) if k not in ("task", "model.name")]
    return pd.DataFrame([{"Task": c.task, "Model": c.model, "Config": c.name, "label": c.label,
                          "seeds": ", ".join(c.seeds),
                          "trials": ", ".join(str(t.number) for t in c.trials),
                          "run ids": ", ".join(t.run_id for t in c.trials),
                          "distinguishing params": ", ".join(f"{k}={c.params.get(k, '—')}" for k in keys)}
                         for c in configs])
