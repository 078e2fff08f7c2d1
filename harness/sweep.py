"""Run a study: Optuna chooses the trials, MLflow records each one as a nested run of the study's run.

Where things go (defaults need no server; everything under ``./mlruns``)::

    MLflow tracking   sqlite:///<cwd>/mlruns/mlflow.db    (--tracking-uri / MLFLOW_TRACKING_URI)
    MLflow artifacts  <cwd>/mlruns/artifacts              (set on the experiment when it is created)
    Optuna storage    <cwd>/mlruns/optuna-journal.log     (--storage / HARNESS_OPTUNA_STORAGE;
                      JournalStorage, safe for several local processes; an RDB URL such as
                      postgresql://... uses RDBStorage with heartbeats for crashed workers)

MLflow layout (read by :mod:`harness.report`): one experiment per study; a parent run named after the
study (tag ``harness.role=study``; params ``study.*``, ``sampler``, ``pruner``; tags
``harness.git_commit``, ``harness.version.*``; artifact ``study.yaml``), reused when the study runs
again; one nested run per Optuna trial (tags ``harness.role=trial``, ``harness.trial_number``,
``harness.state``, ``harness.label``, ``harness.error``; params = the resolved TrialConfig, dotted;
per-step metrics, ``test/*``, ``best_step``, ``train_steps``, ``generated_tokens``, ``wall_time_s``,
``time/*``; artifacts ``trial_config.yaml``, ``test_examples.json``, ``samples/step_NNNN.json``).

Resuming: the Optuna study is loaded by name, so running the same study again continues it.
Trials left RUNNING by a dead process (same host, its pid gone; on an RDB storage also any host, by
missing heartbeats) are marked FAIL, their MLflow runs KILLED, and their parameters enqueued again,
at most ``MAX_RETRIES`` times; trials that failed earlier are enqueued again once per ``run_sweep``.
A worker leaves only when no trial of the study is running any more, so the last live worker picks
up the retry of a dead one. Finished trials are never repeated. Faults are listed in docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import optuna
import psutil
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study import SEED, StudyConfig, StudyError, flatten, label_of, make_pruner, make_sampler

logger = logging.getLogger("harness.sweep")

STORE_DIR = "mlruns"
ROLE, STUDY_TAG, NUMBER, STATE, LABEL, ERROR, RESUMED = (
    "harness.role", "harness.study", "harness.trial_number", "harness.state", "harness.label", "harness.error",
    "harness.resumed_from_step")
STORAGE_ENV, TRACKING_ENV, CHECKPOINT_ENV = "HARNESS_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI", "HARNESS_CHECKPOINT_DIR"
SAMPLE_STEPS = 3  # steps whose sample generations are logged as tables
SYSTEM_METRICS_INTERVAL_S = 2.0
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # what n_trials counts: failed trials get re-run
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
HEARTBEAT_ENV = "HARNESS_HEARTBEAT_S"  # RDB heartbeat interval; a trial is stale after 2 intervals
MAX_RETRIES = 2  # automatic re-runs of a trial whose worker died (failed trials: once per `harness sweep`)
POLL_S = 2.0  # how often a worker that has nothing to run looks for dead workers' trials


class StorageError(ValueError):
    """An Optuna storage or MLflow tracking URI that cannot be used (the message never shows a password)."""


class WorkersFailed(RuntimeError):
    """Worker processes of ``--workers N`` exited with an error and the study is not finished."""


class TrackingLost(RuntimeError):
    """The MLflow tracking server stopped answering during a trial and did not come back in time."""


# --------------------------------------------------------------------------------------------
# Where: tracking URI, artifact root, Optuna storage
# --------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def resolve_tracking_uri(uri: str | None = None) -> str:
    uri = uri or os.environ.get(TRACKING_ENV) or f"sqlite:///{Path(STORE_DIR, 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts next to a local sqlite store (``<its dir>/artifacts``); a server or remote DB decides itself."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return str(db.parent / "artifacts")
    return None


def resolve_storage_url(url: str | None = None) -> str:
    return url or os.environ.get(STORAGE_ENV) or str(Path(STORE_DIR, "optuna-journal.log").resolve())


def open_storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """A journal file (a path, or ``journal:///path``) or an RDB URL (sqlite:///, postgresql://, ...)."""
    url = resolve_storage_url(url)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "journal", "file"):
        path = Path(url.split("://", 1)[1] if scheme else url).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise StorageError(f"Optuna journal {path}: cannot open ({err}). Fix: use a writable path.") from None
    if scheme not in _RDB_SCHEMES:
        raise StorageError(
            f"Optuna storage {mask_url(url)!r}: unknown scheme {scheme!r}. Fix: use a file path (journal), "
            "sqlite:///path.db or postgresql://user:password@host/db.")
    heartbeat = _heartbeat_s()
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental; they are the feature we want
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(  # a crashed worker's trial: FAIL after 2 beats, retried twice
                url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES))
    except Exception as err:  # sqlalchemy raises many types (ArgumentError, OperationalError, ...)
        problem = mask_url(str(err).splitlines()[0]).rstrip(".") if str(err) else type(err).__name__
        raise StorageError(
            f"Optuna storage {mask_url(url)!r} cannot be opened: {problem}. Fix: check the URL, that the "
            "database is reachable and its driver installed (postgresql:// uses psycopg: "
            "pip install 'psycopg[binary]').") from None


