"""The report's Optuna analysis of a TPE study with median pruning, and its sample generations, against the
study's own Optuna storage and the trials' own sample tables; then recomputed from the report folder
alone. Fake trials (tests/fakes.py) in real MLflow sqlite / Optuna journal stores."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
from fakes import TINY
from optuna.trial import TrialState

from harness.report import build_report, rebuild_report
from harness.report.optuna_trials import load_optuna_study
from harness.study import load_study
from harness.sweep import open_storage, run_sweep

STUDY = """
space:
  train.lr: {low: 1.0e-5, high: 1.0e-3, log: true}
  grpo.beta: {low: 0.0, high: 0.05}
seeds: [0]
n_trials: 8
sampler: {type: tpe, seed: 0, options: {n_startup_trials: 3}}
pruner: {type: median, options: {n_startup_trials: 2, n_warmup_steps: 0}}
objective: {metric: val/bleu, direction: maximize}
"""


def curve(cfg, step: int, call: int) -> float:
    """Validation BLEU: rises with the learning rate, and with the step."""
    return 10.0 + 5000.0 * cfg.train.lr + 2.0 * step


def samples(cfg) -> dict[int, list[dict]]:
    """Two steps of sample tables; at step 2 two prompts of three completions (one off-policy row, which
    has the highest reward and must never be shown as the best on-policy completion)."""
    rows = [
        {
            "prompt": f"<|audio|> q{p}",
            "reference": f"ref {p}",
            "completion": f"c{p}{k}",
            "reward": float(10 * p + k),
            "off_policy": False,
        }
        for p in (1, 2)
        for k in (3, 1, 2)
    ]
    rows.append(
        {"prompt": "<|audio|> q1", "reference": "ref 1", "completion": "ref 1", "reward": 99.0, "off_policy": True}
    )
    return {1: [dict(rows[0], reward=-1.0)], 2: rows}


@pytest.fixture
def tpe_report(tmp_path: Path, stores, fake) -> tuple[optuna.Study, Path]:
    fake(val=curve, samples=samples, selected=lambda cfg, call: curve(cfg, 1, call))
    path = tmp_path / "tpe.yaml"
    path.write_text(TINY.lstrip("\n") + textwrap.dedent(STUDY).lstrip("\n"))
    storage, uri = stores
    run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    out = tmp_path / "report"
    build_report("tpe", out, uri, n_boot=50)
    return optuna.load_study(study_name="tpe", storage=open_storage(storage)), out


def test_optuna_trials_file_is_the_study(tpe_report) -> None:
    """optuna_trials.csv holds every trial as Optuna stored it, and the study rebuilt from the folder equals it."""
    study, out = tpe_report
    trials = study.get_trials()
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.PRUNED}  # the fake curve prunes some
    table = pd.read_csv(out / "optuna_trials.csv", keep_default_na=False)
    assert list(table["number"]) == [t.number for t in trials]
    for t, row in zip(trials, table.to_dict("records")):
        assert row["state"] == t.state.name
        assert json.loads(row["params"]) == t.params
        assert {int(k): v for k, v in json.loads(row["intermediate_values"]).items()} == t.intermediate_values
        assert row["intermediate_metric"] == "val/bleu"
        assert row["run_id"] == t.user_attrs["mlflow_run_id"]
        if t.state == TrialState.COMPLETE:
            assert json.loads(row["values"]) == [t.value]

    view = load_optuna_study(out)
    assert (view.metrics, view.directions, view.sampler, view.pruner) == (["val/bleu"], ["maximize"], "tpe", "median")
    rebuilt = view.study.get_trials()
    assert [(t.number, t.state, t.params, t.distributions, t.intermediate_values) for t in rebuilt] == [
        (t.number, t.state, t.params, t.distributions, t.intermediate_values) for t in trials
    ]
    assert [t.value for t in rebuilt] == [t.value for t in trials]  # a pruned trial's: its last intermediate value
    assert view.study.best_trial.number == study.best_trial.number


def test_history_importance_parallel_and_pruned_trials(tpe_report) -> None:
    study, out = tpe_report
    report = (out / "report.md").read_text()
    assert "## Optuna analysis (sampler `tpe`, pruner `median`)" in report
    assert ("`val/bleu` (maximize): validation BLEU (greedy) at the selected checkpoint") in report
    for name in ("optuna_history", "optuna_importance", "optuna_parallel"):
        assert f"]({name}.png)" in report and (out / f"{name}.png").stat().st_size > 0

    # Importance: fANOVA on the rebuilt study = fANOVA on the study's own storage
    assert "FanovaImportanceEvaluator" in report
    importance = pd.read_csv(out / "param_importance.csv")
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=["grpo.beta", "train.lr"]
    )
    assert dict(zip(importance["parameter"], importance["importance"])) == pytest.approx(expected, rel=1e-9)
    assert set(importance["objective"]) == {"val/bleu"}

    # Pruned trials: where the pruner stopped each one
    pruned = pd.read_csv(out / "pruned_trials.csv")
    stopped = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert list(pruned["trial"]) == [t.number for t in stopped]
    for t, row in zip(stopped, pruned.to_dict("records")):
        last = max(t.intermediate_values)
        assert (row["last step"], row["last value"], row["metric"]) == (last, t.intermediate_values[last], "val/bleu")
        assert row["validations"] == len(t.intermediate_values)
        assert (row["train.lr"], row["grpo.beta"]) == (t.params["train.lr"], t.params["grpo.beta"])


def test_sample_generations(tpe_report) -> None:
    study, out = tpe_report
    exported = pd.read_csv(out / "samples.csv")
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert set(exported["run_id"]) == {t.user_attrs["mlflow_run_id"] for t in complete}
    assert len(exported) == len(complete) * (1 + 7)  # every row of both steps' tables

    shown = pd.read_csv(out / "sample_generations.csv")
    assert len(shown) == 2 * len(complete)  # each configuration (one seed here): two prompts
    assert set(shown["step"]) == {2}  # the last sampled step
    for prompt, best, worst in (("q1", ("c13", 13.0), ("c11", 11.0)), ("q2", ("c23", 23.0), ("c21", 21.0))):
        rows = shown[shown["prompt"] == f"<|audio|> {prompt}"]
        assert len(rows) == len(complete)
        assert set(zip(rows["best completion"], rows["best reward"])) == {best}  # not the off-policy 99
        assert set(zip(rows["worst completion"], rows["worst reward"])) == {worst}
        assert set(rows["completions"]) == {3}
    report = (out / "report.md").read_text()
    assert "## Sample generations" in report and "[audio] q1" in report


def test_the_folder_alone_recomputes_the_optuna_sections(tpe_report, tmp_path: Path) -> None:
    _, out = tpe_report
    files = ["param_importance.csv", "pruned_trials.csv", "sample_generations.csv"]
    before = {name: (out / name).read_bytes() for name in files}
    (tmp_path / "mlflow.db").unlink()
    (tmp_path / "optuna.log").unlink()
    for name in files:
        (out / name).unlink()
    rebuild_report(out, n_boot=50)
    assert {name: (out / name).read_bytes() for name in files} == before
