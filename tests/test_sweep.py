"""Sweeps: MLflow layout, Optuna storage, failures, pruning, resume after a kill, several workers.

Fast tests replace `run_trial` in-process with a fake; the `slow` ones train the tiny model for real
(tiny trial configs) and drive the `harness` CLI in subprocesses. The tiny base model is built once
into HARNESS_CACHE (default: the checkout's .cache/harness).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from fakes import study_file, wait_for
from mlflow import MlflowClient
from optuna.trial import TrialState

from harness.config import TrainConfig
from harness.study import SEED, StudyError, load_study
from harness.sweep import (
    StorageError,
    create_study,
    ensure_experiment,
    mask_url,
    open_storage,
    run_sweep,
)
from harness.sweep.objective import suggest

REPO = Path(__file__).resolve().parent.parent
CACHE = os.environ.get("HARNESS_CACHE", str(REPO / ".cache" / "harness"))


def journal(path: str) -> optuna.storages.BaseStorage:
    return open_storage(path)


def runs_of(uri: str, name: str) -> tuple[MlflowClient, object, list, list]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("harness.role") == "study"]
    trials = sorted(
        (r for r in runs if r.data.tags.get("harness.role") == "trial"),
        key=lambda r: int(r.data.tags["harness.trial_number"]),
    )
    return client, experiment, parents, trials


# ---------------------------------------------------------------------------------------------
# Fast: storage URLs
# ---------------------------------------------------------------------------------------------


def test_mask_url() -> None:
    assert (
        mask_url("postgresql://alice:s3cret@db.example:5432/optuna") == "postgresql://alice:***@db.example:5432/optuna"
    )
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_open_storage_kinds(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalStorage

    assert isinstance(open_storage(str(tmp_path / "a" / "j.log")), JournalStorage)
    assert isinstance(open_storage(f"journal://{tmp_path / 'b.log'}"), JournalStorage)
    rdb = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage) and rdb.get_heartbeat_interval() == 60
    with pytest.raises(StorageError, match="unknown scheme 'redis'"):
        open_storage("redis://localhost:6379")
    with pytest.raises(StorageError) as err:
        open_storage("postgresql://alice:s3cret@127.0.0.1:1/optuna")
    assert "alice:***@" in str(err.value) and "s3cret" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Fast: failures, pruning, recovery, resume (fake run_trial)
# ---------------------------------------------------------------------------------------------


def test_failing_trial_is_recorded_and_study_goes_on(tmp_path: Path, stores, fake) -> None:
    fake(fail=lambda cfg: cfg.grpo.reward == "rouge1")
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1, rouge2]}
        """,
    )
    storage, uri = stores
    study = run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    states = {t.params["grpo.reward"]: t for t in study.trials}
    assert states["rouge1"].state == TrialState.FAIL
    assert states["rouge1"].user_attrs["error"] == "FloatingPointError: loss is NaN at step 2"
    assert states["bleu"].state == states["rouge2"].state == TrialState.COMPLETE
    client, _, parents, runs = runs_of(uri, "tiny")
    failed = client.get_run(states["rouge1"].user_attrs["mlflow_run_id"])
    assert failed.info.status == "FAILED"
    assert failed.data.tags["harness.state"] == "FAIL"
    assert failed.data.tags["harness.error"] == "FloatingPointError: loss is NaN at step 2"
    assert "error.txt" in [a.path for a in client.list_artifacts(failed.info.run_id)]
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"} and parents[0].info.status == "FINISHED"

    # Running the study again re-runs the failed configuration (and only it).
    fake()
    study = run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    complete = [t.params["grpo.reward"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == ["bleu", "rouge1", "rouge2"]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == states["rouge1"].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and "error" not in retry[0].user_attrs
    _, _, parents_again, _ = runs_of(uri, "tiny")
    assert len(parents_again) == 1  # the study's parent run is reused


def test_trials_other_workers_run_count_toward_the_budget(tmp_path: Path, stores, fake) -> None:
    """n_trials is the study's total: a worker starts no trial that, with those running, would exceed it."""
    fake()
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1, rouge2]}
        n_trials: 3
        sampler: random
        """,
    )
    storage, uri = stores
    study = load_study(path)
    create_study(study, open_storage(storage)).ask()  # another (live) worker's trial, still running
    result = run_sweep(study, storage=storage, tracking_uri=uri, progress=False)
    states = [t.state for t in result.trials]
    assert states == [TrialState.RUNNING, TrialState.COMPLETE, TrialState.COMPLETE], states


def test_pruned_trials(tmp_path: Path, stores, fake) -> None:
    fake(val=lambda cfg, step, call: 20.0 if call == 0 else 1.0)  # only the first trial does well
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1, rouge2]}
        pruner: {type: median, options: {n_startup_trials: 1, n_warmup_steps: 0}}
        objective: {metric: val/bleu}
        """,
    )
    storage, uri = stores
    study = run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert study.trials[0].value == 14.0  # val/bleu at the selected step
    client, _, _, runs = runs_of(uri, "tiny")
    assert [r.data.tags["harness.state"] for r in runs] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert [r.info.status for r in runs] == ["FINISHED"] * 3
    assert study.trials[1].intermediate_values == {0: 1.0}


