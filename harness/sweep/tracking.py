"""MLflow: the study's experiment and its parent run.

Layout (read by :mod:`harness.report`): one experiment per study; a parent run named after the
study (tag ``harness.role=study``; params ``study.*``, ``sampler``, ``pruner``; tags
``harness.git_commit``, ``harness.version.*``; artifact ``study.yaml``), reused when the study runs
again; one nested run per Optuna trial (tags ``harness.role=trial``, ``harness.trial_number``,
``harness.state``, ``harness.label``, ``harness.error``; params = the resolved TrialConfig, dotted;
per-step metrics, ``test/*``, ``best_step``, ``train_steps``, ``generated_tokens``, ``wall_time_s``,
``time/*``; artifacts ``trial_config.yaml``, ``test_examples.json``, ``samples/step_NNNN.json``).
The trial runs are written by :mod:`harness.sweep.objective`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from harness.study import StudyConfig, StudyError, flatten
from harness.sweep.stores import artifact_root, mask_url

ROLE, STUDY_TAG, NUMBER, STATE, LABEL, ERROR, RESUMED = (
    "harness.role", "harness.study", "harness.trial_number", "harness.state", "harness.label", "harness.error",
    "harness.resumed_from_step")


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
    root = Path(__file__).resolve().parent.parent.parent  # the checkout (this is harness/sweep/tracking.py)
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
