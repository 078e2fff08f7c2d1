"""One GRPO / MP-GRPO step: sample a group per prompt, score it, update the policy mu times.

The objective itself lives in `grpo_loss.py`; this file only produces its inputs:
rollouts (G samples per prompt, or G-1 plus the ground truth for MP-GRPO), rewards, group
advantages, reference log-probs, and the log-probs at sampling time (pi_old).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from harness.config import GRPOConfig
from harness.models.speech_lm import Completions, Prompts, SpeechLM, completions_from_targets
from harness.rewards import Reward
from harness.train.grpo_loss import LossSettings, LossStats, group_advantages, grpo_loss
from harness.train.learner import Learner, MicroBatching, StepResult
from harness.train.optimizer import apply_gradients

log = logging.getLogger("harness.train")


def loss_settings(cfg: GRPOConfig) -> LossSettings:
    """The loss's settings, written once: every grpo_loss call of a step gets these."""
    return LossSettings(beta=cfg.beta, epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high,
                        aggregation=cfg.loss_type)


def needs_reference(cfg: GRPOConfig) -> bool:
    """Whether a GRPO trial needs a frozen reference model (the loss's KL term: beta != 0)."""
    return loss_settings(cfg).uses_reference


def add_references(lm: SpeechLM, samples: Completions, answers: list[str], group_size: int) -> Completions:
    """MP-GRPO groups: each prompt's G-1 samples followed by its ground-truth answer (row g = G-1)."""
    refs = completions_from_targets(lm.tokenize_targets(answers), lm.pad_id, lm.device)
    length = max(samples.ids.shape[1], refs.ids.shape[1])

    def pad(x: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, length - x.shape[1]), value=value)

    b = len(answers)
    ids = torch.cat([pad(samples.ids, lm.pad_id).view(b, group_size - 1, length),
                     pad(refs.ids, lm.pad_id)[:, None]], 1).view(b * group_size, length)
    mask = torch.cat([pad(samples.mask, 0).view(b, group_size - 1, length), pad(refs.mask, 0)[:, None]], 1)
    truncated = torch.cat([samples.truncated.view(b, group_size - 1), refs.truncated[:, None]], 1)
    return Completions(ids, mask.view(b * group_size, length), truncated.view(-1))