def test_dead_worker_trial_is_failed_killed_and_rerun(tmp_path: Path, stores, fake) -> None:
    """A RUNNING trial whose process is gone (pid reused here) is FAIL, its MLflow run KILLED, and it runs again."""
    fake()
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1]}
        """,
    )
    storage, uri = stores
    cfg = load_study(path)
    optuna_study = create_study(cfg, journal(storage))
    orphan = optuna_study.ask()
    params = suggest(cfg, orphan)
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(), "started": 0.0})
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, cfg.name, uri)
    stale = client.create_run(experiment_id, tags={"harness.role": "trial", "harness.trial_number": "0"})

    study = run_sweep(cfg, storage=storage, tracking_uri=uri, progress=False)
    first = study.trials[0]
    assert first.state == TrialState.FAIL and "died" in first.user_attrs["error"]
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    complete = [t.params for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and params in complete
    assert not client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")


def test_changed_study_is_not_resumed(tmp_path: Path, stores, fake) -> None:
    fake()
    path = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu]}\n")
    storage, uri = stores
    run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    path.write_text(path.read_text().replace("[bleu]", "[bleu, rouge1]"))
    with pytest.raises(StudyError, match="different definition .*space.grpo.reward.choices.*Fix: set a new 'name:'"):
        run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)


def test_baselines_seeds_and_rdb_storage(tmp_path: Path, stores, fake) -> None:
    fake()
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1], when: {method: grpo}}
        seeds: [0, 1]
        baselines:
          - {label: base, method: base-eval}
          - {method: sft}
        """,
    )
    _, uri = stores
    study = run_sweep(load_study(path), storage=f"sqlite:///{tmp_path / 'optuna.db'}", tracking_uri=uri, progress=False)
    assert len(study.trials) == 8 and all(t.state == TrialState.COMPLETE for t in study.trials)
    first = study.trials[:4]  # baselines were enqueued first
    assert [(t.user_attrs["label"], t.params) for t in first] == [
        ("base", {SEED: 0}),
        ("base", {SEED: 1}),
        ("sft", {SEED: 0}),
        ("sft", {SEED: 1}),
    ]
    _, _, _, runs = runs_of(uri, "tiny")
    assert [r.data.tags["harness.label"] for r in runs] == [
        "base",
        "base",
        "sft",
        "sft",
        "grpo",
        "grpo",
        "grpo",
        "grpo",
    ]
    assert {r.data.params["method"] for r in runs[:2]} == {"base-eval"}
    assert "grpo.reward" in runs[0].data.params  # every resolved field, whatever the method


# ---------------------------------------------------------------------------------------------
# Slow: the real tiny model
# ---------------------------------------------------------------------------------------------


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def cli_env(stores: tuple[str, str]) -> dict[str, str]:
    storage, uri = stores
    return {**os.environ, "HARNESS_CACHE": CACHE, "HARNESS_OPTUNA_STORAGE": storage, "MLFLOW_TRACKING_URI": uri}


