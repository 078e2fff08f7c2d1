"""One GRPO update: the loss of `grpo_loss.py` (and CHORD's SFT term) over a batch of sampled groups,
its gradient accumulated in row chunks that fit in memory, and one optimiser step; and the frozen
reference model's log-probs of the same rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from harness.config import GRPOConfig
from harness.models.batches import Completions, Prompts
from harness.models.speech_lm import SpeechLM
from harness.train.grpo_loss import LossStats, chunk_weight, grpo_loss, sft_loss, tokens_per_process
from harness.train.learner import Learner
from harness.train.optimizer import apply_gradients

__all__ = ["Batch", "Update", "micro_batched_update", "reference_logprobs"]

log = logging.getLogger("harness.train")


def _row_chunks(n: int, size: int) -> list[tuple[int, int]]:
    size = n if size <= 0 else min(size, n)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _prompts_for_rows(embeds: torch.Tensor, mask: torch.Tensor, r0: int, r1: int, n: int, group_size: int):
    """The prompts that completion rows r0..r1 (of n) continue: all rows or whole groups keep one row
    per prompt (the log-prob pass then runs each prompt once), a partial group one copy per row."""
    if (r0, r1) == (0, n):
        return embeds, mask
    if r0 % group_size == 0 and r1 % group_size == 0:
        return embeds[r0 // group_size : r1 // group_size], mask[r0 // group_size : r1 // group_size]
    rows = torch.arange(r0, r1, device=embeds.device) // group_size
    return embeds[rows], mask[rows]


def _rows(completions: Completions, r0: int, r1: int) -> Completions:
    return Completions(completions.ids[r0:r1], completions.mask[r0:r1], completions.truncated[r0:r1])


@torch.no_grad()
def reference_logprobs(
    reference: SpeechLM,
    prompts: Prompts,
    completions: Completions,
    group_size: int,
    rows_per_pass: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log pi_ref of every completion token, [N, L], in passes of `rows_per_pass` rows (0: one pass), of
    the distribution the rollouts were sampled from at `temperature` (as the policy's passes)."""
    embeds = reference.embed_prompts(prompts)
    parts, n = [], completions.ids.shape[0]
    for r0, r1 in _row_chunks(n, rows_per_pass):
        rows_prompts = _prompts_for_rows(embeds, prompts.attention_mask, r0, r1, n, group_size)
        parts.append(
            reference.completion_logprobs(*rows_prompts, _rows(completions, r0, r1), sampler_temperature=temperature)[0]
        )
    return torch.cat(parts, 0)


@dataclass
class Batch:
    """One GRPO update's data: the prompts (embedded), the completions of their groups, the loss's
    per-row inputs."""

    embeds: torch.Tensor  # [B, Lp, H] prompt embeddings (with gradients into the projector)
    prompt_mask: torch.Tensor  # [B, Lp]
    completions: Completions  # [B*G, Lc], row b*G + g continues prompt b
    advantages: torch.Tensor  # [B*G] (Eq. 1)
    off_policy: torch.Tensor  # [B*G] bool: MP-GRPO's ground-truth rows
    ref_logp: torch.Tensor | None  # [B*G, Lc] log pi_ref (None without a reference)
    group_size: int
    temperature: float = 1.0  # the rollouts': log-probs are of the distribution that sampled them
    loss_mask: torch.Tensor | None = None  # [B*G, Lc] tokens in the loss (Eq. 6); None: completions.mask
    sft_targets: Completions | None = None  # [B, La] the prompts' reference answers, for the SFT term (7)
    sft_weight: float = 0.0  # mu of this step (Eq. 8); 0: no SFT pass

    @property
    def mask(self) -> torch.Tensor:
        return self.completions.mask if self.loss_mask is None else self.loss_mask


@dataclass
class Update:
    loss: float  # the full-batch loss minimised, Eq. (8) (= L_GRPO without an SFT term)
    stats: LossStats  # over the whole batch
    logp: torch.Tensor  # [B*G, Lc] detached log pi_theta before the step (pi_old for later iterations)
    entropy: torch.Tensor | None  # [B*G, Lc] when asked for
    grad_norm: float
    grpo_loss: float = 0.0  # L_GRPO, Eq. (5)
    sft_nll: float | None = None  # L_SFT, Eq. (7), when this update had an SFT term


