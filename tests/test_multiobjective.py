"""Multi-objective studies: the objective list, its checks (file:line: field: fix, exit 2), the NSGA-II
sampler, a fake-trial sweep of the shipped Pareto study (summary line, Optuna's values) and its report's
Pareto front, checked against a brute-force front and recomputed from the report folder alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from harness.cli import app
from harness.report import build_report, rebuild_report
from harness.study import StudyError, load_study, make_pruner, make_sampler
from harness.sweep import create_study, open_storage

STUDIES = Path(__file__).resolve().parent.parent / "studies"
PARETO = STUDIES / "pareto_bleu_tokens.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# ---------------------------------------------------------------------------------------------
# The study file
# ---------------------------------------------------------------------------------------------


def test_shipped_pareto_study(tmp_path: Path) -> None:
    study = load_study(PARETO)
    assert [(o.metric, o.direction) for o in study.objectives] == [
        ("val/bleu", "maximize"),  # the search never sees the test set
        ("generated_tokens", "minimize"),
    ]
    assert study.multi_objective and study.total_trials == 8 and study.seed_list == [0]
    sampler = make_sampler(study)
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    assert isinstance(make_pruner(study), optuna.pruners.NopPruner)
    optuna_study = create_study(study, open_storage(str(tmp_path / "journal.log")))
    assert optuna_study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


def test_single_objective_form_is_unchanged() -> None:
    study = load_study(STUDIES / "tune_tpe.yaml")
    assert not study.multi_objective and study.objective.metric == "val/bleu"
    assert [(o.metric, o.direction) for o in study.objectives] == [("val/bleu", "maximize")]


BAD = {
    "pruner-with-two-objectives": (
        """
        fixed: {task: sqa}
        pruner: median
        objective:
          - {metric: test/bleu}
          - {metric: generated_tokens, direction: minimize}
        """,
        ["study.yaml:2: field pruner:", "single objective", "Fix: use 'pruner: none'"],
    ),
    "unknown-metric-in-list": (
        """
        fixed: {task: sqa}
        objective:
          - {metric: test/bleu}
          - {metric: test/blue}
        """,
        ["study.yaml:4: field objective.1.metric:", "unknown metric 'blue'", "Fix:", "generated_tokens"],
    ),
    "unknown-compute-column": (
        """
        fixed: {task: sqa}
        objective:
          - {metric: test/bleu}
          - {metric: gpu_hours, direction: minimize}
        """,
        ["study.yaml:4: field objective.1.metric:", "unknown objective metric 'gpu_hours'", "wall_time_s"],
    ),
    "bad-direction-in-list": (
        """
        fixed: {task: sqa}
        objective:
          - {metric: test/bleu}
          - {metric: wall_time_s, direction: down}
        """,
        ["study.yaml:4: field objective.1.direction:", "Fix: use one of 'maximize' or 'minimize'"],
    ),
    "metric-listed-twice": (
        """
        fixed: {task: sqa}
        objective:
          - {metric: test/bleu}
          - {metric: test/bleu, direction: minimize}
        """,
        ["study.yaml:4: field objective.1.metric:", "listed twice", "Fix: list each metric once"],
    ),
    "sampled-without-passes": (
        """
        fixed: {task: sqa}
        objective:
          - {metric: test/sampled/bleu}
          - {metric: generated_tokens, direction: minimize}
        """,
        ["study.yaml:3: field objective.0.metric:", "eval.sampling_passes is 0", "Fix: set fixed eval.sampling_passes"],
    ),
    "validation-bertscore": (
        """
        fixed: {task: sqa}
        objective: {metric: val/bertscore}
        """,
        ["study.yaml:2: field objective.metric:", "validation does not compute 'bertscore'"],
    ),
    "empty-list": (
        """
        fixed: {task: sqa}
        objective: []
        """,
        ["study.yaml:2: field objective:", "give at least one"],
    ),
    "single-form-bad-direction": (
        """
        fixed: {task: sqa}
        objective: {metric: test/bleu, direction: up}
        """,
        ["study.yaml:2: field objective.direction:", "'maximize' or 'minimize'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_objectives_name_file_line_field_fix(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for piece in expected:
        assert piece in message, f"{piece!r} not in: {message}"
    field = message.split(": field ", 1)[1].split(":", 1)[0]
    assert "objective list" not in field and "one objective" not in field, field  # (pydantic's union tags)


def test_bad_objective_exits_2_with_one_message(tmp_path: Path) -> None:
    path = write(tmp_path, BAD["pruner-with-two-objectives"][0])
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: {path}:2: field pruner: pruning needs a single objective, this study "
        "lists 2 (Optuna prunes on one intermediate value per step). Fix: use 'pruner: none' with several "
        "objectives, or keep one objective."
    )


def test_compute_and_sampled_objectives_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        fixed: {task: sqa, eval: {sampling_passes: 2}}
        sampler: {type: nsga2, options: {population_size: 2}}
        n_trials: 2
        space:
          grpo.beta: {low: 0.0, high: 0.05}
        objective:
          - {metric: test/sampled/bleu}
          - {metric: val/rougeL}
          - {metric: wall_time_s, direction: minimize}
          - {metric: trained_tokens, direction: minimize}
        """,
    )
    assert [o.metric for o in load_study(path).objectives] == [
        "test/sampled/bleu",
        "val/rougeL",
        "wall_time_s",
        "trained_tokens",
    ]


