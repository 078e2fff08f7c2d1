"""The paper's tables, measured beside the published rows: the methods per task and model, the reward
ablation, the sweeps of one parameter and MP-GRPO against GRPO."""

from __future__ import annotations

from harness.report.comparisons import factor_groups
from harness.report.document import ReportWriter, fmt_num, slug
from harness.report.folder import ReportData
from harness.report.plots import plot_mp_bars, plot_sweep, plot_training
from harness.report.tables import method_table, relative_improvements, reward_ablation, sweep_table, sweeps
from harness.vocabulary import METRIC_NAMES, METRICS

__all__ = ["PAPER_NOTE", "ablation_section", "methods_section", "mp_section", "sweeps_section"]


PAPER_NOTE = (
    "Granite-Speech 2B on LibriSQA / CoVoST2: another model, data and scale, so levels are not comparable; "
    "the order of the rows is. BERTScore here is MiniLM's, not roberta-large's"
)


def methods_section(w: ReportWriter, data: ReportData, folded: dict[str, dict[str, str]]) -> None:
    w.text("## Method comparison (test set)")
    if not data.configs:
        w.text("No trial finished: nothing to compare (the unfinished trials are listed below).")
    for task, same in folded.items():
        w.text(
            *(
                f"- {METRIC_NAMES[a]} equals {METRIC_NAMES[b]} on every example of every run of task `{task}`, so "
                "it is shown and compared once there (one column, one comparison); AVG counts both, as the "
                "paper's does."
                for a, b in same.items()
            )
        )
        if same.get("rouge1") == "rougeL":
            w.text(
                "  Why: the spoken-QA answers are short templated phrases (2-6 words, no word repeated, one "
                "word order), so the words a hypothesis shares with its reference always come in the same "
                "order: the longest common subsequence is the unigram overlap, and ROUGE-L F = ROUGE-1 F."
            )
    for (task, model), configs in data.task_models().items():
        w.text(f"### Task `{task}`, model `{model}`")
        for decoding in reversed(data.decodings()):  # sampled first: the paper's protocol
            sampled = decoding == "sampled"
            numeric, shown = method_table(configs, sampled, folded.get(task, {}))
            w.table(
                slug("methods", task, model, decoding),
                numeric,
                shown,
                f"{'Sampled decoding (the paper’s protocol)' if sampled else 'Greedy decoding'}, best validation "
                "checkpoint; mean ± sample std over seeds, beside the paper's row for the same configuration "
                f"({PAPER_NOTE}); AVG = mean of the six metrics, as the paper's; rank by AVG.",
            )
        rel = relative_improvements(configs, sampled=data.decodings()[-1] == "sampled")
        if not rel.empty:
            shown = rel.copy()
            for m in METRICS:
                shown[METRIC_NAMES[m]] = [fmt_num(v, sign=True, suffix="%") for v in rel[METRIC_NAMES[m]]]
            same = folded.get(task, {})
            shown = shown.drop(columns=[METRIC_NAMES[m] for m in same]).rename(  # a folded metric: one column
                columns={METRIC_NAMES[kept]: f"{METRIC_NAMES[m]} = {METRIC_NAMES[kept]}" for m, kept in same.items()}
            )
            w.table(
                slug("relative_improvement", task, model),
                rel,
                shown,
                f"Relative change (%) of the mean over the base / SFT mean ({data.decodings()[-1]} decoding).",
            )


def _group_names(groups: list[list], factor: str) -> list[tuple[str, str]]:
    """(file-name part, caption part) per group of a factor: ``task_model``, plus ``_k`` and the settings
    the group holds fixed when one task and model have several groups."""
    out = []
    for group in groups:
        task, model = group[0].task, group[0].model
        siblings = [g for g in groups if (g[0].task, g[0].model) == (task, model)]
        if len(siblings) == 1:
            out.append((slug(task, model), f"Task `{task}`"))
            continue
        held = ", ".join(f"{k}={v}" for k, v in sorted(group[0].params.items()) if k != factor)
        out.append((slug(task, model, str(siblings.index(group) + 1)), f"Task `{task}`, held fixed: {held}"))
    return out


def ablation_section(w: ReportWriter, data: ReportData, folded: dict[str, dict[str, str]]) -> None:
    groups = factor_groups(data.configs, "grpo.reward")
    if not groups:
        return
    w.text("## Reward ablation (GRPO trained with each reward)")
    for group, (name, caption) in zip(groups, _group_names(groups, "grpo.reward")):
        for decoding in reversed(data.decodings()):  # sampled first: the paper's protocol
            numeric, shown = reward_ablation(group, folded.get(group[0].task, {}), decoding == "sampled")
            w.table(
                slug("reward_ablation", name, decoding),
                numeric,
                shown,
                f"{caption}, {decoding} decoding, beside the paper's Table 3 ({PAPER_NOTE}). Rows: training "
                "reward in Table 3's order (rewards the paper did not train with last); AVG = mean of the six "
                "metrics (means over seeds), the paper's definition; rank by AVG; bold = best mean per column "
                "(a best mean is not evidence of a difference: see the Answer and the comparisons).",
            )
        w.figure(
            slug("reward_training", name),
            plot_training(data, group, "Training curves per reward (each on its own axis)"),
            "training reward per reward",
        )


def sweeps_section(w: ReportWriter, data: ReportData) -> None:
    found = sweeps(data)
    for factor in dict.fromkeys(f for f, _ in found):
        groups = [g for f, g in found if f == factor]
        for group, (name, caption) in zip(groups, _group_names(groups, factor)):
            w.text(f"## Sweep: `{factor}` (default level {data.swept.get(factor)})")
            base = slug("sweep", factor.split(".")[-1], name)
            for decoding in data.decodings():
                numeric, shown = sweep_table(group, factor, decoding == "sampled")
                w.table(slug(base, decoding), numeric, shown, f"{caption}, {decoding} decoding; mean ± std over seeds.")
            w.figure(
                base,
                plot_sweep(group, factor, f"{group[0].task}: test metrics against {factor} (greedy)"),
                f"{factor} sweep; error bars ± 1 sample std over seeds",
            )


def mp_section(w: ReportWriter, data: ReportData) -> None:
    groups = []
    for (_, _), configs in data.task_models().items():
        grpo = [c for c in configs if c.is_grpo and not c.mp and c.label == "grpo"]
        mp = [c for c in configs if c.is_grpo and c.mp]
        if grpo and mp:
            groups.append(grpo[:1] + mp)
    if groups:
        w.text("## MP-GRPO against GRPO")
        w.figure(
            "mp_grpo",
            plot_mp_bars(groups, sampled="sampled" in data.decodings()),
            "MP-GRPO vs GRPO: test scores x100; bars = mean over seeds, error bars = ± 1 sample std",
        )
