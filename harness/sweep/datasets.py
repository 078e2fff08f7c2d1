"""A trial's data as MLflow dataset inputs: its train / validation / test splits, one input each (context =
the split), so the MLflow UI's Dataset column names what every trial trained and was scored on.

Each dataset is a table of the split's examples (id, task, prompt, answer, audio path, transcript; no
audio), named ``<task>-<split>``, with the data's source (a real corpus' directory, or the synthetic
cache directory holding the clips) and MLflow's digest of the table: trials on the same data share
one dataset record. MLflow stores the table's schema, size and digest, not its rows.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import mlflow
import mlflow.data
import pandas as pd
from mlflow.entities import DatasetInput, Run
from mlflow.tracking import MlflowClient

from harness.config import TrialConfig
from harness.vocabulary import DATASET_CONTEXTS

__all__ = ["EXAMPLE_COLUMNS", "copy_inputs", "dataset_frame", "log_datasets", "split_datasets"]

EXAMPLE_COLUMNS = ["id", "task", "prompt", "answer", "audio", "transcript"]


def dataset_frame(examples: list) -> pd.DataFrame:
    """One row per example (`harness.data.example.Example`), audio as its path."""
    return pd.DataFrame([[getattr(ex, c) for c in EXAMPLE_COLUMNS] for ex in examples], columns=EXAMPLE_COLUMNS)


def _source(cfg: TrialConfig, examples: list) -> str:
    if cfg.data.source != "synthetic":
        return os.path.abspath(os.path.expanduser(cfg.data.source))
    paths = [os.path.dirname(ex.audio) for ex in examples if ex.audio]
    return os.path.commonpath(paths) if paths else "synthetic"


def split_datasets(data: Mapping[str, object], cfg: TrialConfig) -> list[tuple[str, mlflow.data.Dataset]]:
    """(context, dataset) of each split present in ``data`` (name -> `SpokenSet`), in DATASET_CONTEXTS order."""
    out = []
    for split in DATASET_CONTEXTS:
        if split not in data:
            continue
        examples = list(data[split].examples)
        with warnings.catch_warnings():  # MLflow's own: its local-path source registered twice, pandas 4 notices
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            warnings.filterwarnings("ignore", message="Starting with pandas version 4.0")
            out.append(
                (
                    split,
                    mlflow.data.from_pandas(
                        dataset_frame(examples),
                        source=_source(cfg, examples),
                        name=f"{cfg.task}-{split}",
                        targets="answer",
                    ),
                )
            )
    return out


def log_datasets(data: Mapping[str, object], cfg: TrialConfig) -> None:
    """Log the splits as dataset inputs of the active run. Two workers starting trials at once may both
    find a dataset missing from the experiment and both insert it; the slower one's insert then fails
    on the store's unique (experiment, name, digest) key. The dataset exists by then, so logging the
    inputs again links it."""
    pairs = split_datasets(data, cfg)
    if not pairs:
        return
    for attempt in range(3):
        try:
            mlflow.log_inputs(
                datasets=[d for _, d in pairs], contexts=[c for c, _ in pairs], tags_list=[None] * len(pairs)
            )
            return
        except mlflow.exceptions.MlflowException as err:
            if "UNIQUE constraint" not in str(err) and "duplicate key" not in str(err) or attempt == 2:
                raise


def copy_inputs(client: MlflowClient, source: Run, run_id: str) -> int:
    """A reused trial's run gets the original's dataset inputs (same data); returns how many."""
    inputs = source.inputs.dataset_inputs if source.inputs is not None else []
    if inputs:
        client.log_inputs(run_id, datasets=[DatasetInput(i.dataset, i.tags) for i in inputs])
    return len(inputs)
