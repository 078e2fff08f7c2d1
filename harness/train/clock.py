"""Where a trial's time goes: wall time per named phase, summed over the trial.

The training and evaluation code marks its phases (``with clock("rollout"): ...``); a trial logs
the totals as ``time/<phase>_s``, each GRPO step its own share as ``step/time/<phase>_s`` and every
training step their sum as ``step/time/total_s`` (`harness.vocabulary.time_key`), and
`bench/grpo_step.py` reads the same clock, so nothing is timed by patching functions. On CUDA each
boundary synchronises the device, so GPU work is charged to the phase that queued it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PHASES", "STEP_PHASES", "PhaseClock"]

# The phases the code marks. GRPO step: rollout (prompt encoding + sampling), reward, reference
# (KL reference log-probs), forward (policy log-probs + loss), backward, optimizer (clip + step).
# Trial: data, model, validation, test; the sweep adds tracking (MLflow) and storage (Optuna).
STEP_PHASES: tuple[str, ...] = ("rollout", "reward", "reference", "forward", "backward", "optimizer")
PHASES: tuple[str, ...] = (
    *STEP_PHASES,
    "data",
    "model",
    "validation",
    "test",
    "tracking",
    "storage",
)


class PhaseClock:
    """Summed wall time per phase. Phases may nest (``validation`` contains its own forward passes);
    each total is the time spent inside that phase's blocks."""

    def __init__(self, device: torch.device | str | None = None):
        self.totals: dict[str, float] = defaultdict(float)
        cuda = device is not None and torch.device(device).type == "cuda"
        self._sync = torch.cuda.synchronize if cuda else None

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if self._sync:
            self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                self._sync()
            self.totals[phase] += time.perf_counter() - start

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)

    def since(self, snapshot: dict[str, float]) -> dict[str, float]:
        """Seconds per phase spent after ``snapshot`` was taken (phases with time only)."""
        return {k: v - snapshot.get(k, 0.0) for k, v in self.totals.items() if v - snapshot.get(k, 0.0) > 0}