# ---------------------------------------------------------------------------------------------
# A fake-trial sweep of the shipped study, and its report
# ---------------------------------------------------------------------------------------------


def bleu_of(cfg) -> float:
    return 10.0 + 0.5 * cfg.grpo.group_size + 0.1 * cfg.grpo.max_new_tokens


def tokens_of(cfg) -> int:
    return 10 * cfg.grpo.group_size * cfg.grpo.max_new_tokens


def brute_force_front(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other trial beats: BLEU at least as high and tokens at most as many, one strictly."""

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return {n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)}


def test_pareto_sweep_summary_and_report(tmp_path: Path, monkeypatch, stores, fake) -> None:
    fake(selected=lambda cfg, call: bleu_of(cfg), generated=tokens_of)
    monkeypatch.chdir(tmp_path)
    storage, uri = stores
    result = CliRunner().invoke(app, ["sweep", str(PARETO), "--storage", storage, "--tracking-uri", uri, "--no-report"])
    assert result.exit_code == 0, result.output
    optuna_study = optuna.load_study(study_name="pareto_bleu_tokens", storage=open_storage(storage))
    trials = optuna_study.get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    study = load_study(PARETO)
    points = {}
    for t in trials:
        cfg = study.resolve(t.params)
        assert t.values == [bleu_of(cfg), tokens_of(cfg)]
        points[t.number] = (t.values[0], t.values[1])
    front = brute_force_front(points)
    assert {t.number for t in optuna_study.best_trials} == front
    assert (
        f"Pareto front of val/bleu (maximize), generated_tokens (minimize): {len(front)} trial(s) "
        f"({', '.join(map(str, sorted(front)))})"
    ) in result.stderr
    assert "best val/bleu" not in result.stderr

    out = tmp_path / "report"
    build_report("pareto_bleu_tokens", out, uri, n_boot=50)
    table = pd.read_csv(out / "pareto_front.csv")
    distinct: dict[tuple, int] = {}  # NSGA-II may propose a configuration again: listed once, its first trial
    for n in sorted(front):
        distinct.setdefault(tuple(sorted(trials[n].params.items())), n)
    assert set(table["trial"]) == set(distinct.values())
    for _, row in table.iterrows():
        assert (row["val/bleu"], row["generated_tokens"]) == points[row["trial"]]
        assert row["run_id"] == trials[row["trial"]].user_attrs["mlflow_run_id"]
        assert (row["grpo.group_size"], row["grpo.max_new_tokens"]) == (
            trials[row["trial"]].params["grpo.group_size"],
            trials[row["trial"]].params["grpo.max_new_tokens"],
        )
    report = (out / "report.md").read_text()
    assert "## Pareto front: `val/bleu` vs `generated_tokens`" in report and "pareto_front.png" in report
    assert (out / "pareto_front.png").stat().st_size > 0
    # NSGA-II is not a grid: Optuna's analysis too, one history and importance per objective
    assert "## Optuna analysis (sampler `nsga2`, pruner `none`)" in report
    for metric in ("val-bleu", "generated_tokens"):
        assert (out / f"optuna_history_{metric}.png").is_file()

    # The folder alone recomputes it (no store).
    before = (out / "pareto_front.csv").read_bytes()
    (tmp_path / "mlflow.db").unlink()
    (out / "pareto_front.csv").unlink()
    rebuild_report(out, n_boot=50)
    assert (out / "pareto_front.csv").read_bytes() == before
