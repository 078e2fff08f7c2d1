"""Supervised fine-tuning: cross-entropy on the answer tokens only (prompt and audio are context), i.e.
the reference answers' NLL (`harness.eval.evaluate.reference_nll`) minimised."""

from __future__ import annotations

import torch

from harness.eval.evaluate import reference_nll
from harness.models.batches import Prompts
from harness.train.learner import Learner, StepResult
from harness.train.optimizer import apply_gradients
from harness.vocabulary import STEP_TIME, STEP_TRAINED_TOKENS

__all__ = ["sft_step"]


def sft_step(learner: Learner, prompts: Prompts, answers: list[str]) -> StepResult:
    """One optimiser step. The caller sets train/eval mode (fine-tuning runs in eval mode, see trial.py)."""
    clock = learner.clock
    before = clock.snapshot()
    with clock("forward"):
        loss, tokens = reference_nll(learner.policy, prompts, answers)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"SFT loss is {loss.item()}")
    with clock("backward"):
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with clock("optimizer"):
        grad_norm = apply_gradients(learner.policy.model, learner.optimizer, learner.max_grad_norm)
    learner.scheduler.step()
    elapsed = sum(clock.since(before).values())
    return StepResult(
        {
            "loss": loss.item(),
            "grad_norm": grad_norm,
            "lr": learner.scheduler.get_last_lr()[0],
            STEP_TRAINED_TOKENS: float(tokens),
            "tokens_per_s": tokens / elapsed,
            STEP_TIME: elapsed,
        }
    )
