"""Rounds of seeds: the trials a study adds after its first round, for the configurations of hypotheses
still undecided (`harness.study.hypotheses`; the decision is `harness.report.hypotheses.next_round`'s,
and `harness sweep` drives the loop).

A round's trials are enqueued into the same Optuna study, each configuration x seed once (a grid point by
its parameters, a baseline by its index), marked with the round they belong to. The study's trial budget
(its ``total_trials`` user attribute, read by every worker) is the first round's trials plus every trial
planned by a later round, so resuming a study after a kill recomputes the same plan and runs only what
is missing.
"""

from __future__ import annotations

import json

import optuna

from harness.study import SEED, StudyConfig
from harness.study.hypotheses import StudyConfiguration
from harness.vocabulary import TOTAL_TRIALS_ATTR

__all__ = ["ROUND_ATTR", "enqueue_round", "planned_total"]

ROUND_ATTR = "round"  # user attr of a trial a later round planned: its look (1-based round number - 1)


def _key(params: dict, baseline: int | None) -> tuple[str, int | None]:
    return json.dumps(params, sort_keys=True, default=str), baseline


def _planned(optuna_study: optuna.Study) -> set[tuple[str, int | None]]:
    """(parameters, baseline) of every trial a later round planned."""
    out = set()
    for t in optuna_study.get_trials(deepcopy=False):
        if ROUND_ATTR in t.user_attrs:
            out.add(_key(t.system_attrs.get("fixed_params", t.params), t.user_attrs.get("baseline")))
    return out


def planned_total(study: StudyConfig, optuna_study: optuna.Study) -> int:
    """The first round's trials plus every distinct trial a later round planned."""
    return study.total_trials + len(_planned(optuna_study))


def enqueue_round(
    optuna_study: optuna.Study, study: StudyConfig, look: int, configurations: list[StudyConfiguration]
) -> int:
    """Enqueue the seeds of look ``look`` (0-based, >= 1) that ``configurations`` do not have yet; set the
    study's budget to `planned_total`. Returns how many trials were added."""
    present = _planned(optuna_study)
    new_seeds = study.round_seeds(look)[study.looks[look - 1] :]
    added = 0
    for config in configurations:
        for seed in new_seeds:
            params = {**config.params, SEED: seed}
            if _key(params, config.baseline) in present:
                continue
            attrs = {ROUND_ATTR: look}
            if config.baseline is not None:
                attrs["baseline"] = config.baseline
            optuna_study.enqueue_trial(params, user_attrs=attrs)
            present.add(_key(params, config.baseline))
            added += 1
    optuna_study.set_user_attr(TOTAL_TRIALS_ATTR, planned_total(study, optuna_study))
    return added
