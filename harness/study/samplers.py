"""Optuna objects named by the study (public optuna classes, built directly)."""

from __future__ import annotations

from harness.study.spec import StudyConfig

__all__ = ["PRUNERS", "SAMPLERS", "make_pruner", "make_sampler"]

SAMPLERS = {"grid": "GridSampler", "random": "RandomSampler", "tpe": "TPESampler", "nsga2": "NSGAIISampler"}
PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "hyperband": "HyperbandPruner"}


def make_sampler(study: StudyConfig, worker: int = 0):
    """The study's Optuna sampler; random/TPE/NSGA-II seeds differ per worker so workers do not draw alike.
    Every one of them handles several objectives (TPE as MOTPE; NSGA-II is made for them)."""
    import optuna

    spec = study.sampler
    if spec.type == "grid":  # the same shuffled order in every worker: GridSampler hands out distinct points
        return _grid_sampler_class()(study.grid(), seed=spec.seed)
    cls = getattr(optuna.samplers, SAMPLERS[spec.type])
    return cls(seed=spec.seed + worker, **spec.options)


def make_pruner(study: StudyConfig):
    import optuna

    return getattr(optuna.pruners, PRUNERS[study.pruner.type])(**study.pruner.options)


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """optuna's GridSampler, except for one bug: when an enqueued trial (a baseline or a retry, which
        carries no grid id) finishes while exactly one grid point is left, optuna 5.0's ``after_trial``
        raises ``KeyError('grid_id')`` and aborts the study (optuna PR #6844, open). Such a trial
        here only stops the study if the grid is exhausted."""

        def after_trial(self, study, trial, state, values) -> None:
            if "grid_id" in trial.system_attrs:
                super().after_trial(study, trial, state, values)
            elif self.is_exhausted(study):
                study.stop()

    return GridSampler
