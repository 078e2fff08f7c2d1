"""Sample generations in the report: what the policy actually wrote during GRPO training.

From the folder's ``samples.csv`` alone (`harness.report.artifacts.export_samples` wrote it from the
trials' ``samples/step_NNNN.json`` tables): per configuration, its lowest seed's last sampled step, the
first prompts of that step, each with its reference and the best and the worst on-policy completion of
its group by training reward (MP-GRPO's reference row is off-policy and left out).
"""

from __future__ import annotations

import pandas as pd

from harness.report.artifacts import SAMPLES_COLUMNS
from harness.report.document import ReportWriter, fmt_num
from harness.report.folder import ReportData
from harness.vocabulary import AUDIO_TOKEN, SAMPLES_DIR, SAMPLES_FILE

__all__ = ["PROMPTS_SHOWN", "read_samples", "sample_generations", "samples_section"]

PROMPTS_SHOWN = 2  # prompts per configuration in the report


def read_samples(data: ReportData) -> pd.DataFrame:
    path = data.dir / SAMPLES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=SAMPLES_COLUMNS)
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
