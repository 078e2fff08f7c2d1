"""One GRPO / MP-GRPO step: sample a group per prompt, score it, update the policy mu times.

The objective itself lives in `grpo_loss.py`, the rollouts in `grpo_rollout.py`, one update of the
policy in `grpo_update.py`; this file runs a step from them: rollouts (G samples per prompt, or G-1
plus the ground truth for MP-GRPO), rewards, group advantages, reference log-probs, and the
log-probs at sampling time (pi_old). With DAPO's dynamic sampling (`grpo.dynamic_sampling`) it draws
more prompts while the batch is short of groups whose rewards differ; with CHORD's SFT term
(`grpo.sft_weight`) each update also passes over the prompts' reference answers.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.config import GRPOConfig
from harness.models.batches import Completions, Prompts, completions_from_targets
from harness.rewards import Reward
from harness.train.clock import STEP_PHASES
from harness.train.grpo_loss import group_advantages, loss_mask, sft_weight, uses_reference, uses_sft
from harness.train.grpo_rollout import (
    DrawMore,
    Groups,
    dynamic_batch,
    join_groups,
    off_policy_rows,
    rollout,
    rollout_metrics,
)
from harness.train.grpo_update import Batch, Update, micro_batched_update, reference_logprobs
from harness.train.learner import Learner, StepResult
from harness.vocabulary import STEP_GENERATED_TOKENS, STEP_TIME, STEP_TRAINED_TOKENS, time_key

__all__ = ["grpo_step"]


def grpo_step(
    learner: Learner,
    prompts: Prompts,
    answers: list[str],
    reward: Reward,
    cfg: GRPOConfig,
    step: int = 1,
    total_steps: int = 1,
    draw_more: DrawMore | None = None,
) -> StepResult:
    """One GRPO step on a batch of prompts: its metrics and a few sample generations.

    `step` (1-based) of `total_steps` sets the SFT term's weight under a decaying schedule (Eq. 8).
    `draw_more` returns the next batch of training prompts with their answers: dynamic sampling asks
    for it while the batch is short of groups whose rewards differ. Rollout metrics (reward, lengths,
    generated tokens, ...) cover every group sampled in the step; loss metrics the batch trained on."""
    _check_inputs(learner, cfg, draw_more)
    before = learner.clock.snapshot()
    first, drawn, train, embeds, dynamic = _sample(learner, prompts, answers, reward, cfg, draw_more)
    mu = sft_weight(cfg, step, total_steps) if uses_sft(cfg) else 0.0  # Eq. (8)'s weight at this step
    batch = _batch(learner, train, embeds, cfg, mu)
    updates = _updates(learner, batch, train.prompts, cfg)
    learner.scheduler.step()
    spent = learner.clock.since(before)
    seen = join_groups(drawn, learner.policy.pad_id)  # every group sampled this step
    return StepResult(_step_metrics(learner, seen, batch, updates, cfg, spent, dynamic), _sample_rows(first, cfg))


def _check_inputs(learner: Learner, cfg: GRPOConfig, draw_more: DrawMore | None) -> None:
    needs = uses_reference(cfg)
    if needs != (learner.reference is not None):
        raise ValueError(f"beta={cfg.beta} needs {'a' if needs else 'no'} reference model")
    if cfg.dynamic_sampling and draw_more is None:
        raise ValueError("grpo.dynamic_sampling needs draw_more: a source of further training prompts")


def _sample(
    learner: Learner, prompts: Prompts, answers: list[str], reward: Reward, cfg: GRPOConfig, draw_more: DrawMore | None
) -> tuple[Groups, list[Groups], Groups, torch.Tensor, dict[str, float]]:
    """Rollouts from the current policy (= pi_old for all mu updates): (the first draw, every draw, the
    groups to train on, their prompts' embeddings, dynamic sampling's metrics). The prompt embeddings
    are computed once with gradients: sampling reads them detached, the first update reuses them, so
    the prompts are embedded once per step for mu = 1 (not once to sample and again to train)."""
    policy, clock = learner.policy, learner.clock
    with clock("rollout"):
        embeds = policy.embed_prompts(prompts)
    first = rollout(learner, prompts, answers, embeds, reward, cfg)
    if not cfg.dynamic_sampling:
        return first, [first], first, embeds, {}
    train, drawn, dynamic = dynamic_batch(learner, first, draw_more, reward, cfg)
    if train is not first:  # groups from several draws: embed their prompts for the update
        with clock("forward"):
            embeds = policy.embed_prompts(train.prompts)
    return first, drawn, train, embeds, dynamic


def _batch(learner: Learner, train: Groups, embeds: torch.Tensor, cfg: GRPOConfig, mu: float) -> Batch:
    """The update's inputs: group advantages (over the mixed group for MP-GRPO), the reference's
    log-probs (beta != 0), the tokens in the loss, and CHORD's reference answers when mu > 0."""
    policy, clock, g = learner.policy, learner.clock, cfg.group_size
    completions = train.completions
    off_policy = off_policy_rows(len(train), g, cfg.mp_grpo, policy.device)
    with clock("reward"):
        advantages = group_advantages(train.rewards(policy.device), cfg.scale_rewards).view(-1)
    ref_logp = None
    if learner.reference is not None:
        with clock("reference"):
            ref_logp = reference_logprobs(
                learner.reference, train.prompts, completions, g, learner.chunking.rows, cfg.temperature
            )
    targets = _sft_targets(learner, train.answers) if mu > 0 else None
    in_loss = loss_mask(completions.mask, completions.truncated, cfg)
    prompt_mask = train.prompts.attention_mask
    return Batch(
        embeds, prompt_mask, completions, advantages, off_policy, ref_logp, g, cfg.temperature, in_loss, targets, mu
    )


