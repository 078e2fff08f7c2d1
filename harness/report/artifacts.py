"""Small artifacts of a run read back for the report folder: a JSON file, or the files of a directory
(without MLflow's per-file progress bars)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow import MlflowClient

from harness.sweep.stores import quiet_downloads

__all__ = ["artifact_files", "read_json_artifact"]


def read_json_artifact(client: MlflowClient, run_id: str, path: str) -> Any | None:
    """The parsed JSON artifact ``path`` of the run, or None when the run has no such file."""
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch, quiet_downloads():
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=scratch, tracking_uri=client.tracking_uri
            )
        except Exception:  # no such artifact (an older run, or a trial that ended before writing it)
            return None
        return json.loads(Path(local).read_text(encoding="utf-8"))


def artifact_files(client: MlflowClient, run_id: str, directory: str) -> list[str]:
    """Paths of the files directly under the run's artifact ``directory`` (sorted; empty when none)."""
    try:
        return sorted(item.path for item in client.list_artifacts(run_id, directory) if not item.is_dir)
    except Exception:
        return []
