"""The report's claims, written from the adjusted comparisons in fixed wording, each set beside what the
paper published for the same comparison.

A finding is one comparison on one metric and decoding (`harness.report.comparisons`):

- **"A beats B" / "A is below B"** only when the Holm-adjusted p-value is below 0.05 (and so the
  95 % CI excludes 0);
- otherwise **"no evidence of a difference"**, with the smallest difference the comparison's seeds
  and examples could detect at 80 % power (a reader sees whether "no evidence" means "no
  difference" or "too few seeds").

The paper's direction for the same comparison comes from its published tables (Granite-Speech 2B:
Table 1 LibriSQA for spoken QA, Table 2 CoVoST2 for translation, Table 3 for rewards) and, for
MP-GRPO, from its text (it helps translation, the task the base knew, and hurts spoken QA). A
significant finding *agrees* with the paper when the signs match and goes *against* it when they
do not; a finding without evidence is *not resolved*, its point estimate's direction noted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.document import fmt_num, fmt_p
from harness.report.folder import ReportData
from harness.report.published import published_tables
from harness.vocabulary import METRIC_NAMES, TEST

__all__ = ["LEVEL", "findings_table", "identical_configs", "paper_direction", "render"]

LEVEL = 0.05  # adjusted p below this is a finding with evidence
PAPER_TABLES = {"sqa": "table1_librisqa.csv", "ast": "table2_covost2_en_de.csv"}
PAPER_MODEL = "granite-speech-2b"
MP_DIRECTION = {"sqa": -1, "ast": +1}  # paper, section 5: MP-GRPO hurts spoken QA, helps AST


def _published_score(task: str, method: str, metric: str) -> float:
    table = published_tables().get(PAPER_TABLES.get(task, ""), pd.DataFrame())
    rows = table[(table.get("model") == PAPER_MODEL) & (table.get("method") == method)] if not table.empty else table
    column = METRIC_NAMES[metric]
    return float(rows[column].iloc[0]) if len(rows) and column in rows and pd.notna(rows[column].iloc[0]) else np.nan


def _published_reward(reward: str, metric: str) -> float:
    table = published_tables().get("table3_reward_ablation.csv", pd.DataFrame())
    rows = table[table["train_reward"] == reward] if not table.empty else table
    column = METRIC_NAMES[metric]
    return float(rows[column].iloc[0]) if len(rows) and column in rows else np.nan


def _method_kind(name: str) -> str:
    return name.split(" [")[0]


def paper_direction(row: pd.Series, params_a: dict, params_b: dict) -> tuple[int, str]:
    """(+1 / -1 / 0 = none published, where it was published) for "A vs B" on the row's metric."""
    task, metric, why = row["task"], row["metric"], row["comparison"]
    kind_a = {"mp-grpo": "grpo"}.get(_method_kind(row["A"]), _method_kind(row["A"]))
    if why == "vs base":
        a, b = (
            _published_score(task, kind_a if kind_a in ("sft", "grpo") else "grpo", metric),
            _published_score(task, "base", metric),
        )
        source = f"Table {1 if task == 'sqa' else 2}, 2B"
    elif why == "GRPO vs SFT":
        a, b = _published_score(task, "grpo", metric), _published_score(task, "sft", metric)
        source = f"Table {1 if task == 'sqa' else 2}, 2B"
    elif why == "MP-GRPO vs GRPO":
        return MP_DIRECTION.get(task, 0), "section 5, MP-GRPO"
    elif why == "grpo.reward vs default":
        a, b = (
            _published_reward(str(params_a.get("grpo.reward")), metric),
            _published_reward(str(params_b.get("grpo.reward")), metric),
        )
        source = "Table 3, 2B"
    else:
        return 0, ""
    if not (np.isfinite(a) and np.isfinite(b)) or a == b:
        return 0, ""
    return (1 if a > b else -1), f"{source}: {fmt_num(a)} vs {fmt_num(b)}"


