"""Progress on the terminal: one line per finished trial, and a live bar when stderr is a terminal.

A finished trial's line::

    [12/45] trial 24 grpo reward=rouge1 seed=1 COMPLETE test/sampled/bleu=18.83 (48.8s; elapsed 9m45s, ETA 26m10s)

``[k/N]``: trials that count toward the budget (COMPLETE, PRUNED; a failed trial is re-run) out of the
study's budget N, read from the Optuna study's user attr ``total_trials`` at each line (it grows when
a study plans more rounds of seeds), else the number the display was built with. Then the trial's
configuration (its label and the values of the study's swept parameters), seed, state, objective
value(s) (or why it was pruned, or its error), its own wall time, the sweep's elapsed time and the ETA:
remaining trials x mean trial time / trials running at once (``ETA ?`` until a trial has ended).
Phases that are slow once (the task's data, synthesised on first use; the evaluation of the starting
model) get a line when they start and end (`Display.phase`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.vocabulary import METHOD_PARAM, PHASES_ATTR, SEED, TOTAL_TRIALS_ATTR

__all__ = [
    "Display",
    "Finished",
    "config_text",
    "fmt_duration",
    "fmt_value",
    "outcome_text",
    "swept_values",
]

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # what [k/N] counts (as the budget does)
ERROR_CHARS = 300  # an error is cut to this on its line (the whole of it is in the trial's MLflow run)


def fmt_value(value: Any) -> str:
    """A parameter value as a line or a run name shows it: ``rouge1``, ``0.0001``, ``8``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def swept_values(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The swept parameters of a trial (its Optuna params but the seed, in the study's space order) as
    (short name, value): the last part of a dotted key (``reward`` for ``grpo.reward``) unless two keys
    share it. ``method`` is left out: the trial's label names it."""
    keys = [k for k in params if k not in (SEED, METHOD_PARAM)]
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return [(short if last.count(short) == 1 else key, params[key]) for key, short in zip(keys, last)]


def config_text(label: str, params: Mapping[str, Any]) -> str:
    """``grpo reward=rouge1``: the label and the swept values (a baseline: its label alone)."""
    return " ".join([label, *(f"{k}={fmt_value(v)}" for k, v in swept_values(params))])


def outcome_text(names: Sequence[str], values: Sequence[float]) -> str:
    """``test/sampled/bleu=18.83`` (several objectives: comma-separated; counts without decimals)."""
    return ", ".join(
        f"{name}={value:.0f}" if float(value).is_integer() and abs(value) >= 100 else f"{name}={value:.2f}"
        for name, value in zip(names, values)
    )


def fmt_duration(seconds: float) -> str:
    """``8.4s``, ``5m12s``, ``2h03m``."""
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes = int(round(seconds)) // 60
    if minutes < 60:
        return f"{minutes}m{int(round(seconds)) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


@dataclass(frozen=True)
class Finished:
    """What a finished trial's line says about the trial itself."""

    number: int
    config: str  # config_text(...)
    seed: Any
    state: str  # COMPLETE, PRUNED, FAIL
    outcome: str  # the objective value(s), why it was pruned, or its error
    wall_s: float


class Display:
    """One line per finished trial (module docstring), with a live bar (trials k/N, elapsed, ETA; the running
    trial's step and last reward) when stderr is a terminal. ``enabled=False``: nothing is shown."""

    def __init__(self, total: int, done: int, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled
        self.total, self.done = total, done
        self.started = time.monotonic()
        self.walls: list[float] = []  # wall time of each trial this display saw end (COMPLETE / PRUNED)
        self.progress = (
            Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}", markup=False),
                console=self.console,
                transient=False,
            )
            if self.live
            else None
        )
        self.current, self.reward = None, None
        self.reported: set[int] = set()  # trials already printed by `poll`
        self.phases_shown: set[tuple[int, int]] = set()  # (trial, line) of the workers' phase lines printed
        if self.progress:
            self.progress.start()
            self.overall = self.progress.add_task("trials", total=total, completed=done, info=self._pace(done, 1))

    # -- what the line and the bar say ----------------------------------------------------------

    def _pace(self, k: int, running: int) -> str:
        """``elapsed 9m45s, ETA 26m10s``: remaining trials x mean trial time / trials running at once."""
        elapsed = f"elapsed {fmt_duration(time.monotonic() - self.started)}"
        if not self.walls:
            return f"{elapsed}, ETA ?"
        mean = sum(self.walls) / len(self.walls)
        return f"{elapsed}, ETA {fmt_duration(max(self.total - k, 0) * mean / max(running, 1))}"

    def _line(self, trial: Finished, k: int, running: int) -> str:
        outcome = trial.outcome.strip().splitlines()[0] if trial.outcome.strip() else ""
        if len(outcome) > ERROR_CHARS:
            outcome = outcome[: ERROR_CHARS - 3] + "..."
        return (
            f"[{k}/{self.total}] trial {trial.number} {trial.config} seed={trial.seed} {trial.state}"
            + (f" {outcome}" if outcome else "")
            + f" ({fmt_duration(trial.wall_s)}; {self._pace(k, running)})"
        )

    def _print(self, text: str) -> None:
        if self.progress:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def _budget(self, optuna_study: optuna.Study | None) -> None:
        if optuna_study is not None:
            total = optuna_study.user_attrs.get(TOTAL_TRIALS_ATTR)
            if isinstance(total, int) and total > 0:
                self.total = total

    def _show(self, k: int, running: int, info: str = "") -> None:
        self.done = k
        if self.progress:
            pace = self._pace(k, running)
            self.progress.update(self.overall, total=self.total, completed=k, info=f"{info}  {pace}" if info else pace)

    # -- a trial run by this process -------------------------------------------------------------

    def trial_started(self, number: int, title: str, steps: int) -> None:
        if self.progress:
            if self.current is not None:
                self.progress.remove_task(self.current)
            self.current = self.progress.add_task(f"trial {number} {title}", total=max(steps, 1), info="")
            self.reward = None

    def trial_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.progress and self.current is not None:
            self.reward = metrics.get("reward", self.reward)
            info = f"step {step}" + (f"  reward {self.reward:.3f}" if self.reward is not None else "")
            self.progress.update(self.current, completed=step, info=info)

    @contextmanager
    def phase(self, what: str, record: Callable[[str], None] = lambda line: None) -> Iterator[None]:
        """A line when ``what`` starts and one when it ends (with its time, or that it failed); ``record``
        gets each line too (the trial keeps them for a `--workers` parent, `poll`)."""

        def say(line: str) -> None:
            self._print(line)
            record(line)

        say(f"{what} ...")
        if self.progress and self.current is not None:
            self.progress.update(self.current, info=what)
        start = time.monotonic()
        try:
            yield
        except BaseException:
            say(f"{what}: failed after {fmt_duration(time.monotonic() - start)}")
            raise
        say(f"{what}: done in {fmt_duration(time.monotonic() - start)}")

    def trial_ended(self, trial: Finished, optuna_study: optuna.Study | None = None) -> None:
        """The line of a trial this process ran, before Optuna records its end (so the study's storage
        still has it RUNNING): k counts it if it counts toward the budget."""
        if not self.enabled:
            return
        counts = trial.state in ("COMPLETE", "PRUNED")
        if counts:
            self.walls.append(trial.wall_s)
        try:  # the storage's view (other workers' trials count too); a line is never worth failing a trial
            self._budget(optuna_study)
            trials = optuna_study.get_trials(deepcopy=False) if optuna_study is not None else None
        except Exception:
            trials = None
        if trials is not None:
            k = sum(t.state in COUNTED for t in trials) + counts
            running = max(sum(t.state == TrialState.RUNNING for t in trials), 1)
        else:
            k, running = self.done + counts, 1
        self.reported.add(trial.number)
        self._show(k, running)
        self._print(self._line(trial, k, running))

    # -- trials of other processes (the parent of `--workers N`) -------------------------------

    def poll(self, optuna_study: optuna.Study) -> None:
        """What the shared storage says: a line per trial finished since the last poll, and the bar."""
        if not self.enabled:
            return
        self._budget(optuna_study)
        trials = optuna_study.get_trials(deepcopy=False)
        new = sorted(
            (t for t in trials if t.state.is_finished() and t.number not in self.reported),
            key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number),
        )
        running = [t for t in trials if t.state == TrialState.RUNNING]
        for t in sorted(trials, key=lambda t: t.number):  # the workers' phase lines (data, base model), once each
            for i, line in enumerate(t.user_attrs.get(PHASES_ATTR, [])):
                if (t.number, i) not in self.phases_shown:
                    self.phases_shown.add((t.number, i))
                    self._print(f"trial {t.number}: {line}")
        k = sum(t.state in COUNTED for t in trials) - sum(t.state in COUNTED for t in new)
        names = _metric_names(optuna_study)
        for t in new:
            self.reported.add(t.number)
            wall = _wall(t)
            if t.state in COUNTED:
                k += 1
                self.walls.append(wall)
            self._print(self._line(_finished(t, names, wall), k, len(running)))
        label = ", ".join(f"#{t.number} {t.user_attrs.get('label', '')}" for t in running)
        self._show(k, len(running), info=f"running: {label or '-'}")

    def close(self) -> None:
        if self.progress:
            self.progress.stop()


def _metric_names(optuna_study: optuna.Study) -> list[str]:
    names = optuna_study.metric_names  # set by the trials' runner (harness.sweep.objective)
    if names:
        return list(names)
    n = len(optuna_study.directions)
    return ["value"] if n == 1 else [f"value{i}" for i in range(n)]


def _wall(t: FrozenTrial) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _finished(t: FrozenTrial, names: Sequence[str], wall: float) -> Finished:
    if t.state == TrialState.COMPLETE and t.values:
        outcome = outcome_text(names, t.values)
    elif t.state == TrialState.PRUNED and t.intermediate_values:
        outcome = f"at step {max(t.intermediate_values)}"
    else:
        outcome = str(t.user_attrs.get("error", ""))
    label = str(t.user_attrs.get("label", "?"))
    return Finished(t.number, config_text(label, t.params), t.params.get(SEED), t.state.name, outcome, wall)
