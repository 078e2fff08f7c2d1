"""Run a study: Optuna chooses the trials, MLflow records each one as a nested run of the study's run.

One job a module, in the order a sweep meets them:

    stores     where things go: MLflow tracking URI, artifact root, Optuna storage (passwords masked)
    tracking   MLflow: the study's experiment and parent run, the provenance tags of it and of every trial
               run (commit, machine, versions: harness.provenance); the store's layout, read by harness.report
    recovery   Optuna: the study, its baselines, the trial budget, dead workers' and failed trials
    delivery   metrics reach the tracking server (re-sent after an outage), or the study stops
    reuse      a finished identical trial's result is reused, not recomputed
    objective  one trial = one Optuna trial = one nested MLflow run (TrialRunner; imported by the
               processes that run trials, so that a `--workers N` parent never loads the model stack)
    results    what a finished trial's run records: objective values, final metrics, per-example test
               scores, predictions and samples as MLflow tables, the best checkpoint
    phases     the trial's phases shown as they start and end (data, the starting model's evaluations)
    datasets   a trial's train / validation / test data as MLflow dataset inputs
    logged_model  a finished trial's best checkpoint as an MLflow model (LoggedModel) under its run
    optuna_record the trial as Optuna saw it, recorded on its run for the reports
    display    progress: trial n/N with ETA, or one line per trial
    workers    run_sweep (harness sweep), join_sweep (harness worker), the --workers N processes
    outcome    how the study ended, as harness sweep prints it (the best trial or Pareto front; all failed)
    hearing    the base model's hearing, measured once when the study ends and logged on the study's run
    ui         the MLflow UI over a store (harness ui): the studies it holds, their runs tables' addresses

Faults and what happens on each are listed in docs/reliability.md.
"""

from harness.sweep.delivery import TrackingLost
from harness.sweep.recovery import create_study
from harness.sweep.stores import STORE_DIR, StorageError, artifact_root, mask_url, open_storage, resolve_tracking_uri
from harness.sweep.tracking import ensure_experiment
from harness.sweep.workers import WorkersFailed, join_sweep, run_sweep

__all__ = [
    "STORE_DIR",
    "StorageError",
    "TrackingLost",
    "WorkersFailed",
    "artifact_root",
    "create_study",
    "ensure_experiment",
    "join_sweep",
    "mask_url",
    "open_storage",
    "resolve_tracking_uri",
    "run_sweep",
]
