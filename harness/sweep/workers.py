"""Entry points: ``run_sweep`` (``harness sweep``: create or resume a study, run it with one process or
``--workers N`` local ``harness worker`` processes) and ``join_sweep`` (``harness worker``: one more
worker on a running study); each worker runs trials until the budget is spent and no other worker's
trial is running.
"""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study import StudyConfig, StudyError
from harness.sweep.display import Display
from harness.sweep.recovery import (
    BUDGETED,
    COUNTED,
    budget_spent,
    create_study,
    enqueue_baselines,
    load_study_for_worker,
    recover,
    wait_for_others,
)
from harness.sweep.rounds import planned_total
from harness.sweep.stores import (
    STORAGE_ENV,
    STORE_DIR,
    TRACKING_ENV,
    mask_url,
    open_storage,
    open_tracking,
    resolve_storage_url,
    resolve_tracking_uri,
)
from harness.sweep.tracking import ensure_experiment, ensure_study_run, find_study_run
from harness.vocabulary import PHASES_ATTR, TOTAL_TRIALS_ATTR

__all__ = ["SYSTEM_METRICS_INTERVAL_S", "WorkersFailed", "join_sweep", "run_sweep"]

logger = logging.getLogger("harness.sweep")

SYSTEM_METRICS_INTERVAL_S = 2.0


class WorkersFailed(RuntimeError):
    """Worker processes of ``--workers N`` exited with an error and the study is not finished."""


LAUNCH_ENV = "HARNESS_LAUNCH_TOKEN"  # `--workers N`: the token the parent sets on the study once it is ready
READY = "ready"  # the Optuna study's user attr that holds that token
READY_TIMEOUT_S = 600.0


