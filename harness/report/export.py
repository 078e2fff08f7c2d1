"""A study's evidence, exported from the MLflow store into its report folder as plain files.

Every number of a report is computed from these files alone (`harness.report.folder` reads them
back; `harness report --from-folder DIR` rebuilds a report without any store), so a reader can
recompute it, and a reviewer can check it, from the repository:

- ``per_seed.csv``: one row per finished (COMPLETE) trial: ``study, config, label, task, model,
  method, seed, run_id, trial, best_step, train_steps, wall_time_s, generated_tokens, trained_tokens,
  reused_from, commit``, the study's searched parameters, ``test/<metric>`` /
  ``test/sampled/<metric>`` for every metric, and ``val/<metric>`` at the selected checkpoint;
- ``per_example.csv.gz``: every finished trial's per-example test scores, greedy and each sampled
  pass, with BLEU's sufficient statistics (what the seed-aware bootstrap re-scores);
- ``curves.csv.gz``: each trial's validation curves (``val/*``) and training curves (reward, KL, ...);
- ``trials.csv``: every trial, finished or not (state, error, last validation value and step);
- ``study.yaml`` (the study file as run), ``swept.json`` (searched parameters and their default
  level), ``configs/*.yaml`` (each configuration's resolved config), ``provenance.json`` (commits,
  machine, command, package versions);
- ``hearing.csv`` (studies that evaluate the tiny base): the base's transcription of each task's
  test clips in the study's voice and in its pretraining voice, with word / character errors;
- ``optuna_trials.csv``: every trial as Optuna saw it (`harness.report.optuna_trials`);
- ``samples.csv``: the finished trials' sample generations (`harness.report.samples`).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from harness.report.optuna_trials import export_optuna_trials
from harness.report.samples import export_samples
from harness.report.test_outputs import TEST_OUTPUTS_FILE, test_outputs_frame
from harness.sweep.stores import quiet_downloads
from harness.vocabulary import (
    BEST_STEP,
    EXAMPLES_ARTIFACT,
    GENERATED_TOKENS,
    METRICS,
    OPTUNA_TRIALS_FILE,
    PARAMS_TOTAL,
    PARAMS_TRAINABLE,
    ROLE_STUDY,
    ROLE_TRIAL,
    SAMPLES_FILE,
    SEED,
    STUDY_FILE_ARTIFACT,
    SWEPT_ARTIFACT,
    TAG_BERTSCORE,
    TAG_CHECKPOINT,
    TAG_COMMAND,
    TAG_COMMIT,
    TAG_ERROR,
    TAG_LABEL,
    TAG_MACHINE,
    TAG_METEOR,
    TAG_NAMESPACE,
    TAG_NUMBER,
    TAG_REUSED,
    TAG_ROLE,
    TAG_STATE,
    TAG_VERSION_PREFIX,
    TEST,
    TRAIN_STEPS,
    TRAINED_TOKENS,
    TRIAL_CONFIG_ARTIFACT,
    VAL,
    VALIDATION_METRICS,
    WALL_TIME,
    method_label,
    metric_key,
    time_key,
)

__all__ = ["CURVE_METRICS", "FILES", "PER_SEED_COLUMNS", "export_study"]

FILES = {
    "per_seed": "per_seed.csv",
    "per_example": "per_example.csv.gz",
    "curves": "curves.csv.gz",
    "trials": "trials.csv",
    "study": "study.yaml",
    "swept": "swept.json",
    "provenance": "provenance.json",
    "configs": "configs",
    "hearing": "hearing.csv",
    "optuna_trials": OPTUNA_TRIALS_FILE,
    "samples": SAMPLES_FILE,
    "test_outputs": TEST_OUTPUTS_FILE,
}
# What each finished trial logged of its compute and model (per_seed.csv columns).
COMPUTE = (
    BEST_STEP,
    TRAIN_STEPS,
    WALL_TIME,
    time_key("train"),  # the CPU-seconds behind a seed, a decoding pass and a test example (report/variance.py)
    time_key("test"),
    GENERATED_TOKENS,
    TRAINED_TOKENS,
    PARAMS_TOTAL,
    PARAMS_TRAINABLE,
)
PER_SEED_COLUMNS = [
    "study",
    "config",
    "label",
    "task",
    "model",
    "method",
    "seed",
    "run_id",
    "trial",
    *COMPUTE,
    "reused_from",
    "commit",
]
TEST_COLUMNS = [metric_key(TEST, m) for m in METRICS] + [metric_key(TEST, m, sampled=True) for m in METRICS]
VAL_COLUMNS = [metric_key(VAL, m) for m in VALIDATION_METRICS]  # at the selected checkpoint
# Training curves the report draws (besides every validation metric).
CURVE_METRICS: tuple[str, ...] = ("reward", "kl", "completion_len_mean", "entropy", "loss", "truncated_frac")
BLEU_STAT_COLUMNS = [
    "bleu_sys_len",
    "bleu_ref_len",
    *(f"bleu_correct_{n}" for n in range(1, 5)),
    *(f"bleu_total_{n}" for n in range(1, 5)),
]
GZIP = {"method": "gzip", "mtime": 0}  # no timestamp in the header: the same data gives the same bytes
MLFLOW_STATUS_TO_STATE = {
    "FINISHED": "COMPLETE",
    "FAILED": "FAIL",
    "KILLED": "FAIL",
    "RUNNING": "RUNNING",
    "SCHEDULED": "RUNNING",
}


# --------------------------------------------------------------------------------------------------
# Trials as the store holds them


@dataclass
class _Trial:
    run: Run
    number: int | None
    state: str
    label: str

    @property
    def params(self) -> dict[str, str]:
        return dict(self.run.data.params)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.run.data.tags)


def _runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _trial(run: Run) -> _Trial:
    tags, params = run.data.tags, run.data.params
    number = tags.get(TAG_NUMBER, "")
    state = tags.get(TAG_STATE) or MLFLOW_STATUS_TO_STATE.get(run.info.status, run.info.status)
    label = tags.get(TAG_LABEL) or method_label(
        params.get("method", "?"), params.get("grpo.mp_grpo", "false").lower() == "true"
    )
    return _Trial(run, int(number) if number.lstrip("-").isdigit() else None, state, label)


def _config_params(trial: _Trial) -> dict[str, str]:
    """The trial's resolved config but its seed. MLflow's log_model also writes the logged model's
    ``model_config`` ({TAG_CHECKPOINT: ...}) into the run's params; a reused trial logs no model, so
    the harness's own ``harness.*`` keys (never a TrialConfig field) do not tell configurations apart."""
    return {k: v for k, v in trial.params.items() if k != SEED and not k.startswith(TAG_NAMESPACE)}


