"""Figures, from the folder's files: validation curves with each seed's selected checkpoint, training
curves (one panel per configuration, since rewards of different metrics share no scale), metrics
against a swept setting, and MP-GRPO on/off. Error bars and bands are ± one sample standard deviation
over seeds; legends sit outside the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.folder import Config, ReportData
from harness.vocabulary import METRIC_NAMES, METRICS, TEST, VAL, metric_key

__all__ = ["plot_mp_bars", "plot_sweep", "plot_training", "plot_validation", "seed_curves"]


def _grid(n: int, width: float = 3.8, height: float = 2.9, cols: int = 3) -> tuple[Figure, list]:
    cols = max(1, min(n, cols))
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def seed_curves(data: ReportData, config: Config, metric: str) -> pd.DataFrame:
    """step -> mean, std (ddof=1), n of ``metric`` over the configuration's seeds."""
    curves = data.curves
    points = curves[(curves["metric"] == metric) & curves["run_id"].isin(config.run_ids)]
    if points.empty:
        return pd.DataFrame(columns=["mean", "std", "n"])
    return points.groupby("step")["value"].agg(mean="mean", std=lambda v: v.std(ddof=1), n="count")


def plot_validation(data: ReportData, configs: list[Config], title: str, metric: str = "bleu") -> Figure | None:
    """Small multiples, one panel per trained configuration (shared axes): validation ``metric`` against
    step, each seed a thin line, the mean over seeds with a ± 1 std band, each seed's selected checkpoint
    (highest validation BLEU) a star on that seed's own value; the first configuration (the reference:
    SFT where there is one) is repeated as a dashed gray line in every other panel."""
    trained = [c for c in configs if np.nanmax(c.values("train_steps"), initial=0) > 0]
    if not trained:
        return None
    key = metric_key(VAL, metric)
    fig, axes = _grid(len(trained), width=3.3, height=2.5, cols=4)
    reference = seed_curves(data, trained[0], key)
    for i, (ax, c) in enumerate(zip(axes, trained)):
        color = f"C{i % 10}"
        runs = data.curves[(data.curves["metric"] == key) & data.curves["run_id"].isin(c.run_ids)]
        for _, run in runs.groupby("run_id"):
            ax.plot(run["step"], run["value"], color=color, linewidth=0.5, alpha=0.4)
        curve = seed_curves(data, c, key)
        if not curve.empty:
            std = curve["std"].fillna(0.0)
            ax.plot(curve.index, curve["mean"], color=color, linewidth=2, label="mean")
            ax.fill_between(curve.index, curve["mean"] - std, curve["mean"] + std, color=color, alpha=0.15)
        if i and not reference.empty:
            ax.plot(
                reference.index, reference["mean"], color="gray", linestyle="--", linewidth=1, label=trained[0].name
            )
        for run_id, best in zip(c.run_ids, c.values("best_step")):
            point = runs[(runs["run_id"] == run_id) & (runs["step"] == best)]
            ax.plot(
                point["step"],
                point["value"],
                marker="*",
                markersize=8,
                linestyle="none",
                color=color,
                markeredgecolor="black",
                markeredgewidth=0.5,
            )
        ax.set_title(f"{c.name} ({len(c.rows)} seeds)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.sharex(axes[0])
        ax.sharey(axes[0])
    cols = min(len(trained), 4)
    for k, ax in enumerate(axes):
        if k >= len(axes) - cols:
            ax.set_xlabel("training step", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel(f"val {METRIC_NAMES.get(metric, metric)} (greedy)", fontsize=8)
    fig.suptitle(
        f"{title}: each seed (thin), mean ± 1 std (band), selected checkpoints (stars); dashed: {trained[0].name}",
        fontsize=9,
    )
    return fig


def plot_training(data: ReportData, configs: list[Config], title: str) -> Figure | None:
    """Per GRPO configuration (a row), its training reward (its own metric, its own axis), KL to the
    reference ("no reference" when beta = 0) and completion length (columns), mean over seeds ± 1 std."""
    grpo = [c for c in configs if c.is_grpo]
    if not grpo:
        return None
    panels = [
        ("reward", "training reward (its own metric)"),
        ("kl", "KL to reference"),
        ("completion_len_mean", "completion tokens"),
    ]
    fig, axes = _grid(len(grpo) * len(panels), width=3.2, height=2.1, cols=len(panels))
    for row, c in enumerate(grpo):
        for col, (metric, label) in enumerate(panels):
            ax = axes[row * len(panels) + col]
            curve = seed_curves(data, c, metric)
            if curve.empty:
                note = "no reference (β = 0)" if metric == "kl" else "not logged"
                ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, color="gray")
            else:
                std = curve["std"].fillna(0.0)
                ax.plot(curve.index, curve["mean"], linewidth=1, color=f"C{row % 10}")
                ax.fill_between(curve.index, curve["mean"] - std, curve["mean"] + std, alpha=0.2, color=f"C{row % 10}")
            if row == 0:
                ax.set_title(label, fontsize=8)
            if col == 0:
                reward = str(c.params.get("grpo.reward", ""))
                ax.set_ylabel(reward or c.name, fontsize=7)
            if row == len(grpo) - 1:
                ax.set_xlabel("training step", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(f"{title} (rows: configurations, by their reward)", fontsize=9)
    return fig


def plot_sweep(group: list[Config], factor: str, title: str, sampled: bool = False) -> Figure:
    """Each metric against the swept setting: mean over seeds, error bars ± 1 sample std."""
    metrics = [m for m in METRICS if any(c.stats(metric_key(TEST, m, sampled))[2] for c in group)]
    fig, axes = _grid(len(metrics))
    x = np.arange(len(group))
    for ax, metric in zip(axes, metrics):
        stats = [c.stats(metric_key(TEST, metric, sampled)) for c in group]
        ax.errorbar(x, [s[0] for s in stats], yerr=[np.nan_to_num(s[1]) for s in stats], marker="o", capsize=4)
        ax.set_xticks(x, [str(c.params[factor]) for c in group], rotation=20, fontsize=8)
        ax.set_xlabel(factor)
        ax.set_ylabel(f"test {METRIC_NAMES[metric]} (x100)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_mp_bars(groups: list[list[Config]], sampled: bool = False) -> Figure:
    """Figure 1 style: per task/model, each metric with GRPO and MP-GRPO bars (mean over seeds,
    error bars ± 1 sample std)."""
    fig, axes = _grid(len(groups), width=6.0, height=3.4, cols=2)
    for ax, group in zip(axes, groups):
        pos = np.arange(len(METRICS))
        width = 0.8 / len(group)
        for i, c in enumerate(group):
            stats = [c.stats(metric_key(TEST, m, sampled)) for m in METRICS]
            ax.bar(
                pos + (i - (len(group) - 1) / 2) * width,
                [s[0] for s in stats],
                width,
                yerr=[np.nan_to_num(s[1]) for s in stats],
                capsize=3,
                label=f"{c.name} (n={len(c.rows)})",
            )
        ax.set_xticks(pos, [METRIC_NAMES[m] for m in METRICS], rotation=30)
        ax.set_ylabel("test score (x100)")
        ax.set_title(f"{group[0].task} / {group[0].model}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.grid(axis="y", alpha=0.3)
    return fig
