"""One GRPO / MP-GRPO step: sample a group per prompt, score it, update the policy mu times.

The objective itself lives in `grpo_loss.py`; this file only produces its inputs:
rollouts (G samples per prompt, or G-1 plus the ground truth for MP-GRPO), rewards, group
advantages, reference log-probs, and the log-probs at sampling time (pi_old). With DAPO's dynamic
sampling (`grpo.dynamic_sampling`) it draws more prompts while the batch is short of groups whose
rewards differ; with CHORD's SFT term (`grpo.sft_weight`) each update also passes over the prompts'
reference answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from harness import distributed
from harness.config import GRPOConfig
from harness.models.speech_lm import (
    Completions,
    Prompts,
    SpeechLM,
    completions_from_targets,
    join_completions,
    join_prompts,
)
from harness.rewards import Reward
from harness.train.clock import STEP_PHASES
from harness.train.grpo_loss import (
    LossSettings,
    LossStats,
    chunk_weight,
    group_advantages,
    grpo_loss,
    loss_mask,
    sft_loss,
    sft_weight,
)
from harness.train.learner import Learner, MicroBatching, StepResult
from harness.train.optimizer import apply_gradients

log = logging.getLogger("harness.train")

DrawMore = Callable[[], tuple[Prompts, list[str]]]  # the next batch of training prompts and their answers
ZERO_STD = 1e-6  # a group whose rewards' std is below this carries no signal (advantage 0)


def loss_settings(cfg: GRPOConfig) -> LossSettings:
    """The loss's settings, written once: every grpo_loss call of a step gets these."""
    return LossSettings(
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        max_completion_length=cfg.max_new_tokens,
        importance_level=cfg.importance_level,
        remove_clip=cfg.remove_clip,
        off_policy_gamma=cfg.mp_shaping_gamma,
        mask_truncated=cfg.mask_truncated,
        sft_weight=cfg.sft_weight,
        sft_weight_final=cfg.sft_weight_final,
        sft_schedule=cfg.sft_weight_schedule,
        sft_phi=cfg.sft_phi,
    )


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
    ids = torch.cat(
        [pad(samples.ids, lm.pad_id).view(b, group_size - 1, length), pad(refs.ids, lm.pad_id)[:, None]], 1
    ).view(b * group_size, length)
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
    learner: Learner, batch: Batch, settings: LossSettings, old_logp: torch.Tensor | None, with_entropy: bool, what: str
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
    # dapo's normaliser counts every process's tokens (Eq. 5); collective, so outside the retry loop
    tokens_per_process = distributed.mean_over_processes(float(mask.sum())) if settings.loss_type == "dapo" else None
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
                        logp, old, batch.advantages[r0:r1], mask[r0:r1], settings, batch.off_policy[r0:r1], ref
                    )
                    loss = loss * chunk_weight(settings, mask[r0:r1], mask, tokens_per_process)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{what} is {loss.item()}")
                with clock("backward"):  # the prompts' projector graph is shared by every chunk
                    (loss if mu == 0 else (1 - mu) * loss).backward(retain_graph=True)  # Eq. (8)
                grpo_total += loss.item()
                logps.append(logp.detach())
                entropies.append(entropy)
            if mu > 0:
                sft_total = _sft_pass(learner, batch, settings, mu, what)
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
            settings,
            batch.off_policy,
            batch.ref_logp,
        )
    with clock("optimizer"):
        grad_norm = apply_gradients(policy.model, learner.optimizer, learner.max_grad_norm)
    total = grpo_total if sft_total is None else (1 - mu) * grpo_total + mu * sft_total
    return Update(total, stats, logp, entropy, grad_norm, grpo_total, sft_total)


def _sft_pass(learner: Learner, batch: Batch, settings: LossSettings, mu: float, what: str) -> float:
    """Eq. (7) on the prompts' reference answers, its gradient (times mu, Eq. 8) accumulated in row
    chunks; returns L_SFT. The model's own distribution (temperature 1): this is the SFT loss."""
    policy, clock, targets = learner.policy, learner.clock, batch.sft_targets
    b = targets.ids.shape[0]
    total = 0.0
    for r0, r1 in _row_chunks(b, learner.chunking.rows):
        with clock("forward"):
            logp, _ = policy.completion_logprobs(batch.embeds[r0:r1], batch.prompt_mask[r0:r1], _rows(targets, r0, r1))
            share = float(targets.mask[r0:r1].sum()) / float(targets.mask.sum())  # of the answers' tokens
            part = sft_loss(logp, targets.mask[r0:r1], settings) * share
        if not torch.isfinite(part):
            raise FloatingPointError(f"SFT term of the {what} is {part.item()}")
        with clock("backward"):
            (mu * part).backward(retain_graph=True)
        total += part.item()
    return total


