"""The ``harness`` command: run studies, join them as a worker, report, browse, debug one trial.

    harness sweep STUDY.yaml [--workers N] [--storage URL] [--tracking-uri URI] [--no-report]
    harness worker STUDY.yaml                 # one more process on a running study
    harness report STUDY(.yaml|name) [--tracking-uri URI] [--out DIR] [--allow-dirty]
    harness report --from-folder reports/STUDY  # recompute a report from its folder alone
    harness ui [--port 5000]                  # MLflow UI on 127.0.0.1 over the local store
    harness trial CONFIG.yaml                 # one TrialConfig, no Optuna/MLflow: prints test scores

User errors (a bad study or config file, an unknown reward, unreadable data, a missing file or tool, a
bad storage URL) print one message to stderr and exit with code 2; a tracking server lost mid-study, or
a study in which no trial completed or was pruned (every one failed), exits with 1.
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["ALLOW_DIRTY_HELP", "STORAGE_HELP", "TRACKING_HELP", "main", "report_cmd", "sweep", "trial", "ui", "worker"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Speech-LM GRPO/SFT experiment harness: studies tracked with MLflow, searched with Optuna.",
)

STORAGE_HELP = "Optuna storage: a journal file path or an RDB URL (postgresql://...). Env: HARNESS_OPTUNA_STORAGE."
TRACKING_HELP = "MLflow tracking URI (default sqlite:///mlruns/mlflow.db). Env: MLFLOW_TRACKING_URI."
ALLOW_DIRTY_HELP = (
    "Write into reports/ even when the trials or this code are not a clean commit (the report's "
    "title then says it is not reproducible from a commit)."
)


def _user_errors(command):
    """Turn the errors a user can fix into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("interrupted: run the same command again to resume.", err=True)
            raise typer.Exit(130) from None
        except Exception as err:
            code = _explained(err)
            if code is None:
                raise
            raise typer.Exit(code) from None

    return wrapper


def _explained(err: Exception) -> int | None:
    """Print ``err`` as one line if a user can act on it and return the exit code (2; 1 for a study that
    was running), else None. The error classes are imported only now, so that starting a command (a
    sweep's worker) does not load every subpackage for them."""
    from harness.data.audio import MissingToolError
    from harness.data.real import DataSourceError
    from harness.models.tiny_base import BaseModelError
    from harness.report import DirtyTree
    from harness.rewards import RewardSpecError
    from harness.study import StudyError
    from harness.sweep import StorageError, TrackingLost, WorkersFailed, mask_url

    if isinstance(err, (StudyError, StorageError, RewardSpecError, DataSourceError, DirtyTree, BaseModelError)):
        typer.echo(f"error: {mask_url(str(err))}", err=True)
    elif isinstance(err, MissingToolError):
        typer.echo(f"error: {err}. Fix: `make setup` installs the Debian packages.", err=True)
    elif isinstance(err, (TrackingLost, WorkersFailed)):  # not user errors: the study was running
        typer.echo(f"error: {mask_url(str(err))}", err=True)
        return 1
    elif isinstance(err, FileNotFoundError):
        typer.echo(f"error: {err.filename or err}: file not found. Fix: check the path.", err=True)
    else:
        return None
    return 2


