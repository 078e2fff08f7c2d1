"""The report's exploratory comparisons, written from the adjusted comparisons in fixed wording, each set
beside what the paper published for the same configurations (`harness.report.paper`).

These are *not* the study's declared hypotheses (`harness.report.hypotheses`, the report's Answer): they
were not declared before the run, so they get no verdict words. A comparison (one pair on one metric and
decoding, `harness.report.comparisons`) is described as:

- **"A higher" / "A lower"** when its Holm-adjusted p-value is below 0.05 (its 95 % CI excludes 0);
- otherwise **"interval includes 0"**, with the smallest difference the seeds and examples could detect
  at 80 % power at the family's adjusted level (Bonferroni's alpha / m, Holm's first step).

The paper's direction comes from the published rows of the two configurations; a comparison whose
interval excludes 0 *agrees* with the paper when the signs match and goes *against* it when they do
not; otherwise it is *not resolved*, its point estimate's direction noted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.document import fmt_num, fmt_p, md_table
from harness.report.folder import ReportData
from harness.report.paper import paper_direction
from harness.vocabulary import METRIC_NAMES, TEST

__all__ = ["HIGHER", "LEVEL", "LOWER", "OPEN", "findings_table", "identical_configs", "render"]

LEVEL = 0.05  # adjusted p below this: the interval excludes 0
HIGHER, LOWER, OPEN = "A higher", "A lower", "interval includes 0"
KEPT = (
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
    "mdd_adjusted",
    "seeds_a",
    "seeds_b",
    "examples",
)


def findings_table(comparisons: pd.DataFrame, data: ReportData) -> pd.DataFrame:
    """One row per comparison with its description, the paper's direction and how the two relate."""
    if comparisons.empty:
        return pd.DataFrame()
    configs = {(c.task, c.model, c.name): c for c in data.configs}
    rows = []
    for _, row in comparisons.iterrows():
        evidence = bool(row["p_adjusted"] < LEVEL)
        sign = int(np.sign(row["diff"]))
        verdict = (HIGHER if sign > 0 else LOWER) if evidence else OPEN
        a, b = configs[(row["task"], row["model"], row["A"])], configs[(row["task"], row["model"], row["B"])]
        direction, source = paper_direction(a, b, row["metric"], twins=row["comparison"] == "MP-GRPO vs GRPO")
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
                **{k: row[k] for k in KEPT if k in row},
                "verdict": verdict,
                "paper_direction": direction,
                "paper_source": source,
                "relation": relation,
            }
        )
    return pd.DataFrame(rows)


def _row(row: pd.Series) -> dict[str, str]:
    """One exploratory comparison as a table row, in fixed wording."""
    what = {HIGHER: "A higher", LOWER: "A lower"}.get(row["verdict"], "includes 0")
    return {
        "task": f"`{row['task']}`",
        "A vs B": f"{row['A']} vs {row['B']}",
        "metric": f"{METRIC_NAMES[row['metric']]}, {row['decoding']}",
        "Δ [95 % CI]": f"{fmt_num(row['diff'], sign=True)} [{fmt_num(row['ci_low'], sign=True)}, "
        f"{fmt_num(row['ci_high'], sign=True)}]",
        "p_adj": fmt_p(row["p_adjusted"]),
        "interval": what,
        "detects (family)": fmt_num(row.get("mdd_adjusted", row["mdd"])),
        "seeds": f"{int(row['seeds_a'])} vs {int(row['seeds_b'])}",
        "paper": f"{row['relation']} ({row['paper_source']})" if row["paper_source"] else row["relation"],
    }


def render(findings: pd.DataFrame) -> list[str]:
    """Markdown lines: the BLEU family's comparisons, then the other metrics' whose interval excludes 0
    (each comparison once, one table row each), then how many go against the paper."""
    if findings.empty:
        return ["No comparison could be made (why: below)."]
    primary = findings[findings["family"] == "primary"]
    lines = [
        "### Corpus BLEU, "
        + (primary["decoding"].iloc[0] if len(primary) else "—")
        + " decoding (Holm over these comparisons)",
        "",
        "*interval*: whether the Holm-adjusted 95 % interval excludes 0; *detects*: the smallest difference these "
        "seeds and examples detect with 80 % power at the family's level (alpha / m).",
        "",
    ]
    lines += [md_table(pd.DataFrame([_row(r) for _, r in primary.iterrows()]))] if len(primary) else ["none"]
    secondary = findings[(findings["family"] == "secondary") & (findings["verdict"] != OPEN)]
    lines += ["", "### Other metrics and decodings whose interval excludes 0 (Holm over all of them)", ""]
    lines += [md_table(pd.DataFrame([_row(r) for _, r in secondary.iterrows()]))] if len(secondary) else ["none"]
    unresolved = int((findings[findings["family"] == "secondary"]["verdict"] == OPEN).sum())
    against = int((findings["relation"] == "against the paper").sum())
    agrees = int((findings["relation"] == "agrees with the paper").sum())
    lines += [
        "",
        f"{unresolved} other comparisons have an interval that includes 0 (all in the comparisons table). "
        f"Of all comparisons whose interval excludes 0, {against} go against the paper's published "
        f"direction and {agrees} agree with it (column `relation` of `findings.csv`).",
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