# --------------------------------------------------------------------------------------------------
# Rollouts


@dataclass
class Groups:
    """Sampled groups with their rewards: B prompts x G completions (MP-GRPO: the last row of each
    group is the prompt's ground-truth answer)."""

    prompts: Prompts
    answers: list[str]  # [B]
    completions: Completions  # [B*G, Lc]
    texts: list[str]  # [B*G] decoded completions
    totals: np.ndarray  # [B, G] reward of each completion
    parts: dict[str, np.ndarray]  # [B, G] per reward component

    def __len__(self) -> int:
        return len(self.answers)

    def rewards(self, device) -> torch.Tensor:
        return torch.as_tensor(self.totals, dtype=torch.float32, device=device)

    def take(self, groups: list[int]) -> Groups:
        g = self.totals.shape[1]
        rows = [k * g + j for k in groups for j in range(g)]
        return Groups(
            self.prompts.take(groups),
            [self.answers[k] for k in groups],
            self.completions.take(rows),
            [self.texts[r] for r in rows],
            self.totals[groups],
            {name: v[groups] for name, v in self.parts.items()},
        )


def join_groups(parts: list[Groups], pad_id: int) -> Groups:
    if len(parts) == 1:
        return parts[0]
    return Groups(
        join_prompts([p.prompts for p in parts], pad_id),
        [a for p in parts for a in p.answers],
        join_completions([p.completions for p in parts], pad_id),
        [t for p in parts for t in p.texts],
        np.concatenate([p.totals for p in parts]),
        {name: np.concatenate([p.parts[name] for p in parts]) for name in parts[0].parts},
    )


def rollout(
    learner: Learner, prompts: Prompts, answers: list[str], embeds: torch.Tensor, reward: Reward, cfg: GRPOConfig
) -> Groups:
    """G completions per prompt from the current policy (MP-GRPO: G-1 and the ground truth), scored."""
    policy, clock = learner.policy, learner.clock
    b, g = len(answers), cfg.group_size
    with clock("rollout"):
        with torch.no_grad():
            samples = policy.sample(
                embeds.detach(),
                prompts.attention_mask,
                g - 1 if cfg.mp_grpo else g,
                cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                generator=learner.generator,
            )
        completions = add_references(policy, samples, answers, g) if cfg.mp_grpo else samples
    with clock("reward"):
        texts = policy.decode(completions)
        total, parts = reward(texts, [a for a in answers for _ in range(g)])
    return Groups(
        prompts,
        answers,
        completions,
        texts,
        np.asarray(total).reshape(b, g),
        {name: np.asarray(v).reshape(b, g) for name, v in parts.items()},
    )


def _informative(groups: Groups) -> list[int]:
    """The groups whose rewards differ (nonzero std: a nonzero advantage somewhere)."""
    return [k for k in range(len(groups)) if groups.totals[k].std(ddof=1) >= ZERO_STD]


