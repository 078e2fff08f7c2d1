"""One trial = one Optuna trial = one nested MLflow run: its parameters, its objective value, its
metrics (sent asynchronously, re-sent when the tracking server was away), and what an error means for
the study (the trial fails, or the study stops).
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import optuna
import yaml
from mlflow.tracking import MlflowClient

from harness.study import SEED, StudyConfig, StudyError, flatten, label_of
from harness.sweep.recovery import worker_identity
from harness.sweep.stores import STORE_DIR, mask_url
from harness.sweep.tracking import ERROR, LABEL, NUMBER, RESUMED, ROLE, STATE, STUDY_TAG, _param_value

if TYPE_CHECKING:
    from harness.sweep.display import Display

CHECKPOINT_ENV = "HARNESS_CHECKPOINT_DIR"
SAMPLE_STEPS = 3  # steps whose sample generations are logged as tables


class TrackingLost(RuntimeError):
    """The MLflow tracking server stopped answering during a trial and did not come back in time."""


@contextmanager
def _timed(spent: dict[str, float], what: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[what] = spent.get(what, 0.0) + time.perf_counter() - start


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


def objective_value(study: StudyConfig, result) -> float:
    split, metric = study.objective.metric.split("/", 1)
    scores = result.test.scores if split == "test" else result.validation
    if metric not in scores:
        raise KeyError(f"objective {study.objective.metric!r}: the trial computed {sorted(scores)} "
                       f"for {split} (bertscore needs eval.bertscore: true)")
    value = float(scores[metric])
    if not math.isfinite(value):
        raise FloatingPointError(f"objective {study.objective.metric!r} is {value}")
    return value


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, str)):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue  # lists, tensors with several values, ...: not a metric
    return out


def checkpoint_dir(study: StudyConfig, cfg) -> Path:
    """The trial's own checkpoint directory, keyed by study and resolved config (so a re-run of the same
    grid point, on any worker sharing the directory, resumes it). Env HARNESS_CHECKPOINT_DIR moves the root."""
    root = Path(os.environ.get(CHECKPOINT_ENV) or Path(STORE_DIR, "checkpoints").resolve())
    return root / study.name / cfg.digest()


def tracking_down(err: BaseException) -> bool:
    """An error saying the tracking server cannot be reached (after MLflow's own HTTP retries)."""
    import requests

    if isinstance(err, (TrackingLost, requests.exceptions.ConnectionError)):
        return True
    text = str(err)
    return isinstance(err, mlflow.exceptions.MlflowException) and any(mark in text for mark in (
        "Max retries exceeded", "Connection refused", "ConnectionError", "Failed to establish", "timed out"))


def _lost(err: BaseException) -> TrackingLost:
    if isinstance(err, TrackingLost):
        return err
    reason = mask_url(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)[:300]
    return TrackingLost(f"MLflow tracking server {mask_url(mlflow.get_tracking_uri())!r} stopped answering and "
                        f"did not come back within MLflow's retries ({reason}). Fix: restart the server, then run "
                        "the same command again: the interrupted trial is marked failed and runs again.")


class _AsyncFailures(logging.Handler):
    """Counts the batches MLflow's async logging could not send. MLflow only logs them (and a batch merged
    into another one does not even fail its future), so this is how a trial learns it must re-send."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


ASYNC_FAILURES = _AsyncFailures()
logging.getLogger("mlflow.utils.async_logging.async_logging_queue").addHandler(ASYNC_FAILURES)


def deliver(run_id: str, sent: list[tuple[Any, dict[str, float], int, int]], failures_before: int) -> None:
    """Make sure the trial's async metric batches reached the store: when any failed (the tracking server
    was away), send them all again synchronously, with MLflow's HTTP retries and the original
    timestamps (the store keeps one copy of a metric with the same key, step, timestamp and value)."""
    mlflow.flush_async_logging()
    failed = ASYNC_FAILURES.count > failures_before
    for operation, *_ in sent:
        try:
            operation.wait()
        except Exception:
            failed = True
    if failed:
        from mlflow.entities import Metric

        metrics = [Metric(k, v, stamp, step) for _, values, step, stamp in sent for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch
            MlflowClient().log_batch(run_id, metrics=metrics[start:start + 1000], synchronous=True)
    sent.clear()


def make_objective(study: StudyConfig, experiment_id: str, parent_run_id: str, display: "Display",
                   fatal: list[BaseException]) -> Callable:
    """The Optuna objective. Errors of the trial itself (NaN loss, a reward that raises, out of memory,
    unreadable audio) fail the trial and the study goes on; errors that would fail every trial (tracking
    server gone, a missing tool, a bad config) are put in ``fatal`` and stop the study."""
    from harness.data.audio import MissingToolError
    from harness.models.checkpoint import REVISION_TAG, checkpoint_revision
    from harness.train import trial as trial_lib  # torch & co. load only when a trial runs

    val_metric = study.objective.metric.split("/", 1)[1]

    def stop_on(err: BaseException, trial: optuna.Trial) -> None:
        if tracking_down(err):
            err = _lost(err)
        if isinstance(err, (TrackingLost, MissingToolError, StudyError)):
            fatal.append(err)
            trial.study.stop()

    def objective(trial: optuna.Trial) -> float:
        spent: dict[str, float] = {}
        started = time.perf_counter()
        state, status, error, run, label, ckpt = "FAIL", "FAILED", None, None, "?", None
        last_val: dict[str, float] = {}
        sent: list[tuple[Any, dict[str, float], int, int]] = []  # async batches not yet confirmed
        failures_before = ASYNC_FAILURES.count

        def log(metrics: Mapping[str, Any], step: int) -> None:
            values = _floats(metrics)
            last_val.update({k[4:]: v for k, v in values.items() if k.startswith("val/")})
            with _timed(spent, "tracking"):
                stamp = int(time.time() * 1000)
                sent.append((mlflow.log_metrics(values, step=step, synchronous=False, timestamp=stamp),
                             values, step, stamp))
            display.trial_step(step, values)

        def report(value: float, step: int) -> None:
            value = last_val.get(val_metric, value)  # the objective's own validation metric if logged
            with _timed(spent, "storage"):
                trial.report(value, step)
                prune = trial.should_prune()
            if prune:
                raise optuna.TrialPruned(f"pruned at step {step}: val/{val_metric}={value:.3g}")

        try:
            with _timed(spent, "storage"):
                trial.set_user_attr("worker", worker_identity())
                params = suggest(study, trial)
            baseline = trial.user_attrs.get("baseline")
            cfg = study.resolve(params, baseline)
            label = study.baseline_label(baseline) if baseline is not None else label_of(cfg)
            ckpt = checkpoint_dir(study, cfg)
            with _timed(spent, "tracking"):
                run = mlflow.start_run(
                    experiment_id=experiment_id, run_name=f"{trial.number:03d}-{label}",
                    parent_run_id=parent_run_id, log_system_metrics=True,
                    tags={ROLE: "trial", STUDY_TAG: study.name, NUMBER: str(trial.number), LABEL: label,
                          STATE: "RUNNING", REVISION_TAG: checkpoint_revision(cfg.model)})
                mlflow.log_params({k: _param_value(v) for k, v in flatten(cfg.model_dump(mode="json")).items()},
                                  synchronous=False)
                mlflow.log_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "trial_config.yaml")
            with _timed(spent, "storage"):
                trial.set_user_attr("label", label)
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
            display.trial_started(trial.number, label, 0 if cfg.method == "base-eval" else cfg.train.steps)
            t0 = time.perf_counter()
            result = trial_lib.run_trial(cfg, log=log, report=report, sample_steps=SAMPLE_STEPS, checkpoint_dir=ckpt)
            wall = time.perf_counter() - t0
            value = objective_value(study, result)
            with _timed(spent, "tracking"):
                if result.resumed_from:
                    mlflow.set_tag(RESUMED, str(result.resumed_from))
                _log_result(cfg, result, wall, trial_lib)
                deliver(run.info.run_id, sent, failures_before)
            state, status = "COMPLETE", "FINISHED"
            display.trial_ended(trial.number, label, state, f"{study.objective.metric}={value:.2f}")
            return value
        except optuna.TrialPruned as err:
            state, status = "PRUNED", "FINISHED"
            display.trial_ended(trial.number, label, state, str(err))
            raise
        except BaseException as err:
            stop_on(err, trial)
            shown = _lost(err) if tracking_down(err) else err
            error = mask_url(f"{type(shown).__name__}: {shown}")
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            display.trial_ended(trial.number, label, "FAIL", error)
            with _timed(spent, "storage"):
                trial.set_user_attr("error", error)
            if run is not None and not tracking_down(err):
                with _timed(spent, "tracking"):
                    mlflow.log_text(traceback.format_exc(), "error.txt")
            raise
        finally:
            if state != "FAIL" and ckpt is not None:
                import shutil

                shutil.rmtree(ckpt, ignore_errors=True)  # finished: nothing to resume
            if run is not None:
                problem = None
                with _timed(spent, "tracking"):
                    try:
                        if sent:
                            deliver(run.info.run_id, sent, failures_before)
                        mlflow.set_tags({STATE: state, **({ERROR: error[:5000]} if error else {})})
                    except Exception as err:
                        problem = err
                    try:  # always: it also takes the run off MLflow's stack of active runs
                        mlflow.end_run(status=status)  # drains this run's async logging queue first
                    except Exception as err:
                        problem = problem or err
                if problem is not None:  # the tracking server went away: the trial fails, the worker stops
                    lost = _lost(problem) if tracking_down(problem) else problem
                    if isinstance(lost, TrackingLost) and not any(isinstance(f, TrackingLost) for f in fatal):
                        fatal.append(lost)
                        trial.study.stop()
                    trial.set_user_attr("error", mask_url(str(lost)))
                    raise lost from None
            spent["trial"] = time.perf_counter() - started
            trial.set_user_attr("overhead_s", {k: round(v, 4) for k, v in spent.items()})

    return objective


def _log_result(cfg, result, wall: float, trial_lib) -> None:
    final = {f"test/{k}": float(v) for k, v in result.test.scores.items()}
    final.update({"best_step": result.best_step, "train_steps": result.steps,
                  "generated_tokens": result.generated_tokens, "wall_time_s": wall})
    final.update({f"time/{stage}": float(s) for stage, s in result.times.items()})
    mlflow.log_metrics(final, step=result.steps, synchronous=False)
    examples = trial_lib.load_task_data(cfg)["test"].examples
    mlflow.log_dict({
        "ids": [ex.id for ex in examples],
        "references": [ex.answer for ex in examples],
        "hypotheses": list(result.test.hypotheses),
        "scores": {m: [float(x) for x in values] for m, values in result.test.per_example.items()},
    }, "test_examples.json")
    if result.samples:
        import pandas as pd

        for step, rows in sorted(result.samples.items()):
            mlflow.log_table(pd.DataFrame(rows), artifact_file=f"samples/step_{step:04d}.json")
