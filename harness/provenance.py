"""Where a result came from: the code's commit (and whether the tree was clean), the machine and the
versions of the packages that compute it. The sweep records them on the study's run and on every trial
run (`harness.sweep.tracking.environment_tags`, with the command line; a worker may join later, from
another checkout); the reports read them back and hold their own code to the same commit rule."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["CHECKOUT", "DIRTY", "PACKAGES", "committed_at", "git_commit", "is_clean", "machine", "versions"]

CHECKOUT = Path(__file__).resolve().parents[1]  # the checkout this harness runs from
DIRTY = "-dirty"  # appended to the commit when tracked files had uncommitted changes
# What computes a result: the numerics (torch, transformers, numpy), the metrics (sacrebleu,
# rouge-score, nltk, bert-score), the statistics (scipy, statsmodels) and the stores (mlflow, optuna).
PACKAGES = (
    "torch",
    "transformers",
    "numpy",
    "sacrebleu",
    "rouge-score",
    "nltk",
    "bert-score",
    "scipy",
    "statsmodels",
    "mlflow",
    "optuna",
    "peft",
    "pandas",
    "grpo-harness",
)


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the checkout, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git.
    Reports are outputs, not code: a rewritten ``reports/`` (every sweep writes its report there) leaves
    the commit clean."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (DIRTY if dirty.stdout.strip() else "")


def committed_at(path: Path) -> str | None:
    """The commit that last changed ``path`` (a file or folder of the checkout), when the working tree
    holds exactly that commit's copy of it (nothing modified or untracked under it); else None."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", str(path)], cwd=CHECKOUT, capture_output=True, text=True, timeout=10
        )
        last = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", str(path)],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status.returncode or last.returncode or status.stdout.strip() or not last.stdout.strip():
        return None
    return last.stdout.strip()


def is_clean(commit: str) -> bool:
    """A commit that, checked out, is the code that ran (not dirty, not unknown)."""
    return commit not in ("", "unknown") and not commit.endswith(DIRTY)


def machine() -> str:
    cpu = _cpu_model() or platform.processor() or platform.machine()
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs, {_gpu()}"


def _gpu() -> str:
    """The first GPU's name: from torch where it is loaded (a trial's process), else from nvidia-smi (the
    parent of `--workers N` does not load torch just to say so)."""
    if "torch" in sys.modules:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    if shutil.which("nvidia-smi") is None:
        return "no GPU"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "GPU unknown"
    names = out.stdout.strip().splitlines()
    return names[0].strip() if out.returncode == 0 and names else "no GPU"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def versions() -> dict[str, str]:
    out = {}
    for package in PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
