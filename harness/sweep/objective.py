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

For people watching (`harness.sweep.display`, the MLflow UI): each finished trial prints its line; the
task's data and the starting model's evaluation print when they start and end (once per process and
task); the run is named after its configuration and seed and described in one line; its test
predictions are an MLflow table (``test_predictions.json``); the study's run gets the best objective
value so far as each trial completes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
from harness.sweep.display import Finished, config_text
from harness.sweep.logged_model import link_model, log_best_checkpoint, model_logging, model_name
from harness.sweep.optuna_record import trial_record
from harness.sweep.provenance import environment_tags, git_commit
from harness.sweep.recovery import worker_identity
from harness.sweep.reuse import copy_result, find_result, result_key, validation_history
from harness.sweep.stores import STORE_DIR, mask_url
from harness.sweep.tracking import log_best, outcome_of, param_value, run_name, trial_name, trial_note
from harness.train.clock import PhaseClock
from harness.vocabulary import (
    BASE_EVAL,
    BEST_STEP,
    EXAMPLES_ARTIFACT,
    GENERATED_TOKENS,
    METRICS,
    NOTE_TAG,
    OPTUNA_TRIAL_ARTIFACT,
    PHASES_ATTR,
    PREDICTION_COLUMNS,
    PREDICTIONS_ARTIFACT,
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
    TIME_PREFIX,
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
    import pandas as pd

    from harness.sweep.display import Display
    from harness.train.trial import TrialResult

__all__ = [
    "CHECKPOINT_ENV",
    "SAMPLE_STEPS",
    "ShownClock",
    "TrialRunner",
    "checkpoint_dir",
    "objective_values",
    "predictions_table",
    "reported_metric",
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
    import pandas as pd

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


@contextmanager
def _quiet_tables() -> Iterator[None]:
    """MLflow's log_table asks pandas for 'object' columns, which pandas 3 answers with a deprecation
    notice on the terminal for every sweep: not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="For backward compatibility, 'str' dtypes are included")
        yield


class ShownClock(PhaseClock):
    """The trial's `PhaseClock`, which also shows the start and end of the phases named in ``announce``
    (phase -> what to say; each said once, then forgotten) on the display, and records each such line in
    the Optuna trial's ``PHASES_ATTR`` (a `--workers` parent shows them from the shared storage)."""

    def __init__(self, display: Display, trial: optuna.Trial | None = None):
        super().__init__()
        self.display, self.trial = display, trial
        self.announce: dict[str, str] = {}
        self.lines: list[str] = []

    def _record(self, line: str) -> None:
        self.lines.append(line)
        if self.trial is not None:
            try:  # a line is never worth failing a trial
                self.trial.set_user_attr(PHASES_ATTR, list(self.lines))
            except Exception:
                pass

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        what = self.announce.pop(phase, None)
        if what is None:
            with super().__call__(phase):
                yield
        else:
            with self.display.phase(what, record=self._record), super().__call__(phase):
                yield


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
        self._announce(cfg, start, clock)
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
            test_examples = list(data["test"].examples) if "test" in data else []
            with _quiet_tables():
                mlflow.log_table(predictions_table(result, test_examples), artifact_file=PREDICTIONS_ARTIFACT)
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
                    name=model_name(trial_name(label, params)),
                )
            sender.deliver()
        return values

    def _announce(self, cfg: TrialConfig, start: str, clock: ShownClock) -> None:
        """Which of this trial's phases the display shows, the first time this process meets them: the
        task's data (synthesised on first use, then read from its cache), the starting model's validation
        at step 0 and a base-model trial's test evaluation (each computed once, then cached; a test with
        sampled passes once per seed)."""
        data = json.dumps([cfg.task, cfg.data.model_dump(mode="json")], sort_keys=True)
        evaluation = json.dumps([start, data, cfg.model.model_dump(mode="json"), cfg.eval.model_dump(mode="json")])
        seeded = cfg.eval.sampling_passes > 0
        phases = {
            "data": (
                data,
                f"data: {cfg.task} train/validation/test, {cfg.data.train_size}/{cfg.data.validation_size}/"
                f"{cfg.data.test_size} examples"
                + (" (synthesised with espeak-ng on first use)" if cfg.data.source == "synthetic" else ""),
            ),
            "validation": (evaluation, f"starting model: {cfg.task} validation at step 0"),
        }
        if cfg.method == BASE_EVAL:
            phases["test"] = (
                evaluation + (f" seed {cfg.seed}" if seeded else ""),
                f"base model: {cfg.task} test" + (f" (seed {cfg.seed})" if seeded else ""),
            )
        for phase, (key, what) in phases.items():
            if f"{phase}:{key}" not in self.shown:
                self.shown.add(f"{phase}:{key}")
                clock.announce[phase] = what

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