def _heartbeat_s() -> int:
    text = os.environ.get(HEARTBEAT_ENV, "60")
    if not text.isdigit() or int(text) < 1:
        raise StorageError(f"{HEARTBEAT_ENV}={text!r}: not a whole number of seconds >= 1. Fix: e.g. "
                           f"{HEARTBEAT_ENV}=60 (a dead worker's trial is failed after two intervals).")
    return int(text)


def open_tracking(uri: str) -> MlflowClient:
    """A client for ``uri``, checked with one cheap call (a server is asked once, without retries)."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(uri)  # without user:password (MLflow takes those from MLFLOW_TRACKING_USERNAME/...)
        probe = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                            parts.path.rstrip("/") + "/health", "", ""))
        try:
            urllib.request.urlopen(probe, timeout=10).close()
        except urllib.error.HTTPError:
            pass  # it answered (e.g. 401 behind auth): the client will deal with it
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise StorageError(f"MLflow tracking server {mask_url(uri)!r} is not reachable ({reason}). Fix: start "
                               "it (harness ui serves the local store) or correct --tracking-uri / "
                               "MLFLOW_TRACKING_URI.") from None
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except Exception as err:  # mlflow raises several types for unusable URIs
        problem = mask_url(str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise StorageError(f"MLflow tracking URI {mask_url(uri)!r} cannot be used: {problem[:300]}. Fix: use "
                           "sqlite:///path/mlflow.db (default sqlite:///mlruns/mlflow.db), http://host:port "
                           "or postgresql://host/db.") from None
    return client


# --------------------------------------------------------------------------------------------
# MLflow: experiment and study run
# --------------------------------------------------------------------------------------------


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_root(uri))
        except mlflow.exceptions.MlflowException:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise StudyError(f"MLflow experiment {name!r} is deleted in {mask_url(uri)}. Fix: restore it "
                         f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or rename the study.")
    return experiment.experiment_id


def study_params(study: StudyConfig) -> dict[str, str]:
    """The study run's params: the study config flattened with a ``study.`` prefix, plus sampler/pruner."""
    data = study.model_dump(mode="json", exclude={"description", "n_trials"}, exclude_none=True)  # both may change
    params = {f"study.{key}": _param_value(value) for key, value in flatten(data).items()}
    params["sampler"], params["pruner"] = study.sampler.type, study.pruner.type
    return params


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _environment_tags() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    tags = {"harness.git_commit": _git_commit(), "harness.machine": _machine(),
            "harness.command": " ".join(["harness", *(mask_url(arg) for arg in sys.argv[1:])])}
    for package in ("torch", "transformers", "mlflow", "optuna"):
        try:
            tags[f"harness.version.{package}"] = version(package)
        except PackageNotFoundError:
            tags[f"harness.version.{package}"] = "not installed"
    return tags


