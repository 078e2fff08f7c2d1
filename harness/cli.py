"""The ``harness`` command: run studies, join them as a worker, report, browse, debug one trial.

    harness sweep STUDY.yaml [--workers N] [--storage URL] [--tracking-uri URI] [--no-report]
    harness worker STUDY.yaml                 # one more process on a running study
    harness report STUDY(.yaml|name) [--tracking-uri URI] [--out DIR] [--allow-dirty]
    harness report --from-folder reports/STUDY  # recompute a report from its folder alone
    harness ui [--port 5000] [--study NAME]   # MLflow UI on 127.0.0.1 over the local store
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
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "ALLOW_DIRTY_HELP",
    "STORAGE_HELP",
    "TRACKING_HELP",
    "main",
    "report_cmd",
    "sweep",
    "trial",
    "ui",
    "worker",
]

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
    from harness.data.source import DataSourceError
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
    rounds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop after this many rounds of seeds (a study with hypotheses.rounds; default: until every "
            "hypothesis is decided or the seed budget is spent). Running the command again continues.",
        ),
    ] = None,
) -> None:
    """Run a study (or resume it: finished trials are not repeated). A study that declares hypotheses
    with rounds runs its first round, then adds seeds round by round to the configurations of the
    hypotheses still undecided."""
    from harness.study import load_study
    from harness.sweep import resolve_tracking_uri, run_sweep
    from harness.sweep.hearing import log_hearing

    study = load_study(study_file)
    _terminate_as_interrupt()
    optuna_study = run_sweep(study, storage=storage, tracking_uri=tracking_uri, workers=workers, progress=True)
    if not _summary(optuna_study, study):
        raise typer.Exit(1)
    uri = resolve_tracking_uri(tracking_uri)
    stopped = _more_rounds(study, optuna_study, uri, rounds, lambda: run_sweep(study, storage, tracking_uri, workers))
    if stopped is not None:
        optuna_study = stopped
        _summary(optuna_study, study)
    log_hearing(study, optuna_study, uri)  # the base model's hearing, once per study: its report copies it
    if report:
        _build_report(study.name, Path("reports") / study.name, uri, allow_dirty)


def _more_rounds(study, optuna_study, uri: str, max_rounds: int | None, run_round):
    """Later rounds of a study with hypotheses.rounds: after each look, the configurations of undecided
    hypotheses get the next round's seeds, until all are decided, the budget is spent or ``max_rounds``
    have run. Returns the Optuna study after the last round run here (None when none was)."""
    if study.hypotheses is None or len(study.looks) < 2:
        return None
    from harness.report import round_evidence
    from harness.report.hypotheses import next_round, verdicts
    from harness.study.hypotheses import matches
    from harness.sweep.rounds import enqueue_round

    last = None
    for look in range(1, len(study.looks)):
        if max_rounds is not None and look >= max_rounds:
            typer.echo(
                f"rounds: stopped after round {look} of {len(study.looks)} (--rounds {max_rounds}); the report's "
                f"Answer says which hypotheses are still open. Run `harness sweep {study.path}` again to continue "
                "the same rounds (finished trials are not repeated).",
                err=True,
            )
            break
        data, table = round_evidence(study.name, uri)
        _say_verdicts(verdicts(table), len(study.looks))
        plan = next_round(data, table)
        if plan is None:
            typer.echo(f"rounds: every hypothesis decided after round {look} of {len(study.looks)}", err=True)
            break
        seeds, selectors = plan
        chosen = [c for c in study.configurations() if any(matches(s, c.label, c.flat) for s in selectors)]
        added = enqueue_round(optuna_study, study, look, chosen)
        typer.echo(
            f"rounds: round {look + 1} of {len(study.looks)}: {len(chosen)} configurations of the open hypotheses "
            f"to {seeds} seeds ({added} new trials)",
            err=True,
        )
        last = optuna_study = run_round()
    else:
        _, table = round_evidence(study.name, uri)
        _say_verdicts(verdicts(table), len(study.looks))
    return last


def _say_verdicts(table, looks: int) -> None:
    """One line per hypothesis: its verdict at the look that decided it, else at the latest look."""
    from harness.report.answer import verdict_line

    for _, r in table.iterrows():
        typer.echo(f"  look {int(r['look'])}/{looks} {r['hypothesis']}: {verdict_line(r)}", err=True)


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

        _say_report(rebuild_report(from_folder, allow_dirty=allow_dirty))
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
    study: Annotated[
        str | None, typer.Option(help="The study whose runs to open (default: the most recently created one).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the study's runs table in a web browser (if a display).")
    ] = True,
) -> None:
    """Serve the MLflow UI over the local tracking store until Ctrl-C: prints the runs table's address of each
    study (or of --study) and opens the most recent one's in a browser. The server's own output (its
    request log, warnings) goes to mlruns/logs/ui-PORT.log."""
    from harness.sweep import STORE_DIR, artifact_root, mask_url, resolve_tracking_uri
    from harness.sweep.ui import (
        UI_HOST,
        UI_READY_S,
        answers,
        log_tail,
        open_in_browser,
        runs_url,
        start_server,
        study_experiments,
    )

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        typer.echo(f"error: {mask_url(uri)} is already a tracking server: open it in a browser.", err=True)
        raise typer.Exit(2)
    artifacts = artifact_root(uri) or str(Path(STORE_DIR, "artifacts").resolve())
    with socket.socket() as probe:
        if probe.connect_ex((UI_HOST, port)) == 0:
            typer.echo(f"error: port {port} on {UI_HOST} is in use. Fix: pass --port with a free port.", err=True)
            raise typer.Exit(2)
    studies = study_experiments(uri, study)
    server, log_path = start_server(uri, artifacts, port)
    _terminate_as_interrupt()
    try:
        typer.echo(
            f"MLflow UI: http://{UI_HOST}:{port}  (store {mask_url(uri)}; server log {log_path}; Ctrl-C to stop)"
        )
        for i, (name, experiment_id) in enumerate(studies):
            mark = "  (most recent)" if i == 0 and study is None and len(studies) > 1 else ""
            typer.echo(f"  study {name}: {runs_url(port, experiment_id)}{mark}")
        if not studies:
            typer.echo("  no study in this store yet: `harness sweep STUDY.yaml` makes one")
        deadline = time.monotonic() + UI_READY_S
        ready = False
        while server.poll() is None and not ready and time.monotonic() < deadline:
            ready = answers(f"http://{UI_HOST}:{port}/health")
            if not ready:
                time.sleep(0.5)
        if ready and studies and open_browser:
            open_in_browser(runs_url(port, studies[0][1]))
        while server.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        return
    tail = log_tail(log_path)
    typer.echo(
        f"error: the MLflow server exited with code {server.returncode}; its log: {log_path}"
        + (f"\n{tail}" if tail else ""),
        err=True,
    )
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
    from harness.sweep.outcome import study_outcome

    line, failure = study_outcome(optuna_study, study)
    typer.echo(line, err=True)
    if failure is None:
        return True
    typer.echo(failure, err=True)
    return False


def _build_report(name: str, out: Path, tracking_uri: str, allow_dirty: bool) -> None:
    from harness.report import build_report

    _say_report(build_report(name, out, tracking_uri, allow_dirty=allow_dirty))


def _say_report(path: Path) -> None:
    """Where the report is, and its Answer in a few lines."""
    from harness.report.answer import summary_lines

    typer.echo(f"report: {path}", err=True)
    for line in summary_lines(path.parent):
        typer.echo(line, err=True)


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
