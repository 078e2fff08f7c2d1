"""A study's evidence, exported from the MLflow store into its report folder as plain files.

Every number of a report is computed from these files alone (`harness.report.folder` reads them
back; `harness report --from-folder DIR` rebuilds a report without any store), so a reader can
recompute it, and a reviewer can check it, from the repository:

- ``per_seed.csv``: one row per finished (COMPLETE) trial: ``study, config, label, task, model,
  method, seed, run_id, trial, best_step, train_steps, wall_time_s, generated_tokens, trained_tokens,
  reused_from, commit``, the study's searched parameters, ``test/<metric>`` /
  ``test/sampled/<metric>`` for every metric, and ``val/<metric>`` at the selected checkpoint;
- ``per_example.csv.gz``: every finished trial's per-example test scores, greedy and each sampled
  pass, with BLEU's sufficient statistics (what the seed-aware bootstrap re-scores);
- ``curves.csv.gz``: each trial's validation curves (``val/*``) and training curves (reward, KL, ...);
- ``trials.csv``: every trial, finished or not (state, error, last validation value and step);
- ``study.yaml`` (the study file as run), ``swept.json`` (searched parameters and their default
  level), ``configs/*.yaml`` (each configuration's resolved config), ``provenance.json`` (commits,
  machine, command, package versions);
- ``test_outputs.csv.gz``: every finished trial's greedy test answers beside their references;
- ``hearing.csv`` (studies that evaluate the tiny base): the base's transcription of each task's
  test clips in the study's voice and in its pretraining voice, with word / character errors, as the
  sweep measured it when the study ended (`harness.sweep.hearing`);
- ``optuna_trials.csv``: every trial as Optuna saw it (`harness.report.optuna_trials`);
- ``samples.csv``: the finished trials' sample generations.

This module reads the runs (their tags, params and metric histories) and writes the tables made from
them; the files the runs logged as artifacts are read by `harness.report.artifacts`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from harness.report.artifacts import (
    TEST_OUTPUTS_FILE,
    copy_hearing,
    copy_text_artifacts,
    export_configs,
    export_samples,
    per_example_frame,
    read_examples,
    test_outputs_frame,
)
from harness.report.optuna_trials import export_optuna_trials
from harness.vocabulary import (
    BEST_STEP,
    GENERATED_TOKENS,
    HEARING_ARTIFACT,
    METRICS,
    OPTUNA_TRIALS_FILE,
    PARAMS_TOTAL,
    PARAMS_TRAINABLE,
    ROLE_STUDY,
    ROLE_TRIAL,
    SAMPLES_FILE,
    SEED,
    STUDY_FILE_ARTIFACT,
    SWEPT_ARTIFACT,
    TAG_BERTSCORE,
    TAG_CHECKPOINT,
    TAG_COMMAND,
    TAG_COMMIT,
    TAG_ERROR,
    TAG_LABEL,
    TAG_MACHINE,
    TAG_METEOR,
    TAG_NAMESPACE,
    TAG_NUMBER,
    TAG_REUSED,
    TAG_ROLE,
    TAG_STATE,
    TAG_VERSION_PREFIX,
    TEST,
    TRAIN_STEPS,
    TRAINED_TOKENS,
    VAL,
    VALIDATION_METRICS,
    WALL_TIME,
    method_label,
    metric_key,
    time_key,
)

__all__ = ["CURVE_METRICS", "FILES", "PER_SEED_COLUMNS", "export_study"]

FILES = {
    "per_seed": "per_seed.csv",
    "per_example": "per_example.csv.gz",
    "curves": "curves.csv.gz",
    "trials": "trials.csv",
    "study": STUDY_FILE_ARTIFACT,
    "swept": SWEPT_ARTIFACT,
    "provenance": "provenance.json",
    "configs": "configs",
    "hearing": HEARING_ARTIFACT,
    "optuna_trials": OPTUNA_TRIALS_FILE,
    "samples": SAMPLES_FILE,
    "test_outputs": TEST_OUTPUTS_FILE,
}
# What each finished trial logged of its compute and model (per_seed.csv columns).
COMPUTE = (
    BEST_STEP,
    TRAIN_STEPS,
    WALL_TIME,
    time_key("train"),  # the CPU-seconds behind a seed, a decoding pass and a test example (report/variance.py)
    time_key("test"),
    GENERATED_TOKENS,
    TRAINED_TOKENS,
    PARAMS_TOTAL,
    PARAMS_TRAINABLE,
)
PER_SEED_COLUMNS = [
    "study",
    "config",
    "label",
    "task",
    "model",
    "method",
    "seed",
    "run_id",
    "trial",
    *COMPUTE,
    "reused_from",
    "commit",
]
TEST_COLUMNS = [metric_key(TEST, m) for m in METRICS] + [metric_key(TEST, m, sampled=True) for m in METRICS]
VAL_COLUMNS = [metric_key(VAL, m) for m in VALIDATION_METRICS]  # at the selected checkpoint
# Training curves the report draws (besides every validation metric).
CURVE_METRICS: tuple[str, ...] = ("reward", "kl", "completion_len_mean", "entropy", "loss", "truncated_frac")
GZIP = {"method": "gzip", "mtime": 0}  # no timestamp in the header: the same data gives the same bytes
MLFLOW_STATUS_TO_STATE = {
    "FINISHED": "COMPLETE",
    "FAILED": "FAIL",
    "KILLED": "FAIL",
    "RUNNING": "RUNNING",
    "SCHEDULED": "RUNNING",
}


# --------------------------------------------------------------------------------------------------
# Trials as the store holds them


@dataclass
class _Trial:
    run: Run
    number: int | None
    state: str
    label: str

    @property
    def params(self) -> dict[str, str]:
        return dict(self.run.data.params)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.run.data.tags)


def _runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _trial(run: Run) -> _Trial:
    tags, params = run.data.tags, run.data.params
    number = tags.get(TAG_NUMBER, "")
    state = tags.get(TAG_STATE) or MLFLOW_STATUS_TO_STATE.get(run.info.status, run.info.status)
    label = tags.get(TAG_LABEL) or method_label(
        params.get("method", "?"), params.get("grpo.mp_grpo", "false").lower() == "true"
    )
    return _Trial(run, int(number) if number.lstrip("-").isdigit() else None, state, label)


def _config_params(trial: _Trial) -> dict[str, str]:
    """The trial's resolved config but its seed. MLflow's log_model also writes the logged model's
    ``model_config`` ({TAG_CHECKPOINT: ...}) into the run's params; a reused trial logs no model, so
    the harness's own ``harness.*`` keys (never a TrialConfig field) do not tell configurations apart."""
    return {k: v for k, v in trial.params.items() if k != SEED and not k.startswith(TAG_NAMESPACE)}


