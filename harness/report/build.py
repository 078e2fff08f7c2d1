"""`build_report`: export a study from the store into its folder (`harness.report.export`), then write
``report.md``, its CSVs and PNGs from the folder alone; `rebuild_report` does the second half for a
folder without any store. `write_index` writes ``reports/README.md``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient

from harness.report.answer import answer_section, verdict_line
from harness.report.comparisons import (
    ALPHA,
    MIN_SEEDS,
    N_BOOTSTRAP,
    POWER,
    comparison_table,
    factor_groups,
    pairs,
    primary_decoding,
    seed_aware,
    untrained,
)
from harness.report.document import ReportWriter, fmt_num, fmt_p, slug
from harness.report.export import FILES, export_study
from harness.report.findings import findings_table, identical_configs, render
from harness.report.folder import ReportData, load_folder
from harness.report.hypotheses import HYPOTHESES_FILE, declared, select, verdicts
from harness.report.hypotheses import evaluate as evaluate_hypotheses
from harness.report.index import FINDINGS_FILE, write_index
from harness.report.optuna_views import optuna_analysis_section, pareto_section
from harness.report.plots import plot_mp_bars, plot_sweep, plot_training, plot_validation
from harness.report.published import PUBLISHED_TABLES, PUBLISHED_TITLE, published_tables
from harness.report.samples import samples_section
from harness.report.tables import (
    COMPUTE_COLUMNS,
    compute_table,
    duplicate_metrics,
    incomplete_table,
    method_table,
    relative_improvements,
    reward_ablation,
    runs_table,
    sweep_table,
    sweeps,
)
from harness.report.test_outputs import test_outputs_section
from harness.report.variance import variance_section
from harness.vocabulary import METRIC_NAMES, METRICS, SELECT_METRIC, STATES, VERDICT_TAG_PREFIX

__all__ = ["DirtyTree", "build_report", "rebuild_report", "write_index"]

log = logging.getLogger("harness.report")

COMPARISONS_FILE = "comparisons.csv"


class DirtyTree(RuntimeError):
    """A report for the repository's reports/ from code that a commit cannot reproduce."""


# --------------------------------------------------------------------------------------------------
# Sections


def _header(w: ReportWriter, data: ReportData, dirty: list[str]) -> None:
    states = data.trials["state"].value_counts().to_dict() if not data.trials.empty else {}
    prov = data.provenance
    title = f"# Study report: {data.name}" + (" (from a dirty tree: not reproducible from a commit)" if dirty else "")
    w.text(
        title,
        "",
        f"- Trials: {len(data.trials)} (" + ", ".join(f"{s} {states.get(s, 0)}" for s in STATES) + f"); "
        f"configurations: {len(data.configs)}; finished trials reused from identical earlier trials: "
        f"{prov.get('reused_trials', 0)}.",
        f"- Run by `{prov.get('command') or 'an unrecorded command'}` at commit(s) "
        f"{', '.join(f'`{c}`' for c in prov.get('trial_commits', []))} "
        f"on {', '.join(prov.get('trial_machines', [])) or 'an unrecorded machine'}.",
        "- Every number below is computed from the files in this folder (`per_seed.csv`, `per_example.csv.gz`, "
        "`curves.csv.gz`, `trials.csv`, `configs/`; `harness report --from-folder` recomputes it); the MLflow run "
        "ids are in [the appendix](#appendix-runs-per-configuration).",
        *([f"- **Not reproducible from a commit:** {'; '.join(dirty)}."] if dirty else []),
    )


