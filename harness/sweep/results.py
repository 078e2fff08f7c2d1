"""What a finished trial's run records of its result, and what the study takes from it: the objective
values (and the validation metric reported to Optuna on the way), the final metrics, the per-example
test artifact the reports re-score, the test predictions as an MLflow table, the sample generations
and the best checkpoint (`log_result`). `harness.sweep.objective.TrialRunner` calls these; like it,
this module is loaded only by the processes that run trials."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
import yaml

from harness.config import TrialConfig
from harness.study import StudyConfig, flatten, objective_metric
from harness.sweep.delivery import MetricSender
from harness.sweep.logged_model import log_best_checkpoint, model_logging, model_name
from harness.sweep.tracking import param_value
from harness.vocabulary import (
    BEST_STEP,
    EXAMPLES_ARTIFACT,
    GENERATED_TOKENS,
    METRICS,
    PREDICTION_COLUMNS,
    PREDICTIONS_ARTIFACT,
    SELECT_METRIC,
    TAG_RESUMED,
    TEST,
    TIME_PREFIX,
    TRAIN_STEPS,
    TRAINED_TOKENS,
    VALIDATION_METRICS,
    WALL_TIME,
    metric_key,
    sample_artifact,
)

if TYPE_CHECKING:
    from harness.train.trial import TrialResult

__all__ = [
    "examples_artifact",
    "final_metrics",
    "log_result",
    "objective_values",
    "predictions_table",
    "reported_metric",
]


def objective_values(study: StudyConfig, metrics: Mapping[str, float]) -> list[float]:
    """The study's objectives from a trial's final metrics (``test/<m>``, ``val/<m>`` at the best step, or a
    compute column such as ``generated_tokens``), in the study's order."""
    values = []
    for objective in study.objectives:
        metric = objective.metric
        if metric not in metrics:
            raise KeyError(
                f"objective {metric!r}: the trial computed {sorted(k for k in metrics if '/' in k)} "
                "(bertscore needs eval.bertscore: true; sampled metrics need eval.sampling_passes > 0)"
            )
        value = float(metrics[metric])
        if not math.isfinite(value):
            raise FloatingPointError(f"objective {metric!r} is {value}")
        values.append(value)
    return values


def reported_metric(study: StudyConfig) -> str:
    """The validation metric a trial reports to Optuna at each validation (what a pruner compares): the
    first objective's metric when validation computes it (``val/bleu`` for ``test/bleu``), else BLEU."""
    metric = objective_metric(study.objectives[0].metric)
    return metric if metric in VALIDATION_METRICS else SELECT_METRIC


def final_metrics(result: TrialResult, wall: float) -> dict[str, float]:
    """What a trial logs at its end: test scores, the validation scores of the selected checkpoint
    (``val/<m>`` at ``best_step``), compute and the time per phase."""
    out = {metric_key(TEST, k): float(v) for k, v in result.test.scores.items()}
    out.update(
        {
            BEST_STEP: result.best_step,
            TRAIN_STEPS: result.steps,
            GENERATED_TOKENS: result.generated_tokens,
            TRAINED_TOKENS: result.trained_tokens,
            WALL_TIME: wall,
        }
    )
    out.update({f"{TIME_PREFIX}{stage}": float(s) for stage, s in result.times.items()})  # stage: "<phase>_s"
    return out


def examples_artifact(result: TrialResult) -> dict[str, Any]:
    """Per-example test scores (greedy, and each sampled pass) with BLEU's sufficient statistics: what
    the report's seed-aware bootstrap re-scores (`harness.report.inference`)."""
    test = result.test
    out: dict[str, Any] = {
        "ids": list(test.ids),
        "references": list(test.references),
        "hypotheses": list(test.hypotheses),
        "scores": {m: [float(x) for x in v] for m, v in test.per_example.items()},
        "bleu_stats": test.bleu_stats.tolist() if test.bleu_stats is not None else None,
    }
    if test.sampled_per_example:
        out["sampled"] = {
            "scores": {m: v.tolist() for m, v in test.sampled_per_example.items()},
            "bleu_stats": test.sampled_bleu_stats.tolist(),
            "hypotheses": test.sampled_hypotheses,
        }
    return out


def predictions_table(result: TrialResult, examples: list | None = None) -> pd.DataFrame:
    """One row per test example: id, prompt and transcript (from the test split's examples, when given),
    reference, greedy prediction and each metric's score of it (x100): what the MLflow UI shows as the
    run's ``test_predictions.json`` table."""
    test = result.test
    by_id = {ex.id: ex for ex in examples or []}
    metrics = [m for m in METRICS if m in test.per_example] + [m for m in test.per_example if m not in METRICS]
    rows = []
    for i, example_id in enumerate(test.ids):
        ex = by_id.get(example_id)
        rows.append(
            [
                example_id,
                ex.prompt if ex is not None else None,
                ex.transcript if ex is not None else None,
                test.references[i],
                test.hypotheses[i],
                *(float(test.per_example[m][i]) for m in metrics),
            ]
        )
    return pd.DataFrame(rows, columns=[*PREDICTION_COLUMNS, *metrics])


def log_result(
    result: TrialResult,
    final: Mapping[str, float],
    sender: MetricSender,
    cfg: TrialConfig,
    test_examples: list,
    start: str,
    commit: str,
    name: str,
) -> None:
    """Everything the trial's (active) run records of its finished result: where it resumed from, the
    ``final`` metrics, the per-example test artifact, the test predictions and sample generations as
    MLflow tables and, when models are logged, the best checkpoint as an MLflow model (started from
    ``start``, code at ``commit``, named after the trial's ``name``); then every metric is delivered."""
    if result.resumed_from:
        mlflow.set_tag(TAG_RESUMED, str(result.resumed_from))
    sender.log(final, result.steps)
    mlflow.log_dict(examples_artifact(result), EXAMPLES_ARTIFACT)
    with _quiet_tables():
        mlflow.log_table(predictions_table(result, test_examples), artifact_file=PREDICTIONS_ARTIFACT)
        if result.samples:
            for step, rows in sorted(result.samples.items()):
                mlflow.log_table(pd.DataFrame(rows), artifact_file=sample_artifact(step))
    if result.best_weights is not None and model_logging():
        config = cfg.model_dump(mode="json")
        log_best_checkpoint(
            result.best_weights,
            yaml.safe_dump(config, sort_keys=False),
            start=start,
            commit=commit,
            best_step=result.best_step,
            params={k: param_value(v) for k, v in flatten(config).items()},
            name=model_name(name),
        )
    sender.deliver()


@contextmanager
def _quiet_tables() -> Iterator[None]:
    """MLflow's log_table asks pandas for 'object' columns, which pandas 3 answers with a deprecation
    notice on the terminal for every sweep: not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="For backward compatibility, 'str' dtypes are included")
        yield
