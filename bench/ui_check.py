"""Look at what `harness ui` shows: screenshots of a study's runs table and of one trial run's page.

Starts `harness ui --no-open` on a free port against a tracking store, waits for the MLflow server, loads
the runs view of the study's experiment (the address `harness ui` prints) and the page of one trial
run in headless Chromium, saves the PNGs into --out, then stops the server. Not run in CI; it needs
Debian's ``chromium-headless-shell`` (``apt-get update && apt-get install chromium-headless-shell``).

    python bench/ui_check.py --tracking-uri sqlite:////tmp/store/mlflow.db --out /tmp/ui-shots [--study NAME]

Writes ``runs.png`` (the study's runs table, as `harness ui` prints it), ``trials.png`` (the same
filtered to the trial runs, by name), ``run.png`` (the last trial run's overview: name, description,
metrics, params), ``artifacts.png`` (its test predictions table) and ``models.png`` (the experiment's
logged models), and prints what it loaded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

BROWSER = "chromium-headless-shell"
READY_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"`harness ui` exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the MLflow server did not answer {url} within {timeout:.0f} s")


def screenshot(browser: str, url: str, out: Path, profile: Path) -> None:
    cmd = [
        browser,
        "--no-sandbox",
        f"--user-data-dir={profile}",
        f"--screenshot={out}",
        "--window-size=1600,1000",
        "--virtual-time-budget=15000",
        "--hide-scrollbars",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{browser} failed on {url} ({proc.returncode}): {proc.stderr[-2000:]}")
    print(f"{out}  <-  {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="the store `harness ui` serves (sqlite:///...)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG screenshots")
    parser.add_argument("--study", default=None, help="the study to look at (default: the most recent one)")
    args = parser.parse_args()

    browser = shutil.which(BROWSER)
    if browser is None:
        print(f"error: {BROWSER} not found. Fix: apt-get update && apt-get install {BROWSER}", file=sys.stderr)
        return 2
    from mlflow import MlflowClient

    from harness.sweep.ui import runs_url, study_experiments
    from harness.vocabulary import PREDICTIONS_ARTIFACT

    (name, experiment_id), *_ = study_experiments(args.tracking_uri, args.study)
    client = MlflowClient(args.tracking_uri)
    trials = client.search_runs(
        [experiment_id], filter_string="tags.`harness.role` = 'trial'", order_by=["attributes.start_time ASC"]
    )
    if not trials:
        print(f"error: study {name!r} has no trial run to show", file=sys.stderr)
        return 2
    trial = trials[-1]
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="ui-check-"))  # harness ui's cwd: its server log lands in work/mlruns/logs
    command = ["ui", "--port", str(port), "--tracking-uri", args.tracking_uri, "--no-open", "--study", name]
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *command],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server, READY_S)
        runs = runs_url(port, experiment_id, trials_only=False)
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"
        view = "workflowType=machine_learning"  # MLflow 3 would open its GenAI views
        pages = {
            "runs.png": runs,
            "trials.png": runs_url(port, experiment_id),  # the address `harness ui` prints
            "run.png": f"{base}/runs/{trial.info.run_id}?{view}",
            "artifacts.png": f"{base}/runs/{trial.info.run_id}/artifacts/{PREDICTIONS_ARTIFACT}?{view}",
            "models.png": f"{base}/models?{view}",
        }
        for file, url in pages.items():
            screenshot(browser, url, args.out / file, work / "chromium-profile")
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C: harness ui stops its MLflow server
        try:
            printed, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            printed, _ = server.communicate()
        logs = sorted((work / "mlruns" / "logs").glob("ui-*.log"))
        log_lines = len(logs[0].read_text(errors="replace").splitlines()) if logs else 0
        shutil.rmtree(work, ignore_errors=True)
    print(f"`harness ui` printed:\n{printed.rstrip()}")
    print(f"(the server's log had {log_lines} lines, none of them on the terminal)")
    printed_urls = re.findall(r"http://\S+/runs\?workflowType=machine_learning", printed)
    if runs not in printed_urls:
        print(f"error: `harness ui` did not print {runs}", file=sys.stderr)
        return 1
    print(f"trial run shown: {trial.info.run_name} ({trial.info.run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