def _terminate_as_interrupt() -> None:
    """SIGTERM ends a sweep like Ctrl-C: the running trial is recorded FAIL/KILLED, not left RUNNING.
    Ctrl-C works even when started from a shell's background job (which inherits SIGINT ignored)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@app.command()
@_user_errors
def sweep(
    study_file: Annotated[Path, typer.Argument(metavar="STUDY.yaml", help="The study to run or resume.")],
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes sharing the study.")] = 1,
    storage: Annotated[str | None, typer.Option(help=STORAGE_HELP)] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Build reports/<study> at the end.")] = True,
    allow_dirty: Annotated[bool, typer.Option(help=ALLOW_DIRTY_HELP)] = False,
) -> None:
    """Run a study (or resume it: finished trials are not repeated)."""
    from harness.study import load_study
    from harness.sweep import resolve_tracking_uri, run_sweep

    study = load_study(study_file)
    _terminate_as_interrupt()
    optuna_study = run_sweep(study, storage=storage, tracking_uri=tracking_uri, workers=workers, progress=True)
    if not _summary(optuna_study, study):
        raise typer.Exit(1)
    if report:
        _build_report(study.name, Path("reports") / study.name, resolve_tracking_uri(tracking_uri), allow_dirty)


@app.command()
@_user_errors
def worker(
    study_file: Annotated[Path, typer.Argument(metavar="STUDY.yaml")],
    storage: Annotated[str | None, typer.Option(help=STORAGE_HELP)] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
    index: Annotated[int | None, typer.Option(hidden=True, help="Worker index (sampler seed offset).")] = None,
) -> None:
    """Join a running study as one more worker process."""
    from harness.study import load_study
    from harness.sweep import join_sweep

    if index is not None:  # started by `harness sweep --workers N`: load the model stack while the parent sets up
        gc.disable()  # the ~1 M objects the imports create are permanent: no collection passes over them
        try:
            import harness.train.trial  # noqa: F401
        finally:
            gc.freeze()
            gc.enable()
    study = load_study(study_file)
    _terminate_as_interrupt()
    join_sweep(study, storage=storage, tracking_uri=tracking_uri, worker=index, progress=True)


@app.command("report")
@_user_errors
def report_cmd(
    study: Annotated[str | None, typer.Argument(metavar="STUDY", help="A study file (.yaml) or a study name.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default reports/<study>).")] = None,
    from_folder: Annotated[
        Path | None, typer.Option(help="Rebuild the report in this folder from its files alone (no tracking store).")
    ] = None,
    allow_dirty: Annotated[bool, typer.Option(help=ALLOW_DIRTY_HELP)] = False,
) -> None:
    """Build the report of a study from its MLflow runs (or rebuild one from its folder)."""
    from harness.sweep import resolve_tracking_uri

    if from_folder is not None:
        from harness.report import rebuild_report

        typer.echo(f"report: {rebuild_report(from_folder, allow_dirty=allow_dirty)}", err=True)
        return
    if study is None:
        raise typer.BadParameter("give a STUDY (file or name), or --from-folder DIR")
    name = study
    if study.endswith((".yaml", ".yml")) or Path(study).is_file():
        from harness.study import load_study

        name = load_study(study).name
    _build_report(name, out or Path("reports") / name, resolve_tracking_uri(tracking_uri), allow_dirty)


@app.command()
@_user_errors
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: Annotated[
        str | None, typer.Option(help="Backend store (default sqlite:///mlruns/mlflow.db).")
    ] = None,
) -> None:
    """Serve the MLflow UI over the local tracking store until Ctrl-C."""
    from harness.sweep import STORE_DIR, artifact_root, mask_url, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        typer.echo(f"error: {mask_url(uri)} is already a tracking server: open it in a browser.", err=True)
        raise typer.Exit(2)
    artifacts = artifact_root(uri) or str(Path(STORE_DIR, "artifacts").resolve())
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            typer.echo(f"error: port {port} on 127.0.0.1 is in use. Fix: pass --port with a free port.", err=True)
            raise typer.Exit(2)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(cmd, env=env)
    typer.echo(f"MLflow UI: http://127.0.0.1:{port}  (store {mask_url(uri)}; Ctrl-C to stop)")
    _terminate_as_interrupt()
    try:
        while server.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        return
    raise typer.Exit(server.returncode or 1)


@app.command()
@_user_errors
def trial(config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="A TrialConfig YAML.")]) -> None:
    """Run one TrialConfig without Optuna or MLflow and print its test scores (for debugging)."""
    from harness.study import load_trial_config
    from harness.train.trial import run_trial

    cfg = load_trial_config(config)
    result = run_trial(
        cfg,
        log=lambda metrics, step: typer.echo(
            f"step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))),
            err=True,
        ),
    )
    if int(os.environ.get("RANK", "0")) != 0:  # several GPUs (torchrun): rank 0 prints
        return
    for metric, value in result.test.scores.items():
        typer.echo(f"test/{metric}\t{value:.2f}")
    typer.echo(f"best_step\t{result.best_step}")


def _summary(optuna_study, study) -> bool:
    """Print the study's outcome; False when no trial completed or was pruned (all failed)."""
    from optuna.trial import TrialState

    trials = optuna_study.get_trials(deepcopy=False)
    counts = {
        s.name: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    line = f"study {study.name}: " + ", ".join(f"{n} {k.lower()}" for k, n in counts.items())
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed and study.multi_objective:  # no single best: the trials no other trial beats on every objective
        front = sorted(optuna_study.best_trials, key=lambda t: t.number)
        line += (
            f"; Pareto front of {', '.join(f'{o.metric} ({o.direction})' for o in study.objectives)}: "
            f"{len(front)} trial(s) ({', '.join(str(t.number) for t in front)})"
        )
    elif completed:
        best = optuna_study.best_trial
        line += (
            f"; best {study.objective.metric}={best.value:.2f} (trial {best.number}, {best.user_attrs.get('label')})"
        )
    typer.echo(line, err=True)
    if counts["COMPLETE"] or counts["PRUNED"]:
        return True
    typer.echo(_all_failed(study, [t for t in trials if t.state == TrialState.FAIL]), err=True)
    return False


def _all_failed(study, failed) -> str:
    """One line for a study whose every trial failed: the last error, and where to read all of them."""
    from harness.sweep import STORE_DIR

    last = ""
    if failed:
        error = failed[-1].user_attrs.get("error") or "no error recorded"
        last = f"; the last, trial {failed[-1].number}: {error.splitlines()[0]}"
    return (
        f"error: study {study.name}: no trial completed ({len(failed)} failed{last}). Fix: read each trial's "
        f"error in its MLflow run (tag harness.error, artifact error.txt; `harness ui`), or with --workers in "
        f"{STORE_DIR}/logs/{study.name}-worker*.log; fix the cause, then run the same command again (failed "
        f"trials are re-run). No report was built."
    )


def _build_report(name: str, out: Path, tracking_uri: str, allow_dirty: bool) -> None:
    from harness.report import build_report

    build_report(name, out, tracking_uri, allow_dirty=allow_dirty)
    typer.echo(f"report: {out}", err=True)


def main() -> None:
    """The ``harness`` program. On the way out, the objects still alive are frozen out of the interpreter's
    final garbage collection: with the model stack loaded, that pass took ~3 s per process (measured on
    a sweep's workers) to free memory the exit frees anyway."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
