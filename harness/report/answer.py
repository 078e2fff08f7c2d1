"""The report's first section: the study's declared hypotheses, each with its verdict, difference and
repeated confidence interval, the seeds it took, and one sentence against the paper
(`harness.report.hypotheses` computes them; `harness.report.paper` gives the published rows). Then the
verdicts look by look, folded. A study that declared none says that nothing in its report is a verdict.
"""

from __future__ import annotations

import pandas as pd

from harness.report.comparisons import last_step_seeds, twins
from harness.report.document import ReportWriter, fmt_num
from harness.report.folder import ReportData
from harness.report.hypotheses import HYPOTHESES_FILE, declared, select, verdicts
from harness.report.paper import paper_direction
from harness.report.sequential import BETTER, CONTINUE, EQUIVALENT, UNRESOLVED, WORSE
from harness.vocabulary import METRIC_NAMES

__all__ = ["answer_section", "verdict_line", "verdict_text"]


def verdict_text(row: pd.Series) -> str:
    """The verdict in words, as the Answer and the index print it."""
    a, b = row["A"], row["B"]
    if row["verdict"] == BETTER:
        return f"**{a} better than {b}**"
    if row["verdict"] == WORSE:
        return f"**{a} worse than {b}**"
    if row["verdict"] == EQUIVALENT:
        return f"**equivalent** within ±{fmt_num(row['margin'])}"
    if row["verdict"] == UNRESOLVED:
        return f"**unresolved** at {int(row['seeds'])} seeds: detects ≥ {fmt_num(row['mdd'])}"
    return f"open after look {int(row['look'])} of {int(row['looks'])}: more seeds next round"


def verdict_line(row: pd.Series) -> str:
    """One line of plain text: the verdict, Δ and RCI, seeds (the study run's tag, the terminal)."""
    return (
        f"{verdict_text(row).replace('**', '')}: Δ {fmt_num(row['diff'], sign=True)} "
        f"[{fmt_num(row['low'], sign=True)}, {fmt_num(row['high'], sign=True)}], {int(row['seeds'])} seeds"
    )


def _paper(data: ReportData, row: pd.Series, spec) -> str:
    a, b = select(data, spec.a), select(data, spec.b)
    if a is None or b is None:
        return "—"
    direction, source = paper_direction(a, b, row["metric"], twins=twins(a, b))
    if not direction:
        return "no published counterpart"
    said = f"A {'above' if direction > 0 else 'below'} B ({source})"
    if row["verdict"] in (BETTER, WORSE):
        agrees = (row["verdict"] == BETTER) == (direction > 0)
        return f"{said}: {'agrees' if agrees else '**goes against it**'}"
    if row["verdict"] == EQUIVALENT:
        return f"{said}: here no difference beyond ±{fmt_num(row['margin'])}"
    return f"{said}: not decided here"


def answer_section(w: ReportWriter, data: ReportData, table: pd.DataFrame) -> None:
    """## Answer: one row per declared hypothesis (and ``hypotheses.csv``, every hypothesis x look)."""
    found = declared(data.study_text)
    w.text("## Answer")
    if found is None:
        w.text(
            "This study declared no hypotheses in its study file before it ran, so nothing below is a verdict: "
            "every comparison in this report is exploratory."
        )
        return
    spec, looks = found.spec, found.looks
    ran = int(table["look"].max()) if not table.empty else 0
    w.text(
        f"{len(spec.tests)} hypotheses declared in the study file before the run; family-wise error "
        f"{spec.alpha} over all of them and every look (Bonferroni, {spec.alpha / len(spec.tests):.4g} each; "
        f"repeated confidence intervals with {spec.spending} spending); looks at {', '.join(map(str, looks))} "
        f"seeds per configuration, {ran} of {len(looks)} run"
        + (" (stopped early: run `harness sweep` on the study file again to continue)." if _open(table) else ".")
    )
    tests = {t.name: t for t in spec.tests}
    rows = []
    kept = verdicts(table)
    for test in spec.tests:
        done = kept[kept["hypothesis"] == test.name] if not kept.empty else kept
        if done.empty:
            rows.append({"hypothesis": test.name, "verdict": "not run (no trials of both sides)"})
            continue
        r = done.iloc[0]
        rows.append(
            {
                "hypothesis": test.name,
                "verdict": verdict_text(r),
                "Δ (A − B) [RCI]": f"{fmt_num(r['diff'], sign=True)} [{fmt_num(r['low'], sign=True)}, "
                f"{fmt_num(r['high'], sign=True)}]",
                "metric": f"{METRIC_NAMES[r['metric']]}, {r['decoding']}",
                "seeds": f"{int(r['seeds'])} (look {int(r['look'])})",
                "replication": fmt_num(r["replication"], 2) if r["verdict"] in (BETTER, WORSE) else "",
                "paper": _paper(data, r, tests[test.name]),
                "still improving": _climbing(data, tests[test.name]),
            }
        )
    shown = pd.DataFrame(rows).fillna("")
    if "still improving" in shown and not shown["still improving"].any():
        shown = shown.drop(columns="still improving")  # every side had stopped improving before its last step
    w.text_table(shown)
    if not table.empty:
        table.to_csv(data.dir / HYPOTHESES_FILE, index=False)
        intervals = zip(table["low"], table["high"])
        shown = table.assign(
            RCI=[f"[{fmt_num(lo, sign=True)}, {fmt_num(hi, sign=True)}]" for lo, hi in intervals],
            diff=[fmt_num(v, sign=True) for v in table["diff"]],
            level=[f"{v:.2g}" for v in table["level"]],
        )[["hypothesis", "look", "seeds", "diff", "RCI", "level", "verdict"]]
        w.text(
            "<details><summary>Verdicts look by look (a hypothesis keeps the first look that decides it; "
            "replication = chance a same-size rerun repeats a better/worse verdict if the observed Δ were "
            "true, optimistic)</summary>",
            "",
        )
        w.text_table(shown)
        w.text(f"<sub>CSV: `{HYPOTHESES_FILE}`</sub>", "</details>")


def _climbing(data: ReportData, spec) -> str:
    """Which side's seeds selected their last validation point (still improving when the budget ran out)."""
    parts = []
    for side in (spec.a, spec.b):
        c = select(data, side)
        if c is not None and (n := last_step_seeds(c)):
            parts.append(f"{c.name}: {n}/{len(c.rows)} seeds at the last step")
    return "; ".join(parts)


def _open(table: pd.DataFrame) -> bool:
    kept = verdicts(table)
    return bool(len(kept)) and bool((kept["verdict"] == CONTINUE).any())
