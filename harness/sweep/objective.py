"""One trial = one Optuna trial = one nested MLflow run: its parameters, its objective value, its
metrics and artifacts, and what an error means for the study (the trial fails, or the study stops).

`TrialRunner` is the Optuna objective. A trial's life: draw its parameters, resolve its config,
open its MLflow run (tags: label, state, provenance, starting model, result key), then either reuse
a finished identical trial's result (`harness.sweep.reuse`) or run it: its data logged as dataset
inputs (`harness.sweep.datasets`), trained and tested (`harness.train.trial`), the result and the best
checkpoint logged (`harness.sweep.results`, `harness.sweep.logged_model`); finally the run gets the
trial's Optuna record (`harness.sweep.optuna_record`) and is closed with the trial's state. A study
with several objectives returns one value per objective (Optuna keeps the Pareto front). Metric
delivery and tracking outages are `harness.sweep.delivery`'s.

For people watching (`harness.sweep.display`, the MLflow UI): each finished trial prints its line; the
task's data and the starting model's evaluation print when they start and end (once per process and
task: `harness.sweep.phases`); the run is named after its configuration and seed and described in one line; its test
predictions are an MLflow table (``test_predictions.json``); the study's run gets the best objective
value so far as each trial completes.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import optuna
import yaml
from mlflow.tracking import MlflowClient

from harness.config import TrialConfig
from harness.provenance import git_commit
from harness.study import SEED, StudyConfig, StudyError, flatten
from harness.sweep.datasets import copy_inputs, log_datasets
from harness.sweep.delivery import MetricSender, TrackingLost, as_lost, numeric, tracking_down
from harness.sweep.display import Finished, config_text
from harness.sweep.logged_model import link_model
from harness.sweep.optuna_record import trial_record
from harness.sweep.phases import ShownClock, first_phases
from harness.sweep.recovery import worker_identity
from harness.sweep.results import final_metrics, log_result, objective_values, reported_metric
from harness.sweep.reuse import copy_result, find_result, result_key, validation_history
from harness.sweep.stores import STORE_DIR, mask_url
from harness.sweep.tracking import (
    environment_tags,
    log_best,
    outcome_of,
    param_value,
    run_name,
    trial_name,
    trial_note,
)
from harness.train.clock import PhaseClock
from harness.vocabulary import (
    BASE_EVAL,
    BEST_STEP,
    NOTE_TAG,
    OPTUNA_TRIAL_ARTIFACT,
    ROLE_TRIAL,
    TAG_BERTSCORE,
    TAG_CHECKPOINT,
    TAG_ERROR,
    TAG_LABEL,
    TAG_METEOR,
    TAG_NUMBER,
    TAG_RESULT_KEY,
    TAG_ROLE,
    TAG_STATE,
    TAG_STUDY,
    TRIAL_CONFIG_ARTIFACT,
    VAL,
    method_label,
    metric_key,
)

if TYPE_CHECKING:
    from harness.sweep.display import Display

__all__ = [
    "CHECKPOINT_ENV",
    "SAMPLE_STEPS",
    "TrialRunner",
    "checkpoint_dir",
    "suggest",
]

logger = logging.getLogger("harness.sweep")

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
        self.shown: set[str] = set()  # phases whose start and end were shown (data, starting model's evaluation)
        self.named = False  # the Optuna study's metric names are set

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        from harness.data.audio import MissingToolError  # torch & co. load only when a trial runs

        clock = ShownClock(self.display, trial)
        started = time.perf_counter()
        state, status, error, run, sender, ckpt, label = "FAIL", "FAILED", None, None, None, None, "?"
        values: list[float] | None = None
        params: dict[str, Any] = {}
        method, reused = "?", False
        self.reported = {}

        def ended(state: str, outcome: str) -> None:
            finished = Finished(
                trial.number,
                config_text(label, params),
                params.get(SEED, "?"),
                state + (" (reused)" if reused else ""),
                outcome,
                time.perf_counter() - started,
            )
            self.display.trial_ended(finished, trial.study)

        try:
            with clock("storage"):
                trial.set_user_attr("worker", worker_identity())
                params = suggest(self.study, trial)
                self._name_metrics(trial.study)
            baseline = trial.user_attrs.get("baseline")
            cfg = self.study.resolve(params, baseline)
            method = cfg.method
            label = (
                self.study.baseline_label(baseline)
                if baseline is not None
                else method_label(cfg.method, cfg.grpo.mp_grpo)
            )
            ckpt = checkpoint_dir(self.study, cfg)
            with clock("tracking"):
                run, key, start = self._start_run(trial, cfg, label, params)
                sender = MetricSender(run.info.run_id)
            with clock("storage"):
                trial.set_user_attr("label", label)
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
            source = find_result(MlflowClient(), key) if key else None
            if source is not None:
                reused = True
                values = self._reuse(trial, source, run.info.run_id, label, params, clock)
            else:
                values = self._run(trial, cfg, label, params, sender, ckpt, clock, start)
            state, status = "COMPLETE", "FINISHED"
            ended(state, outcome_of(self.study, values))
            return tuple(values) if self.study.multi_objective else values[0]
        except optuna.TrialPruned as err:
            state, status = "PRUNED", "FINISHED"
            error = str(err)  # (not a failure: the run's description says why it stopped)
            ended(state, error)
            raise
        except BaseException as err:
            down = tracking_down(err)
            if down or isinstance(err, (MissingToolError, StudyError)):
                self.fatal.append(as_lost(err) if down else err)
                trial.study.stop()
            shown = as_lost(err) if down else err
            error = mask_url(f"{type(shown).__name__}: {shown}")
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            ended("FAIL", error)
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
                    shown_state = state + (" (reused)" if reused else "")
                    outcome = outcome_of(self.study, values) if values is not None else error
                    note = trial_note(label, method, params, shown_state, outcome)
                    self._close_run(trial, sender, state, status, error if state == "FAIL" else None, record, note)
                    if state == "COMPLETE":
                        self._log_best(trial, values)
            clock.totals["trial"] = time.perf_counter() - started
            trial.set_user_attr(
                "overhead_s", {k: round(v, 4) for k, v in clock.totals.items() if k in ("tracking", "storage", "trial")}
            )

    # -- the steps of a trial ------------------------------------------------------------------

    def _log_best(self, trial: optuna.Trial, values: list[float]) -> None:
        """The study run's best objective value so far (a curve over the completed trials). Not the trial's
        record: if it cannot be written, the trial still completes (a lost server stops the next one)."""
        try:
            log_best(MlflowClient(), self.parent_run_id, self.study, trial.study, (trial.number, values))
        except Exception as err:
            logger.warning("trial %d: the study run's best value was not logged: %s", trial.number, mask_url(str(err)))

    def _name_metrics(self, optuna_study: optuna.Study) -> None:
        """The study's objectives as Optuna's metric names (once): the display of a `--workers N` parent,
        which sees only the storage, names the values with them."""
        if self.named:
            return
        names = [o.metric for o in self.study.objectives]
        if optuna_study.metric_names != names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna_study.set_metric_names(names)
        self.named = True

    def _start_run(self, trial: optuna.Trial, cfg: TrialConfig, label: str, params: Mapping[str, Any]):
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
            NOTE_TAG: trial_note(label, cfg.method, params),
            **environment_tags(),
            **({TAG_RESULT_KEY: key} if key else {}),
        }
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=run_name(trial.number, label, params),
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
        params: Mapping[str, Any],
        sender: MetricSender,
        ckpt: Path,
        clock: ShownClock,
        start: str,
    ) -> list[float]:
        from harness.runtime import configure_threads
        from harness.train import trial as trial_lib

        def log(metrics: Mapping[str, Any], step: int) -> None:
            values = numeric(metrics)
            if step > 0:  # training has started: a validation now is not the starting model's
                clock.announce.pop("validation", None)
            with clock("tracking"):
                sender.log(values, step)
            self.display.trial_step(step, values)

        def report(scores: Mapping[str, float], step: int) -> None:
            self._report(trial, scores[self.metric], step, clock)

        title = f"{config_text(label, params)} seed={params.get(SEED, '?')}"
        self.display.trial_started(trial.number, title, 0 if cfg.method == BASE_EVAL else cfg.train.steps)
        t0 = time.perf_counter()
        configure_threads()
        clock.announce.update(first_phases(cfg, start, self.shown))
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
            test_examples = list(data["test"].examples) if "test" in data else []
            log_result(result, final, sender, cfg, test_examples, start, git_commit(), trial_name(label, params))
        return values

    def _reuse(
        self, trial: optuna.Trial, source, run_id: str, label: str, params: Mapping[str, Any], clock: PhaseClock
    ) -> list[float]:
        """A finished identical trial's result: its validations are reported to Optuna again (the pruner
        decides as it would have), then its metrics, artifacts and dataset inputs are copied into this
        trial's run, and its logged model is linked to this run as an output."""
        client = MlflowClient()
        self.display.trial_started(trial.number, f"{config_text(label, params)} seed={params.get(SEED, '?')}", 0)
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
        note: str,
    ) -> None:
        problem = None
        try:
            if sender is not None and sender.pending:
                sender.deliver()
            mlflow.log_dict(dict(record), OPTUNA_TRIAL_ARTIFACT)
            mlflow.set_tags({TAG_STATE: state, NOTE_TAG: note, **({TAG_ERROR: error[:5000]} if error else {})})
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
