"""Supervised fine-tuning: cross-entropy on the answer tokens only (prompt and audio are context)."""

from __future__ import annotations

import time

import torch

from harness.models.speech_lm import Prompts, SpeechLM, completions_from_targets
from harness.train.optimizer import update


def sft_loss(lm: SpeechLM, prompts: Prompts, answers: list[str],
             embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood of the reference answers (EOS included); returns (loss, tokens).
    Pass the prompts' embeddings if they are already computed."""
    targets = completions_from_targets(lm.tokenize_targets(answers), lm.pad_id, lm.device)
    embeds = lm.embed_prompts(prompts) if embeds is None else embeds
    logp, _ = lm.completion_logprobs(embeds, prompts.attention_mask, targets)
    mask = targets.mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum(), int(mask.sum())


def sft_step(policy, optimizer, scheduler, prompts, answers, max_grad_norm) -> dict[str, float]:
    """One optimiser step. The caller sets train/eval mode (fine-tuning runs in eval mode, see trial.py)."""
    t0 = time.perf_counter()
    loss, tokens = sft_loss(policy, prompts, answers)
    grad_norm = update(loss, policy.model, optimizer, max_grad_norm, "SFT loss")
    scheduler.step()
    elapsed = time.perf_counter() - t0
    return {"loss": loss.item(), "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": tokens / elapsed, "step_time_s": elapsed}
