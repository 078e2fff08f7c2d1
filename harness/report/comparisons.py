"""Which configurations a report compares, and the seed-aware inference on each comparison.

Pairs, within each task and model (`pairs`):

- every fine-tuned configuration against the base model ("does fine-tuning help?");
- every GRPO configuration against SFT (the paper's question);
- MP-GRPO against its GRPO twin (the same settings without ``grpo.mp_grpo``), or the GRPO reference;
- in a study that searches a parameter (``swept.json``: the study's space, recorded with the
  default level when it ran), every level against the default level (the reward ablation's rewards
  against the BLEU reward, G = 4 and 16 against G = 8, ...).

A pair is compared only when each trained side has >= 2 seeds (`seed_aware`). Each pair is compared
on every metric and decoding with `harness.report.inference.compare`: a
two-level bootstrap over training seeds and test examples (corpus BLEU re-scored from sufficient
statistics; the other metrics are means of per-example scores), t-based CI and p-value, and the
minimum detectable difference at 80 % power (``mdd`` at alpha, ``mdd_adjusted`` at the family's level
alpha / m). p-values are Holm-adjusted within two stated families:
the *primary* family is corpus BLEU (the paper's reward and headline metric) under the primary
decoding (the paper's sampled decoding when the trials ran it, else greedy); every other
metric x decoding is the *secondary* family.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy import stats

from harness.report.folder import Config, ReportData
from harness.report.inference import adjust, bleu_passes_score, bleu_score, compare, mean_passes_score, mean_score
from harness.vocabulary import BASE_EVAL, BEST_STEP, GRPO, METRICS, SFT, TRAIN_STEPS

__all__ = [
    "ALPHA",
    "MIN_SEEDS",
    "N_BOOTSTRAP",
    "POWER",
    "PRIMARY_METRIC",
    "comparison_table",
    "last_step_seeds",
    "factor_groups",
    "pairs",
    "primary_decoding",
    "reference_config",
    "score_for",
    "seed_aware",
    "twins",
    "untrained",
]

N_BOOTSTRAP = 10_000
MIN_SEEDS = 2  # a trained configuration with fewer has no seed variance to estimate: it is not compared
ALPHA, POWER = 0.05, 0.8
PRIMARY_METRIC = "bleu"


def primary_decoding(data: ReportData) -> str:
    return "sampled" if "sampled" in data.decodings() else "greedy"


def reference_config(configs: list[Config], method: str, label: str, mp: bool = False) -> Config | None:
    """The baseline a comparison is made against: the configuration labelled ``label``, else the one of
    ``method`` (MP-GRPO or not, as ``mp``); among several, the one with the highest mean validation
    BLEU at the selected checkpoints (chosen as a practitioner would, without the test set)."""
    candidates = [c for c in configs if c.method == method and c.mp == mp]
    pool = [c for c in candidates if c.label == label] or candidates
    if not pool:
        return None
    return max(pool, key=lambda c: np.nan_to_num(c.stats("val/bleu")[0], nan=-np.inf))


def factor_groups(configs: list[Config], factor: str) -> list[list[Config]]:
    """Sets of configurations of one method identical in every searched parameter but ``factor``, >= 2
    levels, each sorted by level (numbers by value, metric names in the paper's order)."""
    groups: dict[tuple, list[Config]] = defaultdict(list)
    for c in configs:
        if factor in c.params and pd.notna(c.params[factor]):
            rest = tuple(sorted((k, str(v)) for k, v in c.params.items() if k != factor))
            groups[(c.task, c.model, c.method, c.mp, rest)].append(c)
    found = [g for g in groups.values() if len({str(c.params[factor]) for c in g}) > 1]
    return [sorted(g, key=lambda c: level_key(c.params[factor])) for g in found]


def level_key(value) -> tuple:
    text = str(value)
    try:
        return (0, float(text), 0, text)
    except ValueError:
        return (1, 0.0, METRICS.index(text) if text in METRICS else len(METRICS), text)


def _same(value, default) -> bool:
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return str(value).lower() == str(default).lower()


def twins(mp: Config, other: Config) -> bool:
    """``other`` is ``mp`` without ``grpo.mp_grpo``: every other setting equal, in the resolved configs
    where the folder has them (a baseline's settings are not searched parameters), else in the searched
    parameters."""
    a, b = mp.settings_but("grpo.mp_grpo"), other.settings_but("grpo.mp_grpo")
    if a is not None and b is not None:
        return a == b
    return {k: str(v) for k, v in other.params.items() if k != "grpo.mp_grpo"} == {
        k: str(v) for k, v in mp.params.items() if k != "grpo.mp_grpo"
    }


def pairs(data: ReportData) -> list[tuple[Config, Config, str]]:
    """(A, B, why) for every comparison of the report, A compared against B."""
    out: list[tuple[Config, Config, str]] = []
    for (_, _), group in data.task_models().items():
        base = reference_config(group, BASE_EVAL, "base")
        sft = reference_config(group, SFT, "sft")
        grpo = reference_config(group, GRPO, "grpo")
        if base is not None:
            out += [(c, base, "vs base") for c in group if c.method != BASE_EVAL]
        if sft is not None:
            out += [(c, sft, "GRPO vs SFT") for c in group if c.is_grpo and not c.mp]
        if grpo is not None:  # a GRPO variant (its own label: another loss, sampling, ...) against plain GRPO
            out += [
                (c, grpo, "variant vs GRPO")
                for c in group
                if c.is_grpo and not c.mp and c.label != "grpo" and c is not grpo
            ]
        mp_ref = reference_config([c for c in group if c.mp], GRPO, "mp-grpo", mp=True)
        if mp_ref is not None:  # an MP-GRPO variant (LUFFY's shaping, ...) against plain MP-GRPO
            out += [
                (c, mp_ref, "variant vs MP-GRPO")
                for c in group
                if c.is_grpo and c.mp and c.label != "mp-grpo" and c is not mp_ref
            ]
        for c in group:
            if c.is_grpo and c.mp:
                twin = next((o for o in group if o.is_grpo and not o.mp and twins(c, o)), grpo)
                if twin is not None:
                    out.append((c, twin, "MP-GRPO vs GRPO"))
        for factor, default in data.swept.items():
            for levels in factor_groups(group, factor):
                ref = next((c for c in levels if _same(c.params[factor], default)), None)
                out += [(c, ref, f"{factor} vs default") for c in levels if ref is not None and c is not ref]
    seen, unique = set(), []
    for a, b, why in out:
        if (a.name, a.task, b.name) not in seen and a is not b:
            seen.add((a.name, a.task, b.name))
            unique.append((a, b, why))
    return unique


def score_for(metric: str, decoding: str):
    """How a comparison scores one seed's features of ``metric`` under ``decoding`` (`harness.report.inference`)."""
    if metric == "bleu":
        return bleu_passes_score if decoding == "sampled" else bleu_score
    return mean_passes_score if decoding == "sampled" else mean_score


def untrained(c: Config) -> bool:
    """A trained configuration whose every seed selected step 0 (the starting model: training never beat it
    on validation): comparing it would compare the base model under another name."""
    steps = c.values(BEST_STEP)
    return c.method != BASE_EVAL and len(steps) > 0 and bool(np.all(steps == 0))


def last_step_seeds(c: Config) -> int:
    """Seeds of a trained configuration that selected their last validation point: still improving when
    the step budget ran out."""
    if c.method == BASE_EVAL:
        return 0
    best, steps = c.values(BEST_STEP), c.values(TRAIN_STEPS)
    return int(np.sum((best == steps) & (steps > 0)))


def seed_aware(a: Config, b: Config) -> bool:
    """Whether A vs B can carry training-seed variance: each trained side has >= MIN_SEEDS seeds (the
    base model is not trained: its seeds only vary sampled decoding, and one is enough)."""
    return all(c.method == BASE_EVAL or len(c.seeds) >= MIN_SEEDS for c in (a, b))


def comparison_table(
    data: ReportData, n_boot: int = N_BOOTSTRAP, skip: Mapping[str, Collection[str]] | None = None
) -> pd.DataFrame:
    """Every pair x metric x decoding: effect, CI, p, Holm-adjusted p within its family, MDD. Metrics in
    ``skip[task]`` (reported once under another name on that task, `tables.duplicate_metrics`) are left out
    of the families."""
    skip = skip or {}
    primary = primary_decoding(data)
    rows = []
    for a, b, why in pairs(data):
        if not seed_aware(a, b):
            continue  # one training seed: an example-only p-value would ignore run-to-run variance
        if untrained(a) or untrained(b):
            continue  # step 0 selected everywhere: the starting model, not the method
        if data.example_ids(a, "greedy") != data.example_ids(b, "greedy"):
            continue  # different test sets: nothing to pair
        for decoding in data.decodings():
            for metric in (m for m in METRICS if m not in skip.get(a.task, ())):
                fa, fb = data.features(a, metric, decoding), data.features(b, metric, decoding)
                if fa is None or fb is None:
                    continue
                result = compare(fa, fb, score=score_for(metric, decoding), n_boot=n_boot, alpha=ALPHA, power=POWER)
                family = "primary" if (metric, decoding) == (PRIMARY_METRIC, primary) else "secondary"
                rows.append(
                    {
                        "task": a.task,
                        "model": a.model,
                        "A": a.name,
                        "B": b.name,
                        "comparison": why,
                        "metric": metric,
                        "decoding": decoding,
                        "family": family,
                        **asdict(result),
                    }
                )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_adjusted"] = table["mdd_adjusted"] = np.nan
    for _, index in table.groupby("family").groups.items():
        table.loc[index, "p_adjusted"] = adjust(table.loc[index, "p_value"].to_numpy(), "holm")
        # the smallest difference detectable at the family's level: Bonferroni's alpha / m (Holm's first step)
        level = ALPHA / len(index)
        part = table.loc[index]
        table.loc[index, "mdd_adjusted"] = (stats.t.isf(level / 2, part["df"]) + stats.t.ppf(POWER, part["df"])) * part[
            "se"
        ]
    table["metric_order"] = table["metric"].map(METRICS.index)
    table = table.sort_values(
        ["task", "model", "family", "metric_order", "decoding"],
        kind="stable",
        key=lambda col: col.map(lambda v: 0 if v == "primary" else 1) if col.name == "family" else col,
    ).drop(columns="metric_order")
    return table.reset_index(drop=True)
