"""What the report compares on its own, without verdicts: the exploratory comparisons in fixed wording
(`harness.report.findings`), the table of every comparison with its adjusted p-value and MDD, and the
seeds the primary comparisons would need."""

from __future__ import annotations

from dataclasses import fields

import pandas as pd

from harness.report.comparisons import MIN_SEEDS, pairs, seed_aware, untrained
from harness.report.document import ReportWriter, fmt_num, fmt_p
from harness.report.findings import findings_table, identical_configs, render
from harness.report.folder import ReportData
from harness.report.index import FINDINGS_FILE
from harness.report.inference import Comparison, seeds_needed
from harness.vocabulary import METRIC_NAMES

__all__ = ["COMPARISONS_FILE", "comparisons_section", "findings_section", "power_section"]


COMPARISONS_FILE = "comparisons.csv"


def findings_section(w: ReportWriter, data: ReportData, comparisons: pd.DataFrame) -> pd.DataFrame:
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


def comparisons_section(w: ReportWriter, comparisons: pd.DataFrame) -> None:
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


def power_section(w: ReportWriter, comparisons: pd.DataFrame) -> None:
    """Seeds per configuration that would make the primary comparisons' MDD reach 1 and 2 points
    (`harness.report.inference.seeds_needed`: the seed part of the variance shrinks with n, the
    example part does not)."""
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
