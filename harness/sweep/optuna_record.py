"""The trial as Optuna saw it, recorded on its MLflow run (``optuna_trial.json``) when the trial ends.

Reports cannot open the study's Optuna storage (it may be a journal on another machine, or gone), so
each trial run carries what Optuna's analysis needs: number, state, objective values, parameters with
their distributions (`optuna.distributions.distribution_to_json`), the intermediate values reported
to the pruner and which validation metric they are, start and end times, and the label / run id.
`harness.report.optuna_trials` exports these into the report folder and rebuilds an Optuna study from
them (`optuna.trial.create_trial`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json

__all__ = ["RECORDED_USER_ATTRS", "trial_record"]

RECORDED_USER_ATTRS = ("label", "mlflow_run_id", "baseline", "retry_of")


def trial_record(
    trial: optuna.Trial,
    state: str,
    values: Sequence[float] | None,
    intermediate: Mapping[int, float],
    intermediate_metric: str,
) -> dict[str, Any]:
    """The JSON record of a trial that ends in ``state`` with objective ``values`` (None unless COMPLETE)."""
    started = trial.datetime_start
    return {
        "number": trial.number,
        "state": state,
        "values": [float(v) for v in values] if values is not None else None,
        "params": dict(trial.params),
        "distributions": {name: distribution_to_json(d) for name, d in trial.distributions.items()},
        "intermediate_values": {str(step): float(v) for step, v in sorted(intermediate.items())},
        "intermediate_metric": intermediate_metric,
        "datetime_start": started.isoformat() if started is not None else None,
        "datetime_complete": datetime.now().isoformat(),
        "user_attrs": {k: trial.user_attrs[k] for k in RECORDED_USER_ATTRS if k in trial.user_attrs},
    }