def _machine() -> str:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}"


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "none (no commit)"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def find_study_run(client: MlflowClient, experiment_id: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{ROLE}` = 'study'", max_results=1,
                              order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def ensure_study_run(client: MlflowClient, experiment_id: str, study: StudyConfig) -> str:
    """The study's parent run: created once, then reused (status back to RUNNING) on every resume."""
    params, tags = study_params(study), {
        ROLE: "study", STUDY_TAG: study.name, "harness.n_trials": str(study.total_trials), **_environment_tags()}
    if study.description:
        tags["mlflow.note.content"] = study.description  # the run description shown by the UI
    run = find_study_run(client, experiment_id)
    if run is None:
        run = client.create_run(experiment_id, run_name=study.name, tags=tags)
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
        client.log_text(run.info.run_id, study.text, "study.yaml")
        return run.info.run_id
    changed = {k for k in params.keys() | run.data.params.keys()
               if k.startswith("study.") or k in ("sampler", "pruner")
               if params.get(k) != run.data.params.get(k)}
    if changed:
        raise _changed_error(study, sorted(changed), where="MLflow")
    client.update_run(run.info.run_id, status="RUNNING")
    client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()])
    return run.info.run_id


def _changed_error(study: StudyConfig, changed: list[str], where: str) -> StudyError:
    shown = ", ".join(k.removeprefix("study.") for k in changed[:6]) + (" ..." if len(changed) > 6 else "")
    return StudyError(
        f"{study.path or study.name}: study {study.name!r} already exists in the {where} store with a different "
        f"definition (changed: {shown}), so it cannot be resumed. Fix: set a new 'name:' in the study file "
        "(only 'description' and 'n_trials' may change between runs of one study).")


# --------------------------------------------------------------------------------------------
# Optuna: the study, its baselines, and recovery of dead or failed trials
# --------------------------------------------------------------------------------------------


def create_study(study: StudyConfig, storage: optuna.storages.BaseStorage, worker: int = 0) -> optuna.Study:
    optuna_study = optuna.create_study(
        study_name=study.name, storage=storage, sampler=make_sampler(study, worker), pruner=make_pruner(study),
        direction=study.objective.direction, load_if_exists=True)
    definition = study_params(study)
    stored = optuna_study.user_attrs.get("definition")
    if stored is None:
        optuna_study.set_user_attr("definition", definition)
    elif stored != definition:
        raise _changed_error(study, sorted(k for k in stored.keys() | definition.keys()
                                           if stored.get(k) != definition.get(k)), where="Optuna")
    return optuna_study


def load_study_for_worker(study: StudyConfig, storage: optuna.storages.BaseStorage, storage_url: str,
                          worker: int) -> optuna.Study:
    try:
        optuna.load_study(study_name=study.name, storage=storage)
    except KeyError:
        raise StudyError(f"study {study.name!r} does not exist in {mask_url(storage_url)}. Fix: start it with "
                         f"`harness sweep {study.path or study.name}` (workers join a running study).") from None
    return create_study(study, storage, worker)


def enqueue_baselines(optuna_study: optuna.Study, study: StudyConfig) -> None:
    """Each baseline x seed once (idempotent: a baseline x seed already in the study is not added again)."""
    present = {(t.user_attrs.get("baseline"), t.params.get(SEED, t.system_attrs.get("fixed_params", {}).get(SEED)))
               for t in optuna_study.get_trials(deepcopy=False) if "baseline" in t.user_attrs}
    for index in range(len(study.baselines)):
        for seed in study.seed_list:
            if (index, seed) not in present:
                optuna_study.enqueue_trial({SEED: seed}, user_attrs={"baseline": index})


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def _alive(worker: Mapping[str, Any]) -> bool:
    try:
        return psutil.Process(int(worker["pid"])).create_time() == worker["started"]
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError, ValueError):
        return False


def recover(optuna_study: optuna.Study, storage: optuna.storages.BaseStorage, client: MlflowClient,
            experiment_id: str, retry_failed: bool) -> list[int]:
    """Fail trials whose worker died (same host), end their MLflow runs KILLED, enqueue their params again.

    With ``retry_failed`` also enqueue, once, every failed configuration that has no finished,
    running or waiting twin. Returns the numbers of the trials that were enqueued again.
    """
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(optuna_study.study_name)
    retried: list[int] = []
    for trial in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not worker or worker.get("host") != host or _alive(worker):
            continue  # another host's trial (RDB heartbeats handle those) or a live worker
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "error", f"worker process {worker['pid']} on {host} died")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # another process recovered it first
        earlier = sum(t.state == TrialState.FAIL and _key(t) == _key(trial)
                      for t in optuna_study.get_trials(deepcopy=False))
        if trial.params and earlier <= MAX_RETRIES:  # (no params: killed before it drew any, nothing to repeat)
            _enqueue_again(optuna_study, trial)
            retried.append(trial.number)
        logger.warning("trial %d: its worker (pid %s) died; marked FAIL%s", trial.number, worker["pid"],
                       " and enqueued again" if trial.number in retried else f" (not retried: failed {earlier} times)")
    _kill_orphan_runs(optuna_study, client, experiment_id)
    if retry_failed and not _budget_spent(optuna_study, None):
        trials = optuna_study.get_trials(deepcopy=False)
        twins = {_key(t) for t in trials if t.state != TrialState.FAIL}
        for trial in trials:
            if trial.state == TrialState.FAIL and trial.params and _key(trial) not in twins:
                _enqueue_again(optuna_study, trial)
                twins.add(_key(trial))
                retried.append(trial.number)
    return retried


def _key(trial: optuna.trial.FrozenTrial) -> tuple[str, Any]:
    """What makes two trials the same configuration: their parameters (enqueued ones: the fixed ones)."""
    params = trial.params or trial.system_attrs.get("fixed_params", {})
    return json.dumps(params, sort_keys=True, default=str), trial.user_attrs.get("baseline")


def _enqueue_again(optuna_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    attrs = {"retry_of": trial.number}
    if "baseline" in trial.user_attrs:
        attrs["baseline"] = trial.user_attrs["baseline"]
    optuna_study.enqueue_trial(trial.params, user_attrs=attrs)


def _kill_orphan_runs(optuna_study: optuna.Study, client: MlflowClient, experiment_id: str) -> None:
    """MLflow trial runs still RUNNING whose Optuna trial is not running: their process is gone."""
    runs = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{ROLE}` = 'trial'")
    states = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}  # after the runs: a trial that
    # starts meanwhile is RUNNING here, never missing
    for run in runs:
        trial = states.get(int(run.data.tags.get(NUMBER, -1)))
        if trial is not None and trial.state == TrialState.RUNNING:
            continue
        error = (trial.user_attrs.get("error") if trial else None) or "the worker process died (no heartbeat)"
        client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(STATE, "FAIL"),
                                                mlflow.entities.RunTag(ERROR, error)])
        client.set_terminated(run.info.run_id, status="KILLED")