def _quiet_libraries(trials: bool = True) -> None:
    """Trials are reported by Display and recorded in MLflow/Optuna: no per-trial INFO chatter. (A parent
    of ``--workers N`` runs no trial: it does not load the model stack.)"""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in ("mlflow.system_metrics", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if trials:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars for every trial


def run_sweep(
    study: StudyConfig,
    storage: str | None = None,
    tracking_uri: str | None = None,
    workers: int = 1,
    progress: bool = True,
) -> optuna.Study:
    """Create or resume the study and run it to its trial budget with ``workers`` local processes. With
    several, they are started first, so that they load torch & co. while this process sets the stores
    up; they start trials once the study carries this launch's ready token."""
    storage_url, uri = resolve_storage_url(storage), resolve_tracking_uri(tracking_uri)
    _quiet_libraries(trials=workers <= 1)
    token = uuid.uuid4().hex
    procs = _spawn_workers(study, storage_url, uri, workers, token) if workers > 1 else []
    status, parent, client = "FAILED", None, None
    try:
        client = open_tracking(uri)
        mlflow.set_tracking_uri(uri)
        optuna_storage = open_storage(storage_url)
        optuna_study = create_study(study, optuna_storage)
        optuna_study.set_user_attr(TOTAL_TRIALS_ATTR, planned_total(study, optuna_study))  # (later rounds' trials too)
        experiment_id = ensure_experiment(client, study.name, uri, study.description)
        parent = ensure_study_run(client, experiment_id, study)
        enqueue_baselines(optuna_study, study)
        recover(optuna_study, optuna_storage, client, experiment_id, retry_failed=True)
        optuna_study.set_user_attr(READY, token)
        if workers <= 1:
            _work(study, optuna_study, optuna_storage, client, experiment_id, parent, progress)
        else:
            _watch_workers(study, optuna_study, procs, progress)
        status = "FINISHED"
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        _stop(procs)
        raise
    finally:
        if parent is not None:
            try:
                client.set_terminated(parent, status=status)
            except Exception:
                if status == "FINISHED":
                    raise  # otherwise the error that ended the study is the one to report
    return optuna_study


def _wait_until_ready(study: StudyConfig, storage: optuna.storages.BaseStorage, token: str) -> None:
    """A worker started by `run_sweep` waits until its parent has set the study up for this launch."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    parent = os.getppid()
    while time.monotonic() < deadline:
        try:
            if optuna.load_study(study_name=study.name, storage=storage).user_attrs.get(READY) == token:
                return
        except KeyError:
            pass  # not created yet
        if os.getppid() != parent:  # the parent died while setting up
            raise StudyError(
                f"study {study.name!r}: the `harness sweep` that started this worker exited before the "
                "study was ready. Fix: run the same `harness sweep` command again."
            )
        time.sleep(0.2)
    raise StudyError(
        f"study {study.name!r} was not ready after {READY_TIMEOUT_S:.0f} s. Fix: run the same "
        "`harness sweep` command again."
    )


def join_sweep(
    study: StudyConfig,
    storage: str | None = None,
    tracking_uri: str | None = None,
    worker: int | None = None,
    progress: bool = True,
) -> optuna.Study:
    """One more worker on a study that ``run_sweep`` started (``harness worker``)."""
    storage_url, uri = resolve_storage_url(storage), resolve_tracking_uri(tracking_uri)
    _quiet_libraries()
    optuna_storage = open_storage(storage_url)
    if os.environ.get(LAUNCH_ENV):  # started by `harness sweep --workers N`: wait for its set-up
        _wait_until_ready(study, optuna_storage, os.environ[LAUNCH_ENV])
    client = open_tracking(uri)
    mlflow.set_tracking_uri(uri)
    optuna_study = load_study_for_worker(study, optuna_storage, storage_url, os.getpid() if worker is None else worker)
    experiment = client.get_experiment_by_name(study.name)
    parent = find_study_run(client, experiment.experiment_id) if experiment else None
    if parent is None:
        raise StudyError(
            f"no MLflow run of study {study.name!r} in {mask_url(uri)}. Fix: start the study with "
            f"`harness sweep {study.path or study.name}` using the same --tracking-uri."
        )
    recover(optuna_study, optuna_storage, client, experiment.experiment_id, retry_failed=False)
    _work(study, optuna_study, optuna_storage, client, experiment.experiment_id, parent.info.run_id, progress)
    if _nothing_left(study, optuna_study) and client.get_run(parent.info.run_id).info.status == "RUNNING":
        client.set_terminated(parent.info.run_id, status="FINISHED")  # (its `harness sweep` may have died)
    return optuna_study


def _nothing_left(study: StudyConfig, optuna_study: optuna.Study) -> bool:
    """Budget spent, or (grid) every point finished or taken by a live worker and nothing enqueued."""
    if budget_spent(optuna_study, planned_total(study, optuna_study)):
        return True
    trials = optuna_study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials) or study.sampler.type != "grid":
        return False
    claimed = {t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs}
    return len(claimed) >= study.n_sampled  # GridSampler would otherwise re-run a point


def _work(
    study: StudyConfig,
    optuna_study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    client: MlflowClient,
    experiment_id: str,
    parent: str,
    progress: bool,
) -> None:
    """Run trials until none is left, then stay while other workers' trials run (to re-run a dead one's)."""
    if _nothing_left(study, optuna_study) and not wait_for_others(optuna_study, storage, client, experiment_id):
        return
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(1)
    # Async metric logging writes merged batches every 2 s and stops at once when a run ends; without
    # buffering its thread polls with a 1 s timeout, which adds ~1 s to every end_run (measured).
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "2")
    done = len(optuna_study.get_trials(deepcopy=False, states=COUNTED))
    total = planned_total(study, optuna_study)  # fixed for this launch: rounds are planned between launches
    display = Display(total, done, progress)

    def stop_when_done(s: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if _nothing_left(study, s):
            s.stop()

    from harness.sweep.objective import TrialRunner  # the model stack: only a process that runs trials loads it

    objective = TrialRunner(study, experiment_id, parent, display)
    try:
        while True:
            optuna_study.optimize(
                objective,
                n_trials=total,
                catch=(Exception,),
                gc_after_trial=False,
                callbacks=[optuna.study.MaxTrialsCallback(total, states=BUDGETED), stop_when_done],
            )
            if objective.fatal:
                raise objective.fatal[0]
            if not wait_for_others(optuna_study, storage, client, experiment_id):
                break
    finally:
        display.close()


def _visible_gpus() -> list[str]:
    """GPU ids a worker may be pinned to: CUDA_VISIBLE_DEVICES' entries, else 0..n-1. Without a GPU
    driver's device files there are none, and the parent does not load torch (~1.3 s before the
    workers could start)."""
    if not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd")):  # NVIDIA (CUDA), AMD (ROCm)
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (
        [g.strip() for g in given.split(",") if g.strip()]
        if given
        else [str(i) for i in range(torch.cuda.device_count())]
    )


def _spawn_workers(
    study: StudyConfig, storage_url: str, uri: str, workers: int, token: str
) -> list[tuple[subprocess.Popen, Path]]:
    """N ``harness worker`` processes sharing the study; each logs to mlruns/logs/<study>-worker<i>.log."""
    path = study.path
    if path is None:
        path = Path(STORE_DIR, "studies", f"{study.name}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(study.text)
    logs = Path(STORE_DIR, "logs")
    logs.mkdir(parents=True, exist_ok=True)
    # env, not argv: no password in `ps`
    env = {**os.environ, STORAGE_ENV: storage_url, TRACKING_ENV: uri, LAUNCH_ENV: token}
    procs = []
    gpus = _visible_gpus()
    for index in range(workers):
        log_path = logs / f"{study.name}-worker{index}.log"
        # several GPUs: worker i trains its trials on GPU i mod n (one trial per GPU at a time)
        worker_env = dict(env, CUDA_VISIBLE_DEVICES=gpus[index % len(gpus)]) if len(gpus) > 1 else env
        with open(log_path, "ab") as out:
            cmd = [sys.executable, "-m", "harness.cli", "worker", str(path), "--index", str(index)]
            procs.append((subprocess.Popen(cmd, env=worker_env, stdout=out, stderr=subprocess.STDOUT), log_path))
    return procs


def _stop(procs: list[tuple[subprocess.Popen, Path]]) -> None:
    for p, _ in procs:
        if p.poll() is None:
            p.terminate()
    for p, _ in procs:
        p.wait()


def _watch_workers(
    study: StudyConfig, optuna_study: optuna.Study, procs: list[tuple[subprocess.Popen, Path]], progress: bool
) -> None:
    """Show the workers' progress until they exit; a failed worker fails the sweep unless the others
    finished the study."""
    display = Display(planned_total(study, optuna_study), 0, progress)
    finished = [t for t in optuna_study.get_trials(deepcopy=False) if t.state.is_finished()]
    display.reported.update(t.number for t in finished)  # a resumed study: earlier launches' lines are not repeated
    display.phases_shown.update((t.number, i) for t in finished for i in range(len(t.user_attrs.get(PHASES_ATTR, []))))
    try:
        while any(p.poll() is None for p, _ in procs):
            display.poll(optuna_study)
            time.sleep(0.5)
        display.poll(optuna_study)
    finally:
        display.close()
    failed = [f"worker {i} exited with {p.returncode} (log: {log})" for i, (p, log) in enumerate(procs) if p.returncode]
    if failed and not (
        _nothing_left(study, optuna_study)
        and not any(t.state == TrialState.RUNNING for t in optuna_study.get_trials(deepcopy=False))
    ):
        raise WorkersFailed(
            f"study {study.name!r}: " + "; ".join(failed) + ". Fix: read the logs, then run the "
            "same command again to finish the study."
        )
    for line in failed:  # the others finished the study (and re-ran the failed workers' trials)
        logger.warning("%s; the other workers finished the study", line)
