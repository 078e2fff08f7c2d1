"""What a study leaves for the MLflow UI: trial runs named and described after their configuration and
seed, logged models named the same way, the study run's best objective value, each trial's test
predictions as an MLflow table, per-step token counts under their own keys; and `harness ui`, which
prints each study's runs-table address and keeps the server's log off the terminal. Real MLflow sqlite
stores and Optuna journals; fake trials (tests/fakes.py) whose test set is the data's test split."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import fake_data, invoke, study_file
from mlflow import MlflowClient
from optuna.trial import TrialState
from servers import free_port

import harness.train.trial as trial_lib
from harness.eval.evaluate import Evaluation
from harness.study import load_study
from harness.sweep import run_sweep
from harness.vocabulary import (
    BEST_TRIAL,
    EXAMPLES_ARTIFACT,
    GENERATED_TOKENS,
    NOTE_TAG,
    PREDICTION_COLUMNS,
    PREDICTIONS_ARTIFACT,
    STEP_PREFIX,
    TAG_LABEL,
    TRAINED_TOKENS,
    best_key,
)

BODY = """
    space:
      grpo.reward: {choices: [bleu, rouge1], when: {method: grpo}}
    seeds: [1]
    baselines:
      - {method: sft}
    objective: {metric: test/bleu}
    """
BLEU = {"bleu": 11.0, "rouge1": 13.25}  # test BLEU of the GRPO trials by reward; SFT: 12.5
# what each training step reports (harness.train: a step's counts under step/, the run's totals bare)
STEP_TOKENS = {STEP_PREFIX + GENERATED_TOKENS: 30.0, STEP_PREFIX + TRAINED_TOKENS: 20.0}


def bleu_of(cfg) -> float:
    return BLEU[cfg.grpo.reward] if cfg.method == "grpo" else 12.5


@pytest.fixture
def sweep(tmp_path: Path, stores, fake, monkeypatch):
    """A 3-trial study (sft, grpo x {bleu, rouge1}, seed 1) whose trials are tested on the data's test split
    (one prediction per test example) and report token counts at each step."""
    fake(test_bleu=bleu_of, weights=lambda cfg: {"lora.weight": torch.ones(2, 2)})
    inner = trial_lib.run_trial

    def run_trial(cfg, log=lambda m, s: None, **kwargs):
        def with_tokens(metrics, step):
            log({**metrics, **STEP_TOKENS} if "loss" in metrics else metrics, step)

        result = inner(cfg, log=with_tokens, **kwargs)
        test = fake_data(cfg)["test"].examples
        n = len(test)
        return dataclasses.replace(
            result,
            test=Evaluation(
                result.test.scores,
                [ex.id for ex in test],
                [ex.answer for ex in test],
                [f"prediction {i}" for i in range(n)],
                {"bleu": np.arange(n) * 10.0, "rouge1": np.arange(n) * 5.0},
                None,
            ),
        )

    monkeypatch.setattr(trial_lib, "run_trial", run_trial)
    storage, uri = stores
    study = load_study(study_file(tmp_path, BODY, "ui_records"))
    result = run_sweep(study, storage=storage, tracking_uri=uri, progress=False)
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] * 3
    return study, result, uri


def test_runs_models_best_value_and_predictions_table(tmp_path: Path, sweep) -> None:
    study, result, uri = sweep
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ui_records")
    runs = client.search_runs([experiment.experiment_id])
    (study_run,) = [r for r in runs if r.data.tags["harness.role"] == "study"]
    trial_runs = {int(r.data.tags["harness.trial_number"]): r for r in runs if r.data.tags["harness.role"] == "trial"}
    models = {m.source_run_id: m for m in client.search_logged_models([experiment.experiment_id])}
    test_size = 4  # TINY's data.test_size
    for trial in result.trials:
        run = trial_runs[trial.number]
        label = trial.user_attrs["label"]
        reward = trial.params.get("grpo.reward")
        name = f"{label}-{reward}-s1" if reward else f"{label}-s1"
        assert run.info.run_name == f"{trial.number:03d}-{name}"  # number, label, swept value, seed
        assert models[run.info.run_id].name == name  # the logged model: the same, without the number
        assert run.data.tags[TAG_LABEL] == label  # what the reports read is unchanged
        swept = f"; grpo.reward={reward}" if reward else ""
        assert run.data.tags[NOTE_TAG] == f"{label}{swept}; seed=1; COMPLETE: test/bleu={trial.value:.2f}"

        # one key, one meaning: the run's totals (logged by the sweep at the end) under the bare keys only
        history = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in (GENERATED_TOKENS, TRAINED_TOKENS, STEP_PREFIX + GENERATED_TOKENS)
        }
        assert history[GENERATED_TOKENS] == [(2, 100.0)] and history[TRAINED_TOKENS] == [(2, 0.0)]
        assert history[STEP_PREFIX + GENERATED_TOKENS] == [(1, 30.0), (2, 30.0)]

        # the test predictions as an MLflow table (the UI shows it as one); the reports' file is still there
        local = Path(client.download_artifacts(run.info.run_id, PREDICTIONS_ARTIFACT, str(tmp_path / run.info.run_id)))
        table = json.loads(local.read_text())
        assert table["columns"] == [*PREDICTION_COLUMNS, "bleu", "rouge1"]
        expected = fake_data(study.resolve(trial.params, trial.user_attrs.get("baseline")))["test"].examples
        assert len(table["data"]) == test_size == len(expected)
        for i, (row, ex) in enumerate(zip(table["data"], expected)):
            assert row == [ex.id, ex.prompt, ex.transcript, ex.answer, f"prediction {i}", i * 10.0, i * 5.0]
        assert {"path": PREDICTIONS_ARTIFACT, "type": "table"} in json.loads(run.data.tags["mlflow.loggedArtifacts"])
        assert EXAMPLES_ARTIFACT in {a.path for a in client.list_artifacts(run.info.run_id)}

    # the study run: the best objective value and its trial, as a curve over the completed trials
    best = max(result.trials, key=lambda t: t.value)
    assert study_run.data.metrics[best_key("test/bleu")] == best.value == 13.25
    assert study_run.data.metrics[BEST_TRIAL] == best.number
    curve = [(m.step, m.value) for m in client.get_metric_history(study_run.info.run_id, best_key("test/bleu"))]
    assert [s for s, _ in curve] == [1, 2, 3]
    assert [v for _, v in curve] == list(np.maximum.accumulate([t.value for t in result.trials]))


def test_ui_prints_each_studys_runs_table_and_logs_elsewhere(tmp_path: Path, sweep, monkeypatch) -> None:
    _, _, uri = sweep
    monkeypatch.chdir(tmp_path)
    experiment_id = MlflowClient(uri).get_experiment_by_name("ui_records").experiment_id

    bad = invoke("ui", "--tracking-uri", uri, "--study", "no_such_study", "--no-open")
    assert bad.exit_code == 2
    assert "no study named 'no_such_study'" in bad.stderr and "studies there: ui_records" in bad.stderr
    assert "Fix:" in bad.stderr

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "ui", "--port", str(port), "--tracking-uri", uri, "--no-open"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = tmp_path / "mlruns" / "logs" / f"ui-{port}.log"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None and "GET /health" not in _read(log):
            time.sleep(0.5)
        rest = _rest_view(port, experiment_id)  # what the UI itself reads, over MLflow's REST API
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=90)
    assert server.returncode == 0, out
    url = (
        f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        "&searchFilter=tags.%60harness.role%60%20%3D%20%27trial%27&orderByKey=attributes.run_name&orderByAsc=true"
    )
    assert f"  study ui_records: {url}" in out.splitlines()
    names, study_metrics, histories, artifacts = rest
    assert sorted(n[4:] for n in names) == ["grpo-bleu-s1", "grpo-rouge1-s1", "sft-s1"]  # config and seed
    assert sorted(n[:3] for n in names) == ["000", "001", "002"]  # after the trial number
    assert study_metrics[best_key("test/bleu")] == 13.25  # the study run's best objective
    for history in histories:  # one key, one meaning: the run total once, the per-step counts elsewhere
        assert [(h["step"], h["value"]) for h in history] == [(2, 100.0)]
    assert all(PREDICTIONS_ARTIFACT in files for files in artifacts)
    assert f"server log mlruns/logs/ui-{port}.log" in out
    assert "GET /health" in _read(log) and "GET " not in out  # the request log went to the file


def _rest_view(port: int, experiment_id: str):
    """Trial run names, the study run's metrics, each trial's ``generated_tokens`` history and its artifact
    paths, read over MLflow's REST API from the `harness ui` server."""

    def call(path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    runs = call("runs/search", {"experiment_ids": [experiment_id], "max_results": 100})["runs"]

    def tags(run: dict) -> dict:
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    trials = [r for r in runs if tags(r).get("harness.role") == "trial"]
    (study,) = [r for r in runs if tags(r).get("harness.role") == "study"]
    names = [r["info"]["run_name"] for r in trials]
    study_metrics = {m["key"]: m["value"] for m in study["data"].get("metrics", [])}
    histories = [
        call("metrics/get-history", query={"run_id": r["info"]["run_id"], "metric_key": GENERATED_TOKENS})["metrics"]
        for r in trials
    ]
    artifacts = [
        {f["path"] for f in call("artifacts/list", query={"run_id": r["info"]["run_id"]}).get("files", [])}
        for r in trials
    ]
    return names, study_metrics, histories, artifacts


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