def wait_for_others(optuna_study: optuna.Study, storage: optuna.storages.BaseStorage, client: MlflowClient,
                    experiment_id: str) -> bool:
    """Nothing left to start: wait while other workers' trials run, failing those whose worker died
    (missing RDB heartbeats, or a gone pid on this host) so that their retries get enqueued.
    True when there is a trial to run again, False when no trial of the study is running any more."""
    while True:
        if isinstance(storage, optuna.storages.RDBStorage):  # (open_storage always sets heartbeats)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(optuna_study)  # runs the retry callback of each one
        recover(optuna_study, storage, client, experiment_id, retry_failed=False)  # also ends orphan runs
        trials = optuna_study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials) and not _budget_spent(optuna_study, None):
            return True
        heartbeats, host = isinstance(storage, optuna.storages.RDBStorage), socket.gethostname()
        if not any(t.state == TrialState.RUNNING and (heartbeats or t.user_attrs.get("worker", {}).get("host") == host)
                   for t in trials):  # (a journal cannot tell whether another host's worker is alive)
            return False
        time.sleep(POLL_S)


def _budget_spent(optuna_study: optuna.Study, total: int | None) -> bool:
    if total is None:
        total = optuna_study.user_attrs.get("total_trials")
    return total is not None and len(optuna_study.get_trials(deepcopy=False, states=COUNTED)) >= total


# --------------------------------------------------------------------------------------------
# One trial = one Optuna trial = one nested MLflow run
# --------------------------------------------------------------------------------------------


@contextmanager
def _timed(spent: dict[str, float], what: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[what] = spent.get(what, 0.0) + time.perf_counter() - start


def suggest(study: StudyConfig, trial: optuna.Trial) -> dict[str, Any]:
    """The trial's parameters: active space keys (in order, conditions checked) and ``seed``."""
    if "baseline" in trial.user_attrs:
        return {SEED: trial.suggest_categorical(SEED, study.seed_list)}
    params: dict[str, Any] = {}
    fixed = study.fixed_flat()
    for key, spec in study.ordered_space():
        if not spec.holds({**fixed, **params}):
            continue
        if spec.choices is not None:
            params[key] = trial.suggest_categorical(key, spec.choices)
        elif spec.is_int:
            params[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
        else:
            params[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)
    params[SEED] = trial.suggest_categorical(SEED, study.seed_list)
    return params


def objective_value(study: StudyConfig, result) -> float:
    split, metric = study.objective.metric.split("/", 1)
    scores = result.test.scores if split == "test" else result.validation
    if metric not in scores:
        raise KeyError(f"objective {study.objective.metric!r}: the trial computed {sorted(scores)} "
                       f"for {split} (bertscore needs eval.bertscore: true)")
    value = float(scores[metric])
    if not math.isfinite(value):
        raise FloatingPointError(f"objective {study.objective.metric!r} is {value}")
    return value


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, str)):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue  # lists, tensors with several values, ...: not a metric
    return out


