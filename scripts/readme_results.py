"""The README's results block, copied from the generated reports (never typed by hand).

    python scripts/readme_results.py          # rewrite the block between the README's markers
    python scripts/readme_results.py --check  # exit 1 if the README's block differs (tests/test_readme.py)

For each study in ``reports/`` (its folder's CSVs): the method tables of ``paper_tables`` (sampled and
greedy decoding), the reward ablation's table, what ``lr_selection`` selected on validation, and every
other report's primary findings and the findings that go against the paper, in the reports' own wording.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
README, REPORTS = ROOT / "README.md", ROOT / "reports"
START, END = "<!-- results:start (scripts/readme_results.py) -->", "<!-- results:end -->"
METRICS = ["BLEU", "BERTScore", "ROUGE-2", "ROUGE-L", "METEOR"]
SELECTION_STUDIES = {"lr_selection"}  # their purpose is a choice on validation, not a verdict


def cell(row: pd.Series, metric: str) -> str:
    mean, std, n = row[f"{metric} mean"], row[f"{metric} std"], row[f"{metric} n"]
    if not n:
        return "—"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if n > 1 and pd.notna(std) else "")


def method_table(folder: Path, decoding: str) -> list[str]:
    lines = []
    for path in sorted(folder.glob(f"methods_*_{decoding}.csv")):
        table = pd.read_csv(path)
        task = path.stem.split("_")[1]
        lines += [
            f"| {task} | {r['Method']} | {int(r['seeds'])} | " + " | ".join(cell(r, m) for m in METRICS) + " |"
            for _, r in table.iterrows()
        ]
    if not lines:
        return []
    return ["| task | method | seeds | " + " | ".join(METRICS) + " |", "|---" * (3 + len(METRICS)) + "|", *lines]


def findings(folder: Path, which: str) -> list[str]:
    path = folder / "findings.csv"
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    chosen = table[table["family"] == "primary"] if which == "primary" else table[table["relation"] == which]
    out = []
    for _, r in chosen.iterrows():
        verdict = {"A beats B": "beats", "A is below B": "is below"}.get(r["verdict"])
        claim = f"{r['A']} {verdict} {r['B']}" if verdict else f"no evidence of a difference: {r['A']} vs {r['B']}"
        p = "< 0.001" if r["p_adjusted"] < 0.001 else f"{r['p_adjusted']:.3f}"
        out.append(
            f"- `{r['task']}` {claim} ({r['metric']}, {r['decoding']}): Δ {r['diff']:+.2f} "
            f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], p_adj {p}, MDD {r['mdd']:.2f}; paper: {r['relation']}"
        )
    return out


def selected(folder: Path) -> list[str]:
    """The best configuration per task and method by the study's validation objective (objective.csv)."""
    table = pd.read_csv(folder / "objective.csv")
    metric = yaml.safe_load((folder / "study.yaml").read_text(encoding="utf-8"))["objective"]["metric"]
    best = table.loc[table.groupby(["task", "method"], sort=True)["mean"].idxmax()]
    return [
        f"- `{r['task']}` {r['method']}: **{r['config']}** (`{metric}` {r['mean']:.2f} ± {r['std']:.2f}, "
        f"{int(r['seeds'])} seeds)"
        for _, r in best.iterrows()
    ]


def block() -> str:
    lines = [START, ""]
    tables = REPORTS / "paper_tables"
    for decoding in ("sampled", "greedy"):
        rows = method_table(tables, decoding)
        if rows:
            lines += [
                f"`paper_tables`, test set, {decoding} decoding, best validation checkpoint, mean ± std over "
                "seeds (x100; from `reports/paper_tables/methods_*.csv`):",
                "",
                *rows,
                "",
            ]
    ablation = sorted((REPORTS / "reward_ablation").glob("reward_ablation_*_sampled.csv"))
    if ablation:
        table = pd.read_csv(ablation[0])
        lines += [
            "`reward_ablation`, spoken QA, sampled decoding (from `" + str(ablation[0].relative_to(ROOT)) + "`; "
            "AVG as the report computes it):",
            "",
            "| training reward | seeds | " + " | ".join(METRICS) + " | AVG |",
            "|---" * (3 + len(METRICS)) + "|",
        ]
        lines += [
            f"| {r['train_reward']} | {int(r['seeds'])} | "
            + " | ".join(cell(r, m) for m in METRICS)
            + f" | {r['AVG']:.2f} |"
            for _, r in table.iterrows()
        ]
        lines.append("")
    for folder in sorted(p for p in REPORTS.iterdir() if (p / "objective.csv").is_file()):
        if folder.name in SELECTION_STUDIES:
            lines += [
                f"**[{folder.name}](reports/{folder.name}/report.md)** selects on validation (the test set plays "
                "no part; its comparisons are in its report):",
                "",
                *selected(folder),
                "",
            ]
    for folder in sorted(p for p in REPORTS.iterdir() if (p / "findings.csv").is_file()):
        if folder.name in SELECTION_STUDIES:
            continue
        primary = findings(folder, "primary")
        against = findings(folder, "against the paper")
        lines += [
            f"**[{folder.name}](reports/{folder.name}/report.md)**, primary endpoint (corpus BLEU; Holm over "
            "the report's primary comparisons):",
            "",
            *(primary or ["- none"]),
            "",
        ]
        if against:
            lines += ["Against the paper (both families):", "", *against, ""]
    return "\n".join(lines + [END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's block is not the generated one")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no block between {START!r} and {END!r}", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + block() + tail
    if args.check:
        if new != text:
            print(
                "README.md's results block differs from the reports: run python scripts/readme_results.py",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