def _setup(w: ReportWriter, data: ReportData) -> None:
    configs = {}
    for path in sorted((data.dir / FILES["configs"]).glob("*.yaml")):
        configs[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8"))
    w.text("## Setup")
    if not configs:
        w.text("No resolved configurations recorded.")
        return
    first = next(iter(configs.values()))
    prov = data.provenance
    params = data.per_seed["model/params"].dropna() if "model/params" in data.per_seed else pd.Series(dtype=float)
    d, e = first["data"], first["eval"]
    w.text(
        f"- **Model**: `{first['model']['name']}`, starting checkpoint "
        + ", ".join(f"`{c}`" for c in prov["checkpoints"])
        + (f", {params.iloc[0] / 1e6:.2f} M parameters" if len(params) else "")
        + f"; trained: `{first['model']['trainable']}` (trainable parameters per configuration in the compute table).",
        f"- **Data**: `{d['source']}`"
        + (f", speech in the `{d['voice']}` voice" if d["source"] == "synthetic" else "")
        + f"; train {d['train_size']}, validation {d['validation_size']}, test {d['test_size']} examples per task "
        f"(data seed {d['seed']}; the training seeds vary the model, not the data).",
        f"- **Selection**: validation every `train.eval_every` steps and at step 0 (greedy, {d['validation_size']} "
        f"examples); the checkpoint with the highest validation corpus {METRIC_NAMES[SELECT_METRIC]} is tested "
        "(step 0 = the starting model). The compute table says how many seeds selected their last evaluation.",
        f"- **Test decoding**: greedy, up to {e['max_new_tokens']} new tokens"
        + (
            f"; and the paper's sampling, top-p {e['top_p']}, temperature {e['temperature']}, "
            f"{e['sampling_passes']} passes scored separately and averaged (`sampled`)"
            if e.get("sampling_passes")
            else ""
        )
        + f"; {e['batch_size']} prompts per batch.",
        "- **Metrics** (x100): BLEU = sacreBLEU corpus BLEU (13a, exp smoothing; a bootstrap re-scores it from "
        "per-sentence statistics); ROUGE-1/2/L = rouge-score F1 with stemming; METEOR = nltk "
        f"({', '.join(prov.get('meteor', []))}); BERTScore = {', '.join(prov.get('bertscore', []))}: not the "
        "paper's roberta-large, so not comparable in level. Other metrics are means of per-example scores.",
    )
    rows = []
    for name, cfg in configs.items():
        t, g = cfg["train"], cfg["grpo"]
        grpo = cfg["method"] == "grpo"
        rows.append(
            {
                "configuration": name,
                "method": cfg["method"],
                "seeds": ", ".join(map(str, cfg["seed"])),
                "steps": t["steps"] if cfg["method"] != "base-eval" else 0,
                "prompts/step": t["batch_size"],
                "lr": t["lr"],
                "warmup": t["warmup_steps"],
                "eval every": t["eval_every"],
                "reward": g["reward"] if grpo else "—",
                "G": g["group_size"] if grpo else "—",
                "beta": g["beta"] if grpo else "—",
                "T (rollout)": g["temperature"] if grpo else "—",
                "new tokens": g["max_new_tokens"] if grpo else "—",
                "loss": g["loss_type"] if grpo else "—",
                "adv. scale": g["scale_rewards"] if grpo else "—",
                "mu": g["iterations"] if grpo else "—",
                "MP-GRPO": g["mp_grpo"] if grpo else "—",
            }
        )
    w.text(
        "Per configuration (AdamW, linear warmup then constant lr, gradient norm clipped at "
        f"{first['train']['max_grad_norm']}; resolved configs in `configs/`):"
    )
    w.text_table(pd.DataFrame(rows))
    w.text(
        f"- **Statistics**: every comparison is a two-level bootstrap ({data.provenance.get('n_boot', N_BOOTSTRAP):,} "
        "replicates) over "
        "training seeds and test examples (examples paired across the two configurations, seeds resampled "
        "within each, seed variance corrected for small n), with a t reference (Satterthwaite df) for the "
        f"95 % CI and the p-value, and the minimum detectable difference (MDD) at {POWER:.0%} power, "
        f"two-sided alpha {ALPHA} (`harness/report/inference.py`). p-values are Holm-adjusted within two "
        f"families: primary = corpus BLEU under {primary_decoding(data)} decoding, secondary = every other "
        "metric and decoding.",
        "- **Provenance**: study run `"
        + str(prov.get("study_run"))
        + "`; packages: "
        + ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())
        + ".",
    )