def checkpoint_dir(study: StudyConfig, cfg) -> Path:
    """The trial's own checkpoint directory, keyed by study and resolved config (so a re-run of the same
    grid point, on any worker sharing the directory, resumes it). Env HARNESS_CHECKPOINT_DIR moves the root."""
    root = Path(os.environ.get(CHECKPOINT_ENV) or Path(STORE_DIR, "checkpoints").resolve())
    return root / study.name / cfg.digest()


def tracking_down(err: BaseException) -> bool:
    """An error saying the tracking server cannot be reached (after MLflow's own HTTP retries)."""
    import requests

    if isinstance(err, (TrackingLost, requests.exceptions.ConnectionError)):
        return True
    text = str(err)
    return isinstance(err, mlflow.exceptions.MlflowException) and any(mark in text for mark in (
        "Max retries exceeded", "Connection refused", "ConnectionError", "Failed to establish", "timed out"))


def _lost(err: BaseException) -> TrackingLost:
    if isinstance(err, TrackingLost):
        return err
    reason = mask_url(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)[:300]
    return TrackingLost(f"MLflow tracking server {mask_url(mlflow.get_tracking_uri())!r} stopped answering and "
                        f"did not come back within MLflow's retries ({reason}). Fix: restart the server, then run "
                        "the same command again: the interrupted trial is marked failed and runs again.")