def _config_names(trials: list[_Trial]) -> dict[str, str]:
    """run id -> configuration name, for COMPLETE trials: trials sharing the label and every parameter
    but the seed form one configuration, named by its label, plus the parameters that tell it apart
    from others of the same label on the same task and model."""
    groups: dict[tuple, list[_Trial]] = defaultdict(list)
    for t in trials:
        key = (t.label, tuple(sorted(_config_params(t).items())))
        groups[key].append(t)
    by_label: dict[tuple, list[tuple]] = defaultdict(list)
    for key in groups:
        p = dict(key[1])
        by_label[(p.get("task"), p.get("model.name"), key[0])].append(key)
    names: dict[str, str] = {}
    for (_, _, label), keys in by_label.items():
        params = [dict(k[1]) for k in keys]
        varying = sorted({k for p in params for k in p if len({q.get(k) for q in params}) > 1})
        for key, p in zip(keys, params):
            name = f"{label} [{', '.join(f'{k}={p.get(k)}' for k in varying)}]" if len(keys) > 1 else label
            for t in groups[key]:
                names[t.run.info.run_id] = name
    return names


# --------------------------------------------------------------------------------------------------
# Export


def export_study(client: MlflowClient, experiment_name: str, out_dir: Path, previous: Path | None = None) -> None:
    """Write the study's evidence files (module docstring) into ``out_dir``; ``previous``: an earlier
    export of the study, whose ``hearing.csv`` is kept when the study's run has none (a store from
    before the sweep measured it)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} at {client.tracking_uri}")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = _runs(client, experiment.experiment_id)
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_STUDY]
    parent = parents[-1] if parents else None
    trials = sorted(
        (
            _trial(r)
            for r in runs
            if r.data.tags.get(TAG_ROLE) == ROLE_TRIAL
            or (TAG_ROLE not in r.data.tags and "mlflow.parentRunId" in r.data.tags)
        ),
        key=lambda t: (t.number is None, t.number or 0, t.run.info.run_id),
    )
    complete = [t for t in trials if t.state == "COMPLETE"]
    names = _config_names(complete)
    searched = _study_files(client, parent, out_dir)
    examples = read_examples(client, [t.run.info.run_id for t in complete])
    curves = _curves(client, complete)
    _per_seed(experiment_name, complete, names, searched, curves).to_csv(out_dir / FILES["per_seed"], index=False)
    per_example_frame(examples).to_csv(
        out_dir / FILES["per_example"], index=False, float_format="%.6g", compression=GZIP
    )
    test_outputs_frame(examples).to_csv(out_dir / FILES["test_outputs"], index=False, compression=GZIP)
    curves.to_csv(out_dir / FILES["curves"], index=False, float_format="%.6g", compression=GZIP)
    _trials_table(client, trials, names).to_csv(out_dir / FILES["trials"], index=False)
    export_optuna_trials(client, [t.run for t in trials], out_dir / FILES["optuna_trials"])
    export_samples(client, [t.run for t in complete], out_dir / FILES["samples"])
    _configs(client, complete, names, out_dir / FILES["configs"])
    (out_dir / FILES["provenance"]).write_text(json.dumps(_provenance(parent, complete), indent=2) + "\n")
    copy_hearing(
        client,
        parent.info.run_id if parent is not None else None,
        out_dir / FILES["hearing"],
        (previous or out_dir) / FILES["hearing"],
    )


def _study_files(client: MlflowClient, parent: Run | None, out_dir: Path) -> list[str]:
    """study.yaml and swept.json from the study's run; returns the searched parameters."""
    swept: dict[str, Any] = {}
    if parent is not None:
        targets = {STUDY_FILE_ARTIFACT: out_dir / FILES["study"], SWEPT_ARTIFACT: out_dir / FILES["swept"]}
        copy_text_artifacts(client, parent.info.run_id, targets)
    if (out_dir / FILES["swept"]).is_file():
        swept = json.loads((out_dir / FILES["swept"]).read_text())
    return list(swept)


