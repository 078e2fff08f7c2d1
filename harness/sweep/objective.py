"""One trial = one Optuna trial = one nested MLflow run: its parameters, its objective value, its
metrics and artifacts, and what an error means for the study (the trial fails, or the study stops).

`TrialRunner` is the Optuna objective. A trial's life: draw its parameters, resolve its config,
open its MLflow run (tags: label, state, provenance, starting model, result key), then either reuse
a finished identical trial's result (`harness.sweep.reuse`) or run it: its data logged as dataset
inputs (`harness.sweep.datasets`), trained and tested (`harness.train.trial`), the result and the best
checkpoint logged (`harness.sweep.logged_model`); finally the run gets the trial's Optuna record
(`harness.sweep.optuna_record`) and is closed with the trial's state. A study with several objectives
returns one value per objective (Optuna keeps the Pareto front). Metric delivery and tracking
outages are `harness.sweep.delivery`'s.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import optuna
import yaml
from mlflow.tracking import MlflowClient

from harness.config import TrialConfig
from harness.study import SEED, StudyConfig, StudyError, flatten, objective_metric
from harness.sweep.datasets import copy_inputs, log_datasets
from harness.sweep.delivery import MetricSender, TrackingLost, as_lost, numeric, tracking_down
from harness.sweep.logged_model import link_model, log_best_checkpoint, model_logging
from harness.sweep.optuna_record import trial_record
from harness.sweep.provenance import environment_tags, git_commit
from harness.sweep.recovery import worker_identity
from harness.sweep.reuse import copy_result, find_result, result_key, validation_history
from harness.sweep.stores import STORE_DIR, mask_url
from harness.sweep.tracking import param_value
from harness.train.clock import PhaseClock
from harness.vocabulary import (
    BEST_STEP,
    EXAMPLES_ARTIFACT,
    GENERATED_TOKENS,
    OPTUNA_TRIAL_ARTIFACT,
    ROLE_TRIAL,
    SELECT_METRIC,
    TAG_BERTSCORE,
    TAG_CHECKPOINT,
    TAG_ERROR,
    TAG_LABEL,
    TAG_METEOR,
    TAG_NUMBER,
    TAG_RESULT_KEY,
    TAG_RESUMED,
    TAG_ROLE,
    TAG_STATE,
    TAG_STUDY,
    TEST,
    TRAIN_STEPS,
    TRAINED_TOKENS,
    TRIAL_CONFIG_ARTIFACT,
    VAL,
    VALIDATION_METRICS,
    WALL_TIME,
    method_label,
    metric_key,
    sample_artifact,
)

if TYPE_CHECKING:
    from harness.sweep.display import Display
    from harness.train.trial import TrialResult

__all__ = [
    "CHECKPOINT_ENV",
    "SAMPLE_STEPS",
    "TrialRunner",
    "checkpoint_dir",
    "objective_values",
    "reported_metric",
    "suggest",
]

CHECKPOINT_ENV = "HARNESS_CHECKPOINT_DIR"
SAMPLE_STEPS = 3  # steps whose sample generations are logged as tables


def suggest(study: StudyConfig, trial: optuna.Trial) -> dict[str, Any]:
    """The trial's parameters: active space keys (in order, conditions checked) and ``seed``."""
    if "baseline" in trial.user_attrs:
        return {SEED: trial.suggest_categorical(SEED, study.seed_list)}
    params: dict[str, Any] = {}
    fixed = study.fixed_flat()
    for key, spec in study.ordered_space():
        if not spec.holds({**fixed, **params}):
            continue
        if spec.choices is not None:
            params[key] = trial.suggest_categorical(key, spec.choices)
        elif spec.is_int:
            params[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
        else:
            params[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)
    params[SEED] = trial.suggest_categorical(SEED, study.seed_list)
    return params


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
    out.update({f"time/{stage}": float(s) for stage, s in result.times.items()})
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


def checkpoint_dir(study: StudyConfig, cfg: TrialConfig) -> Path:
    """The trial's own checkpoint directory, keyed by study and resolved config (so a re-run of the same
    grid point, on any worker sharing the directory, resumes it). Env HARNESS_CHECKPOINT_DIR moves the root."""
    root = Path(os.environ.get(CHECKPOINT_ENV) or Path(STORE_DIR, "checkpoints").resolve())
    return root / study.name / cfg.digest()


class TrialRunner:
    """The Optuna objective. Errors of the trial itself (NaN loss, a reward that raises, out of memory,
    unreadable audio) fail the trial and the study goes on; errors that would fail every trial (tracking
    server gone, a missing tool, a bad config) are put in ``fatal`` and stop the study."""

    def __init__(self, study: StudyConfig, experiment_id: str, parent_run_id: str, display: Display):
        self.study, self.experiment_id, self.parent_run_id, self.display = study, experiment_id, parent_run_id, display
        self.fatal: list[BaseException] = []
        self.metric = reported_metric(study)  # reported to Optuna at each validation (single objective)
        self.reported: dict[int, float] = {}  # this trial's intermediate values (step -> value)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        from harness.data.audio import MissingToolError  # torch & co. load only when a trial runs

        clock = PhaseClock()
        started = time.perf_counter()
        state, status, error, run, sender, ckpt, label = "FAIL", "FAILED", None, None, None, None, "?"
        values: list[float] | None = None
        self.reported = {}
        try:
            with clock("storage"):
                trial.set_user_attr("worker", worker_identity())
                params = suggest(self.study, trial)
            baseline = trial.user_attrs.get("baseline")
            cfg = self.study.resolve(params, baseline)
            label = (
                self.study.baseline_label(baseline)
                if baseline is not None
                else method_label(cfg.method, cfg.grpo.mp_grpo)
            )
            ckpt = checkpoint_dir(self.study, cfg)
            with clock("tracking"):
                run, key, start = self._start_run(trial, cfg, label)
                sender = MetricSender(run.info.run_id)
            with clock("storage"):
                trial.set_user_attr("label", label)
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
            source = find_result(MlflowClient(), key) if key else None
            if source is not None:
                values = self._reuse(trial, source, run.info.run_id, label, clock)
            else:
                values = self._run(trial, cfg, label, sender, ckpt, clock, start)
            state, status = "COMPLETE", "FINISHED"
            self.display.trial_ended(
                trial.number,
                label,
                state,
                ", ".join(f"{o.metric}={v:.2f}" for o, v in zip(self.study.objectives, values)),
            )
            return tuple(values) if self.study.multi_objective else values[0]
        except optuna.TrialPruned as err:
            state, status = "PRUNED", "FINISHED"
            self.display.trial_ended(trial.number, label, state, str(err))
            raise
        except BaseException as err:
            down = tracking_down(err)
            if down or isinstance(err, (MissingToolError, StudyError)):
                self.fatal.append(as_lost(err) if down else err)
                trial.study.stop()
            shown = as_lost(err) if down else err
            error = mask_url(f"{type(shown).__name__}: {shown}")
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            self.display.trial_ended(trial.number, label, "FAIL", error)
            with clock("storage"):
                trial.set_user_attr("error", error)
            if run is not None and not down:
                with clock("tracking"):
                    mlflow.log_text(traceback.format_exc(), "error.txt")
            raise
        finally:
            if state != "FAIL" and ckpt is not None:
                shutil.rmtree(ckpt, ignore_errors=True)  # finished: nothing to resume
            if run is not None:
                with clock("tracking"):
                    record = trial_record(
                        trial,
                        state,
                        values if state == "COMPLETE" else None,
                        self.reported,
                        metric_key(VAL, self.metric),
                    )
                    self._close_run(trial, sender, state, status, error, record)
            clock.totals["trial"] = time.perf_counter() - started
            trial.set_user_attr(
                "overhead_s", {k: round(v, 4) for k, v in clock.totals.items() if k in ("tracking", "storage", "trial")}
            )

    # -- the steps of a trial ------------------------------------------------------------------

    def _start_run(self, trial: optuna.Trial, cfg: TrialConfig, label: str):
        from harness.rewards.metrics import BERTSCORE_MODEL, meteor_backend
        from harness.train.base_model import starting_point

        start = starting_point(cfg.model).identity
        key = result_key(cfg, git_commit(), start)
        tags = {
            TAG_ROLE: ROLE_TRIAL,
            TAG_STUDY: self.study.name,
            TAG_NUMBER: str(trial.number),
            TAG_LABEL: label,
            TAG_STATE: "RUNNING",
            TAG_CHECKPOINT: start,
            TAG_METEOR: meteor_backend(),
            TAG_BERTSCORE: BERTSCORE_MODEL,
            **environment_tags(),
            **({TAG_RESULT_KEY: key} if key else {}),
        }
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=f"{trial.number:03d}-{label}",
            parent_run_id=self.parent_run_id,
            log_system_metrics=True,
            tags=tags,
        )
        mlflow.log_params(
            {k: param_value(v) for k, v in flatten(cfg.model_dump(mode="json")).items()}, synchronous=False
        )
        mlflow.log_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), TRIAL_CONFIG_ARTIFACT)
        return run, key, start

    def _run(
        self,
        trial: optuna.Trial,
        cfg: TrialConfig,
        label: str,
        sender: MetricSender,
        ckpt: Path,
        clock: PhaseClock,
        start: str,
    ) -> list[float]:
        from harness.runtime import configure_threads
        from harness.train import trial as trial_lib

        def log(metrics: Mapping[str, Any], step: int) -> None:
            values = numeric(metrics)
            with clock("tracking"):
                sender.log(values, step)
            self.display.trial_step(step, values)

        def report(scores: Mapping[str, float], step: int) -> None:
            self._report(trial, scores[self.metric], step, clock)

        self.display.trial_started(trial.number, label, 0 if cfg.method == "base-eval" else cfg.train.steps)
        t0 = time.perf_counter()
        configure_threads()
        with clock("data"):  # the process keeps it: run_trial gets the same splits without loading them again
            data = trial_lib.load_task_data(cfg)
        with clock("tracking"):
            log_datasets(data, cfg)
        result = trial_lib.run_trial(
            cfg, log=log, report=report, sample_steps=SAMPLE_STEPS, checkpoint_dir=ckpt, clock=clock
        )
        final = final_metrics(result, time.perf_counter() - t0)
        selected = {metric_key(VAL, k): v for k, v in result.validation.items()}  # at the best step (in history)
        values = objective_values(self.study, {**final, **selected})
        with clock("tracking"):
            if result.resumed_from:
                mlflow.set_tag(TAG_RESUMED, str(result.resumed_from))
            sender.log(final, result.steps)
            mlflow.log_dict(examples_artifact(result), EXAMPLES_ARTIFACT)
            if result.samples:
                import pandas as pd

                for step, rows in sorted(result.samples.items()):
                    mlflow.log_table(pd.DataFrame(rows), artifact_file=sample_artifact(step))
            if result.best_weights is not None and model_logging():
                config = cfg.model_dump(mode="json")
                log_best_checkpoint(
                    result.best_weights,
                    yaml.safe_dump(config, sort_keys=False),
                    start=start,
                    commit=git_commit(),
                    best_step=result.best_step,
                    params={k: param_value(v) for k, v in flatten(config).items()},
                )
            sender.deliver()
        return values

    def _reuse(self, trial: optuna.Trial, source, run_id: str, label: str, clock: PhaseClock) -> list[float]:
        """A finished identical trial's result: its validations are reported to Optuna again (the pruner
        decides as it would have), then its metrics, artifacts and dataset inputs are copied into this
        trial's run, and its logged model is linked to this run as an output."""
        client = MlflowClient()
        self.display.trial_started(trial.number, label, 0)
        for step, value in validation_history(client, source, self.metric):
            self._report(trial, value, step, clock)
        with clock("tracking"):
            metrics = copy_result(client, source, run_id)
            copy_inputs(client, source, run_id)
            link_model(client, source, run_id)
        best = int(metrics.get(BEST_STEP, 0))
        for objective in self.study.objectives:  # validation objectives: their value at the selected step
            if objective.metric.startswith(f"{VAL}/"):
                history = validation_history(client, source, objective.metric.split("/", 1)[1])
                metrics[objective.metric] = next((v for s, v in history if s == best), math.nan)
        return objective_values(self.study, metrics)

    def _report(self, trial: optuna.Trial, value: float, step: int, clock: PhaseClock) -> None:
        """An intermediate value for the pruner (Optuna prunes single-objective studies only)."""
        if self.study.multi_objective:
            return
        with clock("storage"):
            trial.report(value, step)
            self.reported[step] = float(value)
            prune = trial.should_prune()
        if prune:
            raise optuna.TrialPruned(f"pruned at step {step}: val/{self.metric}={value:.3g}")

    def _close_run(
        self,
        trial: optuna.Trial,
        sender: MetricSender | None,
        state: str,
        status: str,
        error: str | None,
        record: Mapping[str, Any],
    ) -> None:
        problem = None
        try:
            if sender is not None and sender.pending:
                sender.deliver()
            mlflow.log_dict(dict(record), OPTUNA_TRIAL_ARTIFACT)
            mlflow.set_tags({TAG_STATE: state, **({TAG_ERROR: error[:5000]} if error else {})})
        except Exception as err:
            problem = err
        try:  # always: it also takes the run off MLflow's stack of active runs
            mlflow.end_run(status=status)  # drains this run's async logging queue first
        except Exception as err:
            problem = problem or err
        if problem is not None:  # the tracking server went away: the trial fails, the worker stops
            lost = as_lost(problem) if tracking_down(problem) else problem
            if isinstance(lost, TrackingLost) and not any(isinstance(f, TrackingLost) for f in self.fatal):
                self.fatal.append(lost)
                trial.study.stop()
            trial.set_user_attr("error", mask_url(str(lost)))
            raise lost from None
