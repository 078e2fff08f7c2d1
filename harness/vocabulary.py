"""The names shared by the code that writes results and the code that reads them, defined once.

Writers (`train`, `sweep`) and readers (`report`, `study` checks, the CLI) import these instead of
spelling them out, so extending an experiment (a new metric, a new swept parameter) cannot break the
contract between them silently. This module imports nothing from the harness.

- **Metrics**: the paper's six evaluation metrics (also the rewards' names), their display names,
  what validation computes, and how a metric's MLflow key is formed (`test/bleu`,
  `test/sampled/bleu`, `val/bleu`).
- **MLflow tags** of the study's run and of every trial run, with what each means.
- **Method labels**: how a trial's method is named in reports (`base`, `sft`, `grpo`, `mp-grpo`).
- **Swept parameters**: the study run records which TrialConfig keys its `space` searched and their
  defaults when it ran (`SWEPT_ARTIFACT`); reports read that instead of guessing from today's code.
- **Optuna records, models, datasets, samples**: each trial run's Optuna view (`OPTUNA_TRIAL_ARTIFACT`),
  its best checkpoint as an MLflow model (`LOGGED_MODEL`), its data as MLflow dataset inputs
  (`DATASET_CONTEXTS`), its sample generations (`sample_artifact`); the study run's measurement of the
  base model's hearing (`HEARING_ARTIFACT`); and the report folder's files made from them
  (`OPTUNA_TRIALS_FILE`, `SAMPLES_FILE`).
"""

from __future__ import annotations

__all__ = [
    "AUDIO_TOKEN",
    "BASE_EVAL",
    "BASE_LABEL",
    "BEST_STEP",
    "COMPUTE_OBJECTIVES",
    "DATASET_CONTEXTS",
    "EXAMPLES_ARTIFACT",
    "GENERATED_TOKENS",
    "GRPO",
    "HEARING_ARTIFACT",
    "LOGGED_MODEL",
    "METHOD_PARAM",
    "METRICS",
    "METRIC_NAMES",
    "MODEL_PARAM",
    "MP_LABEL",
    "MP_PARAM",
    "OPTUNA_TRIALS_FILE",
    "OPTUNA_TRIAL_ARTIFACT",
    "PARAMS_TOTAL",
    "PARAMS_TRAINABLE",
    "REWARD_PARAM",
    "ROLE_STUDY",
    "ROLE_TRIAL",
    "SAMPLED",
    "SAMPLES_DIR",
    "SAMPLES_FILE",
    "SEED",
    "SELECT_METRIC",
    "SFT",
    "STATES",
    "STUDY_FILE_ARTIFACT",
    "SWEPT_ARTIFACT",
    "TAG_BERTSCORE",
    "TAG_CHECKPOINT",
    "TAG_COMMAND",
    "TAG_COMMIT",
    "TAG_ERROR",
    "TAG_LABEL",
    "TAG_MACHINE",
    "TAG_METEOR",
    "TAG_NAMESPACE",
    "TAG_NUMBER",
    "TAG_N_TRIALS",
    "TAG_RESULT_KEY",
    "TAG_RESUMED",
    "TAG_REUSED",
    "TAG_ROLE",
    "TAG_STATE",
    "TAG_STUDY",
    "TAG_VERSION_PREFIX",
    "TASK_PARAM",
    "TEST",
    "TRAINED_TOKENS",
    "TRAIN_STEPS",
    "TRIAL_CONFIG_ARTIFACT",
    "VAL",
    "VALIDATION_METRICS",
    "WALL_TIME",
    "method_label",
    "metric_key",
    "sample_artifact",
]

# --------------------------------------------------------------------------------------------------
# Metrics

METRICS: tuple[str, ...] = ("bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor")  # the paper's order
METRIC_NAMES: dict[str, str] = {
    "bleu": "BLEU",
    "bertscore": "BERTScore",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "meteor": "METEOR",
}
# Validation runs during training: greedy decoding, every metric but BERTScore, plus the references' NLL.
VALIDATION_METRICS: tuple[str, ...] = ("bleu", "rouge1", "rouge2", "rougeL", "meteor", "nll")
SELECT_METRIC = "bleu"  # the best checkpoint is the one with the highest validation BLEU (the paper's rule)

TEST, VAL, SAMPLED = "test", "val", "sampled"  # key prefixes: test/<m>, test/sampled/<m>, val/<m>


def metric_key(split: str, metric: str, sampled: bool = False) -> str:
    """``test/bleu``, ``test/sampled/bleu`` (the paper's sampled decoding), ``val/bleu``."""
    return f"{split}/{SAMPLED}/{metric}" if sampled else f"{split}/{metric}"