def _config_names(trials: list[_Trial]) -> dict[str, str]:
    """run id -> configuration name, for COMPLETE trials: trials sharing the label and every parameter
    but the seed form one configuration, named by its label, plus the parameters that tell it apart
    from others of the same label on the same task and model."""
    groups: dict[tuple, list[_Trial]] = defaultdict(list)
    for t in trials:
        key = (t.label, tuple(sorted(_config_params(t).items())))
        groups[key].append(t)
    by_label: dict[tuple, list[tuple]] = defaultdict(list)
    for key in groups:
        p = dict(key[1])
        by_label[(p.get("task"), p.get("model.name"), key[0])].append(key)
    names: dict[str, str] = {}
    for (_, _, label), keys in by_label.items():
        params = [dict(k[1]) for k in keys]
        varying = sorted({k for p in params for k in p if len({q.get(k) for q in params}) > 1})
        for key, p in zip(keys, params):
            name = f"{label} [{', '.join(f'{k}={p.get(k)}' for k in varying)}]" if len(keys) > 1 else label
            for t in groups[key]:
                names[t.run.info.run_id] = name
    return names


# --------------------------------------------------------------------------------------------------
# Export


def export_study(client: MlflowClient, experiment_name: str, out_dir: Path, previous: Path | None = None) -> None:
    """Write the study's evidence files (module docstring) into ``out_dir``; ``previous``: an earlier
    export of the study, whose measurements of the starting checkpoint (``hearing.csv``) are kept while
    the checkpoint is the same."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} at {client.tracking_uri}")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = _runs(client, experiment.experiment_id)
    parents = [r for r in runs if r.data.tags.get(TAG_ROLE) == ROLE_STUDY]
    parent = parents[-1] if parents else None
    trials = sorted(
        (
            _trial(r)
            for r in runs
            if r.data.tags.get(TAG_ROLE) == ROLE_TRIAL
            or (TAG_ROLE not in r.data.tags and "mlflow.parentRunId" in r.data.tags)
        ),
        key=lambda t: (t.number is None, t.number or 0, t.run.info.run_id),
    )
    complete = [t for t in trials if t.state == "COMPLETE"]
    names = _config_names(complete)
    searched = _study_files(client, parent, out_dir)
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        examples = {
            t.run.info.run_id: _examples(t.run.info.run_id, Path(scratch), client.tracking_uri) for t in complete
        }
    curves = _curves(client, complete)
    _per_seed(experiment_name, complete, names, searched, curves).to_csv(out_dir / FILES["per_seed"], index=False)
    _per_example(examples).to_csv(out_dir / FILES["per_example"], index=False, float_format="%.6g", compression=GZIP)
    test_outputs_frame(examples).to_csv(out_dir / FILES["test_outputs"], index=False, compression=GZIP)
    curves.to_csv(out_dir / FILES["curves"], index=False, float_format="%.6g", compression=GZIP)
    _trials_table(client, trials, names).to_csv(out_dir / FILES["trials"], index=False)
    export_optuna_trials(client, [t.run for t in trials], out_dir / FILES["optuna_trials"])
    export_samples(client, [t.run for t in complete], out_dir / FILES["samples"])
    _configs(client, complete, names, out_dir / FILES["configs"])
    (out_dir / FILES["provenance"]).write_text(json.dumps(_provenance(parent, complete), indent=2) + "\n")
    _hearing(out_dir, previous or out_dir)


def _study_files(client: MlflowClient, parent: Run | None, out_dir: Path) -> list[str]:
    """study.yaml and swept.json from the study's run; returns the searched parameters."""
    swept: dict[str, Any] = {}
    if parent is not None:
        with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
            for name, target in ((STUDY_FILE_ARTIFACT, FILES["study"]), (SWEPT_ARTIFACT, FILES["swept"])):
                try:
                    with quiet_downloads():
                        path = mlflow.artifacts.download_artifacts(
                            run_id=parent.info.run_id,
                            artifact_path=name,
                            dst_path=scratch,
                            tracking_uri=client.tracking_uri,
                        )
                    (out_dir / target).write_text(Path(path).read_text(encoding="utf-8"), encoding="utf-8")
                except Exception:  # an older store without the file: the report says what is missing
                    continue
    if (out_dir / FILES["swept"]).is_file():
        swept = json.loads((out_dir / FILES["swept"]).read_text())
    return list(swept)


