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
from harness.report.hypotheses import HYPOTHESES_FILE, declared, restricted, select, verdicts
from harness.report.paper import paper_direction
from harness.report.sequential import BETTER, CONTINUE, EQUIVALENT, UNRESOLVED, WORSE
from harness.vocabulary import METRIC_NAMES

__all__ = ["answer_section", "interval_text", "verdict_line", "verdict_text"]


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


def interval_text(row: pd.Series) -> str:
    """The interval that decides the row's verdict: for an equivalence verdict the two one-sided tests'
    (1 - 2 alpha_h) interval, which lies inside the margin; otherwise the (1 - alpha_h) repeated CI."""
    if row["verdict"] == EQUIVALENT:
        return _pair(row["eq_low"], row["eq_high"]) + " (TOST)"
    return _pair(row["low"], row["high"])


def _pair(low: float, high: float) -> str:
    return f"[{fmt_num(low, sign=True)}, {fmt_num(high, sign=True)}]"


def verdict_line(row: pd.Series) -> str:
    """One line of plain text: the verdict, Δ and its interval, seeds (the study run's tag, the terminal)."""
    return (
        f"{verdict_text(row).replace('**', '')}: Δ {fmt_num(row['diff'], sign=True)} {interval_text(row)}, "
        f"{int(row['seeds'])} seeds"
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
    if not kept.empty:
        w.text(_tally(kept, len(spec.tests)))
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
                "Δ (A − B) [interval]": f"{fmt_num(r['diff'], sign=True)} {interval_text(r)}",
                "metric": f"{METRIC_NAMES[r['metric']]}, {r['decoding']}",
                "seeds": f"{int(r['seeds'])} (look {int(r['look'])})",
                "replication": fmt_num(r["replication"], 2) if r["verdict"] in (BETTER, WORSE) else "",
                "paper": _paper(data, r, tests[test.name]),
                "still improving": _climbing(data, tests[test.name], found.seeds[: int(r["seeds"])]),
            }
        )
    shown = pd.DataFrame(rows).fillna("")
    if "still improving" in shown and not shown["still improving"].any():
        shown = shown.drop(columns="still improving")  # every side had stopped improving before its last step
    w.text_table(shown)
    w.text(
        "<sub>Intervals: the repeated confidence interval at the hypothesis's level "
        f"(1 − {spec.per_hypothesis_alpha:.4g} over all looks); for an equivalence verdict the two one-sided "
        "tests' interval (1 − "
        f"{2 * spec.per_hypothesis_alpha:.4g}, marked TOST), the one that must lie inside the margin.</sub>"
    )
    if not table.empty:
        table.to_csv(data.dir / HYPOTHESES_FILE, index=False)
        shown = table.assign(
            RCI=[_pair(lo, hi) for lo, hi in zip(table["low"], table["high"])],
            TOST=[_pair(lo, hi) for lo, hi in zip(table["eq_low"], table["eq_high"])],
            diff=[fmt_num(v, sign=True) for v in table["diff"]],
            level=[f"{v:.2g}" for v in table["level"]],
        )[["hypothesis", "look", "seeds", "diff", "RCI", "TOST", "level", "verdict"]]
        w.text(
            "<details><summary>Verdicts look by look (a hypothesis keeps the first look that decides it; "
            "replication = chance a same-size rerun repeats a better/worse verdict if the observed Δ were "
            "true, optimistic)</summary>",
            "",
        )
        w.text_table(shown)
        w.text(f"<sub>CSV: `{HYPOTHESES_FILE}`</sub>", "</details>")


def _tally(kept: pd.DataFrame, declared_count: int) -> str:
    """One line: how many hypotheses each kind of verdict has (decided, unresolved at the budget, open)."""
    counts = kept["verdict"].value_counts()
    decided = {v: int(counts.get(v, 0)) for v in (BETTER, WORSE, EQUIVALENT)}
    parts = [
        f"**{sum(decided.values())} of {declared_count} decided**"
        + (f" ({', '.join(f'{n} {v}' for v, n in decided.items() if n)})" if any(decided.values()) else ""),
    ]
    if n := int(counts.get(UNRESOLVED, 0)):
        parts.append(f"{n} unresolved at the seed budget")
    if n := int(counts.get(CONTINUE, 0)):
        parts.append(f"{n} still open (the next round adds seeds to them)")
    return "; ".join(parts) + "."


def _climbing(data: ReportData, spec, seeds: list[int]) -> str:
    """Which side's seeds (those of the deciding look) selected their last validation point: still
    improving when the step budget ran out."""
    parts = []
    for side in (spec.a, spec.b):
        c = select(data, side)
        c = restricted(c, seeds) if c is not None else None
        if c is not None and (n := last_step_seeds(c)):
            parts.append(f"{c.name}: {n}/{len(c.rows)} seeds at the last step")
    return "; ".join(parts)


def _open(table: pd.DataFrame) -> bool:
    kept = verdicts(table)
    return bool(len(kept)) and bool((kept["verdict"] == CONTINUE).any())