class _AsyncFailures(logging.Handler):
    """Counts the batches MLflow's async logging could not send. MLflow only logs them (and a batch merged
    into another one does not even fail its future), so this is how a trial learns it must re-send."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


ASYNC_FAILURES = _AsyncFailures()
logging.getLogger("mlflow.utils.async_logging.async_logging_queue").addHandler(ASYNC_FAILURES)


def deliver(run_id: str, sent: list[tuple[Any, dict[str, float], int, int]], failures_before: int) -> None:
    """Make sure the trial's async metric batches reached the store: when any failed (the tracking server
    was away), send them all again synchronously, with MLflow's HTTP retries and the original
    timestamps (the store keeps one copy of a metric with the same key, step, timestamp and value)."""
    mlflow.flush_async_logging()
    failed = ASYNC_FAILURES.count > failures_before
    for operation, *_ in sent:
        try:
            operation.wait()
        except Exception:
            failed = True
    if failed:
        from mlflow.entities import Metric

        metrics = [Metric(k, v, stamp, step) for _, values, step, stamp in sent for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch
            MlflowClient().log_batch(run_id, metrics=metrics[start:start + 1000], synchronous=True)
    sent.clear()


def make_objective(study: StudyConfig, experiment_id: str, parent_run_id: str, display: "Display",
                   fatal: list[BaseException]) -> Callable:
    """The Optuna objective. Errors of the trial itself (NaN loss, a reward that raises, out of memory,
    unreadable audio) fail the trial and the study goes on; errors that would fail every trial (tracking
    server gone, a missing tool, a bad config) are put in ``fatal`` and stop the study."""
    from harness.data.audio import MissingToolError
    from harness.train import trial as trial_lib  # torch & co. load only when a trial runs

    val_metric = study.objective.metric.split("/", 1)[1]

    def stop_on(err: BaseException, trial: optuna.Trial) -> None:
        if tracking_down(err):
            err = _lost(err)
        if isinstance(err, (TrackingLost, MissingToolError, StudyError)):
            fatal.append(err)
            trial.study.stop()

    def objective(trial: optuna.Trial) -> float:
        spent: dict[str, float] = {}
        started = time.perf_counter()
        state, status, error, run, label, ckpt = "FAIL", "FAILED", None, None, "?", None
        last_val: dict[str, float] = {}
        sent: list[tuple[Any, dict[str, float], int, int]] = []  # async batches not yet confirmed
        failures_before = ASYNC_FAILURES.count

        def log(metrics: Mapping[str, Any], step: int) -> None:
            values = _floats(metrics)
            last_val.update({k[4:]: v for k, v in values.items() if k.startswith("val/")})
            with _timed(spent, "tracking"):
                stamp = int(time.time() * 1000)
                sent.append((mlflow.log_metrics(values, step=step, synchronous=False, timestamp=stamp),
                             values, step, stamp))
            display.trial_step(step, values)

        def report(value: float, step: int) -> None:
            value = last_val.get(val_metric, value)  # the objective's own validation metric if logged
            with _timed(spent, "storage"):
                trial.report(value, step)
                prune = trial.should_prune()
            if prune:
                raise optuna.TrialPruned(f"pruned at step {step}: val/{val_metric}={value:.3g}")

        try:
            with _timed(spent, "storage"):
                trial.set_user_attr("worker", worker_identity())
                params = suggest(study, trial)
            baseline = trial.user_attrs.get("baseline")
            cfg = study.resolve(params, baseline)
            label = study.baseline_label(baseline) if baseline is not None else label_of(cfg)
            ckpt = checkpoint_dir(study, cfg)
            with _timed(spent, "tracking"):
                run = mlflow.start_run(
                    experiment_id=experiment_id, run_name=f"{trial.number:03d}-{label}",
                    parent_run_id=parent_run_id, log_system_metrics=True,
                    tags={ROLE: "trial", STUDY_TAG: study.name, NUMBER: str(trial.number), LABEL: label,
                          STATE: "RUNNING"})
                mlflow.log_params({k: _param_value(v) for k, v in flatten(cfg.model_dump(mode="json")).items()},
                                  synchronous=False)
                mlflow.log_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "trial_config.yaml")
            with _timed(spent, "storage"):
                trial.set_user_attr("label", label)
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
            display.trial_started(trial.number, label, 0 if cfg.method == "base-eval" else cfg.train.steps)
            t0 = time.perf_counter()
            result = trial_lib.run_trial(cfg, log=log, report=report, sample_steps=SAMPLE_STEPS, checkpoint_dir=ckpt)
            wall = time.perf_counter() - t0
            value = objective_value(study, result)
            with _timed(spent, "tracking"):
                if result.resumed_from:
                    mlflow.set_tag(RESUMED, str(result.resumed_from))
                _log_result(cfg, result, wall, trial_lib)
                deliver(run.info.run_id, sent, failures_before)
            state, status = "COMPLETE", "FINISHED"
            display.trial_ended(trial.number, label, state, f"{study.objective.metric}={value:.2f}")
            return value
        except optuna.TrialPruned as err:
            state, status = "PRUNED", "FINISHED"
            display.trial_ended(trial.number, label, state, str(err))
            raise
        except BaseException as err:
            stop_on(err, trial)
            shown = _lost(err) if tracking_down(err) else err
            error = mask_url(f"{type(shown).__name__}: {shown}")
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            display.trial_ended(trial.number, label, "FAIL", error)
            with _timed(spent, "storage"):
                trial.set_user_attr("error", error)
            if run is not None and not tracking_down(err):
                with _timed(spent, "tracking"):
                    mlflow.log_text(traceback.format_exc(), "error.txt")
            raise
        finally:
            if state != "FAIL" and ckpt is not None:
                import shutil

                shutil.rmtree(ckpt, ignore_errors=True)  # finished: nothing to resume
            if run is not None:
                problem = None
                with _timed(spent, "tracking"):
                    try:
                        if sent:
                            deliver(run.info.run_id, sent, failures_before)
                        mlflow.set_tags({STATE: state, **({ERROR: error[:5000]} if error else {})})
                    except Exception as err:
                        problem = err
                    try:  # always: it also takes the run off MLflow's stack of active runs
                        mlflow.end_run(status=status)  # drains this run's async logging queue first
                    except Exception as err:
                        problem = problem or err
                if problem is not None:  # the tracking server went away: the trial fails, the worker stops
                    lost = _lost(problem) if tracking_down(problem) else problem
                    if isinstance(lost, TrackingLost) and not any(isinstance(f, TrackingLost) for f in fatal):
                        fatal.append(lost)
                        trial.study.stop()
                    trial.set_user_attr("error", mask_url(str(lost)))
                    raise lost from None
            spent["trial"] = time.perf_counter() - started
            trial.set_user_attr("overhead_s", {k: round(v, 4) for k, v in spent.items()})

    return objective


def _log_result(cfg, result, wall: float, trial_lib) -> None:
    final = {f"test/{k}": float(v) for k, v in result.test.scores.items()}
    final.update({"best_step": result.best_step, "train_steps": result.steps,
                  "generated_tokens": result.generated_tokens, "wall_time_s": wall})
    final.update({f"time/{stage}": float(s) for stage, s in result.times.items()})
    mlflow.log_metrics(final, step=result.steps, synchronous=False)
    examples = trial_lib.load_task_data(cfg)["test"].examples
    mlflow.log_dict({
        "ids": [ex.id for ex in examples],
        "references": [ex.answer for ex in examples],
        "hypotheses": list(result.test.hypotheses),
        "scores": {m: [float(x) for x in values] for m, values in result.test.per_example.items()},
    }, "test_examples.json")
    if result.samples:
        import pandas as pd

        for step, rows in sorted(result.samples.items()):
            mlflow.log_table(pd.DataFrame(rows), artifact_file=f"samples/step_{step:04d}.json")


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class Display:
    """Trial n/N with ETA, the running trial's step and last reward; one line per trial when not a TTY."""

    def __init__(self, total: int, done: int, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(), console=self.console, transient=False) if self.live else None
        self.current, self.reward = None, None
        if self.progress:
            self.progress.start()
            self.overall = self.progress.add_task("trials", total=total, completed=done, info="")

    def trial_started(self, number: int, label: str, steps: int) -> None:
        if self.progress:
            if self.current is not None:
                self.progress.remove_task(self.current)
            self.current = self.progress.add_task(f"trial {number} [{label}]", total=max(steps, 1), info="")
            self.reward = None

    def trial_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.progress and self.current is not None:
            self.reward = metrics.get("reward", self.reward)
            info = f"step {step}" + (f"  reward {self.reward:.3f}" if self.reward is not None else "")
            self.progress.update(self.current, completed=step, info=info)

    def trial_ended(self, number: int, label: str, state: str, note: str) -> None:
        if self.progress:
            self.progress.advance(self.overall)
            self.progress.console.print(f"trial {number} [{label}] {state}: {note}")
        elif self.enabled:
            print(f"trial {number} [{label}] {state}: {note}", file=sys.stderr, flush=True)

    def poll(self, optuna_study: optuna.Study) -> None:
        """Multi-worker mode: the parent shows what the shared storage says."""
        if not self.progress:
            return
        trials = optuna_study.get_trials(deepcopy=False)
        done = sum(t.state.is_finished() for t in trials)
        running = [f"#{t.number} {t.user_attrs.get('label', '')}" for t in trials if t.state == TrialState.RUNNING]
        self.progress.update(self.overall, completed=done, info="running: " + (", ".join(running) or "-"))

    def close(self) -> None:
        if self.progress:
            self.progress.stop()


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _quiet_libraries() -> None:
    """Trials are reported by Display and recorded in MLflow/Optuna: no per-trial INFO chatter."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in ("mlflow.system_metrics", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import transformers

    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars for every trial


def run_sweep(study: StudyConfig, storage: str | None = None, tracking_uri: str | None = None, workers: int = 1,
              progress: bool = True) -> optuna.Study:
    """Create or resume the study and run it to its trial budget with ``workers`` local processes."""
    storage_url, uri = resolve_storage_url(storage), resolve_tracking_uri(tracking_uri)
    _quiet_libraries()
    client = open_tracking(uri)
    mlflow.set_tracking_uri(uri)
    optuna_storage = open_storage(storage_url)
    optuna_study = create_study(study, optuna_storage)
    optuna_study.set_user_attr("total_trials", study.total_trials)
    experiment_id = ensure_experiment(client, study.name, uri)
    parent = ensure_study_run(client, experiment_id, study)
    status = "FAILED"
    try:
        enqueue_baselines(optuna_study, study)
        recover(optuna_study, optuna_storage, client, experiment_id, retry_failed=True)
        if workers <= 1:
            _work(study, optuna_study, optuna_storage, client, experiment_id, parent, progress)
        else:
            _launch_workers(study, optuna_study, storage_url, uri, workers, progress)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            client.set_terminated(parent, status=status)
        except Exception:
            if status == "FINISHED":
                raise  # otherwise the error that ended the study is the one to report
    return optuna_study


def join_sweep(study: StudyConfig, storage: str | None = None, tracking_uri: str | None = None,
               worker: int | None = None, progress: bool = True) -> optuna.Study:
    """One more worker on a study that ``run_sweep`` started (``harness worker``)."""
    storage_url, uri = resolve_storage_url(storage), resolve_tracking_uri(tracking_uri)
    _quiet_libraries()
    client = open_tracking(uri)
    mlflow.set_tracking_uri(uri)
    optuna_storage = open_storage(storage_url)
    optuna_study = load_study_for_worker(study, optuna_storage, storage_url, os.getpid() if worker is None else worker)
    experiment = client.get_experiment_by_name(study.name)
    parent = find_study_run(client, experiment.experiment_id) if experiment else None
    if parent is None:
        raise StudyError(f"no MLflow run of study {study.name!r} in {mask_url(uri)}. Fix: start the study with "
                         f"`harness sweep {study.path or study.name}` using the same --tracking-uri.")
    recover(optuna_study, optuna_storage, client, experiment.experiment_id, retry_failed=False)
    _work(study, optuna_study, optuna_storage, client, experiment.experiment_id, parent.info.run_id, progress)
    if _nothing_left(study, optuna_study) and client.get_run(parent.info.run_id).info.status == "RUNNING":
        client.set_terminated(parent.info.run_id, status="FINISHED")  # (its `harness sweep` may have died)
    return optuna_study


def _nothing_left(study: StudyConfig, optuna_study: optuna.Study) -> bool:
    """Budget spent, or (grid) every point finished or taken by a live worker and nothing enqueued."""
    if _budget_spent(optuna_study, study.total_trials):
        return True
    trials = optuna_study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials) or study.sampler.type != "grid":
        return False
    claimed = {t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs}
    return len(claimed) >= study.n_sampled  # GridSampler would otherwise re-run a point


def _work(study: StudyConfig, optuna_study: optuna.Study, storage: optuna.storages.BaseStorage,
          client: MlflowClient, experiment_id: str, parent: str, progress: bool) -> None:
    """Run trials until none is left, then stay while other workers' trials run (to re-run a dead one's)."""
    if _nothing_left(study, optuna_study) and not wait_for_others(optuna_study, storage, client, experiment_id):
        return
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(1)
    # Async metric logging writes merged batches every 2 s and stops at once when a run ends; without
    # buffering its thread polls with a 1 s timeout, which adds ~1 s to every end_run (measured).
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "2")
    done = len(optuna_study.get_trials(deepcopy=False, states=COUNTED))
    display = Display(study.total_trials, done, progress)

    def stop_when_done(s: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if _nothing_left(study, s):
            s.stop()

    fatal: list[BaseException] = []
    objective = make_objective(study, experiment_id, parent, display, fatal)
    try:
        while True:
            optuna_study.optimize(
                objective, n_trials=study.total_trials, catch=(Exception,), gc_after_trial=False,
                callbacks=[optuna.study.MaxTrialsCallback(study.total_trials, states=COUNTED), stop_when_done])
            if fatal:
                raise fatal[0]
            if not wait_for_others(optuna_study, storage, client, experiment_id):
                break
    finally:
        display.close()


def _visible_gpus() -> list[str]:
    """GPU ids a worker may be pinned to: CUDA_VISIBLE_DEVICES' entries, else 0..n-1."""
    import torch

    if not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in given.split(",") if g.strip()] if given else [str(i) for i in range(torch.cuda.device_count())]


