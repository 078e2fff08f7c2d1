"""A report folder read back: the files `harness.report.export` wrote, and the configurations they hold.

A *configuration* is the set of finished trials sharing the label and every parameter but the seed;
its seeds are its rows of ``per_seed.csv``. Everything a report shows is computed from this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.report.artifacts import BLEU_STAT_COLUMNS, config_file
from harness.report.export import FILES
from harness.vocabulary import BASE_EVAL, GRPO, MP_LABEL, SFT, TEST, metric_key

__all__ = ["Config", "ReportData", "load_folder", "natural_key"]

METHOD_ORDER = {BASE_EVAL: 0, SFT: 1, GRPO: 2}


def natural_key(text: str) -> tuple:
    """Sort key in which numbers compare as numbers: 'G=4' < 'G=16', 'beta=0.0' < 'beta=0.01'."""
    parts = re.split(r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)", str(text))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


@dataclass
class Config:
    """One configuration: its per-seed rows (a slice of per_seed.csv)."""

    name: str
    task: str
    model: str
    label: str
    method: str
    rows: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)  # the study's searched parameters, as recorded
    resolved: dict[str, Any] = field(default_factory=dict)  # configs/<config>.yaml (empty where absent)

    @property
    def mp(self) -> bool:
        """MP-GRPO: by its label, a searched ``grpo.mp_grpo`` or the resolved config (a baseline's own)."""
        resolved = (self.resolved.get("grpo") or {}).get("mp_grpo", False)
        return self.label == MP_LABEL or str(self.params.get("grpo.mp_grpo", resolved)).lower() == "true"

    def settings_but(self, *keys: str) -> dict[str, Any] | None:
        """The resolved config without its seeds and the dotted ``keys`` (None where it is unknown)."""
        if not self.resolved:
            return None
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.resolved.items() if k != "seed"}
        for key in keys:
            head, _, tail = key.partition(".")
            if tail and isinstance(out.get(head), dict):
                out[head].pop(tail, None)
            elif not tail:
                out.pop(head, None)
        return out

    @property
    def is_grpo(self) -> bool:
        return self.method == GRPO

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.rows["seed"]]

    @property
    def run_ids(self) -> list[str]:
        return list(self.rows["run_id"])

    @property
    def order(self) -> tuple:
        return self.task, self.model, METHOD_ORDER.get(self.method, 9), self.mp, natural_key(self.name)

    def values(self, key: str) -> np.ndarray:
        """Per-seed values of a ``per_seed.csv`` column (NaN where a seed did not log it)."""
        if key not in self.rows:
            return np.full(len(self.rows), np.nan)
        return pd.to_numeric(self.rows[key], errors="coerce").to_numpy(dtype=float)

    def stats(self, key: str) -> tuple[float, float, int]:
        """(mean, sample std (ddof=1; NaN for one seed), n seeds that logged it) of a column."""
        v = self.values(key)
        v = v[np.isfinite(v)]
        if not v.size:
            return np.nan, np.nan, 0
        return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else np.nan, int(v.size)