def _per_seed(
    study: str, complete: list[_Trial], names: dict[str, str], searched: list[str], curves: pd.DataFrame
) -> pd.DataFrame:
    rows = []
    for t in complete:
        m, p, tags = t.run.data.metrics, t.params, t.tags
        history = curves[(curves["run_id"] == t.run.info.run_id) & (curves["step"] == m.get(BEST_STEP, 0))]
        selected = dict(zip(history["metric"], history["value"]))  # validation at the selected checkpoint
        rows.append(
            {
                "study": study,
                "config": names[t.run.info.run_id],
                "label": t.label,
                "task": p.get("task", "?"),
                "model": p.get("model.name", "?"),
                "method": p.get("method", "?"),
                "seed": p.get(SEED),
                "run_id": t.run.info.run_id,
                "trial": t.number,
                **{k: m.get(k) for k in COMPUTE},
                "reused_from": tags.get(TAG_REUSED, ""),
                "commit": tags.get(TAG_COMMIT, ""),
                **{k: p.get(k) for k in searched},
                **{k: m.get(k) for k in TEST_COLUMNS},
                **{k: selected.get(k) for k in VAL_COLUMNS},
            }
        )
    columns = PER_SEED_COLUMNS + [k for k in searched if k not in PER_SEED_COLUMNS] + TEST_COLUMNS + VAL_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def _examples(run_id: str, scratch: Path, tracking_uri: str) -> dict | None:
    try:
        with quiet_downloads():
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=EXAMPLES_ARTIFACT,
                dst_path=str(scratch / run_id),
                tracking_uri=tracking_uri,
            )
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:
        return None


def _per_example(examples: dict[str, dict | None]) -> pd.DataFrame:
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


def _curves(client: MlflowClient, complete: list[_Trial]) -> pd.DataFrame:
    rows = []
    for t in complete:
        keys = [metric_key(VAL, m) for m in VALIDATION_METRICS] + list(CURVE_METRICS)
        keys += [k for k in t.run.data.metrics if k.startswith("reward/")]
        for key in keys:
            if key not in t.run.data.metrics:
                continue
            rows += [
                (t.run.info.run_id, key, m.step, m.value) for m in client.get_metric_history(t.run.info.run_id, key)
            ]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"]).sort_values(
        ["run_id", "metric", "step"], kind="stable"
    )


def _trials_table(client: MlflowClient, trials: list[_Trial], names: dict[str, str]) -> pd.DataFrame:
    rows = []
    for t in trials:
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(t.run.info.run_id, metric_key(VAL, "bleu"))
        )
        rows.append(
            {
                "trial": t.number,
                "label": t.label,
                "state": t.state,
                "mlflow_status": t.run.info.status,
                "task": t.params.get("task", "?"),
                "config": names.get(t.run.info.run_id, ""),
                "seed": t.params.get(SEED),
                "last_val_step": history[-1][0] if history else None,
                "last_val_bleu": history[-1][1] if history else None,
                "error": t.tags.get(TAG_ERROR, ""),
                "run_id": t.run.info.run_id,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "trial",
            "label",
            "state",
            "mlflow_status",
            "task",
            "config",
            "seed",
            "last_val_step",
            "last_val_bleu",
            "error",
            "run_id",
        ],
    )


