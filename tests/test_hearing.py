"""The base model's hearing is measured where models run: by the sweep, once per study, logged on the
study's run (`harness.sweep.hearing`); a report's export copies that file into the folder, or keeps an
earlier folder's when the store has none (`harness.report.artifacts.copy_hearing`), and loads no model."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
from fakes import study_file
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution

import harness.eval.hearing as hearing_lib
from harness.report.artifacts import copy_hearing
from harness.study import load_study
from harness.sweep.hearing import hearing_bases, log_hearing
from harness.sweep.tracking import ensure_experiment, ensure_study_run

WITH_BASE = """
baselines:
  - {label: base, method: base-eval}
space:
  grpo.reward: {choices: [bleu]}
"""


def finished(trials: list[tuple[dict, int | None]]) -> optuna.Study:
    """An in-memory Optuna study whose trials (params, baseline index) all completed."""
    study = optuna.create_study()
    for params, baseline in trials:
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: CategoricalDistribution([v]) for k, v in params.items()},
                value=1.0,
                user_attrs={} if baseline is None else {"baseline": baseline},
            )
        )
    return study


def fake_transcription(calls: list):
    def measure(cfg, voices, path, checkpoint, max_new_tokens=128):
        calls.append((cfg.task, tuple(voices), checkpoint))
        return pd.DataFrame(
            [
                {
                    "task": cfg.task,
                    "voice": voice,
                    "id": "0007",
                    "reference": "the cat sat",
                    "transcript": "the cat",
                    "word_errors": 1,
                    "words": 3,
                    "char_errors": 4,
                    "chars": 11,
                    "checkpoint": checkpoint,
                }
                for voice in voices
            ]
        )

    return measure


def test_the_sweep_measures_the_base_once_and_the_report_copies_it(tmp_path: Path, stores, monkeypatch) -> None:
    _, uri = stores
    study = load_study(study_file(tmp_path, WITH_BASE, name="hearing"))
    calls: list = []
    monkeypatch.setattr(hearing_lib, "transcription_errors", fake_transcription(calls))
    trials = finished([({"grpo.reward": "bleu", "seed": 0}, None), ({"seed": 0}, 0)])
    assert list(hearing_bases(study, trials)) == ["sqa"]  # the base-eval trial's task, not the GRPO trial's
    assert log_hearing(study, trials, uri) is None and not calls  # no study run to log on yet

    client = MlflowClient(uri)
    run_id = ensure_study_run(client, ensure_experiment(client, study.name, uri), study)
    table = log_hearing(study, trials, uri)
    (task, voices, checkpoint), *more = calls
    assert task == "sqa" and "en-us" in voices and checkpoint.startswith("tiny-") and not more
    assert log_hearing(study, trials, uri).equals(table) and len(calls) == 1  # a resume: kept, not measured again

    folder = tmp_path / "folder"
    folder.mkdir()
    copy_hearing(client, run_id, folder / "hearing.csv", tmp_path / "no-earlier-folder" / "hearing.csv")
    assert pd.read_csv(folder / "hearing.csv", dtype={"id": str}).equals(table)


def test_no_base_no_measurement(tmp_path: Path, stores, monkeypatch) -> None:
    _, uri = stores
    study = load_study(study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu]}\n", name="deaf"))
    calls: list = []
    monkeypatch.setattr(hearing_lib, "transcription_errors", fake_transcription(calls))
    client = MlflowClient(uri)
    ensure_study_run(client, ensure_experiment(client, study.name, uri), study)
    assert log_hearing(study, finished([({"grpo.reward": "bleu", "seed": 0}, None)]), uri) is None and not calls


def test_export_keeps_an_earlier_folders_hearing_when_the_store_has_none(tmp_path: Path, stores) -> None:
    """A store from before the sweep measured hearing: the folder's hearing.csv stays as it was."""
    _, uri = stores
    client = MlflowClient(uri)
    study = load_study(study_file(tmp_path, WITH_BASE, name="old"))
    run_id = ensure_study_run(client, ensure_experiment(client, study.name, uri), study)
    earlier = tmp_path / "reports" / "hearing.csv"
    earlier.parent.mkdir()
    earlier.write_bytes(b"task,voice,id\nsqa,en-gb,0007\n")
    staged = tmp_path / "staged"
    staged.mkdir()
    copy_hearing(client, run_id, staged / "hearing.csv", earlier)
    assert (staged / "hearing.csv").read_bytes() == earlier.read_bytes()
    copy_hearing(client, run_id, staged / "again.csv", tmp_path / "nothing.csv")
    assert not (staged / "again.csv").exists()
