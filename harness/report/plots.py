"""Figures: metric against a swept setting, MP-GRPO on/off bars and training curves (from each run's
metric history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient

from harness.report.runs import METRIC_NAMES, METRICS, MP_PARAM, Config, metric_stats
from harness.report.tables import SWEEPS, as_number

CURVE_METRICS: tuple[str, ...] = ("reward", "kl", "completion_len_mean")


# --------------------------------------------------------------------------------------------------
# Plots


def _metrics_present(group: list[Config]) -> list[str]:
    return [m for m in METRICS if any(metric_stats(c).at[m, "n"] > 0 for c in group)]


def _grid(n: int, width: float = 3.6, height: float = 2.9) -> tuple[Figure, list]:
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def plot_sweep(group: list[Config], factor: str, title: str) -> Figure:
    """Each metric (mean ± std error bars over seeds) against the swept setting."""
    metrics = _metrics_present(group)
    fig, axes = _grid(len(metrics))
    x = [as_number(c.params[factor]) for c in group]
    for ax, metric in zip(axes, metrics):
        stats = [metric_stats(c).loc[metric] for c in group]
        ax.errorbar(x, [s["mean"] for s in stats], yerr=[np.nan_to_num(s["std"]) for s in stats],
                    marker="o", capsize=4)
        ax.set_xlabel(SWEEPS.get(factor, factor))
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_mp_bars(groups: list[list[Config]]) -> Figure:
    """Figure 1 style: per task/model, each metric with GRPO and MP-GRPO bars (mean ± std)."""
    fig, axes = _grid(len(groups), width=6.0, height=3.4)
    for ax, group in zip(axes, groups):
        metrics = _metrics_present(group)
        pos = np.arange(len(metrics))
        width = 0.8 / len(group)
        for i, c in enumerate(group):
            stats = metric_stats(c).loc[metrics]
            ax.bar(pos + (i - (len(group) - 1) / 2) * width, stats["mean"], width,
                   yerr=np.nan_to_num(stats["std"].to_numpy()), capsize=3,
                   label=f"{c.name} (mp_grpo={c.params[MP_PARAM]})")
        ax.set_xticks(pos, [METRIC_NAMES[m] for m in metrics], rotation=30)
        ax.set_title(f"{group[0].task} / {group[0].model}")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    return fig


def training_curves(client: MlflowClient, configs: list[Config]) -> pd.DataFrame:
    """Long table config / metric / step -> mean, std, n over seeds, from each run's metric history."""
    rows = []
    for c in configs:
        for metric in CURVE_METRICS:
            points = [(p.step, p.value) for t in c.trials for p in client.get_metric_history(t.run_id, metric)]
            if not points:
                continue
            agg = pd.DataFrame(points, columns=["step", "value"]).groupby("step")["value"].agg(
                ["mean", lambda v: v.std(ddof=1), "count"])
            agg.columns = ["mean", "std", "n"]
            rows += [{"config": c.name, "metric": metric, "step": int(s), **r} for s, r in agg.iterrows()]
    return pd.DataFrame(rows, columns=["config", "metric", "step", "mean", "std", "n"])


def plot_curves(curves: pd.DataFrame, title: str) -> Figure:
    metrics = [m for m in CURVE_METRICS if m in set(curves["metric"])]
    fig, axes = _grid(len(metrics), width=4.2, height=3.2)
    for ax, metric in zip(axes, metrics):
        for name, part in curves[curves["metric"] == metric].groupby("config", sort=False):
            ax.plot(part["step"], part["mean"], label=name)
            std = part["std"].fillna(0.0)
            ax.fill_between(part["step"], part["mean"] - std, part["mean"] + std, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{metric} (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig
