"""Sample generations in the report: what the policy actually wrote during GRPO training.

Export (`export_samples`): every finished trial's sample tables (``samples/step_NNNN.json``, MLflow
tables of a few training steps: prompt, reference, completion, reward, off_policy) into the folder's
``samples.csv`` (``run_id, step`` + those columns). Section (`samples_section`), from that file alone:
per configuration, its lowest seed's last sampled step, the first prompts of that step, each with its
reference and the best and the worst on-policy completion of its group by training reward (MP-GRPO's
reference row is off-policy and left out).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run

from harness.report.artifacts import artifact_files, read_json_artifact
from harness.report.document import ReportWriter, fmt_num
from harness.vocabulary import AUDIO_TOKEN, SAMPLES_DIR, SAMPLES_FILE

if TYPE_CHECKING:  # (harness.report.folder imports export, which imports this module)
    from harness.report.folder import ReportData

__all__ = ["COLUMNS", "PROMPTS_SHOWN", "export_samples", "read_samples", "sample_generations", "samples_section"]

COLUMNS = ["run_id", "step", "prompt", "reference", "completion", "reward", "off_policy"]
PROMPTS_SHOWN = 2  # prompts per configuration in the report
_STEP = re.compile(r"step_(\d+)\.json$")


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
            frames.append(frame.reindex(columns=COLUMNS))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table.to_csv(path, index=False)
    return table


def read_samples(data: ReportData) -> pd.DataFrame:
    path = data.dir / SAMPLES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(
        path, dtype={"run_id": str, "prompt": str, "reference": str, "completion": str}, keep_default_na=False
    )


def sample_generations(data: ReportData, samples: pd.DataFrame, prompts: int = PROMPTS_SHOWN) -> pd.DataFrame:
    """Per configuration with samples: its lowest seed's last sampled step, ``prompts`` prompts, each with the
    best and worst on-policy completion by reward."""
    rows = []
    if samples.empty:
        return pd.DataFrame(rows)
    on_policy = samples[~samples["off_policy"].astype(str).str.lower().isin(("true", "1"))]
    for config in data.configs:
        order = sorted(zip(config.seeds, config.run_ids))
        runs = [(seed, run) for seed, run in order if (on_policy["run_id"] == run).any()]
        if not runs:
            continue
        seed, run = runs[0]
        mine = on_policy[on_policy["run_id"] == run]
        step = int(mine["step"].max())
        at_step = mine[mine["step"] == step]
        for prompt in list(dict.fromkeys(at_step["prompt"]))[:prompts]:
            group = at_step[at_step["prompt"] == prompt]
            rewards = pd.to_numeric(group["reward"], errors="coerce")
            best, worst = group.loc[rewards.idxmax()], group.loc[rewards.idxmin()]
            rows.append(
                {
                    "configuration": config.name,
                    "task": config.task,
                    "seed": seed,
                    "step": step,
                    "prompt": prompt,
                    "reference": best["reference"],
                    "completions": len(group),
                    "best completion": best["completion"],
                    "best reward": float(best["reward"]),
                    "worst completion": worst["completion"],
                    "worst reward": float(worst["reward"]),
                    "run_id": run,
                }
            )
    return pd.DataFrame(rows)


def samples_section(w: ReportWriter, data: ReportData) -> None:
    samples = read_samples(data)
    table = sample_generations(data, samples)
    if table.empty:
        return
    w.text(
        "## Sample generations",
        "",
        f"From `{SAMPLES_FILE}` (the trials' `{SAMPLES_DIR}/step_NNNN.json` tables): per configuration, the lowest "
        f"seed's last sampled training step, {PROMPTS_SHOWN} prompts with the best and the worst on-policy "
        "completion of their group by training reward (sampled at the rollout temperature, so not the greedy "
        "test output).",
    )
    shown = table.drop(columns=["run_id"]).assign(
        prompt=[p.replace(AUDIO_TOKEN, "[audio]").strip() for p in table["prompt"]],
        **{
            "best reward": [fmt_num(v, 3) for v in table["best reward"]],
            "worst reward": [fmt_num(v, 3) for v in table["worst reward"]],
        },
    )
    w.table("sample_generations", table, shown)