def config_file(name: str, task: str) -> str:
    """The file name of a configuration's resolved config in ``configs/``."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", f"{task}__{name}").strip("_") + ".yaml"


def _configs(client: MlflowClient, complete: list[_Trial], names: dict[str, str], folder: Path) -> None:
    """Each configuration's resolved TrialConfig (its first trial's, the seed shown as the list of seeds)."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    members: dict[tuple[str, str], list[_Trial]] = defaultdict(list)
    for t in complete:
        members[(names[t.run.info.run_id], t.params.get("task", "?"))].append(t)
    with tempfile.TemporaryDirectory(prefix="harness-export-") as scratch:
        for (name, task), group in members.items():
            first = group[0].run.info.run_id
            try:
                with quiet_downloads():
                    path = mlflow.artifacts.download_artifacts(
                        run_id=first,
                        artifact_path=TRIAL_CONFIG_ARTIFACT,
                        dst_path=str(Path(scratch) / first),
                        tracking_uri=client.tracking_uri,
                    )
                config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except Exception:
                continue
            config[SEED] = sorted(int(t.params[SEED]) for t in group)
            header = (
                f"# configuration {name!r} (task {task}): the resolved TrialConfig of its trials, which differ "
                f"only by seed\n# runs: {', '.join(t.run.info.run_id for t in group)}\n"
            )
            (folder / config_file(name, task)).write_text(header + yaml.safe_dump(config, sort_keys=False))


def _provenance(parent: Run | None, complete: list[_Trial]) -> dict[str, Any]:
    tags = dict(parent.data.tags) if parent is not None else {}
    trial_tags = [t.tags for t in complete]
    return {
        "study_run": parent.info.run_id if parent is not None else None,
        "command": tags.get(TAG_COMMAND),
        "commit": tags.get(TAG_COMMIT),
        "machine": tags.get(TAG_MACHINE),
        "versions": {
            k.removeprefix(TAG_VERSION_PREFIX): v for k, v in sorted(tags.items()) if k.startswith(TAG_VERSION_PREFIX)
        },
        "trial_commits": sorted({t.get(TAG_COMMIT, "unknown") for t in trial_tags}),
        "trial_machines": sorted({t.get(TAG_MACHINE, "unknown") for t in trial_tags}),
        "checkpoints": sorted({t.get(TAG_CHECKPOINT, "unknown") for t in trial_tags}),
        "meteor": sorted({t.get(TAG_METEOR, "unknown") for t in trial_tags}),
        "bertscore": sorted({t.get(TAG_BERTSCORE, "unknown") for t in trial_tags}),
        "reused_trials": sum(bool(t.get(TAG_REUSED)) for t in trial_tags),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _hearing(out_dir: Path, previous: Path) -> None:
    """For a study that evaluates the tiny base on synthetic speech: the base's transcription errors on
    each task's test clips in the study's voice and in its pretraining voice (`harness.eval.hearing`),
    measured once per starting checkpoint (kept while the checkpoint is the same)."""
    configs = [
        yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((out_dir / FILES["configs"]).glob("*.yaml"))
    ]
    bases = {
        c["task"]: c
        for c in configs
        if c.get("method") == "base-eval" and c["model"]["name"] == "tiny" and c["data"]["source"] == "synthetic"
    }
    path, earlier = out_dir / FILES["hearing"], previous / FILES["hearing"]
    if not bases:
        path.unlink(missing_ok=True)
        return
    from harness.config import TrialConfig  # the model stack loads only when there is a base to measure
    from harness.data.synthetic import VOICE
    from harness.eval.hearing import transcription_errors
    from harness.train.base_model import starting_point

    frames = []
    for task, raw in sorted(bases.items()):
        cfg = TrialConfig.model_validate({**raw, "seed": raw["seed"][0]})
        voices = sorted({cfg.data.voice, VOICE})
        if earlier.is_file():
            old = pd.read_csv(earlier, dtype={"id": str})
            same = old[(old["task"] == task) & (old["checkpoint"] == starting_point(cfg.model).identity)]
            if set(same["voice"]) == set(voices):
                frames.append(same)
                continue
        start = starting_point(cfg.model)
        frames.append(transcription_errors(cfg, voices, start.path, start.identity))
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