def _row_chunks(n: int, size: int) -> list[tuple[int, int]]:
    size = n if size <= 0 else min(size, n)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _prompts_for_rows(embeds: torch.Tensor, mask: torch.Tensor, r0: int, r1: int, n: int, group_size: int):
    """The prompts that completion rows r0..r1 (of n) continue: all rows or whole groups keep one row
    per prompt (the log-prob pass then runs each prompt once), a partial group one copy per row."""
    if (r0, r1) == (0, n):
        return embeds, mask
    if r0 % group_size == 0 and r1 % group_size == 0:
        return embeds[r0 // group_size:r1 // group_size], mask[r0 // group_size:r1 // group_size]
    rows = torch.arange(r0, r1, device=embeds.device) // group_size
    return embeds[rows], mask[rows]


def _rows(completions: Completions, r0: int, r1: int) -> Completions:
    return Completions(completions.ids[r0:r1], completions.mask[r0:r1], completions.truncated[r0:r1])


@torch.no_grad()
def reference_logprobs(reference: SpeechLM, prompts: Prompts, completions: Completions, group_size: int,
                       rows_per_pass: int) -> torch.Tensor:
    """log pi_ref of every completion token, [N, L], in passes of `rows_per_pass` rows (0: one pass)."""
    embeds = reference.embed_prompts(prompts)
    parts, n = [], completions.ids.shape[0]
    for r0, r1 in _row_chunks(n, rows_per_pass):
        parts.append(reference.completion_logprobs(*_prompts_for_rows(embeds, prompts.attention_mask, r0, r1, n, group_size),
                                                   _rows(completions, r0, r1))[0])
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


@dataclass
class Update:
    loss: float  # the full-batch loss (sum of the chunks' weighted losses)
    stats: LossStats  # over the whole batch
    logp: torch.Tensor  # [B*G, Lc] detached log pi_theta before the step (pi_old for later iterations)
    entropy: torch.Tensor | None  # [B*G, Lc] when asked for
    grad_norm: float


def micro_batched_update(learner: Learner, batch: Batch, settings: LossSettings, old_logp: torch.Tensor | None,
                         with_entropy: bool, what: str) -> Update:
    """One optimiser step with the loss's gradient accumulated over row chunks of `learner.chunking.rows`
    (prompt x sample rows; 0 = all). Each chunk's loss is weighted so the sum equals the full-batch
    loss (DAPO: by its share of completion tokens; 'grpo': by its share of rows). On CUDA out of
    memory the chunk size is halved and the step redone (logged), so a size that fits is found once
    and kept. `old_logp` None: this is the first pass, whose own log-probs are pi_old."""
    policy, clock, chunking = learner.policy, learner.clock, learner.chunking
    n = batch.completions.ids.shape[0]
    mask = batch.completions.mask
    total_tokens = mask.sum().clamp(min=1)
    while True:
        chunks = _row_chunks(n, chunking.rows)
        try:
            learner.optimizer.zero_grad(set_to_none=True)
            logps, entropies, loss_total = [], [], 0.0
            for r0, r1 in chunks:
                with clock("forward"):
                    logp, entropy = policy.completion_logprobs(
                        *_prompts_for_rows(batch.embeds, batch.prompt_mask, r0, r1, n, batch.group_size),
                        _rows(batch.completions, r0, r1), with_entropy=with_entropy)
                    old = logp.detach() if old_logp is None else old_logp[r0:r1]
                    ref = None if batch.ref_logp is None else batch.ref_logp[r0:r1]
                    loss, _ = grpo_loss(logp, old, batch.advantages[r0:r1], mask[r0:r1], settings,
                                        batch.off_policy[r0:r1], ref)
                    weight = (mask[r0:r1].sum() / total_tokens) if settings.aggregation == "dapo" else (r1 - r0) / n
                    loss = loss * weight
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{what} is {loss.item()}")
                with clock("backward"):
                    loss.backward(retain_graph=True)  # the prompts' projector graph is shared by every chunk
                loss_total += loss.item()
                logps.append(logp.detach())
                entropies.append(entropy)
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
        _, stats = grpo_loss(logp, logp if old_logp is None else old_logp, batch.advantages, mask, settings,
                             batch.off_policy, batch.ref_logp)
    with clock("optimizer"):
        grad_norm = apply_gradients(policy.model, learner.optimizer, learner.max_grad_norm)
    return Update(loss_total, stats, logp, entropy, grad_norm)


def grpo_step(learner: Learner, prompts: Prompts, answers: list[str], reward: Reward, cfg: GRPOConfig) -> StepResult:
    """One GRPO step on a batch of prompts: its metrics and a few sample generations."""
    policy, clock = learner.policy, learner.clock
    settings = loss_settings(cfg)
    if settings.uses_reference != (learner.reference is not None):
        raise ValueError(f"beta={cfg.beta} needs {'a' if settings.uses_reference else 'no'} reference model")
    before = clock.snapshot()
    b, g = len(answers), cfg.group_size
    n_sampled = g - 1 if cfg.mp_grpo else g

    # Rollout from the current policy (= pi_old for all mu updates below). The prompt embeddings are
    # computed once with gradients: sampling reads them detached, the first update reuses them, so
    # the prompts are embedded once per step for mu = 1 (not once to sample and again to train).
    with clock("rollout"):
        embeds = policy.embed_prompts(prompts)
        with torch.no_grad():
            samples = policy.sample(embeds.detach(), prompts.attention_mask, n_sampled, cfg.max_new_tokens,
                                    temperature=cfg.temperature, top_p=cfg.top_p, generator=learner.generator)
        completions = add_references(policy, samples, answers, g) if cfg.mp_grpo else samples
    off_policy = torch.zeros(b, g, dtype=torch.bool, device=policy.device)
    if cfg.mp_grpo:
        off_policy[:, -1] = True
    off_policy = off_policy.view(-1)

    # Rewards and group advantages (over the mixed group for MP-GRPO).
    with clock("reward"):
        texts = policy.decode(completions)
        refs = [a for a in answers for _ in range(g)]
        total, parts = reward(texts, refs)
        rewards = torch.as_tensor(total, dtype=torch.float32, device=policy.device).view(b, g)
        advantages = group_advantages(rewards, cfg.scale_rewards).view(-1)

    ref_logp = None
    if learner.reference is not None:
        with clock("reference"):
            ref_logp = reference_logprobs(learner.reference, prompts, completions, g, learner.chunking.rows)

    # mu policy updates on this batch; pi_old is the policy that sampled (its log-probs come for free
    # from the first forward pass, so no extra pass is spent on them).
    batch = Batch(embeds, prompts.attention_mask, completions, advantages, off_policy, ref_logp, g)
    old_logp, losses = None, []
    for it in range(cfg.iterations):
        if it > 0:  # the policy changed: embed the prompts again
            with clock("forward"):
                batch.embeds = policy.embed_prompts(prompts)
        update = micro_batched_update(learner, batch, settings, old_logp, with_entropy=(it == 0),
                                      what=f"GRPO loss at inner iteration {it}")
        if it == 0:
            old_logp, first_entropy = update.logp, update.entropy
        losses.append(update.loss)
    learner.scheduler.step()
    spent = clock.since(before)

    on = ~off_policy
    mask = completions.mask.bool()
    lengths = completions.mask.sum(1).float()
    rewards_on = rewards.view(-1)[on]
    stats = update.stats
    generated = float(completions.mask[on].sum())  # sampled this step (MP-GRPO: G-1 per group)
    metrics = {
        "loss": float(np.mean(losses)),
        "reward": float(rewards_on.mean()),
        "reward_std": float(rewards.std(dim=1).mean()),  # mean within-group std
        "frac_zero_std_groups": float((rewards.std(dim=1) < 1e-6).float().mean()),
        **({} if stats.kl is None else {"kl": stats.kl}),  # no reference (beta = 0): no KL to report
        "clip_low": stats.clip_low,
        "clip_high": stats.clip_high,
        "ratio_mean": stats.ratio_mean,
        "entropy": float(first_entropy[mask & on[:, None]].mean()),
        "completion_len_mean": float(lengths[on].mean()),
        "completion_len_max": float(lengths[on].max()),
        "truncated_frac": float(completions.truncated[on].float().mean()),
        "generated_tokens": generated,
        "trained_tokens": float(completions.mask.sum()) * cfg.iterations,  # completion tokens in the loss
        "grad_norm": update.grad_norm,
        "lr": learner.scheduler.get_last_lr()[0],
        "tokens_per_s": generated / spent["rollout"],  # sampling throughput
        **{f"time_{phase}_s": seconds for phase, seconds in spent.items()},
        "step_time_s": sum(spent[p] for p in ("rollout", "reward", "reference", "forward", "backward", "optimizer")
                           if p in spent),
    }
    for name, values in parts.items():
        on_values = np.asarray(values).reshape(-1)[on.cpu().numpy()]
        metrics[f"reward/{name}"] = float(on_values.mean())
        metrics[f"reward_std/{name}"] = float(on_values.std())
    if cfg.mp_grpo:
        metrics["reward_reference"] = float(rewards[:, -1].mean())
    samples = [  # a few rows for the sample-generation table
        {"prompt": i // g, "reference": refs[i], "completion": texts[i], "reward": float(total[i]),
         "off_policy": bool(off_policy[i])} for i in range(min(len(texts), 2 * g))
    ]
    return StepResult(metrics, samples)


__all__ = ["Batch", "MicroBatching", "Update", "add_references", "grpo_step", "loss_settings", "micro_batched_update",
           "needs_reference", "reference_logprobs"]
