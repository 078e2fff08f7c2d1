"""Results a study does not compute twice: a trial whose resolved config, code and starting model
equal a finished trial's reuses that trial's result (issue 13's result cache).

Training here is deterministic on a machine: a seed fixes the data order, the sampling and the
initialisation, and one thread per process fixes the float reduction order; the same commit rerun
on the same machine reproduced a whole study's numbers exactly. So the base model's and the SFT
baselines' trials, which recur in `reward_ablation`, `group_size`, `kl_sweep` and `paper_tables`,
need to run once. The key is the resolved `TrialConfig` (seed included), the commit of a clean
tree (a dirty tree's code is unknown: never reused) and the starting model's identity (the shipped
base's sha256). The reused trial gets its own MLflow run, with the original's metrics (histories
included) and artifacts copied and the tag ``harness.reused_from`` naming the original run; the
report marks it. Setting ``HARNESS_REUSE=0`` turns reuse off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import mlflow
from mlflow.entities import Metric, Run
from mlflow.tracking import MlflowClient

from harness.config import TrialConfig
from harness.provenance import is_clean
from harness.vocabulary import (
    OPTUNA_TRIAL_ARTIFACT,
    SELECT_METRIC,
    TAG_RESULT_KEY,
    TAG_REUSED,
    TAG_ROLE,
    TAG_STATE,
    TRIAL_CONFIG_ARTIFACT,
    VAL,
    metric_key,
)

__all__ = ["REUSE_ENV", "copy_result", "find_result", "result_key", "validation_history"]

REUSE_ENV = "HARNESS_REUSE"


def result_key(cfg: TrialConfig, commit: str, start: str) -> str | None:
    """Equal keys, equal results; None when the code is not a clean commit (or reuse is off)."""
    if not is_clean(commit) or os.environ.get(REUSE_ENV, "1") == "0":
        return None
    text = json.dumps([cfg.model_dump(mode="json"), commit, start], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def find_result(client: MlflowClient, key: str) -> Run | None:
    """The first finished trial run with this key, in any experiment of the store."""
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = (
        client.search_runs(
            ids,
            filter_string=f"tags.`{TAG_RESULT_KEY}` = '{key}' and tags.`{TAG_STATE}` = "
            f"'COMPLETE' and tags.`{TAG_ROLE}` = 'trial'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if ids
        else []
    )
    return runs[0] if runs else None


def validation_history(client: MlflowClient, run: Run, metric: str = SELECT_METRIC) -> list[tuple[int, float]]:
    """(step, value) of the run's validations of ``metric``, in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric_key(VAL, metric)))


def copy_result(client: MlflowClient, source: Run, run_id: str) -> dict[str, float]:
    """Copy ``source``'s metrics (every step of every history, timestamps kept) and artifacts into the
    run ``run_id``; tag it as reused. Returns the source's final metric values."""
    metrics = [
        Metric(key, m.value, m.timestamp, m.step)
        for key in source.data.metrics
        for m in client.get_metric_history(source.info.run_id, key)
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
    with tempfile.TemporaryDirectory(prefix="harness-reuse-") as tmp:
        for item in client.list_artifacts(source.info.run_id):
            if item.path in (TRIAL_CONFIG_ARTIFACT, OPTUNA_TRIAL_ARTIFACT):  # the new run logs its own
                continue
            local = mlflow.artifacts.download_artifacts(
                run_id=source.info.run_id, artifact_path=item.path, dst_path=tmp, tracking_uri=client.tracking_uri
            )
            if item.is_dir:
                client.log_artifacts(run_id, local, item.path)
            else:
                client.log_artifact(run_id, local)
    original = source.data.tags.get(TAG_REUSED) or source.info.run_id  # a copy of a copy names the original
    client.set_tag(run_id, TAG_REUSED, original)
    return dict(source.data.metrics)
