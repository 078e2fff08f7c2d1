"""The files the study's runs logged (MLflow artifacts), read back into the report folder
(`harness.report.export` calls these; the folder's files are listed there):

- the study run's study file and searched parameters, copied as they are (`copy_text_artifacts`);
- each configuration's resolved config, its first trial's ``trial_config.yaml`` with the seeds of all
  its trials, as ``configs/<task>__<configuration>.yaml`` (`export_configs`, `config_file`);
- each finished trial's per-example test artifact (``EXAMPLES_ARTIFACT``: ids, per-example scores of
  greedy and each sampled pass, BLEU's sufficient statistics, references, greedy hypotheses;
  `read_examples`) as ``per_example.csv.gz`` (`per_example_frame`) and ``test_outputs.csv.gz``
  (``run_id, id, reference, hypothesis``; `test_outputs_frame`);
- the trials' sample tables (``samples/step_NNNN.json``, MLflow tables of a few training steps:
  prompt, reference, completion, reward, off_policy) as ``samples.csv`` (``run_id, step`` + those
  columns; `export_samples`);
- the study run's measurement of the base model's hearing (``hearing.csv``, made by
  `harness.sweep.hearing` when the study ended), copied as it is (`copy_hearing`).

`read_json_artifact` and `artifact_files` read any run's small artifacts (without MLflow's per-file
progress bars).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

from harness.sweep.stores import download_artifact
from harness.vocabulary import EXAMPLES_ARTIFACT, HEARING_ARTIFACT, METRICS, SAMPLES_DIR, SEED, TRIAL_CONFIG_ARTIFACT

__all__ = [
    "BLEU_STAT_COLUMNS",
    "SAMPLES_COLUMNS",
    "TEST_OUTPUTS_FILE",
    "artifact_files",
    "config_file",
    "copy_hearing",
    "copy_text_artifacts",
    "export_configs",
    "export_samples",
    "per_example_frame",
    "read_examples",
    "read_json_artifact",
    "test_outputs_frame",
]

BLEU_STAT_COLUMNS = [
    "bleu_sys_len",
    "bleu_ref_len",
    *(f"bleu_correct_{n}" for n in range(1, 5)),
    *(f"bleu_total_{n}" for n in range(1, 5)),
]
TEST_OUTPUTS_FILE = "test_outputs.csv.gz"
SAMPLES_COLUMNS = ["run_id", "step", "prompt", "reference", "completion", "reward", "off_policy"]
_STEP = re.compile(r"step_(\d+)\.json$")


def read_json_artifact(client: MlflowClient, run_id: str, path: str) -> Any | None:
    """The parsed JSON artifact ``path`` of the run, or None when the run has no such file."""
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        local = download_artifact(client.tracking_uri, run_id, path, Path(scratch))
        return None if local is None else json.loads(local.read_text(encoding="utf-8"))


def artifact_files(client: MlflowClient, run_id: str, directory: str) -> list[str]:
    """Paths of the files directly under the run's artifact ``directory`` (sorted; empty when none)."""
    try:
        return sorted(item.path for item in client.list_artifacts(run_id, directory) if not item.is_dir)
    except Exception:
        return []


def copy_text_artifacts(client: MlflowClient, run_id: str, targets: Mapping[str, Path]) -> None:
    """Each text artifact of the run (key) written to its target file; one the run lacks is skipped (an older
    store without the file: the report says what is missing)."""
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        for name, target in targets.items():
            local = download_artifact(client.tracking_uri, run_id, name, Path(scratch))
            if local is not None:
                target.write_text(local.read_text(encoding="utf-8"), encoding="utf-8")


def config_file(name: str, task: str) -> str:
    """The file name of a configuration's resolved config in ``configs/``."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", f"{task}__{name}").strip("_") + ".yaml"


def export_configs(
    client: MlflowClient, members: Mapping[tuple[str, str], list[tuple[str, str]]], folder: Path
) -> None:
    """Into ``folder`` (emptied of configs first), per configuration (``members``: (name, task) -> its trials'
    (run id, seed)) the resolved TrialConfig of its first trial, the seed shown as the list of its seeds."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        for (name, task), group in members.items():
            first = group[0][0]
            path = download_artifact(client.tracking_uri, first, TRIAL_CONFIG_ARTIFACT, Path(scratch) / first)
            if path is None:
                continue
            try:
                config = yaml.safe_load(path.read_text(encoding="utf-8"))
            except Exception:
                continue
            config[SEED] = sorted(int(seed) for _, seed in group)
            header = (
                f"# configuration {name!r} (task {task}): the resolved TrialConfig of its trials, which differ "
                f"only by seed\n# runs: {', '.join(run_id for run_id, _ in group)}\n"
            )
            (folder / config_file(name, task)).write_text(header + yaml.safe_dump(config, sort_keys=False))


