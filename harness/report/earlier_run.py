"""The earlier run of the same study file that a report folder replaced, when that run had finished more
trials: typically the committed full-budget report, replaced by `make sweep`'s first round.

`carry` copies its verdicts, per-seed scores, provenance and study file into ``earlier_run/`` of the new
folder, so the new report can quote it and still recomputes from its own folder (``harness report
--from-folder`` reads it there). `load_earlier` reads it back; `reproduction` compares this run's trials
with the earlier run's trials of the same configuration and seed, score by score, and this run's looks
with the earlier run's same looks. Nothing is carried from a run of another study file (its
hypotheses, seeds or settings differ), or from one that had no more trials than this run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.provenance import committed_at
from harness.report.export import FILES
from harness.report.folder import Config
from harness.report.hypotheses import HYPOTHESES_FILE
from harness.vocabulary import TEST, VAL

__all__ = ["EARLIER_DIR", "EarlierRun", "Reproduction", "carry", "load_earlier", "reproduction"]

EARLIER_DIR = "earlier_run"
CARRIED = (HYPOTHESES_FILE, FILES["per_seed"], FILES["provenance"], FILES["study"])
SOURCE_FILE = "source.json"  # which folder it came from, and the commit that folder was committed at
TOLERANCE = 1e-6  # scores equal within this (BERTScore's embeddings differ in the 7th digit across CPUs)
_KEYS = ["task", "model", "config", "seed"]  # a configuration is named within its task and model
_LOOK_COLUMNS = ["diff", "low", "high"]


@dataclass
class EarlierRun:
    """An earlier run of this folder's study file, as carried into ``earlier_run/``."""

    hypotheses: pd.DataFrame  # its hypotheses.csv: every hypothesis x look it ran
    per_seed: pd.DataFrame
    provenance: dict
    source: dict  # {"folder": ..., "committed_at": commit or None}

    @property
    def trials(self) -> int:
        return len(self.per_seed)

    @property
    def looks_run(self) -> int:
        return int(self.hypotheses["look"].max()) if len(self.hypotheses) else 0

    def configuration_rows(self, config: Config, seeds: list[int]) -> pd.DataFrame:
        """Its per-seed rows of ``config`` (same task, model and name) for ``seeds``."""
        ps = self.per_seed
        same = (ps["task"] == config.task) & (ps["model"] == config.model) & (ps["config"] == config.name)
        rows = ps[same & ps["seed"].isin(seeds)]
        return rows.reset_index(drop=True)


@dataclass(frozen=True)
class Reproduction:
    """This run's trials and looks against the earlier run's same ones."""

    shared: int  # this run's trials whose (configuration, seed) the earlier run has
    trials: int  # this run's trials
    equal: int  # shared trials with every test and validation score within TOLERANCE
    largest: float  # the largest score difference over the shared trials
    looks_equal: int  # (hypothesis, look) rows of this run whose Δ and RCI equal the earlier run's
    looks: int  # (hypothesis, look) rows of this run that the earlier run has

    @property
    def holds(self) -> bool:
        """Every trial of this run is the earlier run's, score for score, and so is every look."""
        return self.equal == self.shared == self.trials and self.looks_equal == self.looks


def carry(previous: Path, staged: Path) -> None:
    """Into ``staged/earlier_run/``: the fullest earlier run of the same study file among ``previous``
    (the folder being replaced) and the run it had carried itself, when it finished more trials."""
    study = FILES["study"]
    if not (staged / study).is_file():
        return
    mine = len(pd.read_csv(staged / FILES["per_seed"]))
    best: tuple[Path, int] | None = None
    for candidate in (previous / EARLIER_DIR, previous):
        if not all((candidate / name).is_file() for name in CARRIED):
            continue
        if (candidate / study).read_text(encoding="utf-8") != (staged / study).read_text(encoding="utf-8"):
            continue
        trials = len(pd.read_csv(candidate / FILES["per_seed"]))
        if trials > mine and (best is None or trials > best[1]):
            best = (candidate, trials)
    if best is None:
        return
    source_dir, _ = best
    target = staged / EARLIER_DIR
    target.mkdir()
    for name in CARRIED:
        shutil.copy2(source_dir / name, target / name)
    carried = source_dir / SOURCE_FILE
    source = (
        json.loads(carried.read_text())
        if carried.is_file()
        else {"folder": str(previous), "committed_at": committed_at(previous.resolve())}
    )
    (target / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")


def load_earlier(folder: Path) -> EarlierRun | None:
    """The earlier run carried into ``folder`` (None when there is none)."""
    where = Path(folder) / EARLIER_DIR
    if not (where / HYPOTHESES_FILE).is_file():
        return None
    return EarlierRun(
        hypotheses=pd.read_csv(where / HYPOTHESES_FILE),
        per_seed=pd.read_csv(where / FILES["per_seed"], dtype={"run_id": str, "config": str, "label": str}),
        provenance=json.loads((where / FILES["provenance"]).read_text()),
        source=json.loads((where / SOURCE_FILE).read_text()) if (where / SOURCE_FILE).is_file() else {},
    )


def reproduction(per_seed: pd.DataFrame, table: pd.DataFrame, earlier: EarlierRun) -> Reproduction:
    """Compare this run (its ``per_seed.csv`` and hypotheses table) with the earlier run's same trials
    and looks. Two scores are equal when both are missing or they differ by at most `TOLERANCE`."""
    scores = [c for c in per_seed.columns if c.startswith((f"{TEST}/", f"{VAL}/")) and c in earlier.per_seed.columns]
    both = per_seed.merge(earlier.per_seed, on=_KEYS, suffixes=("", "@earlier"))
    a, b = both[scores].to_numpy(float), both[[f"{c}@earlier" for c in scores]].to_numpy(float)
    gaps = np.abs(a - b)
    gaps[np.isnan(a) & np.isnan(b)] = 0.0  # missing in both: equal
    gaps[np.isnan(a) ^ np.isnan(b)] = np.inf  # missing in one: not
    worst = gaps.max(axis=1) if scores else np.zeros(len(both))
    looks = table.merge(earlier.hypotheses, on=["hypothesis", "look"], suffixes=("", "@earlier"))
    same_look = np.ones(len(looks), dtype=bool)
    for c in _LOOK_COLUMNS:
        same_look &= np.isclose(
            looks[c].to_numpy(float), looks[f"{c}@earlier"].to_numpy(float), rtol=0.0, atol=TOLERANCE
        )
    return Reproduction(
        shared=len(both),
        trials=len(per_seed),
        equal=int((worst <= TOLERANCE).sum()),
        largest=float(worst.max()) if len(worst) else 0.0,
        looks_equal=int(same_look.sum()),
        looks=len(looks),
    )
