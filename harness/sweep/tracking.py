"""MLflow: the study's experiment and its parent run.

Layout (read by :mod:`harness.report`): one experiment per study; a parent run named after the
study (tag ``harness.role=study``; params ``study.*``, ``sampler``, ``pruner``; tags
``harness.git_commit``, ``harness.version.*``; artifact ``study.yaml``), reused when the study runs
again; one nested run per Optuna trial (tags ``harness.role=trial``, ``harness.trial_number``,
``harness.state``, ``harness.label``, ``harness.error``; params = the resolved TrialConfig, dotted;
per-step metrics, ``test/*``, ``best_step``, ``train_steps``, ``generated_tokens``, ``wall_time_s``,
``time/*``; artifacts ``trial_config.yaml``, ``test_examples.json``, ``samples/step_NNNN.json``,
``optuna_trial.json``; dataset inputs ``<task>-train|validation|test``; the MLflow model
``best_checkpoint``).
The trial runs are written by :mod:`harness.sweep.objective`; every tag, metric and artifact name is
`harness.vocabulary`'s.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from harness.study import StudyConfig, StudyError, flatten
from harness.sweep.provenance import environment_tags
from harness.sweep.stores import artifact_root, mask_url
from harness.vocabulary import ROLE_STUDY, STUDY_FILE_ARTIFACT, SWEPT_ARTIFACT, TAG_N_TRIALS, TAG_ROLE, TAG_STUDY

EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"  # MLflow's description field of an experiment or run

__all__ = ["changed_error", "ensure_experiment", "ensure_study_run", "find_study_run", "param_value", "study_params"]


def ensure_experiment(client: MlflowClient, name: str, uri: str, description: str = "") -> str:
    """The study's experiment (created once): MLflow's UI opens it in its model-training view
    (``mlflow.experimentKind``; MLflow 3 otherwise opens a GenAI experiment view) with the study's
    description."""
    tags = {EXPERIMENT_KIND: MODEL_TRAINING, **({NOTE: description} if description else {})}
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_root(uri), tags=tags)
        except mlflow.exceptions.MlflowException:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise StudyError(
            f"MLflow experiment {name!r} is deleted in {mask_url(uri)}. Fix: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or rename the study."
        )
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def study_params(study: StudyConfig) -> dict[str, str]:
    """The study run's params: the study config flattened with a ``study.`` prefix, plus sampler/pruner."""
    data = study.model_dump(mode="json", exclude={"description", "n_trials"}, exclude_none=True)  # both may change
    params = {f"study.{key}": param_value(value) for key, value in flatten(data).items()}
    params["sampler"], params["pruner"] = study.sampler.type, study.pruner.type
    return params


def param_value(value: Any) -> str:
    """A parameter as MLflow stores it (text; JSON for non-strings; cut at MLflow's length limit)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def find_study_run(client: MlflowClient, experiment_id: str):
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_STUDY}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return runs[0] if runs else None


def swept_defaults(study: StudyConfig) -> dict[str, Any]:
    """Every parameter the study's space searches, with TrialConfig's default for it as this code has it:
    the level the report compares the others against (`harness.vocabulary.SWEPT_ARTIFACT`)."""
    from harness.study.keys import DEFAULTS

    return {key: DEFAULTS.get(key) for key in study.space}


def ensure_study_run(client: MlflowClient, experiment_id: str, study: StudyConfig) -> str:
    """The study's parent run: created once, then reused (status back to RUNNING) on every resume."""
    params, tags = (
        study_params(study),
        {TAG_ROLE: ROLE_STUDY, TAG_STUDY: study.name, TAG_N_TRIALS: str(study.total_trials), **environment_tags()},
    )
    if study.description:
        tags[NOTE] = study.description  # the run description shown by the UI
    run = find_study_run(client, experiment_id)
    if run is None:
        run = client.create_run(experiment_id, run_name=study.name, tags=tags)
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
        client.log_text(run.info.run_id, study.text, STUDY_FILE_ARTIFACT)
        client.log_dict(run.info.run_id, swept_defaults(study), SWEPT_ARTIFACT)
        return run.info.run_id
    changed = {
        k
        for k in params.keys() | run.data.params.keys()
        if k.startswith("study.") or k in ("sampler", "pruner")
        if params.get(k) != run.data.params.get(k)
    }
    if changed:
        raise changed_error(study, sorted(changed), where="MLflow")
    client.update_run(run.info.run_id, status="RUNNING")
    client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()])
    return run.info.run_id


def changed_error(study: StudyConfig, changed: list[str], where: str) -> StudyError:
    shown = ", ".join(k.removeprefix("study.") for k in changed[:6]) + (" ..." if len(changed) > 6 else "")
    return StudyError(
        f"{study.path or study.name}: study {study.name!r} already exists in the {where} store with a different "
        f"definition (changed: {shown}), so it cannot be resumed. Fix: set a new 'name:' in the study file "
        "(only 'description' and 'n_trials' may change between runs of one study)."
    )