# The model a trial trains, logged at step 0.
PARAMS_TOTAL, PARAMS_TRAINABLE = "model/params", "model/trainable_params"

# Compute a trial logs once at its end (besides per-step metrics).
WALL_TIME, GENERATED_TOKENS, TRAINED_TOKENS, TRAIN_STEPS, BEST_STEP = (
    "wall_time_s",
    "generated_tokens",
    "trained_tokens",
    "train_steps",
    "best_step",
)

# Compute columns a study may name as an objective besides test/<m>, test/sampled/<m>, val/<m>
# (e.g. minimise generated_tokens against maximising test/bleu).
COMPUTE_OBJECTIVES: tuple[str, ...] = (GENERATED_TOKENS, TRAINED_TOKENS, WALL_TIME)

# --------------------------------------------------------------------------------------------------
# MLflow tags

TAG_NAMESPACE = "harness."  # every tag below starts with it; no TrialConfig field does
TAG_ROLE = "harness.role"  # "study" on the study's run, "trial" on each trial run
TAG_STUDY = "harness.study"  # the study's name
TAG_NUMBER = "harness.trial_number"  # the Optuna trial number
TAG_STATE = "harness.state"  # Optuna state at the end: COMPLETE, PRUNED, FAIL (RUNNING while it runs)
TAG_LABEL = "harness.label"  # the method label (below) or a baseline's own label
TAG_ERROR = "harness.error"  # why a trial failed (FAIL only)
TAG_RESUMED = "harness.resumed_from_step"  # the checkpoint step a retried trial continued from
TAG_REUSED = "harness.reused_from"  # run id of the finished trial whose result this trial reuses
TAG_RESULT_KEY = "harness.result_key"  # resolved config + code version + base model: equal keys, equal results
TAG_COMMIT = "harness.git_commit"  # the code's commit ("-dirty" appended when the tree had changes)
TAG_MACHINE = "harness.machine"  # platform, processor, CPU count, GPU
TAG_COMMAND = "harness.command"  # the command line (passwords masked)
TAG_CHECKPOINT = "harness.checkpoint_revision"  # the starting weights: a hub commit, a sha256, the shipped base's
TAG_VERSION_PREFIX = "harness.version."  # + package name: its installed version
TAG_N_TRIALS = "harness.n_trials"  # the study's trial budget (baselines included)
TAG_METEOR = "harness.metric.meteor"  # which METEOR this process computes (wordnet or exact+stem)
TAG_BERTSCORE = "harness.metric.bertscore"  # the BERTScore model and settings

ROLE_STUDY, ROLE_TRIAL = "study", "trial"
STATES: tuple[str, ...] = ("COMPLETE", "FAIL", "PRUNED", "RUNNING")

# Artifacts
STUDY_FILE_ARTIFACT = "study.yaml"  # the study file as run (study run)
SWEPT_ARTIFACT = "swept.json"  # {dotted key: default value} of every parameter the study's space searched
TRIAL_CONFIG_ARTIFACT = "trial_config.yaml"  # the resolved TrialConfig (trial run)
EXAMPLES_ARTIFACT = "test_examples.json"  # per-example test scores (trial run)
SAMPLES_DIR = "samples"  # sample generations of a few training steps, one MLflow table per step (trial run)
OPTUNA_TRIAL_ARTIFACT = "optuna_trial.json"  # the trial as Optuna saw it: state, values, params, distributions,
# intermediate values (trial run; harness.sweep.optuna_record writes it, harness.report.optuna_trials reads it)
HEARING_ARTIFACT = "hearing.csv"  # the base model's transcription errors per task, voice and clip (study run;
# harness.sweep.hearing measures it when the study ends, the report folder keeps it under the same name)
LOGGED_MODEL = "best_checkpoint"  # name of the MLflow LoggedModel holding a trial's best checkpoint
DATASET_CONTEXTS: tuple[str, ...] = ("train", "validation", "test")  # MLflow dataset inputs of a trial run
# (the context of each is its split's name)

# Files of a report folder made from the records above (besides harness.report.export.FILES)
OPTUNA_TRIALS_FILE = "optuna_trials.csv"  # one row per Optuna trial (optuna_trial.json flattened)
SAMPLES_FILE = "samples.csv"  # every sample generation of every finished trial


def sample_artifact(step: int) -> str:
    """``samples/step_0007.json``: the sample-generation table of a training step."""
    return f"{SAMPLES_DIR}/step_{step:04d}.json"


# --------------------------------------------------------------------------------------------------
# Method labels

