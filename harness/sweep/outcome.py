"""How a study ended, as ``harness sweep`` prints it: trials per state and the best trial (or the Pareto
front), or, when every trial failed, the last error and where to read all of them."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from harness.study import StudyConfig
from harness.sweep.stores import STORE_DIR

__all__ = ["study_outcome"]


def study_outcome(optuna_study: optuna.Study, study: StudyConfig) -> tuple[str, str | None]:
    """The study's outcome in one line (trials per state; the best trial, or the Pareto front), and the
    error line of a study in which no trial completed or was pruned (None when one did)."""
    trials = optuna_study.get_trials(deepcopy=False)
    counts = {
        s.name: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    line = f"study {study.name}: " + ", ".join(f"{n} {k.lower()}" for k, n in counts.items())
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed and study.multi_objective:  # no single best: the trials no other trial beats on every objective
        front = sorted(optuna_study.best_trials, key=lambda t: t.number)
        line += (
            f"; Pareto front of {', '.join(f'{o.metric} ({o.direction})' for o in study.objectives)}: "
            f"{len(front)} trial(s) ({', '.join(str(t.number) for t in front)})"
        )
    elif completed:
        best = optuna_study.best_trial
        line += (
            f"; best {study.objective.metric}={best.value:.2f} (trial {best.number}, {best.user_attrs.get('label')})"
        )
    if counts["COMPLETE"] or counts["PRUNED"]:
        return line, None
    return line, _all_failed(study, [t for t in trials if t.state == TrialState.FAIL])


def _all_failed(study: StudyConfig, failed: list[optuna.trial.FrozenTrial]) -> str:
    """One line for a study whose every trial failed: the last error, and where to read all of them."""
    last = ""
    if failed:
        error = failed[-1].user_attrs.get("error") or "no error recorded"
        last = f"; the last, trial {failed[-1].number}: {error.splitlines()[0]}"
    return (
        f"error: study {study.name}: no trial completed ({len(failed)} failed{last}). Fix: read each trial's "
        f"error in its MLflow run (tag harness.error, artifact error.txt; `harness ui`), or with --workers in "
        f"{STORE_DIR}/logs/{study.name}-worker*.log; fix the cause, then run the same command again (failed "
        f"trials are re-run). No report was built."
    )