def read_examples(client: MlflowClient, run_ids: list[str]) -> dict[str, dict | None]:
    """Run id -> its per-example test artifact (None where it has none, or it does not parse)."""
    out: dict[str, dict | None] = {}
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        for run_id in run_ids:
            local = download_artifact(client.tracking_uri, run_id, EXAMPLES_ARTIFACT, Path(scratch) / run_id)
            try:
                out[run_id] = None if local is None else json.loads(local.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out[run_id] = None
    return out


def per_example_frame(examples: dict[str, dict | None]) -> pd.DataFrame:
    """``run_id, decoding, pass, id``, every metric's score and BLEU's sufficient statistics, per example of
    each run's greedy test and each of its sampled passes."""
    frames = []
    for run_id, data in examples.items():
        if not data:
            continue
        blocks = [("greedy", 0, data.get("scores", {}), data.get("bleu_stats"))]
        sampled = data.get("sampled") or {}
        for k, stats in enumerate(sampled.get("bleu_stats") or []):
            blocks.append(("sampled", k, {m: v[k] for m, v in sampled.get("scores", {}).items()}, stats))
        for decoding, k, scores, stats in blocks:
            frame = pd.DataFrame(
                {
                    "run_id": run_id,
                    "decoding": decoding,
                    "pass": k,
                    "id": data["ids"],
                    **{m: scores[m] for m in METRICS if m in scores},
                }
            )
            if stats is not None:
                frame[BLEU_STAT_COLUMNS] = pd.DataFrame(stats, columns=BLEU_STAT_COLUMNS, dtype="int64")
            frames.append(frame)
    columns = ["run_id", "decoding", "pass", "id", *METRICS, *BLEU_STAT_COLUMNS]
    return pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else pd.DataFrame(columns=columns)


def test_outputs_frame(examples: dict[str, dict | None]) -> pd.DataFrame:
    """``run_id, id, reference, hypothesis`` of every run's greedy test outputs."""
    frames = [
        pd.DataFrame(
            {
                "run_id": run_id,
                "id": data["ids"],
                "reference": data.get("references") or [""] * len(data["ids"]),
                "hypothesis": data.get("hypotheses") or [""] * len(data["ids"]),
            }
        )
        for run_id, data in examples.items()
        if data and data.get("ids")
    ]
    columns = ["run_id", "id", "reference", "hypothesis"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def export_samples(client: MlflowClient, runs: list[Run], path) -> pd.DataFrame:
    """Write ``samples.csv`` from the runs' sample tables; returns the table."""
    frames = []
    for run in runs:
        for file in artifact_files(client, run.info.run_id, SAMPLES_DIR):
            match = _STEP.search(file)
            table = read_json_artifact(client, run.info.run_id, file) if match else None
            if not table or "columns" not in table:
                continue
            frame = pd.DataFrame(table["data"], columns=table["columns"])
            frame.insert(0, "step", int(match.group(1)))
            frame.insert(0, "run_id", run.info.run_id)
            frames.append(frame.reindex(columns=SAMPLES_COLUMNS))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SAMPLES_COLUMNS)
    table.to_csv(path, index=False)
    return table


def copy_hearing(client: MlflowClient, run_id: str | None, path: Path, earlier: Path) -> None:
    """``hearing.csv`` at ``path``: the study run's ``run_id`` (measured when the study ended), else the one
    at ``earlier`` (a previous export of the study, from a store whose study run has none), else none."""
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        logged = download_artifact(client.tracking_uri, run_id, HEARING_ARTIFACT, Path(scratch)) if run_id else None
        source = logged or (earlier if earlier.is_file() else None)
        if source is not None and source.resolve() != path.resolve():
            shutil.copyfile(source, path)
