"""Fault injection: each fault ends the trial it hits as failed with the reason recorded (in Optuna and
MLflow) and the study goes on; a tracking server that goes away and comes back loses no metric; one
that stays away stops the worker with a clear message (killed workers: test_postgres.py; checkpoint
resume: test_resume.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from fakes import study_file
from mlflow import MlflowClient
from optuna.trial import TrialState
from servers import MlflowServer
from typer.testing import CliRunner

import harness.rewards
import harness.train.trial as trial_lib
from harness.cli import app
from harness.config import TrialConfig
from harness.data.dataset import SpokenSet
from harness.study import load_study
from harness.sweep import open_storage, run_sweep

REAL = """
name: {name}
fixed:
  task: sqa
  method: grpo
  train: {{steps: {steps}, batch_size: 2, eval_every: 1}}
  grpo: {{group_size: 3, max_new_tokens: 8}}
  data: {{train_size: 8, validation_size: 4, test_size: 4}}
  eval: {{bertscore: false, max_new_tokens: 8}}
space:
  grpo.reward: {{choices: [{choices}]}}
"""


def real_study(tmp_path: Path, name: str, choices: str, steps: int = 2) -> Path:
    """A study of GRPO on the real tiny model, one trial per reward in ``choices``."""
    return study_file(tmp_path, REAL.format(name=name, choices=choices, steps=steps), name, base="")


# ---------------------------------------------------------------------------------------------
# Trial-level faults on the real tiny model: NaN reward, raising reward, out of memory, bad audio
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trial_faults_fail_the_trial_and_the_study_goes_on(tmp_path: Path, stores, base_model, monkeypatch) -> None:
    real_scores, real_load, real_grpo_step = harness.rewards.score_many, trial_lib.load_task_data, trial_lib.grpo_step

    def faulty_scores(names, hyps, refs):  # rouge1: NaN rewards; rouge2: the reward function raises
        if "rouge2" in names:
            raise RuntimeError("reward function crashed")
        scores = real_scores(names, hyps, refs)
        return {k: np.full_like(v, np.nan) if k == "rouge1" else v for k, v in scores.items()}

    def faulty_grpo_step(
        learner, prompts, answers, reward, cfg, **kwargs
    ):  # rougeL: the accelerator runs out of memory
        if reward.spec == "rougeL":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_grpo_step(learner, prompts, answers, reward, cfg, **kwargs)

    def faulty_data(cfg: TrialConfig):  # meteor: one test clip is not a readable audio file
        data = real_load(cfg)
        if cfg.grpo.reward == "meteor":
            broken = tmp_path / "broken.wav"
            broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
            examples = [dataclasses.replace(data["test"].examples[0], audio=str(broken)), *data["test"].examples[1:]]
            data["test"] = SpokenSet.from_examples(examples)
        return data

    monkeypatch.setattr(harness.rewards, "score_many", faulty_scores)
    monkeypatch.setattr(trial_lib, "grpo_step", faulty_grpo_step)
    monkeypatch.setattr(trial_lib, "load_task_data", faulty_data)
    storage, uri = stores
    study = run_sweep(
        load_study(real_study(tmp_path, "faults", "bleu, rouge1, rouge2, rougeL, meteor")),
        storage=storage,
        tracking_uri=uri,
        progress=False,
    )

    by_reward = {t.params["grpo.reward"]: t for t in study.trials}
    assert by_reward["bleu"].state == TrialState.COMPLETE
    expected = {
        "rouge1": "FloatingPointError: ",  # the NaN reward makes a NaN advantage and loss
        "rouge2": "RuntimeError: reward function crashed",
        "rougeL": "OutOfMemoryError: CUDA out of memory",
        "meteor": f"AudioError: cannot read audio file {tmp_path / 'broken.wav'}",
    }
    client = MlflowClient(uri)
    for reward, reason in expected.items():
        trial = by_reward[reward]
        assert trial.state == TrialState.FAIL and trial.user_attrs["error"].startswith(reason), trial.user_attrs
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FAILED" and run.data.tags["harness.error"].startswith(reason)
    assert "nan" in by_reward["rouge1"].user_attrs["error"].lower()


def test_nan_loss_stops_training_with_the_step(monkeypatch) -> None:
    with pytest.raises(FloatingPointError, match="loss is nan at step 3"):
        trial_lib.check_finite({"loss": float("nan"), "reward": 0.5}, 3)
    with pytest.raises(FloatingPointError, match="grad_norm is inf at step 1"):
        trial_lib.check_finite({"loss": 1.0, "grad_norm": float("inf")}, 1)
    trial_lib.check_finite({"loss": 1.0, "reward": 0.0, "grad_norm": 3.0}, 1)


# ---------------------------------------------------------------------------------------------
# The tracking server goes away (real `mlflow server`, fake trials)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, empty_mlflow_db: Path):
    server = MlflowServer(tmp_path / "server", empty_mlflow_db).start()
    yield server
    server.stop()


def test_tracking_server_outage_loses_no_metric(tmp_path: Path, server, fake, monkeypatch) -> None:
    """The server is down for steps 2-3 of a trial (its async batches fail: no HTTP retries here), then
    comes back: the trial completes and MLflow has every step's metrics."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def outage(cfg, step, call):
        if call == 0 and step == 2:
            server.stop()
        if call == 0 and step == 4:
            server.start()
        return 10.0 + step

    fake(val=outage, sleep=1.2)
    study = run_sweep(
        load_study(real_study(tmp_path, "outage", "bleu, rouge1", steps=5)),
        storage=str(tmp_path / "optuna.log"),
        tracking_uri=server.uri,
        progress=False,
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    client = MlflowClient(server.uri)
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        assert client.get_run(run_id).info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run_id, "reward")] == [1, 2, 3, 4, 5]
        assert [m.step for m in client.get_metric_history(run_id, "val/bleu")] == [0, 1, 2, 3, 4, 5]


def test_tracking_server_gone_stops_the_worker_clearly(tmp_path: Path, server, fake, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.chdir(tmp_path)

    def gone(cfg, step, call):
        if step == 1:
            server.stop()
        return 10.0

    fake(val=gone)
    path = real_study(tmp_path, "gone", "bleu, rouge1")
    result = CliRunner().invoke(
        app,
        ["sweep", str(path), "--storage", str(tmp_path / "optuna.log"), "--tracking-uri", server.uri, "--no-report"],
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"MLflow tracking server '{server.uri}' stopped answering" in result.stderr
    assert "run the same command again" in result.stderr
    trials = optuna.load_study(study_name="gone", storage=open_storage(str(tmp_path / "optuna.log"))).trials
    assert len(trials) == 1  # the worker stopped instead of failing every remaining trial
    assert trials[0].state == TrialState.FAIL and "stopped answering" in trials[0].user_attrs["error"]