@pytest.mark.slow
def test_end_to_end_sweep_mlflow_layout(tmp_path: Path, stores, base_model, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", CACHE)
    path = study_file(
        tmp_path,
        """
        description: two tiny GRPO trials
        space:
          grpo.reward: {choices: [bleu, rouge1]}
        """,
        name="e2e",
    )
    storage, uri = stores
    study = run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2

    client, experiment, parents, runs = runs_of(uri, "e2e")
    assert experiment.artifact_location == str(tmp_path / "artifacts")
    (parent,) = parents
    assert parent.info.run_name == "e2e" and parent.info.status == "FINISHED"
    assert parent.data.params["study.space.grpo.reward.choices"] == '["bleu", "rouge1"]'
    assert parent.data.params["sampler"] == "grid" and parent.data.params["pruner"] == "none"
    assert parent.data.params["study.fixed.grpo.group_size"] == "3"
    for key in (
        "harness.git_commit",
        "harness.version.torch",
        "harness.version.transformers",
        "harness.version.mlflow",
        "harness.version.optuna",
    ):
        assert parent.data.tags[key]
    study_yaml = Path(client.download_artifacts(parent.info.run_id, "study.yaml", str(tmp_path / "dl")))
    assert study_yaml.read_text() == path.read_text()

    assert len(runs) == 2
    for trial, run in zip(study.trials, runs):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert (tags["harness.role"], tags["harness.state"], tags["harness.label"]) == ("trial", "COMPLETE", "grpo")
        assert tags["harness.trial_number"] == str(trial.number)
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert params["grpo.reward"] == trial.params["grpo.reward"]
        assert (params["task"], params["method"], params["seed"], params["grpo.group_size"]) == (
            "sqa",
            "grpo",
            "0",
            "3",
        )
        assert params["grpo.mp_grpo"] == "false" and params["train.lr"] == str(TrainConfig().lr)
        assert metrics["test/bleu"] == pytest.approx(trial.value)
        assert {
            "test/rouge1",
            "test/meteor",
            "best_step",
            "train_steps",
            "generated_tokens",
            "wall_time_s",
            "time/train_s",
            "time/test_s",
        } <= set(metrics)
        assert metrics["train_steps"] == 2
        assert [m.step for m in client.get_metric_history(run.info.run_id, "reward")] == [1, 2]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/bleu")] == [0, 1, 2]

        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"trial_config.yaml", "test_examples.json", "samples"} <= artifacts
        samples = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
        assert samples == ["samples/step_0001.json", "samples/step_0002.json"]
        local = Path(client.download_artifacts(run.info.run_id, "test_examples.json", str(tmp_path / run.info.run_id)))
        examples = json.loads(local.read_text())
        assert len(examples["ids"]) == len(examples["references"]) == len(examples["hypotheses"]) == 4
        assert set(examples["scores"]) >= {"bleu", "rouge1", "meteor"}
        assert all(len(v) == 4 for v in examples["scores"].values())
        table = json.loads(
            Path(client.download_artifacts(run.info.run_id, samples[0], str(tmp_path / "s"))).read_text()
        )
        assert {"prompt", "reference", "completion", "reward"} <= set(table["columns"])
        # the best checkpoint as the run's MLflow model, and the synthetic data as its dataset inputs
        (model,) = client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert model.name == f"grpo-{params['grpo.reward']}-s0"  # named after its configuration and seed
        assert model.params["best_step"] == str(int(metrics["best_step"]))
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "validation", "test"}
        assert json.loads(inputs["test"].profile)["num_rows"] == 4
        assert Path(json.loads(inputs["test"].source)["uri"]).is_dir()  # the synthetic clips' cache directory

    # The logged model of the first trial, loaded back, answers the test set as the trial did.
    import mlflow.pyfunc
    import pandas as pd

    from harness.train.trial import load_task_data

    mlflow.set_tracking_uri(uri)
    (model,) = client.search_logged_models(
        [experiment.experiment_id], filter_string=f"source_run_id = '{runs[0].info.run_id}'"
    )
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    test = load_task_data(loaded.unwrap_python_model().config)["test"].examples
    answers = loaded.predict(pd.DataFrame({"audio": [ex.audio for ex in test], "prompt": [ex.prompt for ex in test]}))
    logged = json.loads(
        Path(client.download_artifacts(runs[0].info.run_id, "test_examples.json", str(tmp_path / "first"))).read_text()
    )
    assert logged["ids"] == [ex.id for ex in test] and answers == logged["hypotheses"]


def in_flight(storage: str, name: str) -> bool:
    """One trial COMPLETE and the next one RUNNING with its MLflow run started."""
    try:
        trials = optuna.load_study(study_name=name, storage=journal(storage)).get_trials(deepcopy=False)
    except KeyError:
        return False
    return any(t.state == TrialState.COMPLETE for t in trials) and any(
        t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs for t in trials
    )