def _launch_workers(study: StudyConfig, optuna_study: optuna.Study, storage_url: str, uri: str, workers: int,
                    progress: bool) -> None:
    """N ``harness worker`` processes sharing the study; each logs to mlruns/logs/<study>-worker<i>.log."""
    path = study.path
    if path is None:
        path = Path(STORE_DIR, "studies", f"{study.name}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(study.text)
    logs = Path(STORE_DIR, "logs")
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, STORAGE_ENV: storage_url, TRACKING_ENV: uri}  # env, not argv: no password in `ps`
    procs = []
    gpus = _visible_gpus()
    for index in range(workers):
        log_path = logs / f"{study.name}-worker{index}.log"
        # several GPUs: worker i trains its trials on GPU i mod n (one trial per GPU at a time)
        worker_env = dict(env, CUDA_VISIBLE_DEVICES=gpus[index % len(gpus)]) if len(gpus) > 1 else env
        with open(log_path, "ab") as out:
            cmd = [sys.executable, "-m", "harness.cli", "worker", str(path), "--index", str(index)]
            procs.append((subprocess.Popen(cmd, env=worker_env, stdout=out, stderr=subprocess.STDOUT), log_path))
    display = Display(study.total_trials, 0, progress)
    try:
        while any(p.poll() is None for p, _ in procs):
            display.poll(optuna_study)
            time.sleep(1.0)
        display.poll(optuna_study)
    except BaseException:
        for p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for p, _ in procs:
            p.wait()
        raise
    finally:
        display.close()
    failed = [f"worker {i} exited with {p.returncode} (log: {log})" for i, (p, log) in enumerate(procs) if p.returncode]
    if failed and not (_nothing_left(study, optuna_study) and not any(
            t.state == TrialState.RUNNING for t in optuna_study.get_trials(deepcopy=False))):
        raise WorkersFailed(f"study {study.name!r}: " + "; ".join(failed) + ". Fix: read the logs, then run the "
                            "same command again to finish the study.")
    for line in failed:  # the others finished the study (and re-ran the failed workers' trials)
        logger.warning("%s; the other workers finished the study", line)
