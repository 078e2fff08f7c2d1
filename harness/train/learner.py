"""What a training step works on: the policy with its optimiser and schedule, the KL reference, the
sampling generator, how log-prob passes are chunked, and the clock that times the phases."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.models.speech_lm import SpeechLM
from harness.train.clock import PhaseClock

__all__ = ["Learner", "MicroBatching", "StepResult"]


@dataclass
class MicroBatching:
    """Rows (prompt x sample) per log-prob pass of a GRPO update; 0 = all rows in one pass. On CUDA
    out of memory the update halves it and redoes the step; the size that fits is kept."""

    rows: int = 0


@dataclass
class Learner:
    policy: SpeechLM
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    max_grad_norm: float
    reference: SpeechLM | None = None  # the frozen KL reference (GRPO with beta != 0)
    generator: torch.Generator | None = None  # rollout sampling
    chunking: MicroBatching = field(default_factory=MicroBatching)
    clock: PhaseClock = field(default_factory=PhaseClock)


@dataclass
class StepResult:
    metrics: dict[str, float]  # what practitioners watch, logged per step
    samples: list[dict] = field(default_factory=list)  # a few generations (GRPO) for the sample tables
