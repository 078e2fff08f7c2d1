"""The study's Optuna trials in its report folder (``optuna_trials.csv``), and an in-memory Optuna study
rebuilt from that file alone, on which the report runs Optuna's own analysis.

Export (`export_optuna_trials`): every trial run's Optuna record (``optuna_trial.json``, written by
`harness.sweep.optuna_record` when the trial ended) becomes one row: ``number, state, values``
(JSON list, one per objective; COMPLETE only), ``params`` and ``distributions`` (JSON; Optuna's
``distribution_to_json``), ``intermediate_values`` (JSON ``{step: value}``: what the pruner saw),
``intermediate_metric`` (which validation metric those are), ``label, run_id, baseline,
datetime_start, datetime_complete``. A run without a record (from before records existed) keeps its
number, state, label and run id, the rest empty.

Rebuild (`load_optuna_study`): ``optuna.create_study(directions=...)`` in memory (directions from the
folder's ``study.yaml``), then ``study.add_trials`` of ``optuna.trial.create_trial(...)`` per row in
trial-number order. A number with no recorded trial is filled with an empty FAIL trial, so the
rebuilt numbers are the study's. A pruned trial's value is its last intermediate value, as Optuna
records it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from optuna.distributions import json_to_distribution
from optuna.trial import TrialState

from harness.report.artifacts import read_json_artifact
from harness.vocabulary import (
    OPTUNA_TRIAL_ARTIFACT,
    OPTUNA_TRIALS_FILE,
    STUDY_FILE_ARTIFACT,
    TAG_LABEL,
    TAG_NUMBER,
    TAG_STATE,
)

__all__ = ["COLUMNS", "OptunaView", "export_optuna_trials", "load_optuna_study", "read_optuna_trials"]

COLUMNS = [
    "number",
    "state",
    "values",
    "params",
    "distributions",
    "intermediate_values",
    "intermediate_metric",
    "label",
    "run_id",
    "baseline",
    "datetime_start",
    "datetime_complete",
]


# --------------------------------------------------------------------------------------------------
# Export


def export_optuna_trials(client: MlflowClient, runs: list[Run], path: Path) -> pd.DataFrame:
    """Write ``optuna_trials.csv`` from the trial runs' Optuna records; returns the table."""
    rows = []
    for run in runs:
        tags = run.data.tags
        record = read_json_artifact(client, run.info.run_id, OPTUNA_TRIAL_ARTIFACT) or {}
        number = record.get("number", tags.get(TAG_NUMBER))
        attrs = record.get("user_attrs", {})
        rows.append(
            {
                "number": int(number) if number is not None and str(number).lstrip("-").isdigit() else None,
                "state": record.get("state", tags.get(TAG_STATE, "")),
                "values": _json(record.get("values")) if record else "",
                "params": _json(record.get("params")) if record else "",
                "distributions": _json(record.get("distributions")) if record else "",
                "intermediate_values": _json(record.get("intermediate_values")) if record else "",
                "intermediate_metric": record.get("intermediate_metric", ""),
                "label": attrs.get("label", tags.get(TAG_LABEL, "")),
                "run_id": run.info.run_id,
                "baseline": attrs.get("baseline", ""),
                "datetime_start": record.get("datetime_start", ""),
                "datetime_complete": record.get("datetime_complete", ""),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table[table["number"].notna()].astype({"number": int}).sort_values("number", kind="stable")
    table = table.drop_duplicates("number", keep="last")  # (a number logged twice: its latest run)
    table.to_csv(path, index=False)
    return table


def _json(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=False)


# --------------------------------------------------------------------------------------------------
# Read back and rebuild


def read_optuna_trials(folder: Path) -> pd.DataFrame | None:
    path = Path(folder) / OPTUNA_TRIALS_FILE
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"run_id": str, "label": str, "state": str}, keep_default_na=False)


@dataclass
class OptunaView:
    """A study rebuilt from its report folder, with what the study file says about it."""

    study: optuna.Study
    metrics: list[str]  # the objectives' metrics, in order
    directions: list[str]  # "maximize" / "minimize", in order
    sampler: str
    pruner: str
    table: pd.DataFrame  # optuna_trials.csv
    unrecorded: list[int] = field(default_factory=list)  # trial numbers without an Optuna record

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def run_id(self, trial: optuna.trial.FrozenTrial) -> str:
        return str(trial.user_attrs.get("run_id", ""))

    def sampled(self, states: tuple[TrialState, ...] = (TrialState.COMPLETE,)) -> list[optuna.trial.FrozenTrial]:
        """Trials the sampler drew (not the enqueued baselines), in the given states."""
        return [t for t in self.study.get_trials(deepcopy=False, states=states) if "baseline" not in t.user_attrs]


def load_optuna_study(folder: Path) -> OptunaView | None:
    """The folder's Optuna study rebuilt from ``optuna_trials.csv`` and ``study.yaml``; None without them."""
    from pydantic import ValidationError

    from harness.study import read_yaml
    from harness.study.spec import StudyConfig

    folder = Path(folder)
    table = read_optuna_trials(folder)
    if table is None or not (folder / STUDY_FILE_ARTIFACT).is_file():  # (the folder keeps it under that name)
        return None
    data, _ = read_yaml(folder / STUDY_FILE_ARTIFACT)
    try:
        config = StudyConfig.model_validate(data or {})
    except ValidationError:  # not a study file this code reads (e.g. an older schema): no Optuna views
        return None
    metrics = [o.metric for o in config.objectives]
    directions = [o.direction for o in config.objectives]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # (no "A new study created in memory" line)
    try:
        study = optuna.create_study(directions=directions, study_name=config.name or folder.name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    rows = {int(r["number"]): r for r in table.to_dict("records")}
    trials, unrecorded = [], []
    for number in range(max(rows, default=-1) + 1):
        row = rows.get(number)
        trial = _trial(row, len(metrics)) if row is not None else None
        if trial is None:
            unrecorded.append(number)
            known = {k: row[k] for k in ("label", "run_id")} if row is not None else {}
            trial = optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"number": number, **known})
        trials.append(trial)
    study.add_trials(trials)
    return OptunaView(study, metrics, directions, config.sampler.type, config.pruner.type, table, unrecorded)


def _trial(row: dict, n_objectives: int) -> optuna.trial.FrozenTrial | None:
    """The trial of one row, or None when the row has no Optuna record."""
    if not row.get("distributions"):
        return None
    state = TrialState[row["state"]] if row["state"] in TrialState.__members__ else TrialState.FAIL
    distributions = {k: json_to_distribution(v) for k, v in json.loads(row["distributions"]).items()}
    params = json.loads(row["params"]) if row.get("params") else {}
    intermediate = {int(k): float(v) for k, v in json.loads(row["intermediate_values"] or "{}").items()}
    values = json.loads(row["values"]) if row.get("values") else None
    if state != TrialState.COMPLETE:
        values = None
    if state == TrialState.PRUNED and intermediate and n_objectives == 1:  # as Optuna records a pruned trial
        values = [intermediate[max(intermediate)]]
    attrs = {"number": int(row["number"]), "label": row.get("label", ""), "run_id": row.get("run_id", "")}
    if row.get("baseline") not in (None, ""):
        attrs["baseline"] = int(row["baseline"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.trial.create_trial(
            state=state,
            values=values,
            params=params,
            distributions=distributions,
            intermediate_values=intermediate,
            user_attrs=attrs,
        )
