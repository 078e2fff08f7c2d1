"""Harness overhead per trial: time in MLflow + Optuna calls as a share of the trial (target < 5 %).

Runs one trial of the default configuration (TrialConfig defaults: tiny model, 60 GRPO steps) through
the real sweep machinery (`harness.sweep.run_sweep`: Optuna journal storage + MLflow sqlite store in a
temporary directory) and reports:

- in-trial overhead: the objective times every MLflow call (start/end run, per-step `log_metrics`,
  params, artifacts, sample tables) and every Optuna storage call (suggest, user attrs,
  report/should_prune) and stores the sums in the trial's user attr ``overhead_s``;
- around-trial overhead: the rest of `run_sweep` (store set-up, study/parent run creation, recovery
  checks, ask/tell), once with a fresh store and as measured.

    python bench/tracking_overhead.py [--trials N] [--steps S] [--sync-metrics]

``--sync-metrics`` also times per-step `log_metrics(synchronous=True)` against the same store for
comparison with the async logging the harness uses.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1, help="trials (seeds 0..N-1) of the default config")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (default: TrialConfig's)")
    parser.add_argument("--sync-metrics", action="store_true", help="also time synchronous per-step logging")
    args = parser.parse_args()

    from harness.config import TrialConfig
    from harness.study import load_study
    from harness.sweep import run_sweep
    from harness.train.base_model import ensure_tiny_base

    t = time.perf_counter()
    ensure_tiny_base(TrialConfig().model.tiny)  # built once and cached: not part of any trial's time
    print(f"base model ready in {time.perf_counter() - t:.1f} s (cached after the first build)")

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        root = Path(tmp)
        fixed = {"train": {"steps": args.steps}} if args.steps is not None else {}
        study_file = root / "overhead.yaml"
        study_file.write_text(
            yaml.safe_dump(
                {"description": "tracking overhead benchmark", "fixed": fixed, "seeds": list(range(args.trials))}
            )
        )
        storage, uri = str(root / "optuna-journal.log"), f"sqlite:///{root / 'mlflow.db'}"

        from mlflow import MlflowClient

        t = time.perf_counter()
        MlflowClient(uri).search_experiments()  # a fresh sqlite store runs its migrations once
        store_s = time.perf_counter() - t

        t = time.perf_counter()
        optuna_study = run_sweep(load_study(study_file), storage=storage, tracking_uri=uri, progress=False)
        sweep_s = time.perf_counter() - t

        client = MlflowClient(uri)
        rows, total_trial, total_in = [], 0.0, 0.0
        for trial in optuna_study.trials:
            spent = trial.user_attrs.get("overhead_s", {})
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            wall = run.data.metrics.get("wall_time_s", float("nan"))  # run_trial itself
            steps = int(run.data.metrics.get("train_steps", 0))
            tracking, stor = spent.get("tracking", 0.0), spent.get("storage", 0.0)
            rows.append((trial.number, trial.state.name, steps, wall, tracking, stor, spent.get("trial", 0.0)))
            total_trial += wall
            total_in += tracking + stor
        if args.sync_metrics:
            sync_s = _sync_metric_cost(uri, steps=max(r[2] for r in rows) + 4)

    print(f"\n{'trial':>5} {'state':>9} {'steps':>5} {'run_trial s':>11} {'mlflow s':>9} {'optuna s':>9} {'share':>7}")
    for number, state, steps, wall, tracking, stor, _ in rows:
        share = 100 * (tracking + stor) / wall if wall else float("nan")
        print(f"{number:>5} {state:>9} {steps:>5} {wall:>11.2f} {tracking:>9.3f} {stor:>9.3f} {share:>6.2f}%")
    around = sweep_s - sum(r[6] for r in rows)
    in_share = 100 * total_in / total_trial
    all_share = 100 * (sweep_s - total_trial) / total_trial
    print(
        f"\nin-trial overhead (MLflow + Optuna calls inside the objective): {total_in:.2f} s = {in_share:.2f} % "
        f"of {total_trial:.1f} s of training/evaluation"
    )
    print(
        f"around the trials (set-up, study + parent run, recovery check, ask/tell): {around:.2f} s; "
        f"plus {store_s:.2f} s to create a fresh MLflow store (once per store)"
    )
    print(f"whole sweep vs. run_trial time: {sweep_s:.1f} s vs {total_trial:.1f} s -> {all_share:.2f} % overhead")
    if args.sync_metrics:
        print(f"for comparison, synchronous per-step log_metrics would cost {sync_s:.2f} s per trial")
    ok = in_share < 5.0
    print(f"target < 5 % per trial: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def _sync_metric_cost(uri: str, steps: int) -> float:
    """The same number of per-step metric dicts, logged synchronously to the same store."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    metrics = {f"metric_{i}": float(i) for i in range(22)}  # ~ what a GRPO step logs
    with mlflow.start_run(run_name="sync-metrics-probe"):
        t = time.perf_counter()
        for step in range(steps):
            mlflow.log_metrics(metrics, step=step, synchronous=True)
        return time.perf_counter() - t


if __name__ == "__main__":
    os.environ.setdefault("HARNESS_TORCH_THREADS", "1")
    sys.exit(main())
