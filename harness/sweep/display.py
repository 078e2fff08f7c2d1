"""Progress on the terminal: trial n/N with ETA, or one line per trial when stderr is not a TTY."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import optuna
from optuna.trial import TrialState

__all__ = ["Display"]


class Display:
    """Trial n/N with ETA, the running trial's step and last reward; one line per trial when not a TTY."""

    def __init__(self, total: int, done: int, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled
        self.progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            if self.live
            else None
        )
        self.current, self.reward = None, None
        self.reported: set[int] = set()  # trials already printed by `poll` (no TTY)
        if self.progress:
            self.progress.start()
            self.overall = self.progress.add_task("trials", total=total, completed=done, info="")

    def trial_started(self, number: int, label: str, steps: int) -> None:
        if self.progress:
            if self.current is not None:
                self.progress.remove_task(self.current)
            self.current = self.progress.add_task(f"trial {number} [{label}]", total=max(steps, 1), info="")
            self.reward = None

    def trial_step(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.progress and self.current is not None:
            self.reward = metrics.get("reward", self.reward)
            info = f"step {step}" + (f"  reward {self.reward:.3f}" if self.reward is not None else "")
            self.progress.update(self.current, completed=step, info=info)

    def trial_ended(self, number: int, label: str, state: str, note: str) -> None:
        if self.progress:
            self.progress.advance(self.overall)
            self.progress.console.print(f"trial {number} [{label}] {state}: {note}")
        elif self.enabled:
            print(f"trial {number} [{label}] {state}: {note}", file=sys.stderr, flush=True)

    def poll(self, optuna_study: optuna.Study) -> None:
        """Multi-worker mode: the parent shows what the shared storage says (a bar on a terminal; one
        line per finished trial otherwise, as the workers' own lines go to their log files)."""
        trials = optuna_study.get_trials(deepcopy=False)
        if not self.progress:
            if self.enabled:
                for t in trials:
                    if t.state.is_finished() and t.number not in self.reported:
                        self.reported.add(t.number)
                        outcome = (f"{t.values[0]:.2f}" if t.values else t.user_attrs.get("error", "")) or ""
                        print(
                            f"trial {t.number} [{t.user_attrs.get('label', '?')}] {t.state.name}: {outcome}",
                            file=sys.stderr,
                            flush=True,
                        )
            return
        done = sum(t.state.is_finished() for t in trials)
        running = [f"#{t.number} {t.user_attrs.get('label', '')}" for t in trials if t.state == TrialState.RUNNING]
        self.progress.update(self.overall, completed=done, info="running: " + (", ".join(running) or "-"))

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
