"""A first round (`make sweep`) that replaces a fuller run of the same study file: the report answers with
the earlier run's verdicts (carried into ``earlier_run/``, so the folder still recomputes its report), says
how far this run reproduces it, trial by trial and look by look, and carries nothing from another study.

The earlier run is the shipped ``reports/paper_tables`` (4 looks); this run is the same folder cut to the
study's first 5 seeds, as its first round leaves it."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.provenance import CHECKOUT
from harness.report.answer import answer_section, summary_lines
from harness.report.comparisons import N_BOOTSTRAP
from harness.report.document import ReportWriter
from harness.report.earlier_run import EARLIER_DIR, carry, load_earlier, reproduction
from harness.report.folder import load_folder
from harness.report.hypotheses import HYPOTHESES_FILE, declared, evaluate
from harness.report.index import write_index

SHIPPED = Path(CHECKOUT) / "reports" / "paper_tables"


def _first_round(out: Path) -> Path:
    """The shipped folder as its study's first round leaves it: the first look's seeds, no verdicts yet."""
    shutil.copytree(SHIPPED, out)
    (out / HYPOTHESES_FILE).unlink()
    found = declared((out / "study.yaml").read_text())
    seeds = found.seeds[: found.looks[0]]
    per_seed = pd.read_csv(out / "per_seed.csv")
    per_seed[per_seed["seed"].isin(seeds)].to_csv(out / "per_seed.csv", index=False)
    return out


@pytest.fixture(scope="module")
def answered(tmp_path_factory) -> tuple[Path, str, pd.DataFrame]:
    """The first round with the shipped full run carried in, and its Answer (at the shipped n_boot, as
    the sweep builds it)."""
    out = _first_round(tmp_path_factory.mktemp("round1") / "paper_tables")
    carry(SHIPPED, out)
    data = load_folder(out)
    table = evaluate(data, N_BOOTSTRAP)
    w = ReportWriter(out)
    answer_section(w, data, table)
    return out, w.write().read_text(), table


def test_the_fuller_earlier_run_is_carried_with_its_source(answered) -> None:
    out, _, _ = answered
    earlier = load_earlier(out)
    shipped = pd.read_csv(SHIPPED / HYPOTHESES_FILE)
    pd.testing.assert_frame_equal(earlier.hypotheses, shipped)
    assert earlier.trials == len(pd.read_csv(SHIPPED / "per_seed.csv")) > len(pd.read_csv(out / "per_seed.csv"))
    assert earlier.looks_run == 4
    assert earlier.source["folder"] == str(SHIPPED)
    assert json.loads((out / EARLIER_DIR / "provenance.json").read_text()) == json.loads(
        (SHIPPED / "provenance.json").read_text()
    )


def test_the_answer_quotes_the_earlier_run_and_shows_this_runs_look(answered) -> None:
    _, md, table = answered
    answer = md.split("## Answer", 1)[1]
    assert "This run, look 1 of 4: **0 of 4 decided**; 4 still open" in answer
    assert "**The earlier run of this study file**" in answer and "ran 4 of 4 looks" in answer
    assert "This run reproduces it so far" in answer and "does not reproduce" not in answer
    shipped = pd.read_csv(SHIPPED / HYPOTHESES_FILE)
    assert f"{len(shipped[shipped['look'] == 1])} hypothesis-looks are the earlier run's" in answer
    assert "Its answer: **4 of 4 decided**" in answer
    assert "| hypothesis | verdict (earlier run) |" in answer and "this run: Δ [RCI] at look 1" in answer
    assert "**grpo better than sft**" in answer  # the earlier run's verdict on grpo_vs_sft_sqa
    row = next(line for line in answer.splitlines() if line.startswith("| grpo_vs_sft_sqa |"))
    mine = table[(table["hypothesis"] == "grpo_vs_sft_sqa") & (table["look"] == 1)].iloc[0]
    assert row.rstrip(" |").endswith(f"[{mine['low']:+.2f}, {mine['high']:+.2f}]")  # this run's own look-1 RCI
    assert "(look 2)" in row  # the earlier run decided it at its second look


def test_a_changed_score_or_look_is_reported_as_not_reproduced(answered) -> None:
    out, _, table = answered
    earlier = load_earlier(out)
    per_seed = pd.read_csv(out / "per_seed.csv")
    same = reproduction(per_seed, table, earlier)
    assert (same.shared, same.equal, same.trials) == (len(per_seed),) * 3 and same.largest <= 1e-6
    assert same.looks == same.looks_equal == len(table)
    per_seed.loc[3, "test/sampled/bleu"] += 0.01
    moved = table.copy()
    moved.loc[0, "high"] += 0.01
    changed = reproduction(per_seed, moved, earlier)
    assert changed.equal == len(per_seed) - 1 and changed.largest == pytest.approx(0.01)
    assert changed.looks_equal == len(table) - 1
    assert same.holds and not changed.holds


def test_the_terminal_and_the_index_give_the_earlier_answer(answered, tmp_path: Path) -> None:
    out, _, table = answered
    table.to_csv(out / HYPOTHESES_FILE, index=False)
    lines = summary_lines(out)
    assert lines[0] == "answer: 0 of 4 decided; 4 still open (the next round adds seeds to them)."
    assert lines[1].startswith("answer of the earlier run in earlier_run/ (look 4 of 4): 4 of 4 decided")
    assert lines[1].endswith(f"This run reproduces its {len(pd.read_csv(out / 'per_seed.csv'))} trials so far.")
    assert any(line.startswith("  grpo_vs_sft_sqa: grpo better than sft: Δ +") for line in lines)
    reports = tmp_path / "reports"
    shutil.copytree(out, reports / "paper_tables")
    index = write_index(reports).read_text()
    assert "verdicts below are those of the earlier run of the same study file (look 4)" in index
    assert "(paper_tables/earlier_run/hypotheses.csv#L" in index


def test_nothing_is_carried_from_another_study_or_a_run_no_further(tmp_path: Path) -> None:
    mine = _first_round(tmp_path / "mine")
    other = tmp_path / "other"
    shutil.copytree(SHIPPED, other)
    (other / "study.yaml").write_text((other / "study.yaml").read_text().replace("margin: 2.0", "margin: 1.0"))
    carry(other, mine)
    assert not (mine / EARLIER_DIR).exists()  # another study file: its verdicts answer other hypotheses
    shorter = _first_round(tmp_path / "shorter")
    carry(shorter, mine)
    assert not (mine / EARLIER_DIR).exists()  # the same trials: nothing further to quote
    # a second first round keeps the fullest earlier run it replaces (carried forward with its source)
    carry(SHIPPED, shorter)
    carry(shorter, mine)
    assert load_earlier(mine).looks_run == 4 and load_earlier(mine).source["folder"] == str(SHIPPED)
