"""The phases of a trial that the display shows as they start and end (the task's data, the starting
model's evaluations), the first time a process meets them: `first_phases` picks them, `ShownClock` (the
trial's `PhaseClock`) shows them and records each line on the Optuna trial."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import optuna

from harness.config import TrialConfig
from harness.train.clock import PhaseClock
from harness.vocabulary import BASE_EVAL, PHASES_ATTR

if TYPE_CHECKING:
    from harness.sweep.display import Display

__all__ = ["ShownClock", "first_phases"]


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


def first_phases(cfg: TrialConfig, start: str, shown: set[str]) -> dict[str, str]:
    """Which of this trial's phases the display shows, the first time this process meets them: the
    task's data (synthesised on first use, then read from its cache), the starting model's validation
    at step 0 and a base-model trial's test evaluation (each computed once, then cached; a test with
    sampled passes once per seed): phase -> what to say, each marked in ``shown`` (this process's phases
    shown so far)."""
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
    out = {}
    for phase, (key, what) in phases.items():
        if f"{phase}:{key}" not in shown:
            shown.add(f"{phase}:{key}")
            out[phase] = what
    return out