BASE_EVAL, SFT, GRPO = "base-eval", "sft", "grpo"  # TrialConfig.method values
BASE_LABEL, MP_LABEL = "base", "mp-grpo"


def method_label(method: str, mp_grpo: bool) -> str:
    """How reports name a method: ``base`` / ``sft`` / ``grpo`` / ``mp-grpo``."""
    if method == BASE_EVAL:
        return BASE_LABEL
    if method == GRPO and mp_grpo:
        return MP_LABEL
    return method


# --------------------------------------------------------------------------------------------------
# Parameters

AUDIO_TOKEN = "<|audio|>"  # where a prompt's audio goes: data writes it into prompts, the model expands it

SEED = "seed"  # the Optuna parameter that carries the trial seed: it tells repeats apart, not configurations
REWARD_PARAM, MP_PARAM, METHOD_PARAM, TASK_PARAM, MODEL_PARAM = (
    "grpo.reward",
    "grpo.mp_grpo",
    "method",
    "task",
    "model.name",
)


# --------------------------------------------------------------------------------------------------
# Terminal and MLflow UI (issue 21): what the sweep writes for people reading the runs table

__all__ += [
    "BEST_PREFIX",
    "BEST_TRIAL",
    "NOTE_TAG",
    "PREDICTIONS_ARTIFACT",
    "PREDICTION_COLUMNS",
    "STEP_PREFIX",
    "TOTAL_TRIALS_ATTR",
    "best_key",
]

TOTAL_TRIALS_ATTR = "total_trials"  # the Optuna study's user attr: its current trial budget (grows with rounds)
NOTE_TAG = "mlflow.note.content"  # MLflow's description of a run or experiment (shown by the UI)
PREDICTIONS_ARTIFACT = "test_predictions.json"  # one row per test example, an MLflow table (trial run)
PREDICTION_COLUMNS: tuple[str, ...] = ("id", "prompt", "transcript", "reference", "prediction")  # + one per metric
STEP_PREFIX = "step/"  # per-step values of a quantity whose run total has the bare key (step/generated_tokens)
BEST_PREFIX = "best/"  # study run: the best value of each objective over the finished trials (best/test/bleu)
BEST_TRIAL = "best_trial"  # study run: the number of the Optuna trial with the best value (one objective)


def best_key(metric: str) -> str:
    """``best/test/bleu``: the study run's metric holding the best value of objective ``metric``."""
    return f"{BEST_PREFIX}{metric}"


# --------------------------------------------------------------------------------------------------
# Per-step metrics of a training step (issue 23): one key, one meaning. A step's own counts and times
# sit under STEP_PREFIX, never under the key of a run total (`generated_tokens` is the trial's total,
# logged once at its end; `step/generated_tokens` one step's); every time is a `time/` key.

__all__ += ["STEP_GENERATED_TOKENS", "STEP_TIME", "STEP_TRAINED_TOKENS", "TIME_PREFIX", "time_key"]

TIME_PREFIX = "time/"
STEP_GENERATED_TOKENS = f"{STEP_PREFIX}{GENERATED_TOKENS}"  # tokens the step's rollouts sampled
STEP_TRAINED_TOKENS = f"{STEP_PREFIX}{TRAINED_TOKENS}"  # completion tokens in the step's loss (GRPO: x mu)


def time_key(phase: str, step: bool = False) -> str:
    """``time/rollout_s``: seconds in a phase over the trial (the sweep logs them at its end);
    ``step/time/rollout_s`` (``step=True``): in one training step."""
    return f"{STEP_PREFIX if step else ''}{TIME_PREFIX}{phase}_s"


STEP_TIME = time_key("total", step=True)  # step/time/total_s: the seconds of all the step's phases


# What an evaluation computes (harness.eval.evaluate): validation (during training) VALIDATION_METRICS,
# the test every metric and the references' NLL, each sampled pass of the test (test/sampled/<m>) METRICS.
__all__ += ["NLL", "TEST_METRICS"]

NLL = "nll"  # the references' mean per-token negative log-likelihood (lower is better)
TEST_METRICS: tuple[str, ...] = (*METRICS, NLL)  # bertscore only with eval.bertscore: true

# The study run's Answer: one tag per declared hypothesis (harness.report), e.g. harness.verdict.grpo_vs_sft_sqa
VERDICT_TAG_PREFIX = "harness.verdict."
__all__ += ["VERDICT_TAG_PREFIX"]

# A trial's phase lines (its data synthesised, the base model evaluated: `harness.sweep.display.Display.phase`)
# as an Optuna user attr, which a `--workers N` parent reads from the shared storage and prints.
PHASES_ATTR = "phases"
__all__ += ["PHASES_ATTR"]