def micro_batched_update(
    learner: Learner, batch: Batch, cfg: GRPOConfig, old_logp: torch.Tensor | None, with_entropy: bool, what: str
) -> Update:
    """One optimiser step with the loss's gradient accumulated over row chunks of `learner.chunking.rows`
    (prompt x sample rows; 0 = all). Each chunk's loss is weighted (`chunk_weight`) so the sum equals
    the full-batch loss for every loss_type; with an SFT term the reference answers follow in chunks
    of as many rows, weighted by their share of the answer tokens. On CUDA out of memory the chunk
    size is halved and the step redone (logged), so a size that fits is found once and kept.
    `old_logp` None: this is the first pass, whose own log-probs are pi_old."""
    policy, clock, chunking = learner.policy, learner.clock, learner.chunking
    n = batch.completions.ids.shape[0]
    mask = batch.mask
    mu = batch.sft_weight if batch.sft_targets is not None else 0.0
    per_process = tokens_per_process(cfg, mask)  # collective, so outside the retry loop
    while True:
        chunks = _row_chunks(n, chunking.rows)
        try:
            learner.optimizer.zero_grad(set_to_none=True)
            logps, entropies, grpo_total, sft_total = [], [], 0.0, None
            for r0, r1 in chunks:
                with clock("forward"):
                    logp, entropy = policy.completion_logprobs(
                        *_prompts_for_rows(batch.embeds, batch.prompt_mask, r0, r1, n, batch.group_size),
                        _rows(batch.completions, r0, r1),
                        with_entropy=with_entropy,
                        sampler_temperature=batch.temperature,
                    )
                    old = logp.detach() if old_logp is None else old_logp[r0:r1]
                    ref = None if batch.ref_logp is None else batch.ref_logp[r0:r1]
                    loss, _ = grpo_loss(
                        logp, old, batch.advantages[r0:r1], mask[r0:r1], cfg, batch.off_policy[r0:r1], ref
                    )
                    loss = loss * chunk_weight(cfg, mask[r0:r1], mask, per_process)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{what} is {loss.item()}")
                with clock("backward"):  # the prompts' projector graph is shared by every chunk
                    (loss if mu == 0 else (1 - mu) * loss).backward(retain_graph=True)  # Eq. (8)
                grpo_total += loss.item()
                logps.append(logp.detach())
                entropies.append(entropy)
            if mu > 0:
                sft_total = _sft_pass(learner, batch, cfg, mu, what)
            break
        except torch.cuda.OutOfMemoryError:
            if len(chunks) == n:
                raise
            chunking.rows = max(1, (chunks[0][1] - chunks[0][0]) // 2)
            log.warning("CUDA out of memory in a GRPO update: micro_batch_size -> %d rows", chunking.rows)
            learner.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    logp = torch.cat(logps, 0)  # every chunk has the batch's completion length
    entropy = torch.cat(entropies, 0) if with_entropy else None
    with torch.no_grad():  # the step's statistics over the whole batch, as in the one-pass path
        _, stats = grpo_loss(
            logp,
            logp if old_logp is None else old_logp,
            batch.advantages,
            mask,
            cfg,
            batch.off_policy,
            batch.ref_logp,
        )
    with clock("optimizer"):
        grad_norm = apply_gradients(policy.model, learner.optimizer, learner.max_grad_norm)
    total = grpo_total if sft_total is None else (1 - mu) * grpo_total + mu * sft_total
    return Update(total, stats, logp, entropy, grad_norm, grpo_total, sft_total)


def _sft_pass(learner: Learner, batch: Batch, cfg: GRPOConfig, mu: float, what: str) -> float:
    """Eq. (7) on the prompts' reference answers, its gradient (times mu, Eq. 8) accumulated in row
    chunks; returns L_SFT. The model's own distribution (temperature 1): this is the SFT loss."""
    policy, clock, targets = learner.policy, learner.clock, batch.sft_targets
    b = targets.ids.shape[0]
    total = 0.0
    for r0, r1 in _row_chunks(b, learner.chunking.rows):
        with clock("forward"):
            logp, _ = policy.completion_logprobs(batch.embeds[r0:r1], batch.prompt_mask[r0:r1], _rows(targets, r0, r1))
            share = float(targets.mask[r0:r1].sum()) / float(targets.mask.sum())  # of the answers' tokens
            part = sft_loss(logp, targets.mask[r0:r1], cfg) * share
        if not torch.isfinite(part):
            raise FloatingPointError(f"SFT term of the {what} is {part.item()}")
        with clock("backward"):
            (mu * part).backward(retain_graph=True)
        total += part.item()
    return total