def _findings(w: ReportWriter, data: ReportData, comparisons: pd.DataFrame) -> pd.DataFrame:
    findings = findings_table(comparisons, data)
    w.text(
        "## Exploratory comparisons (not declared before the run: no verdicts)",
        "",
        "Every pair the report compares on its own (fine-tuned vs base, GRPO vs SFT, variants vs their "
        "reference, each swept level vs the default), written from the adjusted comparisons below in fixed "
        "wording: *higher* / *lower* where the Holm-adjusted p < 0.05, otherwise the interval includes 0, with "
        "the smallest difference the seeds could detect at the family's level. Each is set beside the paper's "
        "row for the same configurations (Granite-Speech 2B; `harness/report/paper.py`). Only the Answer "
        "above decides.",
        "",
    )
    w.text(*render(findings))
    every = pairs(data)
    single = [(a, b) for a, b, _ in every if not seed_aware(a, b)]
    if not every:
        w.text(
            "",
            "A configuration is compared with the base, SFT, plain GRPO (or MP-GRPO) or its swept "
            "parameter's default level on the same task; this study has no such pair (an optimiser's "
            "trials are each their own configuration: see the Optuna analysis below).",
        )
    idle = sorted({c.name for a, b, _ in every for c in (a, b) if untrained(c)})
    if idle:
        w.text(
            "",
            f"**Not compared: {', '.join(idle)}**: every seed selected step 0, the starting model (training never "
            "beat it on validation), so a comparison would test the base model under another name.",
        )
    if single:
        w.text(
            "",
            f"**Not compared: {len(single)} pair(s)** with a trained configuration that ran one seed (at least "
            f"{MIN_SEEDS} are needed to estimate training-seed variance; an example-only p-value would "
            "overstate the evidence): "
            + "; ".join(f"{a.name} vs {b.name}" for a, b in single[:8])
            + (" ..." if len(single) > 8 else "")
            + ".",
        )
    same = identical_configs(data)
    if same:
        w.text(
            "",
            "**Identical results.** These configurations gave the same test scores seed by seed (every metric "
            "and decoding within 1e-5: the same generations): the setting that tells them apart changed "
            "nothing in this setup (the comments of `studies/<study>.yaml` at the report's commit say why): "
            + "; ".join(f"`{task}`: " + " = ".join(names) for task, names in same)
            + ".",
        )
    if not findings.empty:
        findings.to_csv(w.out_dir / FINDINGS_FILE, index=False)
        w.files.append(w.out_dir / FINDINGS_FILE)
        w.text(f"<sub>CSV: `{FINDINGS_FILE}`</sub>")
    return findings


PAPER_NOTE = (
    "Granite-Speech 2B on LibriSQA / CoVoST2: another model, data and scale, so levels are not comparable; "
    "the order of the rows is. BERTScore here is MiniLM's, not roberta-large's"
)


def _methods(w: ReportWriter, data: ReportData, folded: dict[str, dict[str, str]]) -> None:
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


def _ablation(w: ReportWriter, data: ReportData, folded: dict[str, dict[str, str]]) -> None:
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


def _sweeps(w: ReportWriter, data: ReportData) -> None:
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


def _mp(w: ReportWriter, data: ReportData) -> None:
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


def _curves(w: ReportWriter, data: ReportData) -> None:
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


def _hearing(w: ReportWriter, data: ReportData) -> None:
    """The base model's transcription errors per task and voice, and the difference between the voices
    (the same texts, paired by example; the base is deterministic, so examples are the only variance)."""
    path = data.dir / FILES["hearing"]
    if not path.is_file():
        return
    from harness.data.synthetic import VOICE
    from harness.eval.hearing import HEARING_FILE
    from harness.report.inference import compare

    table = pd.read_csv(path, dtype={"id": str})
    rows = []
    for (task, voice), part in table.groupby(["task", "voice"], sort=True):
        rows.append(
            {
                "task": task,
                "voice": voice + (" (pretraining voice)" if voice == VOICE else " (study voice)"),
                "clips": len(part),
                "WER %": 100 * part["word_errors"].sum() / part["words"].sum(),
                "CER %": 100 * part["char_errors"].sum() / part["chars"].sum(),
            }
        )
    shown = pd.DataFrame(rows)
    diffs = []
    for task, part in table.groupby("task", sort=True):
        voices = sorted(part["voice"].unique())
        if len(voices) != 2:
            continue
        study = next(v for v in voices if v != VOICE)
        by_voice = {v: part[part["voice"] == v].sort_values("id", kind="stable") for v in voices}
        for unit in ("word", "char"):
            feats = {v: by_voice[v][[f"{unit}_errors", f"{unit}s"]].to_numpy(float)[None] for v in voices}
            rate = lambda sums, m: 100 * sums[..., 0] / sums[..., 1]  # noqa: E731  (corpus error rate)
            result = compare(feats[study], feats[VOICE], score=rate)
            diffs.append(
                {
                    "task": task,
                    "rate": "WER" if unit == "word" else "CER",
                    f"{study} − {VOICE}": fmt_num(result.diff, sign=True),
                    "95% CI": f"[{fmt_num(result.ci_low, sign=True)}, {fmt_num(result.ci_high, sign=True)}]",
                    "p": fmt_p(result.p_value),
                }
            )
    w.text(
        "## The base model's hearing",
        "",
        "The starting checkpoint asked to transcribe (its pretraining ASR prompt) each task's test clips, "
        "spoken in the study's voice and in the voice it was pretrained on; corpus word / character error "
        f"rates (%) against what was said (`{HEARING_FILE}`, `harness/eval/hearing.py`).",
    )
    w.text_table(
        shown.assign(**{"WER %": [fmt_num(v) for v in shown["WER %"]], "CER %": [fmt_num(v) for v in shown["CER %"]]})
    )
    if diffs:
        w.text("Difference between the voices (same texts, paired by example; bootstrap over examples):")
        w.text_table(pd.DataFrame(diffs))