def findings_table(comparisons: pd.DataFrame, params: dict[str, dict]) -> pd.DataFrame:
    """One row per comparison with its verdict, the paper's direction and how the two relate.
    ``params``: configuration name -> its searched parameters (for the reward ablation's rows)."""
    if comparisons.empty:
        return pd.DataFrame()
    rows = []
    for _, row in comparisons.iterrows():
        evidence = bool(row["p_adjusted"] < LEVEL)
        sign = int(np.sign(row["diff"]))
        verdict = ("A beats B" if sign > 0 else "A is below B") if evidence else "no evidence of a difference"
        direction, source = paper_direction(row, params.get(row["A"], {}), params.get(row["B"], {}))
        if direction == 0:
            relation = "no published counterpart"
        elif evidence:
            relation = "agrees with the paper" if sign == direction else "against the paper"
        else:
            relation = "not resolved" + (
                " (estimate in the paper's direction)"
                if sign == direction
                else " (estimate against the paper's direction)"
                if sign
                else ""
            )
        rows.append(
            {
                **{
                    k: row[k]
                    for k in (
                        "task",
                        "model",
                        "comparison",
                        "A",
                        "B",
                        "metric",
                        "decoding",
                        "family",
                        "diff",
                        "ci_low",
                        "ci_high",
                        "p_value",
                        "p_adjusted",
                        "mdd",
                        "seeds_a",
                        "seeds_b",
                        "examples",
                    )
                },
                "verdict": verdict,
                "paper_direction": direction,
                "paper_source": source,
                "relation": relation,
            }
        )
    return pd.DataFrame(rows)


def sentence(row: pd.Series) -> str:
    """The fixed wording of one finding."""
    where = f"on {METRIC_NAMES[row['metric']]} ({row['decoding']}, task `{row['task']}`)"
    numbers = (
        f"Δ {fmt_num(row['diff'], sign=True)} (95 % CI [{fmt_num(row['ci_low'], sign=True)}, "
        f"{fmt_num(row['ci_high'], sign=True)}]), p_adjusted {fmt_p(row['p_adjusted'])}, "
        f"{int(row['seeds_a'])} vs {int(row['seeds_b'])} seeds x {int(row['examples'])} examples"
    )
    if row["verdict"] == "no evidence of a difference":
        text = (
            f"**No evidence of a difference** between {row['A']} and {row['B']} {where}: {numbers}; the "
            f"smallest difference these seeds could detect (80 % power) is {fmt_num(row['mdd'])}."
        )
    else:
        text = (
            f"**{row['A']} {'beats' if row['verdict'] == 'A beats B' else 'is below'} {row['B']}** {where}: {numbers}."
        )
    if row["paper_source"]:
        text += f" Paper ({row['paper_source']}): {row['relation']}."
    return text


def render(findings: pd.DataFrame) -> list[str]:
    """Markdown lines: the primary family's findings, then the results against / with the paper, then
    the secondary family's findings with evidence."""
    if findings.empty:
        return ["No comparison could be made (why: below)."]
    primary = findings[findings["family"] == "primary"]
    lines = [
        "### Primary endpoint (corpus BLEU, "
        + (primary["decoding"].iloc[0] if len(primary) else "—")
        + " decoding; Holm over these comparisons)",
        "",
    ]
    lines += [f"- {sentence(r)}" for _, r in primary.iterrows()] or ["- none"]
    for title, mask in (
        ("Against the paper", findings["relation"] == "against the paper"),
        ("Agreeing with the paper", findings["relation"] == "agrees with the paper"),
    ):
        chosen = findings[mask]
        lines += ["", f"### {title} (both families)", ""]
        lines += [f"- {sentence(r)}" for _, r in chosen.iterrows()] or ["- none"]
    secondary = findings[(findings["family"] == "secondary") & (findings["verdict"] != "no evidence of a difference")]
    lines += ["", "### Secondary endpoints with evidence (other metrics and decodings; Holm over all of them)", ""]
    lines += [f"- {sentence(r)}" for _, r in secondary.iterrows()] or ["- none"]
    unresolved = int((findings[findings["family"] == "secondary"]["verdict"] == "no evidence of a difference").sum())
    lines += [
        "",
        f"{unresolved} secondary comparisons show no evidence of a difference (all in the comparisons table).",
    ]
    return lines


def identical_configs(data: ReportData, atol: float = 1e-5) -> list[tuple[str, list[str]]]:
    """(task, configuration names) of every set of >= 2 configurations of one task and model whose
    per-seed test scores (every metric and decoding, seed by seed, x100) agree within ``atol``: the
    same generations, scored with float rounding (BERTScore's batches differ in the last bits)."""
    columns = [c for c in data.per_seed.columns if c.startswith(f"{TEST}/")]
    groups: list[tuple[tuple, np.ndarray, list[str]]] = []
    for c in data.configs:
        if len(c.rows) < 2 or not columns:
            continue
        rows = c.rows.sort_values("seed")
        key, values = (c.task, c.model, tuple(rows["seed"])), rows[columns].to_numpy(float)
        match = next((g for g in groups if g[0] == key and np.allclose(g[1], values, rtol=0, atol=atol)), None)
        if match is None:
            groups.append((key, values, [c.name]))
        else:
            match[2].append(c.name)
    return [(key[0], names) for key, _, names in groups if len(names) > 1]
