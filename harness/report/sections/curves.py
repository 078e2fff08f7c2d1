"""Validation curves per task and model (mean and band over seeds, each seed's selected checkpoint), and
the training curves of the GRPO configurations the reward ablation does not already draw."""

from __future__ import annotations

from harness.report.comparisons import factor_groups
from harness.report.document import ReportWriter, slug
from harness.report.folder import ReportData
from harness.report.plots import plot_training, plot_validation

__all__ = ["curves_section"]


def curves_section(w: ReportWriter, data: ReportData) -> None:
    w.text(
        "## Validation curves",
        "",
        "Validation BLEU (greedy) per configuration: mean over seeds, band ± 1 sample std; stars mark each "
        "seed's selected checkpoint (its highest validation BLEU).",
    )
    for (task, model), configs in data.task_models().items():
        fig = plot_validation(data, configs, f"{task} / {model}")
        if fig is not None:
            w.figure(slug("validation", task, model), fig, f"validation curves {task} {model}")
        in_ablation = {c.name for g in factor_groups(configs, "grpo.reward") for c in g}
        trained = [c for c in configs if c.is_grpo and c.name not in in_ablation]
        if trained:
            w.figure(
                slug("training", task, model),
                plot_training(data, trained, f"{task} / {model}: GRPO training"),
                f"training curves {task} {model}",
            )
