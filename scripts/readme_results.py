"""The README's results block, copied from the generated reports (never typed by hand).

    python scripts/readme_results.py          # rewrite the block between the README's markers
    python scripts/readme_results.py --check  # exit 1 if the README's block differs (tests/test_readme.py)

For each study in ``reports/`` (its folder's CSVs): first the verdicts on the hypotheses each study
declared (``hypotheses.csv``; the only verdicts the README quotes), then the method tables of
``paper_tables`` (sampled decoding, the paper's protocol, before greedy), the reward ablation's table,
what ``lr_selection`` selected on validation, and for every other report a count of its exploratory
comparisons, in the reports' own wording.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from harness.report.answer import delta_text, verdict_text
from harness.report.findings import OPEN
from harness.report.hypotheses import HYPOTHESES_FILE, verdicts
from harness.vocabulary import WALL_TIME

ROOT = Path(__file__).resolve().parents[1]
README, REPORTS = ROOT / "README.md", ROOT / "reports"
START, END = "<!-- results:start (scripts/readme_results.py) -->", "<!-- results:end -->"
METRICS = ["BLEU", "BERTScore", "ROUGE-2", "ROUGE-L", "METEOR"]
MAIN_STUDIES = ("paper_tables", "reward_ablation")  # the paper's tables: their verdicts come first
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


def declared(folder: Path) -> list[str]:
    """The study's declared hypotheses with their verdicts (the Answer of its report)."""
    path = folder / HYPOTHESES_FILE
    if not path.is_file():
        return []
    kept = verdicts(pd.read_csv(path))
    out = ["| hypothesis | verdict | Δ [interval] | seeds |", "|---|---|---|---|"]
    for _, r in kept.iterrows():
        out.append(f"| `{r['hypothesis']}` | {verdict_text(r)} | {delta_text(r)} | {int(r['seeds'])} |")
    return out


def budget(folder: Path) -> str:
    """What the study spent: trials (and how many were reused), the trials' own run time, rounds run."""
    per_seed = pd.read_csv(folder / "per_seed.csv")
    ran = per_seed[per_seed["reused_from"].isna()]
    looks = pd.read_csv(folder / HYPOTHESES_FILE)
    return (
        f"family-wise error {looks['alpha_family'].iloc[0]:g} over every hypothesis and look; "
        f"{len(per_seed)} trials ({len(per_seed) - len(ran)} reused from identical finished trials), "
        f"{ran[WALL_TIME].sum() / 3600:.1f} CPU-hours of trial run time, {int(looks['look'].max())} of "
        f"{int(looks['looks'].max())} rounds"
    )


def exploratory(folder: Path) -> str:
    """One line: how many exploratory comparisons, how many intervals exclude 0, how many go against the paper."""
    table = pd.read_csv(folder / "findings.csv")
    closed = table[table["verdict"] != OPEN]
    return (
        f"- [{folder.name}](reports/{folder.name}/report.md): {len(table)} comparisons, {len(closed)} with an "
        f"interval excluding 0, {int((table['relation'] == 'against the paper').sum())} of them against the "
        "paper's published direction"
    )


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
    answered = sorted(
        (folder for folder in REPORTS.iterdir() if (folder / HYPOTHESES_FILE).is_file()),
        key=lambda folder: (folder.name not in MAIN_STUDIES, folder.name),
    )
    for folder in answered:
        lines += [
            f"**[{folder.name}](reports/{folder.name}/report.md)**, hypotheses declared in its study file before "
            f"the run (the only verdicts; {budget(folder)}):",
            "",
            *declared(folder),
            "",
        ]
    if not answered:
        lines += [
            "**No shipped report declares hypotheses yet**: the runs below predate the hypotheses in the study "
            "files, so every comparison in them is exploratory (no verdicts). `studies/paper_tables.yaml` and "
            "`studies/reward_ablation.yaml` now declare theirs; running them answers them.",
            "",
        ]
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
            "AVG of the six metrics as the paper's, ROUGE-1 = ROUGE-L here; Table 3 beside it in the report):",
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
    others = [exploratory(f) for f in sorted(REPORTS.iterdir()) if (f / "findings.csv").is_file()]
    if others:
        lines += ["Exploratory comparisons of each report (not declared before the run: no verdicts):", "", *others, ""]
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