@dataclass
class ReportData:
    """Everything in one report folder."""

    dir: Path
    per_seed: pd.DataFrame
    trials: pd.DataFrame
    swept: dict[str, Any]
    provenance: dict[str, Any]
    study_text: str
    configs: list[Config]

    @property
    def name(self) -> str:
        return str(self.per_seed["study"].iloc[0]) if len(self.per_seed) else self.dir.name

    @cached_property
    def per_example(self) -> pd.DataFrame:
        path = self.dir / FILES["per_example"]
        return pd.read_csv(path, dtype={"id": str, "run_id": str}) if path.is_file() else pd.DataFrame()

    @cached_property
    def examples_by_run(self) -> dict[tuple[str, str], pd.DataFrame]:
        """(run id, decoding) -> that run's per-example rows, sorted by pass and example id."""
        pe = self.per_example
        if pe.empty:
            return {}
        ordered = pe.sort_values(["pass", "id"], kind="stable")
        return {key: part for key, part in ordered.groupby(["run_id", "decoding"], sort=False)}

    @cached_property
    def curves(self) -> pd.DataFrame:
        path = self.dir / FILES["curves"]
        return (
            pd.read_csv(path, dtype={"run_id": str})
            if path.is_file()
            else pd.DataFrame(columns=["run_id", "metric", "step", "value"])
        )

    def task_models(self) -> dict[tuple[str, str], list[Config]]:
        out: dict[tuple[str, str], list[Config]] = {}
        for c in self.configs:
            out.setdefault((c.task, c.model), []).append(c)
        return out

    def decodings(self) -> list[str]:
        """'greedy', and 'sampled' when the trials evaluated the paper's sampled decoding too."""
        sampled = any(self.per_seed[metric_key(TEST, "bleu", sampled=True)].notna()) if len(self.per_seed) else False
        return ["greedy", "sampled"] if sampled else ["greedy"]

    def features(self, config: Config, metric: str, decoding: str) -> np.ndarray | None:
        """Per-example features of every seed, ``[seeds, examples, *F]`` in example-id order: BLEU's
        sufficient statistics (F = (10,), or (passes, 10) sampled) or the metric's score (F = () or
        (passes,)); None when a seed has no per-example scores for it or the seeds' examples differ."""
        columns = BLEU_STAT_COLUMNS if metric == "bleu" else [metric]
        seeds, ids = [], None
        for run_id in config.run_ids:
            rows = self.examples_by_run.get((run_id, decoding))
            if rows is None or any(c not in rows for c in columns) or rows[columns].isna().any().any():
                return None
            passes = [part for _, part in rows.groupby("pass", sort=True)]
            run_ids = [tuple(part["id"]) for part in passes]
            if ids is None:
                ids = run_ids[0]
            if any(i != ids for i in run_ids):
                return None
            stacked = np.stack([part[columns].to_numpy(dtype=float) for part in passes], axis=1)  # [M, P, K]
            stacked = stacked if decoding == "sampled" else stacked[:, 0]
            seeds.append(stacked if metric == "bleu" else stacked[..., 0])
        return np.stack(seeds) if seeds else None

    def example_ids(self, config: Config, decoding: str) -> list[str]:
        rows = self.examples_by_run.get((config.run_ids[0], decoding))
        return [] if rows is None else list(rows[rows["pass"] == 0]["id"])


def load_folder(folder: Path) -> ReportData:
    folder = Path(folder)
    text = {"run_id": str, "config": str, "label": str, "reused_from": str, "commit": str}
    per_seed = pd.read_csv(folder / FILES["per_seed"], dtype=text)
    for column in ("reused_from", "commit"):
        per_seed[column] = per_seed[column].fillna("").astype(str)
    trials_path = folder / FILES["trials"]
    trials = pd.read_csv(trials_path, dtype={"run_id": str}) if trials_path.is_file() else pd.DataFrame()
    swept_path = folder / FILES["swept"]
    swept = json.loads(swept_path.read_text()) if swept_path.is_file() else {}
    provenance = json.loads((folder / FILES["provenance"]).read_text())
    study_path = folder / FILES["study"]
    study_text = study_path.read_text(encoding="utf-8") if study_path.is_file() else ""
    configs = []
    for (task, model, name), rows in per_seed.groupby(["task", "model", "config"], sort=False):
        first = rows.iloc[0]
        params = {k: first[k] for k in swept if k in rows}
        resolved_path = folder / FILES["configs"] / config_file(name, task)
        resolved = yaml.safe_load(resolved_path.read_text(encoding="utf-8")) if resolved_path.is_file() else {}
        rows = rows.reset_index(drop=True)
        configs.append(Config(name, task, model, first["label"], first["method"], rows, params, resolved or {}))
    configs.sort(key=lambda c: c.order)
    return ReportData(folder, per_seed, trials, swept, provenance, study_text, configs)
