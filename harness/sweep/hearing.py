"""The base model's hearing, measured once per study when it ends (``harness sweep``), where models run.

A study that evaluates the tiny base on synthetic speech (a finished ``base-eval`` trial of model
``tiny``, data ``synthetic``) gets, per such task, the base's transcription of the task's test clips in
the study's voice and in its pretraining voice, with word / character errors (`harness.eval.hearing`),
logged on the study's run as ``hearing.csv`` (`HEARING_ARTIFACT`). The report copies that file into
its folder and reads it from there; it loads no model. Running the study again (a resume, more rounds)
keeps each task's rows while its starting checkpoint and voices are the same, and measures the rest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.config import TrialConfig
from harness.study import StudyConfig
from harness.sweep.stores import download_artifact
from harness.sweep.tracking import find_study_run
from harness.vocabulary import BASE_EVAL, HEARING_ARTIFACT

__all__ = ["hearing_bases", "log_hearing"]


def hearing_bases(study: StudyConfig, optuna_study: optuna.Study) -> dict[str, TrialConfig]:
    """Task -> the resolved config of its first finished ``base-eval`` trial of the tiny base on synthetic
    speech (the trials whose base the report explains by its hearing)."""
    bases: dict[str, TrialConfig] = {}
    finished = optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for trial in sorted(finished, key=lambda t: t.number):
        cfg = study.resolve(trial.params, trial.user_attrs.get("baseline"))
        if cfg.method == BASE_EVAL and cfg.model.name == "tiny" and cfg.data.source == "synthetic":
            bases.setdefault(cfg.task, cfg)
    return bases


def log_hearing(study: StudyConfig, optuna_study: optuna.Study, tracking_uri: str) -> pd.DataFrame | None:
    """Measure the base's hearing of every task in `hearing_bases` (rows already on the study's run for
    the same checkpoint and voices are kept) and log the table on the study's run as ``hearing.csv``;
    returns it (None: no such base, or no study run)."""
    bases = hearing_bases(study, optuna_study)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study.name) if bases else None
    parent = find_study_run(client, experiment.experiment_id) if experiment is not None else None
    if parent is None:
        return None
    from transformers.utils import logging as hf_logging

    from harness.data.synthetic import VOICE  # the model stack loads only when there is a base to measure
    from harness.eval.hearing import transcription_errors
    from harness.train.base_model import starting_point

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the sweep's terminal

    run_id = parent.info.run_id
    with tempfile.TemporaryDirectory(prefix="harness-hearing-") as scratch:
        earlier = _logged(client, run_id, Path(scratch) / "earlier")
        frames, measured = [], False
        for task, cfg in sorted(bases.items()):
            start = starting_point(cfg.model)
            voices = sorted({cfg.data.voice, VOICE})
            if earlier is not None:
                same = earlier[(earlier["task"] == task) & (earlier["checkpoint"] == start.identity)]
                if set(same["voice"]) == set(voices):
                    frames.append(same)
                    continue
            frames.append(transcription_errors(cfg, voices, start.path, start.identity))
            measured = True
        table = pd.concat(frames, ignore_index=True)
        if measured or earlier is None or len(table) != len(earlier):
            path = Path(scratch) / HEARING_ARTIFACT
            table.to_csv(path, index=False)
            client.log_artifact(run_id, str(path))
    return table


def _logged(client: MlflowClient, run_id: str, scratch: Path) -> pd.DataFrame | None:
    """The ``hearing.csv`` already on the study's run (None: none yet)."""
    path = download_artifact(client.tracking_uri, run_id, HEARING_ARTIFACT, scratch)
    return None if path is None else pd.read_csv(path, dtype={"id": str})
