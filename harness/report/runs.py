"""What a study ran, read back from the MLflow store: its trials, their configurations (trials
differing only by seed) and the per-configuration statistics every table is made of."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

METRICS: tuple[str, ...] = ("bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor")
METRIC_NAMES = {"bleu": "BLEU", "bertscore": "BERTScore", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                "rougeL": "ROUGE-L", "meteor": "METEOR"}
STATES: tuple[str, ...] = ("COMPLETE", "FAIL", "PRUNED", "RUNNING")
MLFLOW_STATUS_TO_STATE = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "KILLED": "FAIL",
                          "RUNNING": "RUNNING", "SCHEDULED": "RUNNING"}
SEED_PARAMS = frozenset({"seed"})  # parameters that distinguish repeats, not configurations
REWARD_PARAM, MP_PARAM = "grpo.reward", "grpo.mp_grpo"
METHOD_ORDER = {"base-eval": 0, "sft": 1, "grpo": 2}


# --------------------------------------------------------------------------------------------------
# Reading the store


class _Params:
    """What a trial's or a configuration's parameters say (``params``: MLflow params, as strings)."""

    params: dict[str, str]

    @property
    def task(self) -> str:
        return self.params.get("task", "?")

    @property
    def model(self) -> str:
        return self.params.get("model.name", "?")

    @property
    def method(self) -> str:
        return self.params.get("method", "?")


@dataclass
class Trial(_Params):
    run_id: str
    number: int | None
    state: str
    status: str  # MLflow run status
    label: str
    error: str
    params: dict[str, str]
    metrics: dict[str, float]  # latest value of each metric


@dataclass
class Config(_Params):
    """The COMPLETE trials of one label + parameter set, differing only by seed."""

    label: str
    params: dict[str, str]  # without seed
    trials: list[Trial]
    name: str = ""  # display name, unique within (task, model)

    @property
    def mp(self) -> bool:
        return self.params.get(MP_PARAM, "False").lower() == "true"

    @property
    def is_grpo(self) -> bool:
        return self.method == "grpo"

    @property
    def order(self) -> tuple:
        return (self.task, self.model, METHOD_ORDER.get(self.method, 9), self.mp, natural_key(self.name))

    @property
    def seeds(self) -> list[str]:
        return [t.params.get("seed", "?") for t in self.trials]


@dataclass
class Study:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    trials: list[Trial]
    parent_tags: dict[str, str] = field(default_factory=dict)
    configs: list[Config] = field(default_factory=list)


def _all_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _default_label(params: dict[str, str]) -> str:
    method = params.get("method", "?")
    if method == "base-eval":
        return "base"
    if method == "grpo" and params.get(MP_PARAM, "False").lower() == "true":
        return "mp-grpo"
    return method


def _trial_from_run(run: Run) -> Trial:
    tags, params = run.data.tags, dict(run.data.params)
    number = tags.get("harness.trial_number", "")
    state = tags.get("harness.state") or MLFLOW_STATUS_TO_STATE.get(run.info.status, run.info.status)
    return Trial(run_id=run.info.run_id, number=int(number) if number.lstrip("-").isdigit() else None,
                 state=state, status=run.info.status, label=tags.get("harness.label") or _default_label(params),
                 error=tags.get("harness.error", ""), params=params, metrics=dict(run.data.metrics))


def _is_trial(run: Run) -> bool:
    role = run.data.tags.get("harness.role")
    return role == "trial" or (role is None and "mlflow.parentRunId" in run.data.tags)


def load_study(client: MlflowClient, experiment_name: str) -> Study:
    """All trial runs of a study's experiment and its (latest) parent run, grouped into configurations."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} at {client.tracking_uri}")
    runs = _all_runs(client, experiment.experiment_id)
    parents = [r for r in runs if r.data.tags.get("harness.role") == "study"]
    trials = sorted((_trial_from_run(r) for r in runs if _is_trial(r)),
                    key=lambda t: (t.number is None, t.number if t.number is not None else 0, t.run_id))
    study = Study(experiment_name, client.tracking_uri, experiment.experiment_id,
                  parents[-1].info.run_id if parents else None, trials,
                  dict(parents[-1].data.tags) if parents else {})
    study.configs = group_configs(trials)
    return study


def natural_key(text: str) -> tuple:
    """Sort key in which numbers compare as numbers: 'G=4' < 'G=16', 'beta=0.0' < 'beta=0.01'."""
    parts = re.split(r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)", text)
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


def group_configs(trials: list[Trial]) -> list[Config]:
    """COMPLETE trials grouped by (label, all params but the seed); display names made unique."""
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    for trial in trials:
        if trial.state == "COMPLETE":
            key = (trial.label, tuple(sorted((k, v) for k, v in trial.params.items() if k not in SEED_PARAMS)))
            groups[key].append(trial)
    configs = [Config(label, dict(items), ts) for (label, items), ts in groups.items()]
    _name_configs(configs)
    return sorted(configs, key=lambda c: c.order)


def varying_params(configs: list[Config]) -> list[str]:
    keys = sorted({k for c in configs for k in c.params})
    return [k for k in keys if len({c.params.get(k) for c in configs}) > 1]


def _name_configs(configs: list[Config]) -> None:
    """Name = label; labels shared within a task/model get the parameters that tell them apart."""
    by_label: dict[tuple, list[Config]] = defaultdict(list)
    for c in configs:
        by_label[(c.task, c.model, c.label)].append(c)
    for same in by_label.values():
        keys = varying_params(same)
        for c in same:
            extra = ", ".join(f"{k}={c.params.get(k)}" for k in keys)
            c.name = f"{c.label} [{extra}]" if len(same) > 1 else c.label


def task_models(configs: list[Config]) -> dict[tuple[str, str], list[Config]]:
    out: dict[tuple[str, str], list[Config]] = defaultdict(list)
    for c in configs:
        out[(c.task, c.model)].append(c)
    return dict(out)


# --------------------------------------------------------------------------------------------------
# Statistics


def summarize(trials: list[Trial], keys: list[str]) -> pd.DataFrame:
    """Rows = metric keys; columns mean, std (ddof=1), n (trials that logged the key)."""
    frame = pd.DataFrame([t.metrics for t in trials], columns=keys, dtype=float)
    return pd.DataFrame({"mean": frame.mean(), "std": frame.std(ddof=1), "n": frame.count()}, index=keys)


def metric_stats(config: Config, prefix: str = "test/") -> pd.DataFrame:
    """Rows = the six paper metrics (short names); mean/std/n of ``{prefix}{metric}`` over seeds."""
    stats = summarize(config.trials, [f"{prefix}{m}" for m in METRICS])
    stats.index = list(METRICS)
    return stats
