"""The report's first section: the study's declared hypotheses, each with its verdict, difference and
repeated confidence interval, the seeds it took, and one sentence against the paper
(`harness.report.hypotheses` computes them; `harness.report.paper` gives the published rows); a line per
configuration that several hypotheses compare against (which of them is better); then the verdicts look
by look, folded. A study that declared none says that nothing in its report is a verdict.

A run stopped before its last look (`make sweep` runs the first round) whose folder carries an earlier run
of the same study file that ran further (`harness.report.earlier_run`) answers with that run's verdicts,
says how far this run reproduces it, and shows this run's own estimates beside them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from harness.report.comparisons import last_step_seeds, twins
from harness.report.document import ReportWriter, fmt_num
from harness.report.earlier_run import EARLIER_DIR, TOLERANCE, EarlierRun, load_earlier, reproduction
from harness.report.findings import identical_configs
from harness.report.folder import ReportData, load_folder
from harness.report.hypotheses import HYPOTHESES_FILE, declared, restricted, select, verdicts
from harness.report.paper import paper_direction
from harness.report.sequential import BETTER, CONTINUE, EQUIVALENT, UNRESOLVED, WORSE
from harness.vocabulary import METRIC_NAMES

__all__ = ["ahead", "answer_section", "delta_text", "interval_text", "summary_lines", "verdict_line", "verdict_text"]


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


def delta_text(row: pd.Series) -> str:
    """Δ and the interval that decides the row's verdict, as every verdict table prints them."""
    return f"{fmt_num(row['diff'], sign=True)} {interval_text(row)}"


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
    return f"{verdict_text(row).replace('**', '')}: Δ {delta_text(row)}, {int(row['seeds'])} seeds"


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
        f"{len(spec.tests)} {'hypothesis' if len(spec.tests) == 1 else 'hypotheses'} declared in the study file "
        "before the run; family-wise error "
        f"{spec.alpha} over all of them and every look (Bonferroni, {spec.alpha / len(spec.tests):.4g} each; "
        f"repeated confidence intervals with {spec.spending} spending); looks at {', '.join(map(str, looks))} "
        f"seeds per configuration, {ran} of {len(looks)} run"
        + (" (stopped early: run `harness sweep` on the study file again to continue)." if _open(table) else ".")
    )
    kept = verdicts(table)
    earlier = ahead(data.dir, table)
    same = identical_configs(data) if earlier is None else []  # configurations whose setting changed nothing
    answered = verdicts(earlier.hypotheses) if earlier is not None else kept
    if not kept.empty:
        w.text(
            (f"This run, look {ran} of {len(looks)}: " if earlier is not None else "") + _tally(kept, len(spec.tests))
        )
    if earlier is not None:
        w.text(_earlier_text(data, table, earlier, len(looks)) + " Its answer: " + _tally(answered, len(spec.tests)))
    if against := _against(answered):
        w.text(*against)
    rows = []
    for test in spec.tests:
        done = answered[answered["hypothesis"] == test.name] if not answered.empty else answered
        if done.empty:
            rows.append({"hypothesis": test.name, "verdict": "not run (no trials of both sides)"})
            continue
        r = done.iloc[0]
        row = _row(data, r, test, found.seeds, earlier)
        if any(r["task"] == task and {r["A"], r["B"]} <= set(names) for task, names in same):
            row["verdict"] += " (A = B seed by seed: identical test scores; 'Identical results' below says why)"
        if earlier is not None:  # this run's own estimate at its last look, beside the earlier run's verdict
            mine = kept[kept["hypothesis"] == test.name]
            row[f"this run: Δ [RCI] at look {ran}"] = (
                f"{fmt_num(mine['diff'].iloc[0], sign=True)} {_pair(mine['low'].iloc[0], mine['high'].iloc[0])}"
                if len(mine)
                else ""
            )
        rows.append(row)
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


def _row(data: ReportData, r: pd.Series, test, seeds: list[int], earlier: EarlierRun | None) -> dict[str, str]:
    """The Answer's row of one hypothesis from its kept verdict ``r`` (the earlier run's, when given)."""
    return {
        "hypothesis": test.name,
        "verdict" + (" (earlier run)" if earlier is not None else ""): verdict_text(r),
        "Δ (A − B) [interval]": delta_text(r),
        "metric": f"{METRIC_NAMES[r['metric']]}, {r['decoding']}",
        "seeds": f"{int(r['seeds'])} (look {int(r['look'])})",
        "replication": fmt_num(r["replication"], 2) if r["verdict"] in (BETTER, WORSE) else "",
        "paper": _paper(data, r, test),
        "still improving": _climbing(data, test, seeds[: int(r["seeds"])], earlier),
    }


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


def _climbing(data: ReportData, spec, seeds: list[int], earlier: EarlierRun | None = None) -> str:
    """Which side's seeds (those of the deciding look) selected their last validation point: still
    improving when the step budget ran out (the earlier run's seeds when its verdicts are shown)."""
    parts = []
    for side in (spec.a, spec.b):
        c = select(data, side)
        if c is not None and earlier is not None:
            c = dataclasses.replace(c, rows=earlier.configuration_rows(c, seeds))
        c = restricted(c, seeds) if c is not None else None
        if c is not None and (n := last_step_seeds(c)):
            parts.append(f"{c.name}: {n}/{len(c.rows)} seeds at the last step")
    return "; ".join(parts)


