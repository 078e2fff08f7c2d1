"""Reading a report folder and report.md for the report tests (tests/test_report_*.py): sections and
markdown tables, a configuration's per-example features, Holm and Benjamini-Hochberg written out, the
example-only bootstrap issue 12 replaced.

Expected numbers are computed with these from the fixture data and the folder's files with numpy / pandas /
scipy (std: sample standard deviation, ddof=1), independently of the report's code, except where a
test states that it recomputes a row with the report's own `compare` (same seed, same replicates).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from harness.report.inference import bleu_passes_score, bleu_score, mean_passes_score, mean_score


def section(md: str, title: str, level: int = 2) -> str:
    """Text of the section whose heading (at ``level``) starts with ``title``, up to the next heading of
    that level or above."""
    hashes = "#" * level
    found = re.search(rf"^{hashes} {re.escape(title)}.*?(?=^#{{1,{level}}} |\Z)", md, flags=re.MULTILINE | re.DOTALL)
    assert found, f"no section {title!r}"
    return found.group(0)


def sections(md: str, title: str) -> list[str]:
    return re.findall(rf"^## {re.escape(title)}.*?(?=^## |\Z)", md, flags=re.MULTILINE | re.DOTALL)


def md_tables(text: str) -> list[pd.DataFrame]:
    """Every markdown table in ``text`` as a frame of cell strings."""
    tables, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            tables.append(pd.DataFrame(rows[2:], columns=rows[0]))
            rows = []
    return tables


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, written out."""
    p = np.asarray(p_values, dtype=float)
    out, running = np.empty_like(p), 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    n, out, running = len(p), np.empty_like(p), 1.0
    for rank, i in reversed(list(enumerate(np.argsort(p, kind="stable")))):
        running = min(running, n * p[i] / (rank + 1))
        out[i] = running
    return out


BLEU_COLUMNS = [
    "bleu_sys_len",
    "bleu_ref_len",
    "bleu_correct_1",
    "bleu_correct_2",
    "bleu_correct_3",
    "bleu_correct_4",
    "bleu_total_1",
    "bleu_total_2",
    "bleu_total_3",
    "bleu_total_4",
]


def folder_features(folder: Path, config: str, metric: str, decoding: str, task: str | None = None) -> np.ndarray:
    """``[seeds, examples, (passes,) (10,)]`` of a configuration (on ``task`` where the name recurs on
    several), built here from per_seed.csv and per_example.csv.gz: seeds in per_seed.csv order,
    examples by id, passes by number."""
    per_seed = pd.read_csv(folder / "per_seed.csv", dtype={"run_id": str})
    pe = pd.read_csv(folder / "per_example.csv.gz", dtype={"run_id": str, "id": str})
    columns = BLEU_COLUMNS if metric == "bleu" else [metric]
    seeds = []
    mine = (per_seed["config"] == config) & ((per_seed["task"] == task) if task else True)
    for run_id in per_seed.loc[mine, "run_id"]:
        rows = pe[(pe["run_id"] == run_id) & (pe["decoding"] == decoding)].sort_values(["pass", "id"])
        passes = [part[columns].to_numpy(float) for _, part in rows.groupby("pass")]
        x = np.stack(passes, axis=1) if decoding == "sampled" else passes[0]
        seeds.append(x if metric == "bleu" else x[..., 0])
    return np.stack(seeds)


def score_for(metric: str, decoding: str):
    if metric == "bleu":
        return bleu_passes_score if decoding == "sampled" else bleu_score
    return mean_passes_score if decoding == "sampled" else mean_score


def row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= frame[key].to_numpy() == value
    found = frame[mask]
    assert len(found) == 1, f"{len(found)} rows with {where}"
    return found.iloc[0]


def complete_trials(main, key: str | None = None) -> list[dict]:
    return [t for t in main["trials"] if key is None or t["config_key"] == key]


def seeds_of(per_seed: pd.DataFrame, table: Path, config: str) -> pd.DataFrame:
    """The per-seed rows behind one row of a mean ± std table: its configuration on the table's task
    (named in the file name; one configuration name can recur on several tasks)."""
    tasks = [t for t in per_seed["task"].unique() if t in table.stem.split("_")]
    assert len(tasks) == 1, table.name
    return per_seed[(per_seed["config"] == config) & (per_seed["task"] == tasks[0])]


def summary_tables(folder: Path) -> list[tuple[Path, str, str]]:
    """(CSV, its configuration column, the test/ prefix of its decoding) of every mean ± std table."""
    out = []
    for path in sorted(folder.glob("*.csv")):
        kind = path.stem.split("_")[0]
        if kind in ("methods", "reward", "sweep"):
            prefix = "test/sampled/" if path.stem.endswith("_sampled") else "test/"
            out.append((path, "Method" if kind == "methods" else "config", prefix))
    return out


def example_only_p(a: np.ndarray, b: np.ndarray, n: int = 4000, seed: int = 1) -> float:
    """The test issue 12 replaced: average each example over seeds, then a paired bootstrap over
    examples only (two-sided, centred)."""
    d = a.mean(axis=0) - b.mean(axis=0)
    boot = d[np.random.default_rng(seed).integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    return (1 + np.sum(np.abs(boot - d.mean()) >= abs(d.mean()))) / (n + 1)


def artifact_paths(client: MlflowClient, run_id: str, path: str) -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out