def _sft_targets(learner: Learner, answers: list[str]) -> Completions:
    """CHORD's SFT term's targets: the prompts' reference answers."""
    policy = learner.policy
    return completions_from_targets(policy.tokenize_targets(answers), policy.pad_id, policy.device)


def _updates(learner: Learner, batch: Batch, prompts: Prompts, cfg: GRPOConfig) -> list[Update]:
    """mu policy updates on the batch; pi_old is the policy that sampled (its log-probs come for free
    from the first forward pass, so no extra pass is spent on them)."""
    old_logp, updates = None, []
    for it in range(cfg.iterations):
        if it > 0:  # the policy changed: embed the prompts again
            with learner.clock("forward"):
                batch.embeds = learner.policy.embed_prompts(prompts)
        update = micro_batched_update(
            learner, batch, cfg, old_logp, with_entropy=(it == 0), what=f"GRPO loss at inner iteration {it}"
        )
        if it == 0:
            old_logp = update.logp
        updates.append(update)
    return updates


def _step_metrics(
    learner: Learner,
    seen: Groups,
    batch: Batch,
    updates: list[Update],
    cfg: GRPOConfig,
    spent: dict[str, float],
    dynamic: dict[str, float],
) -> dict[str, float]:
    """What the step logs: its rollouts (every group sampled), its updates, its time, its variants'."""
    sampled = rollout_metrics(seen, cfg, learner.policy.device)
    return {
        **sampled,
        **_update_metrics(learner, batch, updates, cfg),
        **_time_metrics(spent, sampled[STEP_GENERATED_TOKENS]),
        **dynamic,
        **_variant_metrics(batch, updates, cfg),
    }


def _update_metrics(learner: Learner, batch: Batch, updates: list[Update], cfg: GRPOConfig) -> dict[str, float]:
    """The loss, the last update's statistics, and the first update's entropy of the sampled rows."""
    stats, on = updates[-1].stats, ~batch.off_policy
    return {
        "loss": float(np.mean([u.loss for u in updates])),
        **({} if stats.kl is None else {"kl": stats.kl}),  # no reference (beta = 0): no KL to report
        "clip_low": stats.clip_low,
        "clip_high": stats.clip_high,
        "ratio_mean": stats.ratio_mean,
        "entropy": float(updates[0].entropy[batch.completions.mask.bool() & on[:, None]].mean()),
        STEP_TRAINED_TOKENS: float(batch.mask.sum()) * cfg.iterations,  # completion tokens in the loss
        "grad_norm": updates[-1].grad_norm,
        "lr": learner.scheduler.get_last_lr()[0],
    }


def _time_metrics(spent: dict[str, float], generated: float) -> dict[str, float]:
    """Sampling throughput, and the seconds of each phase of this step and of them all (the trial's
    totals are `time/<phase>_s`, this step's `step/time/<phase>_s`)."""
    return {
        "tokens_per_s": generated / spent["rollout"],  # sampling throughput
        **{time_key(phase, step=True): seconds for phase, seconds in spent.items()},
        STEP_TIME: sum(spent[p] for p in STEP_PHASES if p in spent),
    }


def _variant_metrics(batch: Batch, updates: list[Update], cfg: GRPOConfig) -> dict[str, float]:
    """The variants' own metrics: MP-GRPO's and LUFFY's off-policy row, truncation masking, CHORD."""
    stats, metrics = updates[-1].stats, {}
    if stats.off_ratio_mean is not None:  # MP-GRPO: how likely the policy finds the ground truth
        metrics["off_ratio_mean"] = stats.off_ratio_mean
    if stats.off_weight_mean is not None:  # LUFFY: the shaped weight f(rho) of the reference row
        metrics["off_weight_mean"] = stats.off_weight_mean
    if cfg.mask_truncated:  # share of the trained on-policy completions whose loss is masked (Eq. 6)
        metrics["truncated_masked_frac"] = float(batch.completions.truncated[~batch.off_policy].float().mean())
    if uses_sft(cfg):
        metrics["sft/weight"] = batch.sft_weight
        metrics["loss_grpo"] = float(np.mean([u.grpo_loss for u in updates]))
        if batch.sft_weight > 0:
            metrics["sft/nll"] = float(np.mean([u.sft_nll for u in updates]))
    return metrics


def _sample_rows(first: Groups, cfg: GRPOConfig) -> list[dict]:
    """A few rows of the first draw for the sample-generation table."""
    g = cfg.group_size
    refs = [a for a in first.answers for _ in range(g)]
    first_off = off_policy_rows(len(first), g, cfg.mp_grpo, "cpu")
    return [
        {
            "prompt": i // g,
            "reference": refs[i],
            "completion": first.texts[i],
            "reward": float(first.totals.flat[i]),
            "off_policy": bool(first_off[i]),
        }
        for i in range(min(len(first.texts), 2 * g))
    ]
