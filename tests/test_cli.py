"""The `harness` command: user errors exit 2 with one clear message, and `harness ui` serves the store."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fakes import TINY, invoke
from servers import free_port

BAD_REWARD = "fixed: {task: sqa}\nspace:\n  grpo.reward:\n    choices: [bleu, rouge1, blue]\n"


def test_malformed_study_exits_2_with_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_REWARD)
    result = invoke("sweep", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:4: field space.grpo.reward.choices.2: unknown reward 'blue'" in result.stderr
    assert "Fix:" in result.stderr
    assert result.stdout == ""


def test_malformed_study_in_a_real_process(tmp_path: Path) -> None:
    """The installed entry point: exit status 2, one message on stderr, no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("fixed:\n  task: sqa\n  grpo: {group_size: 1}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "sweep", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:3: field fixed.grpo.group_size: Input should be greater than or equal to 2" in proc.stderr
    assert not (tmp_path / "mlruns").exists()  # nothing was created before validation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fixed:\n  task: [sqa\n", ":3: YAML syntax error"),
        ("fixed:\n  train: {stesp: 2}\n", ":2: field fixed.train.stesp"),
        (
            "fixed:\n  data: {source: /no/such/data}\n",
            ":2: field fixed.data.source: data path '/no/such/data' does not exist",
        ),
        ("spcae: {}\n", ":1: field spcae"),
    ],
)
def test_other_malformed_studies(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = invoke("sweep", str(path))
    assert result.exit_code == 2 and expected in result.stderr, result.stderr


def test_missing_study_file(tmp_path: Path) -> None:
    result = invoke("sweep", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "nope.yaml" in result.stderr and "not found" in result.stderr


def test_bad_storage_url_is_masked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("fixed: {task: sqa}\n")
    result = invoke("sweep", str(study), "--storage", "postgresql://alice:s3cret@127.0.0.1:1/optuna")
    assert result.exit_code == 2
    assert "alice:***@127.0.0.1" in result.stderr and "s3cret" not in result.output
    result = invoke("sweep", str(study), "--storage", "redis://localhost/0")
    assert result.exit_code == 2 and "unknown scheme 'redis'" in result.stderr


def test_worker_needs_a_started_study(tmp_path: Path, stores) -> None:
    storage, uri = stores
    study = tmp_path / "s.yaml"
    study.write_text("fixed: {task: sqa}\n")
    result = invoke("worker", str(study), "--storage", storage, "--tracking-uri", uri)
    assert result.exit_code == 2 and "does not exist" in result.stderr and "harness sweep" in result.stderr


def test_trial_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("task: sqa\ngrpo:\n  reward: bleu+rogue1\n")
    result = invoke("trial", str(cfg))
    assert result.exit_code == 2 and f"{cfg}:3: field grpo.reward: unknown reward 'rogue1'" in result.stderr


def two_trial_sweep(tmp_path: Path, monkeypatch, stores, fake, name: str, *options: str):
    """Run a 2-trial study (fake trials) through the CLI in tmp_path; returns (result, tracking URI)."""
    fake()
    monkeypatch.chdir(tmp_path)
    storage, uri = stores
    study = tmp_path / f"{name}.yaml"
    study.write_text(TINY + "space:\n  grpo.reward: {choices: [bleu, rouge1]}\n")
    return invoke("sweep", str(study), "--storage", storage, "--tracking-uri", uri, *options), uri


def test_sweep_runs_and_prints_summary(tmp_path: Path, monkeypatch, stores, fake) -> None:
    result, _ = two_trial_sweep(tmp_path, monkeypatch, stores, fake, "cli-study")
    assert result.exit_code == 0, result.output
    for k, number in ((1, 0), (2, 1)):  # [k/N] trial n, its swept value and seed, state, objective, ETA
        assert re.search(
            rf"^\[{k}/2\] trial {number} grpo reward=(bleu|rouge1) seed=0 COMPLETE test/bleu=12.50 \(.*ETA .*\)$",
            result.stderr,
            re.M,
        ), result.stderr
    assert "study cli-study: 2 complete, 0 pruned, 0 fail" in result.stderr
    assert "report: reports/cli-study" in result.stderr and (tmp_path / "reports/cli-study/report.md").is_file()


# ---------------------------------------------------------------------------------------------
# harness ui
# ---------------------------------------------------------------------------------------------


def get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_serves_the_store_over_rest(tmp_path: Path, monkeypatch, stores, fake) -> None:
    result, uri = two_trial_sweep(tmp_path, monkeypatch, stores, fake, "ui-study", "--no-report")
    assert result.exit_code == 0

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "ui", "--port", str(port), "--tracking-uri", uri],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, experiment = time.monotonic() + 90, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                experiment = get_json(f"{base}/experiments/get-by-name?experiment_name=ui-study")["experiment"]
                break
            except OSError:
                time.sleep(0.5)
        assert experiment is not None, "the MLflow server did not answer"
        runs = get_json(f"{base}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        tags = [{t["key"]: t["value"] for t in run["data"]["tags"]} for run in runs]
        assert sorted(t["harness.role"] for t in tags) == ["study", "trial", "trial"]
        parent = next(run for run, t in zip(runs, tags) if t["harness.role"] == "study")
        assert all(t["mlflow.parentRunId"] == parent["info"]["run_id"] for t in tags if t["harness.role"] == "trial")
        assert all(t["harness.state"] == "COMPLETE" for t in tags if t["harness.role"] == "trial")
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: harness ui stops the mlflow server it started
        try:
            out, _ = server.communicate(timeout=90)  # a loaded machine shuts uvicorn down slowly
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            out, _ = server.communicate()
    assert f"MLflow UI: http://127.0.0.1:{port}" in out
    assert server.returncode == 0, out
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # the server is gone too