def dynamic_batch(
    learner: Learner, first: Groups, draw_more: DrawMore, reward: Reward, cfg: GRPOConfig
) -> tuple[Groups, list[Groups], dict[str, float]]:
    """DAPO's dynamic sampling (Yu et al. 2025): groups whose rewards are all equal are dropped, and
    further batches of prompts are drawn and sampled until B groups with differing rewards are kept
    (the first B, as DAPO) or `dynamic_sampling_max_draws` extra batches are spent. Short of B, the
    update trains on the groups kept (none kept: on the first draw as it is), logged and counted in
    `dynamic/batch_fill`. Under several processes every rank draws while any rank is short, so the
    ranks' prompt orders stay in step. Returns (groups to train on, every draw, metrics)."""
    b = len(first)
    drawn, kept = [first], [first.take(_informative(first))]
    extra = 0
    while distributed.any_process(sum(map(len, kept)) < b) and extra < cfg.dynamic_sampling_max_draws:
        prompts, answers = draw_more()
        extra += 1
        if sum(map(len, kept)) >= b:  # full here: drawn only to keep the ranks' prompt order in step
            continue
        with learner.clock("rollout"), torch.no_grad():
            embeds = learner.policy.embed_prompts(prompts)
        groups = rollout(learner, prompts, answers, embeds, reward, cfg)
        drawn.append(groups)
        kept.append(groups.take(_informative(groups)))
    n_kept = min(sum(map(len, kept)), b)
    if len(kept[0]) == b:
        train = first  # every group of the first draw differs: its prompt embeddings are reused
    elif n_kept == 0:
        train = first
        log.warning(
            "dynamic sampling: no group with differing rewards in %d groups (%d extra draws); training "
            "on the first draw as it is",
            sum(map(len, drawn)),
            extra,
        )
    else:
        train = join_groups([k for k in kept if len(k)], learner.policy.pad_id).take(list(range(n_kept)))
        if n_kept < b:
            log.warning(
                "dynamic sampling: %d of %d groups with differing rewards after %d extra draws; training on those",
                n_kept,
                b,
                extra,
            )
    metrics = {
        "dynamic/groups_drawn": float(sum(map(len, drawn))),
        "dynamic/groups_kept": float(n_kept),
        "dynamic/draws": float(extra),
        "dynamic/batch_fill": n_kept / b,
    }
    return train, drawn, metrics


# --------------------------------------------------------------------------------------------------
# The step


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
    policy, clock = learner.policy, learner.clock
    settings = loss_settings(cfg)
    if settings.uses_reference != (learner.reference is not None):
        raise ValueError(f"beta={cfg.beta} needs {'a' if settings.uses_reference else 'no'} reference model")
    if cfg.dynamic_sampling and draw_more is None:
        raise ValueError("grpo.dynamic_sampling needs draw_more: a source of further training prompts")
    before = clock.snapshot()
    g = cfg.group_size

    # Rollout from the current policy (= pi_old for all mu updates below). The prompt embeddings are
    # computed once with gradients: sampling reads them detached, the first update reuses them, so
    # the prompts are embedded once per step for mu = 1 (not once to sample and again to train).
    with clock("rollout"):
        embeds = policy.embed_prompts(prompts)
    first = rollout(learner, prompts, answers, embeds, reward, cfg)
    train, drawn, dynamic = first, [first], {}
    if cfg.dynamic_sampling:
        train, drawn, dynamic = dynamic_batch(learner, first, draw_more, reward, cfg)
        if train is not first:  # groups from several draws: embed their prompts for the update
            with clock("forward"):
                embeds = policy.embed_prompts(train.prompts)
    b = len(train)
    completions = train.completions
    off_policy = _off_policy_rows(b, g, cfg.mp_grpo, policy.device)

    # Group advantages (over the mixed group for MP-GRPO).
    with clock("reward"):
        rewards = train.rewards(policy.device)
        advantages = group_advantages(rewards, cfg.scale_rewards).view(-1)

    ref_logp = None
    if learner.reference is not None:
        with clock("reference"):
            ref_logp = reference_logprobs(
                learner.reference, train.prompts, completions, g, learner.chunking.rows, cfg.temperature
            )

    mu = sft_weight(settings, step, total_steps) if settings.uses_sft else 0.0
    targets = None
    if mu > 0:  # CHORD's SFT term on the prompts' reference answers
        targets = completions_from_targets(policy.tokenize_targets(train.answers), policy.pad_id, policy.device)

    # mu policy updates on this batch; pi_old is the policy that sampled (its log-probs come for free
    # from the first forward pass, so no extra pass is spent on them).
    in_loss = loss_mask(completions.mask, completions.truncated, settings)
    batch = Batch(
        embeds,
        train.prompts.attention_mask,
        completions,
        advantages,
        off_policy,
        ref_logp,
        g,
        cfg.temperature,
        in_loss,
        targets,
        mu,
    )
    old_logp, updates = None, []
    for it in range(cfg.iterations):
        if it > 0:  # the policy changed: embed the prompts again
            with clock("forward"):
                batch.embeds = policy.embed_prompts(train.prompts)
        update = micro_batched_update(
            learner, batch, settings, old_logp, with_entropy=(it == 0), what=f"GRPO loss at inner iteration {it}"
        )
        if it == 0:
            old_logp, first_entropy = update.logp, update.entropy
        updates.append(update)
    learner.scheduler.step()
    spent = clock.since(before)

    seen = join_groups(drawn, policy.pad_id)  # every group sampled this step
    metrics = _rollout_metrics(seen, cfg, policy.device)
    on = ~off_policy
    stats = update.stats
    generated = metrics["generated_tokens"]
    metrics.update(
        {
            "loss": float(np.mean([u.loss for u in updates])),
            **({} if stats.kl is None else {"kl": stats.kl}),  # no reference (beta = 0): no KL to report
            "clip_low": stats.clip_low,
            "clip_high": stats.clip_high,
            "ratio_mean": stats.ratio_mean,
            "entropy": float(first_entropy[completions.mask.bool() & on[:, None]].mean()),
            "trained_tokens": float(in_loss.sum()) * cfg.iterations,  # completion tokens in the loss
            "grad_norm": update.grad_norm,
            "lr": learner.scheduler.get_last_lr()[0],
            "tokens_per_s": generated / spent["rollout"],  # sampling throughput
            **{f"time_{phase}_s": seconds for phase, seconds in spent.items()},
            "step_time_s": sum(spent[p] for p in STEP_PHASES if p in spent),
            **dynamic,
        }
    )
    if stats.off_ratio_mean is not None:  # MP-GRPO: how likely the policy finds the ground truth
        metrics["off_ratio_mean"] = stats.off_ratio_mean
    if stats.off_weight_mean is not None:  # LUFFY: the shaped weight f(rho) of the reference row
        metrics["off_weight_mean"] = stats.off_weight_mean
    if cfg.mask_truncated:  # share of the trained on-policy completions whose loss is masked (Eq. 6)
        metrics["truncated_masked_frac"] = float(completions.truncated[on].float().mean())
    if settings.uses_sft:
        metrics["sft/weight"] = mu
        metrics["loss_grpo"] = float(np.mean([u.grpo_loss for u in updates]))
        if mu > 0:
            metrics["sft/nll"] = float(np.mean([u.sft_nll for u in updates]))
    refs = [a for a in first.answers for _ in range(g)]
    first_off = _off_policy_rows(len(first), g, cfg.mp_grpo, "cpu")
    samples = [  # a few rows of the first draw for the sample-generation table
        {
            "prompt": i // g,
            "reference": refs[i],
            "completion": first.texts[i],
            "reward": float(first.totals.flat[i]),
            "off_policy": bool(first_off[i]),
        }
        for i in range(min(len(first.texts), 2 * g))
    ]
    return StepResult(metrics, samples)


