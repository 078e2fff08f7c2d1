"""A study's wall time, this tree against an earlier commit, measured side by side (issue 13).

    python bench/sweep_throughput.py                       # baseline 978bd76, 3 interleaved pairs
    python bench/sweep_throughput.py --baseline <commit> --reps 2

The study is `bench/studies/grpo_4seeds.yaml` (one GRPO configuration, the TrialConfig defaults,
4 seeds), run as a user runs it, ``harness sweep STUDY --workers 2``, from a fresh MLflow/Optuna store
each time, with warm caches on both sides: one untimed run of each side first builds what each
caches (synthetic data and features, the baseline's tiny base model, this tree's encoder outputs),
into one shared ``HARNESS_CACHE``. Then the sides alternate (baseline, this tree, baseline, ...), so
both see the same machine load; the speed-up is the median of the per-pair ratios.

The baseline runs from a git worktree of its commit with this environment's Python (``PYTHONPATH``
puts its ``harness`` first; its workers inherit it). Each run's wall time is the whole command
(start-up, every trial, the report); the trials' own ``wall_time_s`` and test BLEU are read back
from each store. The result is written to ``bench/results/<date>-sweep-throughput.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "bench" / "studies" / "grpo_4seeds.yaml"
RESULTS = ROOT / "bench" / "results"


def run_side(code: Path, cache: Path, scratch: Path) -> dict:
    """One `harness sweep STUDY --workers 2` with ``code``'s harness, in a fresh store; its wall time
    and the trials' wall times and test BLEU from the store."""
    work = Path(tempfile.mkdtemp(prefix="sweep-", dir=scratch))
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "HARNESS_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HARNESS_TORCH_THREADS": "1",
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "sweep", str(STUDY), "--workers", "2"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{code}: sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with sqlite3.connect(work / "mlruns" / "mlflow.db") as db:
        rows = db.execute(
            "select m.key, m.value, r.run_uuid from latest_metrics m join runs r "
            "on m.run_uuid = r.run_uuid where m.key in ('wall_time_s', 'test/bleu') or m.key like 'time/%'"
        ).fetchall()
        steps = db.execute(  # per-step phase times, summed over each trial's steps (older trees: time_<phase>_s;
            # this one: step/time/<phase>_s, harness.vocabulary.time_key)
            "select key, run_uuid, sum(value) from metrics where (key like 'time\\_%\\_s' escape '\\' "
            "or key like 'step/time/%') and key != 'step/time/total_s' group by key, run_uuid"
        ).fetchall()
    shutil.rmtree(work, ignore_errors=True)
    trials: dict[str, dict] = {}
    for key, value, run in rows:
        trials.setdefault(run, {})[key] = value
    for key, run, total in steps:
        if run in trials:
            phase = key.removeprefix("step/").removeprefix("time/").removeprefix("time_").removesuffix("_s")
            trials[run]["step/" + phase] = total
    done = [t for t in trials.values() if "test/bleu" in t]
    return {
        "wall": wall,
        "trial_walls": sorted(t["wall_time_s"] for t in done),
        "bleu": sorted(round(t["test/bleu"], 4) for t in done),
        "phases": {
            k: statistics.fmean(t[k] for t in done if k in t)
            for k in {k for t in done for k in t}
            if k.startswith(("time/", "step/"))
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="978bd76", help="the commit to compare with")
    parser.add_argument("--reps", type=int, default=3, help="interleaved pairs (after one untimed run each)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    baseline = scratch / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True, capture_output=True
    )
    cache = Path(os.environ.get("HARNESS_CACHE", ROOT / ".cache" / "harness")).resolve()
    started = time.perf_counter()
    sides = {"baseline": baseline, "this tree": ROOT}
    try:
        for name, code in sides.items():  # warm both sides' caches (not timed)
            print(f"warm-up: {name} ...", flush=True)
            run_side(code, cache, scratch)
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for rep in range(args.reps):
            for name, code in sides.items():
                runs[name].append(run_side(code, cache, scratch))
                print(f"pair {rep + 1}: {name} {runs[name][-1]['wall']:.1f} s", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    report = render(args, runs, time.perf_counter() - started)
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{dt.date.today().isoformat()}-sweep-throughput.md"
    path.write_text(report)
    print(f"written to {path}")
    return 0


def render(args, runs: dict[str, list[dict]], total: float) -> str:
    import torch

    base, ours = runs["baseline"], runs["this tree"]
    ratios = [b["wall"] / o["wall"] for b, o in zip(base, ours)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    lines = [
        f"# Study wall time, this tree vs {args.baseline} ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}. This tree: `{commit.strip()}"
        f"{'-dirty' if dirty else ''}`. Command: `python bench/sweep_throughput.py --baseline {args.baseline} "
        f"--reps {args.reps}` ({total / 60:.1f} min in all).",
        "",
        "Study `bench/studies/grpo_4seeds.yaml` (one GRPO configuration, TrialConfig defaults, 4 seeds), "
        "`harness sweep STUDY --workers 2` from a fresh store each run, warm caches on both sides (one untimed "
        "run each first), the sides alternating.",
        "",
        "| pair | baseline s | this tree s | ratio |",
        "|---|---|---|---|",
        *(
            f"| {i} | {b['wall']:.1f} | {o['wall']:.1f} | {b['wall'] / o['wall']:.2f}x |"
            for i, (b, o) in enumerate(zip(base, ours), 1)
        ),
        "",
        f"**Median per-pair speed-up: {statistics.median(ratios):.2f}x** (min {min(ratios):.2f}, max "
        f"{max(ratios):.2f}); median wall time {statistics.median(b['wall'] for b in base):.1f} s -> "
        f"{statistics.median(o['wall'] for o in ours):.1f} s. Target (issue 13): at most half the baseline's "
        f"time, i.e. >= 2x: {'met' if statistics.median(ratios) >= 2 else 'NOT met'}.",
        "",
        "Per-trial wall time (`wall_time_s`, the trial alone, without start-up and report), median over all "
        f"trials: baseline {statistics.median(w for r in base for w in r['trial_walls']):.1f} s, this tree "
        f"{statistics.median(w for r in ours for w in r['trial_walls']):.1f} s.",
        "",
        *phase_table(base, ours),
        "Test BLEU of the 4 trials (sorted), every run: baseline "
        + "; ".join(str(r["bleu"]) for r in base)
        + "; this tree "
        + "; ".join(str(r["bleu"]) for r in ours)
        + ". Each side reproduces itself exactly run to run; the two sides differ because this tree encodes each "
        "clip alone and starts from the shipped base (recipe 2), see README.",
        "",
    ]
    return "\n".join(lines)


def phase_table(base: list[dict], ours: list[dict]) -> list[str]:
    """Where a trial's time goes, each side as it logs it: ``time/<phase>`` (the trial's stages) and the
    per-step ``step/time/<phase>_s`` (``time_<phase>_s`` in older trees) summed over the steps (the baseline
    splits a step into rollout, reward and update; this tree into rollout, reward, reference, forward,
    backward and optimizer)."""

    def mean(runs: list[dict], key: str) -> float | None:
        values = [r["phases"][key] for r in runs if key in r["phases"]]
        return statistics.fmean(values) if values else None

    keys = sorted({k for r in base + ours for k in r["phases"]}, key=lambda k: (not k.startswith("time/"), k))
    lines = [
        "Where a trial's time goes (mean seconds per trial over all runs; `time/*` = the trial's stages, "
        "`step/*` = a step's phases summed over the steps; each side logs its own split):",
        "",
        "| phase | baseline s | this tree s |",
        "|---|---|---|",
    ]
    for key in keys:
        b, o = mean(base, key), mean(ours, key)
        lines.append(f"| {key} | {'—' if b is None else f'{b:.1f}'} | {'—' if o is None else f'{o:.1f}'} |")
    return [*lines, ""]


if __name__ == "__main__":
    sys.exit(main())
