"""Several workers on one study in a real PostgreSQL (Optuna RDB storage with heartbeats) and a real
`mlflow server`: one worker is SIGKILLed mid-trial, the study still runs every planned trial exactly
once, the killed trial's retry resumes from its checkpoint, no MLflow run is left RUNNING, and the
database password appears nowhere.

Needs PostgreSQL: `make test` starts one on loopback and sets HARNESS_TEST_POSTGRES_URL; without
a reachable server the test is skipped with the reason.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from fakes import wait_for
from mlflow import MlflowClient
from optuna.trial import TrialState
from servers import MlflowServer, postgres_database

REPO = Path(__file__).resolve().parent.parent
CACHE = os.environ.get("HARNESS_CACHE", str(REPO / ".cache" / "harness"))
PASSWORD = "harness-pw"  # the role's password in HARNESS_TEST_POSTGRES_URL (scripts/start_postgres.sh)

STUDY = """
name: shared
fixed:
  task: sqa
  method: grpo
  train: {steps: 4, batch_size: 2, eval_every: 1, checkpoint_every: 1}
  grpo: {group_size: 3, max_new_tokens: 8}
  data: {train_size: 16, validation_size: 8, test_size: 8}
  eval: {bertscore: false, max_new_tokens: 8}
space:
  grpo.reward: {choices: [bleu, rouge1]}
seeds: [0, 1]
"""


@pytest.fixture
def postgres_url():
    try:
        url, drop = postgres_database()
    except LookupError as why:
        pytest.skip(f"no PostgreSQL for the multi-worker test: {why}")
    yield url
    drop()


def trials_of(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    except KeyError:
        return []


@pytest.mark.slow
def test_three_workers_one_killed_on_postgres(
    tmp_path: Path, postgres_url: str, empty_mlflow_db: Path, base_model
) -> None:
    assert PASSWORD in postgres_url
    server = MlflowServer(tmp_path / "mlflow", empty_mlflow_db).start()
    study = tmp_path / "shared.yaml"
    study.write_text(textwrap.dedent(STUDY).lstrip())
    env = {
        **os.environ,
        "HARNESS_CACHE": CACHE,
        "HARNESS_HEARTBEAT_S": "3",
        "HARNESS_TORCH_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }  # this checkout's harness, whatever the venv has installed
    env.pop("HARNESS_OPTUNA_STORAGE", None)
    cli = [sys.executable, "-m", "harness.cli"]
    procs: list[subprocess.Popen] = []
    logs = [tmp_path / f"process{i}.log" for i in range(3)]

    def start(args, env, log):
        return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    try:
        # The first process creates the study (URL on its command line), two more join it (URL in env).
        procs.append(
            start(
                [*cli, "sweep", str(study), "--storage", postgres_url, "--tracking-uri", server.uri, "--no-report"],
                env,
                logs[0],
            )
        )
        client = MlflowClient(server.uri)
        wait_for(
            lambda: trials_of(postgres_url) and client.get_experiment_by_name("shared"),
            180,
            "the study to start",
            dict(zip(procs, logs)),
        )
        worker_env = {**env, "HARNESS_OPTUNA_STORAGE": postgres_url, "MLFLOW_TRACKING_URI": server.uri}
        for log in logs[1:]:
            procs.append(start([*cli, "worker", str(study)], worker_env, log))
        joined = {p.pid for p in procs[1:]}

        def a_joined_worker_mid_trial():
            for t in trials_of(postgres_url):  # step 2 reported: the step-1 checkpoint is on disk
                if (
                    t.state == TrialState.RUNNING
                    and t.user_attrs.get("worker", {}).get("pid") in joined
                    and max(t.intermediate_values, default=0) >= 2
                ):
                    return t
            return None

        victim = wait_for(
            a_joined_worker_mid_trial, 300, "a joined worker in the middle of a trial", dict(zip(procs, logs))
        )
        killed = next(p for p in procs if p.pid == victim.user_attrs["worker"]["pid"])
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        for p, log in zip(procs, logs):
            if p is not killed:
                assert p.wait(timeout=420) == 0, log.read_text()[-3000:]
            assert PASSWORD not in log.read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server_log = server.root / "server.log"
        server.stop()

    trials = trials_of(postgres_url)
    complete = collections.Counter(
        (t.params["grpo.reward"], t.params["seed"]) for t in trials if t.state == TrialState.COMPLETE
    )
    assert complete == {(r, s): 1 for r in ("bleu", "rouge1") for s in (0, 1)}  # every point, exactly once
    assert trials[victim.number].state == TrialState.FAIL
    retries = [t for t in trials if victim.number in (t.system_attrs.get("failed_trial"), t.user_attrs.get("retry_of"))]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == victim.params
    assert len({t.user_attrs["worker"]["pid"] for t in trials if t.state == TrialState.COMPLETE}) >= 2

    client = MlflowClient(f"sqlite:///{server.root / 'mlflow.db'}")  # the server's own store, read directly
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    by_id = {r.info.run_id: r for r in runs}
    dead = by_id[victim.user_attrs["mlflow_run_id"]]
    assert dead.info.status == "KILLED" and dead.data.tags["harness.state"] == "FAIL"
    retry_run = by_id[retries[0].user_attrs["mlflow_run_id"]]
    assert retry_run.info.status == "FINISHED"
    assert int(retry_run.data.tags["harness.resumed_from_step"]) >= 1  # continued from its checkpoint
    finished = [r for r in runs if r.data.tags.get("harness.role") == "trial" and r.info.status == "FINISHED"]
    assert len(finished) == 4  # all workers' results in one experiment
    (parent,) = [r for r in runs if r.data.tags.get("harness.role") == "study"]
    assert parent.info.status == "FINISHED"
    assert "***" in parent.data.tags["harness.command"]
    for run in runs:
        for value in [*run.data.params.values(), *run.data.tags.values()]:
            assert PASSWORD not in value, (run.info.run_name, value)
    assert PASSWORD not in server_log.read_text()
    assert not list((tmp_path / "mlruns" / "checkpoints").rglob("*.pt"))  # finished trials leave none
