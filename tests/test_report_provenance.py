"""`harness report`'s provenance: a clean store writes no dirty note, reports of a dirty tree are refused
in the checkout's reports/ (or say so in the title when allowed), and the index of reports/."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import sacrebleu
import yaml
from report_reading import md_tables, section
from report_studies import (
    DIRTY,
    DIRTY_COMMIT,
    MAIN,
    MAIN_CONFIGS,
    MAIN_SWEPT,
    N_BOOT,
    REPORT_COMMIT,
    TRIAL_COMMIT,
    trial_config,
)

import harness.report.build as report_build
from harness import provenance
from harness.report import DirtyTree, build_report, rebuild_report, write_index

pytestmark = pytest.mark.usefixtures("clean_checkout")  # these tests build reports


# --------------------------------------------------------------------------------------------------
# 8. Provenance


def test_clean_store_writes_no_dirty_note(main):
    title = main["md"].splitlines()[0]
    assert title == f"# Study report: {MAIN}"
    assert "dirty" not in main["md"].lower() and "Not reproducible" not in main["md"]
    prov = json.loads((main["out"] / "provenance.json").read_text())
    assert prov["report_commit"] == REPORT_COMMIT and prov["trial_commits"] == [TRIAL_COMMIT]
    assert prov["commit"] == TRIAL_COMMIT and prov["study_run"] == main["parent"]
    assert prov["versions"] == {"numpy": np.__version__, "sacrebleu": sacrebleu.__version__}
    assert prov["reused_trials"] == 1
    assert yaml.safe_load((main["out"] / "study.yaml").read_text())["name"] == MAIN
    assert json.loads((main["out"] / "swept.json").read_text()) == MAIN_SWEPT
    configs = sorted(p.name for p in (main["out"] / "configs").glob("*.yaml"))
    assert len(configs) == len(MAIN_CONFIGS)
    g16 = yaml.safe_load((main["out"] / "configs" / "sqa__grpo_grpo.group_size=16_grpo.reward=bleu.yaml").read_text())
    expected = trial_config("grpo", 0, MAIN_CONFIGS["g16"][2]).model_dump(mode="json")
    assert g16 == {**expected, "seed": [0, 1, 2, 3]}  # the resolved config, the seeds it ran with


def test_dirty_trials_refused_in_reports(dirty_study, in_repo):
    folder, indexed = in_repo
    with pytest.raises(DirtyTree, match=re.escape(DIRTY_COMMIT)):
        build_report(DIRTY, folder, tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert not (folder / "report.md").exists() and indexed == []


def test_dirty_trials_allowed_say_so_in_the_title(dirty_study, in_repo):
    folder, indexed = in_repo
    path = build_report(
        DIRTY, folder, tracking_uri=dirty_study["uri"], allow_dirty=True, log_to_parent=False, n_boot=N_BOOT
    )
    md = path.read_text()
    assert md.splitlines()[0] == f"# Study report: {DIRTY} (from a dirty tree: not reproducible from a commit)"
    assert f"- **Not reproducible from a commit:** trials ran at `{DIRTY_COMMIT}`." in md
    assert indexed == [provenance.CHECKOUT / "reports"]  # the index of reports/ is rewritten


def test_dirty_report_code_refused_in_reports(main, in_repo, monkeypatch):
    folder, _ = in_repo
    monkeypatch.setattr(report_build, "git_commit", lambda: REPORT_COMMIT + "-dirty")
    with pytest.raises(DirtyTree, match="the report was written at"):
        build_report(MAIN, folder, tracking_uri=main["uri"], log_to_parent=False, n_boot=N_BOOT)


def test_dirty_trials_outside_reports_are_written_with_the_note(dirty_study, tmp_path):
    path = build_report(DIRTY, tmp_path / "out", tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert "(from a dirty tree" in path.read_text().splitlines()[0]


def test_refused_report_leaves_reports_untouched(dirty_study, in_repo):
    folder, _ = in_repo
    folder.mkdir(parents=True)
    (folder / "per_seed.csv").write_text("the committed evidence\n")
    with pytest.raises(DirtyTree):
        build_report(DIRTY, folder, tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert (folder / "per_seed.csv").read_text() == "the committed evidence\n"
    assert sorted(p.name for p in folder.iterdir()) == ["per_seed.csv"]


INDEX_HYPOTHESES = """
seeds: [0, 1, 2]
hypotheses:
  tests:
    - {name: grpo_vs_sft, a: {grpo.reward: bleu, grpo.group_size: 8, label: grpo}, b: {label: sft}, margin: 2.0}
    - {name: meteor_vs_sft, a: {grpo.reward: meteor, label: grpo}, b: {label: sft}, margin: 2.0}
"""


def test_write_index(main, tmp_path):
    """Per study: its declared hypotheses as a table (verdict, Δ [RCI], seeds, a link to the row), or a
    line saying it has none; then one line counting its exploratory comparisons."""
    reports = tmp_path / "reports"
    for name in ("alpha", "beta"):
        shutil.copytree(main["out"], reports / name)
    study = reports / "alpha" / "study.yaml"
    study.write_text(study.read_text() + INDEX_HYPOTHESES)
    rebuild_report(reports / "alpha", n_boot=N_BOOT)
    (reports / "beta" / "findings.csv").unlink()
    (reports / "no-report").mkdir()  # a folder without report.md is not a study report
    (reports / "no-report" / "per_seed.csv").write_text("x\n")
    path = write_index(reports)
    assert path == reports / "README.md"
    index = path.read_text()
    assert index.startswith("# Reports\n")
    assert "## [alpha](alpha/report.md)" in index and "## [beta](beta/report.md)" in index
    assert "no-report" not in index
    alpha, beta = index.split("## [alpha]")[1].split("## [beta]")
    assert f"Study report: {MAIN}." in alpha
    assert "No declared hypotheses: every comparison of this report is exploratory." in beta
    table = pd.read_csv(reports / "alpha" / "hypotheses.csv")
    assert list(table["hypothesis"]) == ["grpo_vs_sft", "meteor_vs_sft"] and set(table["seeds"]) == {3}
    shown = md_tables(alpha)[0]
    assert list(shown["verdict"]) == [
        "**grpo [grpo.group_size=8, grpo.reward=bleu] better than sft**",
        "**grpo [grpo.group_size=8, grpo.reward=meteor] worse than sft**",
    ]
    assert list(shown["row"]) == [
        "[hypotheses.csv](alpha/hypotheses.csv#L2)",
        "[hypotheses.csv](alpha/hypotheses.csv#L3)",
    ]
    findings = main["findings"]
    against = int((findings["relation"] == "against the paper").sum())
    agreeing = int((findings["relation"] == "agrees with the paper").sum())
    assert f"({against} against the paper's published direction, {agreeing} agreeing)" in alpha
    answer = section((reports / "alpha" / "report.md").read_text(), "Answer")
    assert "2 hypotheses declared in the study file before the run" in answer
    assert "| grpo_vs_sft | **grpo [grpo.group_size=8, grpo.reward=bleu] better than sft**" in answer


def test_write_index_links_to_the_row(main, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(main["out"], reports / "alpha")
    study = reports / "alpha" / "study.yaml"
    study.write_text(study.read_text() + INDEX_HYPOTHESES)
    rebuild_report(reports / "alpha", n_boot=N_BOOT)
    index = write_index(reports).read_text()
    links = re.findall(r"\]\((alpha/hypotheses.csv#L\d+)\)", index)
    assert links and len(set(links)) == len(links)