def _comparisons(w: ReportWriter, comparisons: pd.DataFrame) -> None:
    w.text(
        "## Comparisons",
        "",
        "Δ = A − B in points (x100). CI and p from the two-level bootstrap (see Setup), not adjusted for "
        "multiplicity; p_adjusted: Holm within the family (the verdicts use it, so a CI excluding 0 can come "
        "with no evidence after adjustment); MDD: the smallest |Δ| these seeds and examples detect with 80 % "
        "power at alpha 0.05.",
    )
    if comparisons.empty:
        w.text("No comparisons.")
        return
    shown = pd.DataFrame(
        {
            "task": comparisons["task"],
            "A vs B": [f"{a} vs {b}" for a, b in zip(comparisons["A"], comparisons["B"])],
            "metric": [METRIC_NAMES[m] for m in comparisons["metric"]],
            "decoding": comparisons["decoding"],
            "family": comparisons["family"],
            "Δ": [fmt_num(v, sign=True) for v in comparisons["diff"]],
            "95% CI (unadj.)": [
                f"[{fmt_num(lo, sign=True)}, {fmt_num(hi, sign=True)}]"
                for lo, hi in zip(comparisons["ci_low"], comparisons["ci_high"])
            ],
            "p": [fmt_p(p) for p in comparisons["p_value"]],
            "p_adjusted": [fmt_p(p) for p in comparisons["p_adjusted"]],
            "MDD": [fmt_num(v) for v in comparisons["mdd"]],
            "seeds": [f"{int(a)}/{int(b)}" for a, b in zip(comparisons["seeds_a"], comparisons["seeds_b"])],
        }
    )
    w.table(COMPARISONS_FILE.removesuffix(".csv"), comparisons, shown)


def _power(w: ReportWriter, comparisons: pd.DataFrame) -> None:
    """Seeds per configuration that would make the primary comparisons' MDD reach 1 and 2 points
    (`harness.report.inference.seeds_needed`: the seed part of the variance shrinks with n, the
    example part does not)."""
    from dataclasses import fields

    from harness.report.inference import Comparison, seeds_needed

    primary = comparisons[comparisons["family"] == "primary"] if not comparisons.empty else comparisons
    if primary.empty:
        return
    names = [f.name for f in fields(Comparison)]
    rows = []
    for _, r in primary.iterrows():
        result = Comparison(**{k: r[k] for k in names})
        needed = {t: seeds_needed(result, t) for t in (1.0, 2.0)}
        rows.append(
            {
                "task": r["task"],
                "A vs B": f"{r['A']} vs {r['B']}",
                "seeds": f"{int(r['seeds_a'])}/{int(r['seeds_b'])}",
                "MDD now": fmt_num(r["mdd"]),
                **{f"seeds for MDD ≤ {t:g}": "—" if n is None else str(n) for t, n in needed.items()},
            }
        )
    w.text(
        "### Power of the primary comparisons",
        "",
        "How many seeds per configuration the primary comparisons would need for their minimum detectable "
        "difference (80 % power, alpha 0.05) to reach 1 or 2 BLEU points, projected from the seed and "
        "example variance measured here (— : the test set's example variance alone exceeds it).",
    )
    w.text_table(pd.DataFrame(rows))


def _objective(w: ReportWriter, data: ReportData) -> None:
    """Studies that optimise a validation metric (tuning, selection): every configuration by the study's
    objective, and the best of each task and method."""
    import yaml as _yaml

    objective = (_yaml.safe_load(data.study_text) or {}).get("objective", {}) if data.study_text else {}
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


def _compute(w: ReportWriter, data: ReportData) -> None:
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


def _incomplete(w: ReportWriter, data: ReportData) -> None:
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


def _published(w: ReportWriter, data: ReportData) -> None:
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


def _appendix(w: ReportWriter, data: ReportData) -> None:
    w.text(
        "## Appendix: runs per configuration", "", "<details><summary>MLflow run ids of every configuration</summary>"
    )
    if data.configs:
        w.table("runs", runs_table(data.configs))
    w.text("</details>")


