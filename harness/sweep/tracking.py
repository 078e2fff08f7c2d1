"""MLflow: the study's experiment and its parent run.

Layout (read by :mod:`harness.report`): one experiment per study; a parent run named after the
study (tag ``harness.role=study``; params ``study.*``, ``sampler``, ``pruner``; tags
``harness.git_commit``, ``harness.version.*``; artifact ``study.yaml``), reused when the study runs
again; one nested run per Optuna trial (tags ``harness.role=trial``, ``harness.trial_number``,
``harness.state``, ``harness.label``, ``harness.error``; params = the resolved TrialConfig, dotted;
per-step metrics, ``test/*``, ``best_step``, ``train_steps``, ``generated_tokens``, ``wall_time_s``,
``time/*``; artifacts ``trial_config.yaml``, ``test_examples.json``, ``samples/step_NNNN.json``,
``optuna_trial.json``, ``test_predictions.json`` (an MLflow table); dataset inputs
``<task>-train|validation|test``; the MLflow model of its best checkpoint, named after its configuration).
The trial runs are written by :mod:`harness.sweep.objective`; every tag, metric and artifact name is
`harness.vocabulary`'s.

For people reading the MLflow UI (none of it is read by the reports): a trial run is named
``024-grpo-rouge1-s1`` (`run_name`) and described in one line (`trial_note`, MLflow's run
description); the study run gets the best value of each objective so far (``best/<objective>``, and
``best_trial``) as the trials end (`log_best`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import mlflow
import optuna
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.provenance import git_commit, machine, versions
from harness.study import StudyConfig, StudyError, flatten
from harness.sweep.display import fmt_value, outcome_text, swept_values
from harness.sweep.stores import artifact_root, mask_url
from harness.vocabulary import (
    BEST_TRIAL,
    METHOD_PARAM,
    NOTE_TAG,
    ROLE_STUDY,
    SEED,
    STUDY_FILE_ARTIFACT,
    SWEPT_ARTIFACT,
    TAG_COMMAND,
    TAG_COMMIT,
    TAG_MACHINE,
    TAG_N_TRIALS,
    TAG_ROLE,
    TAG_STUDY,
    TAG_VERSION_PREFIX,
    best_key,
)

EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = NOTE_TAG  # MLflow's description field of an experiment or run
NAME_CHARS = 80  # a trial's name (run name without its number, model name) is cut to this
VALUE_CHARS = 24  # each swept value in it to this

__all__ = [
    "best_metrics",
    "changed_error",
    "ensure_experiment",
    "environment_tags",
    "ensure_study_run",
    "find_study_run",
    "log_best",
    "outcome_of",
    "param_value",
    "run_name",
    "study_params",
    "trial_name",
    "trial_note",
]


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


def environment_tags() -> dict[str, str]:
    """Commit, machine, command line (passwords masked) and package versions (`harness.provenance`), as
    MLflow tags of the study's run and of every trial run."""
    return {
        TAG_COMMIT: git_commit(),
        TAG_MACHINE: machine(),
        TAG_COMMAND: " ".join(["harness", *(mask_url(arg) for arg in sys.argv[1:])]),
        **{f"{TAG_VERSION_PREFIX}{package}": v for package, v in versions().items()},
    }


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


# --------------------------------------------------------------------------------------------------
# What the MLflow UI shows of a trial and of the study (read by people, never by the reports)


def _slug(text: str) -> str:
    """Filesystem-safe: letters, digits and ``._+=-``; anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("_")


def trial_name(label: str, params: Mapping[str, Any]) -> str:
    """``grpo-rouge1-s1``: the trial's label, the values of the study's swept parameters (space order) and
    ``s<seed>``; filesystem-safe and short (values cut to 24 characters, the name to 80)."""
    head = _slug(label) or "trial"
    tail = f"s{_slug(fmt_value(params[SEED]))}" if SEED in params else ""
    values = "-".join(v for v in (_slug(fmt_value(value))[:VALUE_CHARS] for _, value in swept_values(params)) if v)
    room = NAME_CHARS - len(head) - len(tail) - 2
    return "-".join(p for p in (head, values[:room].rstrip("-_."), tail) if p)


def run_name(number: int, label: str, params: Mapping[str, Any]) -> str:
    """``024-grpo-rouge1-s1``: the Optuna trial number (3 digits, so the UI sorts names in trial order)
    and `trial_name`."""
    return f"{number:03d}-{trial_name(label, params)}"


def trial_note(
    label: str, method: str, params: Mapping[str, Any], state: str = "RUNNING", outcome: str | None = None
) -> str:
    """The trial run's one-line description: ``grpo; grpo.reward=rouge1; seed=1; COMPLETE: test/bleu=18.83``
    (method in brackets when the label is not the method: ``base (base-eval); seed=0; ...``)."""
    swept = "; ".join(f"{k}={fmt_value(v)}" for k, v in params.items() if k not in (SEED, METHOD_PARAM))
    parts = [label if label == method else f"{label} ({method})", swept, f"{SEED}={params.get(SEED, '?')}"]
    end = f"{state}: {outcome.strip().splitlines()[0]}" if outcome and outcome.strip() else state
    return "; ".join(p for p in parts if p) + f"; {end}"


def best_metrics(study: StudyConfig, results: Iterable[tuple[int, Sequence[float]]]) -> dict[str, float]:
    """From finished trials' (number, objective values): ``best/<objective>`` for each objective (the best
    value in its direction), and with one objective ``best_trial`` (the first trial with that value)."""
    results = list(results)
    out: dict[str, float] = {}
    if not results:
        return out
    for i, objective in enumerate(study.objectives):
        pick = max if objective.direction == "maximize" else min
        number, values = pick(results, key=lambda r: (r[1][i], -r[0]) if pick is max else (r[1][i], r[0]))
        out[best_key(objective.metric)] = float(values[i])
        if not study.multi_objective:
            out[BEST_TRIAL] = float(number)
    return out


def log_best(
    client: MlflowClient,
    run_id: str,
    study: StudyConfig,
    optuna_study: optuna.Study,
    pending: tuple[int, Sequence[float]] | None = None,
) -> dict[str, float]:
    """Log on the study's run ``run_id`` the best value of each objective over the study's COMPLETE trials
    (`best_metrics`; ``pending``: a trial that has completed but that Optuna has not recorded yet), at step
    = how many trials that is. The trial runner calls it as each trial completes (a curve of the best so
    far); call it once more when the study ends. Returns what it logged (nothing before a trial completes)."""
    results = [
        (t.number, t.values)
        for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and (pending is None or t.number != pending[0])
    ]
    if pending is not None:
        results.append((pending[0], list(pending[1])))
    best = best_metrics(study, results)
    if best:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, len(results)) for k, v in best.items()])
    return best


def outcome_of(study: StudyConfig, values: Sequence[float]) -> str:
    """``test/sampled/bleu=18.83``: a trial's objective values as its line and description show them."""
    return outcome_text([o.metric for o in study.objectives], values)
