"""Optuna: the study, its baselines, and recovery of dead or failed trials.

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
import os
import socket
import time
import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
import optuna
import psutil
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study import SEED, StudyConfig, StudyError, make_pruner, make_sampler
from harness.sweep.stores import MAX_RETRIES, mask_url
from harness.sweep.tracking import changed_error, study_params
from harness.vocabulary import ROLE_TRIAL, TAG_ERROR, TAG_NUMBER, TAG_ROLE, TAG_STATE, TOTAL_TRIALS_ATTR

__all__ = [
    "BUDGETED",
    "COUNTED",
    "POLL_S",
    "budget_spent",
    "create_study",
    "enqueue_baselines",
    "load_study_for_worker",
    "recover",
    "wait_for_others",
    "worker_identity",
]

logger = logging.getLogger("harness.sweep")

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # what n_trials counts: failed trials get re-run
# A worker starts no trial once these reach n_trials: trials other workers are running will count when
# they end (without them, N workers overshoot the budget by up to N-1; a dead one's trial fails and frees its place).
BUDGETED = (*COUNTED, TrialState.RUNNING)
POLL_S = 0.5  # how often a worker that has nothing to run looks for dead workers' trials (a `--workers N`
# sweep ends when its last worker does: at most this long after its last trial; one poll is a few queries)


def create_study(study: StudyConfig, storage: optuna.storages.BaseStorage, worker: int = 0) -> optuna.Study:
    optuna_study = optuna.create_study(
        study_name=study.name,
        storage=storage,
        sampler=make_sampler(study, worker),
        pruner=make_pruner(study),
        directions=[objective.direction for objective in study.objectives],
        load_if_exists=True,
    )
    definition = study_params(study)
    stored = optuna_study.user_attrs.get("definition")
    if stored is None:
        optuna_study.set_user_attr("definition", definition)
    elif stored != definition:
        raise changed_error(
            study,
            sorted(k for k in stored.keys() | definition.keys() if stored.get(k) != definition.get(k)),
            where="Optuna",
        )
    return optuna_study


def load_study_for_worker(
    study: StudyConfig, storage: optuna.storages.BaseStorage, storage_url: str, worker: int
) -> optuna.Study:
    try:
        optuna.load_study(study_name=study.name, storage=storage)
    except KeyError:
        raise StudyError(
            f"study {study.name!r} does not exist in {mask_url(storage_url)}. Fix: start it with "
            f"`harness sweep {study.path or study.name}` (workers join a running study)."
        ) from None
    return create_study(study, storage, worker)


def enqueue_baselines(optuna_study: optuna.Study, study: StudyConfig) -> None:
    """Each baseline x first-round seed once (idempotent: a baseline x seed already in the study is not
    added again; later rounds' seeds are planned by the rounds, `harness.sweep.rounds`)."""
    present = {
        (t.user_attrs.get("baseline"), t.params.get(SEED, t.system_attrs.get("fixed_params", {}).get(SEED)))
        for t in optuna_study.get_trials(deepcopy=False)
        if "baseline" in t.user_attrs
    }
    for index in range(len(study.baselines)):
        for seed in study.first_seeds:
            if (index, seed) not in present:
                optuna_study.enqueue_trial({SEED: seed}, user_attrs={"baseline": index})


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def _alive(worker: Mapping[str, Any]) -> bool:
    try:
        return psutil.Process(int(worker["pid"])).create_time() == worker["started"]
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError, ValueError):
        return False


def recover(
    optuna_study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    client: MlflowClient,
    experiment_id: str,
    retry_failed: bool,
) -> list[int]:
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
        earlier = sum(
            t.state == TrialState.FAIL and _key(t) == _key(trial) for t in optuna_study.get_trials(deepcopy=False)
        )
        if trial.params and earlier <= MAX_RETRIES:  # (no params: killed before it drew any, nothing to repeat)
            _enqueue_again(optuna_study, trial)
            retried.append(trial.number)
        logger.warning(
            "trial %d: its worker (pid %s) died; marked FAIL%s",
            trial.number,
            worker["pid"],
            " and enqueued again" if trial.number in retried else f" (not retried: failed {earlier} times)",
        )
    _kill_orphan_runs(optuna_study, client, experiment_id)
    if retry_failed and not budget_spent(optuna_study, None):
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
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG_ROLE}` = '{ROLE_TRIAL}'"
    )
    states = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}  # after the runs: a trial that
    # starts meanwhile is RUNNING here, never missing
    for run in runs:
        trial = states.get(int(run.data.tags.get(TAG_NUMBER, -1)))
        if trial is not None and trial.state == TrialState.RUNNING:
            continue
        error = (trial.user_attrs.get("error") if trial else None) or "the worker process died (no heartbeat)"
        client.log_batch(
            run.info.run_id, tags=[mlflow.entities.RunTag(TAG_STATE, "FAIL"), mlflow.entities.RunTag(TAG_ERROR, error)]
        )
        client.set_terminated(run.info.run_id, status="KILLED")


def wait_for_others(
    optuna_study: optuna.Study, storage: optuna.storages.BaseStorage, client: MlflowClient, experiment_id: str
) -> bool:
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
        if any(t.state == TrialState.WAITING for t in trials) and not budget_spent(optuna_study, None):
            return True
        heartbeats, host = isinstance(storage, optuna.storages.RDBStorage), socket.gethostname()
        if not any(
            t.state == TrialState.RUNNING and (heartbeats or t.user_attrs.get("worker", {}).get("host") == host)
            for t in trials
        ):  # (a journal cannot tell whether another host's worker is alive)
            return False
        time.sleep(POLL_S)


def budget_spent(optuna_study: optuna.Study, total: int | None) -> bool:
    if total is None:
        total = optuna_study.user_attrs.get(TOTAL_TRIALS_ATTR)
    return total is not None and len(optuna_study.get_trials(deepcopy=False, states=BUDGETED)) >= total