# --------------------------------------------------------------------------------------------------


def dirty_reasons(data: ReportData, report_commit: str) -> list[str]:
    """Why this report could not be reproduced from a commit (empty: it can)."""
    from harness.sweep.provenance import is_clean

    reasons = [f"trials ran at `{c}`" for c in data.provenance.get("trial_commits", []) if not is_clean(c)]
    if not is_clean(report_commit):
        reasons.append(f"the report was written at `{report_commit}`")
    return reasons


def _variance_pairs(data: ReportData, comparisons: pd.DataFrame) -> list:
    """The comparisons whose variance the report splits: the declared hypotheses', else the primary family's."""
    found = declared(data.study_text)
    if found is not None:
        chosen = [(select(data, t.a), select(data, t.b), t.metric) for t in found.spec.tests]
        return [(a, b, m) for a, b, m in chosen if a is not None and b is not None]
    if comparisons.empty:
        return []
    configs = {(c.task, c.model, c.name): c for c in data.configs}
    primary = comparisons[comparisons["family"] == "primary"]
    return [
        (configs[(r["task"], r["model"], r["A"])], configs[(r["task"], r["model"], r["B"])], r["metric"])
        for _, r in primary.iterrows()
    ]


def rebuild_report(folder: Path, n_boot: int | None = None, allow_dirty: bool = False) -> Path:
    """Write ``report.md`` (+ CSVs, PNGs, findings) in ``folder`` from its evidence files alone. The code
    doing it is recorded (``report_commit``) and held to the same rule as `build_report` when ``folder``
    is in the repository's ``reports/``; ``n_boot`` defaults to what the folder was built with."""
    from harness.sweep.provenance import git_commit

    folder = Path(folder)
    provenance_path = folder / FILES["provenance"]
    provenance = json.loads(provenance_path.read_text())
    provenance["report_commit"] = git_commit()
    provenance["n_boot"] = n_boot or provenance.get("n_boot", N_BOOTSTRAP)
    data = load_folder(folder)
    dirty = dirty_reasons(data, provenance["report_commit"])
    if dirty and _in_reports(folder) and not allow_dirty:
        raise DirtyTree(
            f"{folder}: not writing a report that a commit cannot reproduce ({'; '.join(dirty)}). "
            "Fix: commit, rerun the study from the clean tree, then `harness report`; or pass "
            "--allow-dirty (the report's title then says so)."
        )
    provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
    data.provenance = provenance
    w = ReportWriter(folder)
    folded = duplicate_metrics(data)
    comparisons = comparison_table(data, n_boot=provenance["n_boot"], skip=folded)
    _header(w, data, dirty)
    answer_section(w, data, evaluate_hypotheses(data, provenance["n_boot"]))  # the answer first
    _methods(w, data, folded)  # then the paper's tables, measured beside published
    _ablation(w, data, folded)
    _sweeps(w, data)
    _mp(w, data)
    variance_section(w, data, _variance_pairs(data, comparisons), provenance["n_boot"] // 5)
    _setup(w, data)  # then the details
    _findings(w, data, comparisons)
    pareto_section(w, data)
    optuna_analysis_section(w, data)
    _curves(w, data)
    test_outputs_section(w, data)
    samples_section(w, data)
    _hearing(w, data)
    _comparisons(w, comparisons)
    _power(w, comparisons)
    _objective(w, data)
    _compute(w, data)
    _incomplete(w, data)
    _published(w, data)
    _appendix(w, data)
    path = w.write()
    if _in_reports(folder):
        from harness.sweep.provenance import CHECKOUT

        write_index(CHECKOUT / "reports")
    return path


def _in_reports(folder: Path) -> bool:
    from harness.sweep.provenance import CHECKOUT

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
    import shutil
    import tempfile

    from harness.sweep.provenance import git_commit

    out_dir = Path(out_dir)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory(prefix="harness-report-") as scratch:
        staged = Path(scratch) / "evidence"
        export_study(client, experiment_name, staged, previous=out_dir)
        dirty = dirty_reasons(load_folder(staged), git_commit())
        if dirty and _in_reports(out_dir) and not allow_dirty:
            raise DirtyTree(
                f"{out_dir}: not writing a report that a commit cannot reproduce ({'; '.join(dirty)}). "
                "Fix: commit, rerun the study from the clean tree, then `harness report`; or pass "
                "--allow-dirty (the report's title then says so)."
            )
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