def _open(table: pd.DataFrame) -> bool:
    kept = verdicts(table)
    return bool(len(kept)) and bool((kept["verdict"] == CONTINUE).any())


def ahead(folder: Path, table: pd.DataFrame) -> EarlierRun | None:
    """The earlier run carried into ``folder``, when this run (``table``: its hypotheses x looks) left
    hypotheses open at a look that run went past (None otherwise: this run's own verdicts are the answer)."""
    earlier = load_earlier(folder)
    if earlier is None or table.empty or not _open(table):
        return None
    return earlier if earlier.looks_run > int(table["look"].max()) else None


def _earlier_text(data: ReportData, table: pd.DataFrame, earlier: EarlierRun, looks: int) -> str:
    """Which run answers, where its files are, and how far this run reproduces it."""
    commits = ", ".join(f"`{c[:7]}`" for c in earlier.provenance.get("trial_commits", []))
    committed = earlier.source.get("committed_at")
    rep = reproduction(data.per_seed, table, earlier)
    where = f"`{earlier.source.get('folder', '?')}`" + (f" as committed at `{committed[:7]}`" if committed else "")
    said = (
        f"**The earlier run of this study file**, which this folder replaced ({where}; its verdicts and "
        f"per-seed scores are in `{EARLIER_DIR}/`), ran {earlier.looks_run} of {looks} looks: {earlier.trials} "
        f"trials at {commits or 'unknown commits'}. "
    )
    if rep.holds:
        return said + (
            f"This run reproduces it so far: its {rep.trials} trials score as the earlier run's same "
            f"configuration and seed, every test and validation score within {TOLERANCE:g} (largest "
            f"difference {rep.largest:.2g}), and Δ and RCI of its {rep.looks} hypothesis-looks are the earlier "
            "run's."
        )
    return said + (
        f"**This run does not reproduce it so far**: {rep.shared} of its {rep.trials} trials are in the earlier "
        f"run, {rep.equal} of them score the same within {TOLERANCE:g} (largest difference {rep.largest:.3g}); "
        f"Δ and RCI agree at {rep.looks_equal} of {rep.looks} hypothesis-looks. Compare the commits and "
        "machines in both provenance files before quoting the earlier verdicts."
    )


def _against(kept: pd.DataFrame) -> list[str]:
    """A line per configuration (and task) that two or more hypotheses compare against: which of the
    others are better, worse or equivalent against it, and how many are undecided."""
    lines = []
    if kept.empty:
        return lines
    for (b, task), rows in kept.groupby(["B", "task"], sort=False):
        if len(rows) < 2:
            continue
        margin = fmt_num(rows["margin"].max())
        by = {v: rows[rows["verdict"] == v] for v in (BETTER, WORSE, EQUIVALENT, UNRESOLVED, CONTINUE)}
        named = ((BETTER, "better"), (WORSE, "worse"), (EQUIVALENT, f"equivalent within ±{margin}"))
        said = [f"{word}: {', '.join(by[v]['A'])}" for v, word in named if len(by[v])] or [
            f"none of the {len(rows)} is shown better, worse or equivalent within ±{margin}"
        ]
        if len(u := by[UNRESOLVED]):
            low, high = fmt_num(u["mdd"].min()), fmt_num(u["mdd"].max())
            said.append(
                f"{len(u)} unresolved at {int(u['seeds'].max())} seeds (detectable difference "
                f"{low if low == high else f'{low}–{high}'})"
            )
        if len(by[CONTINUE]):
            said.append(f"{len(by[CONTINUE])} still open")
        lines.append(f"Against **{b}** ({task}): " + "; ".join(said) + ".")
    return lines


def summary_lines(folder: Path) -> list[str]:
    """The Answer in a few plain lines for the terminal: the tally, the lines against a shared
    configuration, and the earlier run's answer when the report quotes it."""
    data = load_folder(folder)
    found = declared(data.study_text)
    path = data.dir / HYPOTHESES_FILE
    if found is None or not path.is_file():
        return []
    table = pd.read_csv(path)
    n = len(found.spec.tests)
    kept = verdicts(table)
    lines = ["answer: " + _tally(kept, n).replace("**", "")]
    earlier = ahead(data.dir, table)
    answered = verdicts(earlier.hypotheses) if earlier is not None else kept
    if earlier is not None:
        rep = reproduction(data.per_seed, table, earlier)
        lines.append(
            f"answer of the earlier run in {EARLIER_DIR}/ (look {earlier.looks_run} of {len(found.looks)}): "
            + _tally(answered, n).replace("**", "")
            + (
                f" This run reproduces its {rep.trials} trials so far."
                if rep.holds
                else " THIS RUN DOES NOT REPRODUCE IT (the report's Answer says where)."
            )
        )
    lines += [f"  {r['hypothesis']}: {verdict_line(r)}" for _, r in answered.iterrows()]
    lines += ["  " + line.replace("**", "") for line in _against(answered)]
    return lines