def _off_policy_rows(b: int, g: int, mp_grpo: bool, device) -> torch.Tensor:
    """[B*G] bool: True for MP-GRPO's ground-truth rows (the last of each group)."""
    off = torch.zeros(b, g, dtype=torch.bool, device=device)
    if mp_grpo:
        off[:, -1] = True
    return off.view(-1)


def _rollout_metrics(seen: Groups, cfg: GRPOConfig, device) -> dict[str, float]:
    """What the policy sampled this step: rewards, their spread, lengths, truncation, tokens."""
    g = cfg.group_size
    on = ~_off_policy_rows(len(seen), g, cfg.mp_grpo, device)
    rewards = seen.rewards(device)
    lengths = seen.completions.mask.sum(1).float()
    metrics = {
        "reward": float(rewards.view(-1)[on].mean()),
        "reward_std": float(rewards.std(dim=1).mean()),  # mean within-group std
        "frac_zero_std_groups": float((rewards.std(dim=1) < ZERO_STD).float().mean()),
        "completion_len_mean": float(lengths[on].mean()),
        "completion_len_max": float(lengths[on].max()),
        "truncated_frac": float(seen.completions.truncated[on].float().mean()),
        "generated_tokens": float(seen.completions.mask[on].sum()),  # sampled (MP-GRPO: G-1 per group)
    }
    for name, values in seen.parts.items():
        on_values = values.reshape(-1)[on.cpu().numpy()]
        metrics[f"reward/{name}"] = float(on_values.mean())
        metrics[f"reward_std/{name}"] = float(on_values.std())
    if cfg.mp_grpo:
        metrics["reward_reference"] = float(rewards[:, -1].mean())
    return metrics


__all__ = [
    "Batch",
    "DrawMore",
    "Groups",
    "MicroBatching",
    "Update",
    "add_references",
    "dynamic_batch",
    "grpo_step",
    "join_groups",
    "loss_settings",
    "micro_batched_update",
    "needs_reference",
    "reference_logprobs",
    "rollout",
]