def _per_seed(
    study: str, complete: list[_Trial], names: dict[str, str], searched: list[str], curves: pd.DataFrame
) -> pd.DataFrame:
    rows = []
    for t in complete:
        m, p, tags = t.run.data.metrics, t.params, t.tags
        history = curves[(curves["run_id"] == t.run.info.run_id) & (curves["step"] == m.get(BEST_STEP, 0))]
        selected = dict(zip(history["metric"], history["value"]))  # validation at the selected checkpoint
        rows.append(
            {
                "study": study,
                "config": names[t.run.info.run_id],
                "label": t.label,
                "task": p.get("task", "?"),
                "model": p.get("model.name", "?"),
                "method": p.get("method", "?"),
                "seed": p.get(SEED),
                "run_id": t.run.info.run_id,
                "trial": t.number,
                **{k: m.get(k) for k in COMPUTE},
                "reused_from": tags.get(TAG_REUSED, ""),
                "commit": tags.get(TAG_COMMIT, ""),
                **{k: p.get(k) for k in searched},
                **{k: m.get(k) for k in TEST_COLUMNS},
                **{k: selected.get(k) for k in VAL_COLUMNS},
            }
        )
    columns = PER_SEED_COLUMNS + [k for k in searched if k not in PER_SEED_COLUMNS] + TEST_COLUMNS + VAL_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def _curves(client: MlflowClient, complete: list[_Trial]) -> pd.DataFrame:
    rows = []
    for t in complete:
        keys = [metric_key(VAL, m) for m in VALIDATION_METRICS] + list(CURVE_METRICS)
        keys += [k for k in t.run.data.metrics if k.startswith("reward/")]
        for key in keys:
            if key not in t.run.data.metrics:
                continue
            rows += [
                (t.run.info.run_id, key, m.step, m.value) for m in client.get_metric_history(t.run.info.run_id, key)
            ]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"]).sort_values(
        ["run_id", "metric", "step"], kind="stable"
    )


def _trials_table(client: MlflowClient, trials: list[_Trial], names: dict[str, str]) -> pd.DataFrame:
    rows = []
    for t in trials:
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(t.run.info.run_id, metric_key(VAL, "bleu"))
        )
        rows.append(
            {
                "trial": t.number,
                "label": t.label,
                "state": t.state,
                "mlflow_status": t.run.info.status,
                "task": t.params.get("task", "?"),
                "config": names.get(t.run.info.run_id, ""),
                "seed": t.params.get(SEED),
                "last_val_step": history[-1][0] if history else None,
                "last_val_bleu": history[-1][1] if history else None,
                "error": t.tags.get(TAG_ERROR, ""),
                "run_id": t.run.info.run_id,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "trial",
            "label",
            "state",
            "mlflow_status",
            "task",
            "config",
            "seed",
            "last_val_step",
            "last_val_bleu",
            "error",
            "run_id",
        ],
    )


def _configs(client: MlflowClient, complete: list[_Trial], names: dict[str, str], folder: Path) -> None:
    """Each configuration's resolved TrialConfig (`export_configs`: its first trial's, the seeds listed)."""
    members: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for t in complete:
        members[(names[t.run.info.run_id], t.params.get("task", "?"))].append((t.run.info.run_id, t.params[SEED]))
    export_configs(client, members, folder)


def _provenance(parent: Run | None, complete: list[_Trial]) -> dict[str, Any]:
    tags = dict(parent.data.tags) if parent is not None else {}
    trial_tags = [t.tags for t in complete]
    return {
        "study_run": parent.info.run_id if parent is not None else None,
        "command": tags.get(TAG_COMMAND),
        "commit": tags.get(TAG_COMMIT),
        "machine": tags.get(TAG_MACHINE),
        "versions": {
            k.removeprefix(TAG_VERSION_PREFIX): v for k, v in sorted(tags.items()) if k.startswith(TAG_VERSION_PREFIX)
        },
        "trial_commits": sorted({t.get(TAG_COMMIT, "unknown") for t in trial_tags}),
        "trial_machines": sorted({t.get(TAG_MACHINE, "unknown") for t in trial_tags}),
        "checkpoints": sorted({t.get(TAG_CHECKPOINT, "unknown") for t in trial_tags}),
        "meteor": sorted({t.get(TAG_METEOR, "unknown") for t in trial_tags}),
        "bertscore": sorted({t.get(TAG_BERTSCORE, "unknown") for t in trial_tags}),
        "reused_trials": sum(bool(t.get(TAG_REUSED)) for t in trial_tags),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
