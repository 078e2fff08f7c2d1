"""The MLflow UI over a tracking store (``harness ui``): which studies the store holds, the address of each
one's runs table, and the server process with its log.

MLflow 3 opens an experiment in its GenAI traces view unless the address asks for the model-training
runs table (`runs_url`); the server's own output (request log, warnings) goes to
``mlruns/logs/ui-PORT.log``, not the terminal (`start_server`)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request
import webbrowser
from pathlib import Path

from mlflow.tracking import MlflowClient

from harness.study import StudyError
from harness.sweep.stores import STORE_DIR, mask_url
from harness.vocabulary import ROLE_STUDY, ROLE_TRIAL, TAG_ROLE

__all__ = [
    "UI_HOST",
    "UI_READY_S",
    "answers",
    "log_tail",
    "open_in_browser",
    "runs_url",
    "server_command",
    "start_server",
    "study_experiments",
]

UI_HOST = "127.0.0.1"
UI_READY_S = 120.0  # how long `harness ui` waits for the MLflow server to answer before it opens a browser


def runs_url(port: int, experiment_id: str, host: str = UI_HOST, trials_only: bool = True) -> str:
    """The MLflow UI's runs table of an experiment (MLflow 3 would otherwise open its GenAI traces view);
    by default the study's trial runs alone, sorted by name (unfiltered, MLflow shows the study run with
    its trials folded under it)."""
    url = f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if not trials_only:
        return url
    query = {"searchFilter": f"tags.`{TAG_ROLE}` = '{ROLE_TRIAL}'", "orderByKey": "attributes.run_name"}
    return url + "&" + urllib.parse.urlencode({**query, "orderByAsc": "true"}, quote_via=urllib.parse.quote)


def study_experiments(uri: str, name: str | None = None) -> list[tuple[str, str]]:
    """(study name, experiment id) of every experiment in the store that has a study run, the most recently
    created first; with ``name``, that study's alone (a StudyError names the studies there are)."""
    client = MlflowClient(uri)
    experiments = {e.experiment_id: e for e in client.search_experiments()}
    with_study: set[str] = set()
    ids = list(experiments)
    for start in range(0, len(ids), 100):  # (search_runs takes a bounded list of experiments)
        token = None
        while True:
            page = client.search_runs(
                ids[start : start + 100],
                filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_STUDY}'",
                max_results=1000,
                page_token=token,
            )
            with_study.update(r.info.experiment_id for r in page)
            token = page.token
            if not token:
                break
    found = sorted(
        (experiments[i] for i in with_study), key=lambda e: (e.creation_time or 0, e.experiment_id), reverse=True
    )
    out = [(e.name, e.experiment_id) for e in found]
    if name is None:
        return out
    chosen = [pair for pair in out if pair[0] == name]
    if not chosen:
        known = ", ".join(n for n, _ in out) or "none yet"
        raise StudyError(
            f"no study named {name!r} in {mask_url(uri)} (studies there: {known}). Fix: pass one of them to "
            "--study, or leave --study out for the most recent one."
        )
    return chosen


def server_command(uri: str, port: int, *artifacts: str) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command over the store ``uri`` on 127.0.0.1:``port`` with one worker and no
    job runners (~0.5 GB instead of ~3 GB), and its environment; ``artifacts``: the artifact flag and
    path (``--default-artifact-root DIR`` or ``--artifacts-destination DIR``)."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, *artifacts]
    cmd += ["--host", UI_HOST, "--port", str(port), "--workers", "1"]
    return cmd, {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start_server(uri: str, artifacts: str, port: int) -> tuple[subprocess.Popen, Path]:
    """An MLflow server over the store ``uri`` on 127.0.0.1:``port`` (`server_command`), its request log
    and warnings in ``mlruns/logs/ui-PORT.log``; returns the process and that log's path."""
    cmd, env = server_command(uri, port, "--default-artifact-root", artifacts)
    log_path = Path(STORE_DIR, "logs", f"ui-{port}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the server's request log and warnings, not this terminal
        server = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return server, log_path


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def open_in_browser(url: str) -> bool:
    """Open ``url`` in a web browser when there is a display to show one on (never a text-mode browser in
    this terminal); never fails."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32")):
        return False
    try:
        return bool(webbrowser.open(url, new=2))
    except Exception:
        return False


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