@pytest.mark.slow
def test_killed_sweep_resumes_without_repeating(tmp_path: Path, stores, base_model) -> None:
    path = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu, rouge1, rouge2]}\n", name="killed")
    storage, uri = stores
    env = cli_env(stores)
    proc = subprocess.Popen(
        harness_cmd("sweep", str(path), "--no-report"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: in_flight(storage, "killed") or proc.poll() is not None,
            300,
            "a trial running after the first one completed",
            every=0.3,
        )
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the running trial stays RUNNING
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    before = optuna.load_study(study_name="killed", storage=journal(storage)).get_trials(deepcopy=False)
    done_before = {t.number: t.params for t in before if t.state == TrialState.COMPLETE}
    assert done_before

    rerun = subprocess.run(
        harness_cmd("sweep", str(path), "--no-report"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    trials = optuna.load_study(study_name="killed", storage=journal(storage)).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["grpo.reward"] for t in complete) == ["bleu", "rouge1", "rouge2"]  # none twice
    for number, params in done_before.items():
        assert trials[number].state == TrialState.COMPLETE and trials[number].params == params
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    for t in killed:
        assert trials[t.number].state == TrialState.FAIL and "died" in trials[t.number].user_attrs["error"]
    client, experiment, parents, runs = runs_of(uri, "killed")
    assert not client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert parents[0].info.status == "FINISHED"
    assert sum(r.info.status == "KILLED" for r in runs) == len(killed)
    assert sum(r.data.tags["harness.state"] == "COMPLETE" for r in runs) == 3


@pytest.mark.slow
def test_two_workers_run_distinct_trials(tmp_path: Path, stores, base_model) -> None:
    path = study_file(
        tmp_path,
        """
        space:
          grpo.reward: {choices: [bleu, rouge1]}
        seeds: [0, 1]
        """,
        name="pair",
    )
    storage, uri = stores
    result = subprocess.run(
        harness_cmd("sweep", str(path), "--workers", "2", "--no-report"),
        cwd=tmp_path,
        env=cli_env(stores),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="pair", storage=journal(storage)).get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    points = {(t.params["grpo.reward"], t.params[SEED]) for t in trials}
    assert len(points) == 4  # no point ran twice
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers ran trials
    logs = sorted((tmp_path / "mlruns" / "logs").glob("pair-worker*.log"))
    assert len(logs) == 2
    _, _, _, runs = runs_of(uri, "pair")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}


def test_identical_trial_is_reused(tmp_path: Path, stores, fake, monkeypatch) -> None:
    """A second study with a trial identical to a finished one (same resolved config, same clean commit,
    same starting checkpoint) reuses it: no training, the original's metrics, histories and artifacts in
    its own run, tagged with the original's run id. A dirty tree never reuses."""
    import harness.sweep.objective as objective_lib
    import harness.train.trial as trial_lib

    monkeypatch.setattr(objective_lib, "git_commit", lambda: "0123456789abcdef0123456789abcdef01234567")
    fake()
    calls = []
    real = trial_lib.run_trial
    monkeypatch.setattr(trial_lib, "run_trial", lambda cfg, **kw: calls.append(cfg.grpo.reward) or real(cfg, **kw))
    storage, uri = stores
    first = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu, rouge1]}\n", name="first")
    run_sweep(load_study(first), storage=storage, tracking_uri=uri, progress=False)
    second = study_file(tmp_path, "space:\n  grpo.reward: {choices: [rouge1, meteor]}\n", name="second")
    run_sweep(load_study(second), storage=storage, tracking_uri=uri, progress=False)
    assert sorted(calls) == ["bleu", "meteor", "rouge1"]  # rouge1 trained once, in the first study
    client, _, _, first_trials = runs_of(uri, "first")
    _, _, _, second_trials = runs_of(uri, "second")
    original = next(r for r in first_trials if r.data.params["grpo.reward"] == "rouge1")
    reused = next(r for r in second_trials if r.data.params["grpo.reward"] == "rouge1")
    assert reused.data.tags["harness.reused_from"] == original.info.run_id
    assert reused.data.tags["harness.state"] == "COMPLETE" and "harness.reused_from" not in original.data.tags
    assert reused.data.metrics["test/bleu"] == original.data.metrics["test/bleu"]
    history = [(m.step, m.value) for m in client.get_metric_history(reused.info.run_id, "val/bleu")]
    assert history == [(m.step, m.value) for m in client.get_metric_history(original.info.run_id, "val/bleu")]
    artifacts = {a.path for a in client.list_artifacts(reused.info.run_id)}
    assert {"test_examples.json", "trial_config.yaml", "samples"} <= artifacts

    monkeypatch.setattr(objective_lib, "git_commit", lambda: "0123456789abcdef0123456789abcdef01234567-dirty")
    third = study_file(tmp_path, "space:\n  grpo.reward: {choices: [rouge1]}\n", name="third")
    run_sweep(load_study(third), storage=storage, tracking_uri=uri, progress=False)
    assert calls.count("rouge1") == 2  # dirty code: trained again
