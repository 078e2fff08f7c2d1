"""GRPO's rollouts: G completions per prompt from the current policy (MP-GRPO: G-1 and the prompt's
ground truth), scored by the reward; DAPO's dynamic sampling, which draws more prompts while the
batch is short of groups whose rewards differ; and what a step reports of what it sampled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from harness import distributed
from harness.config import GRPOConfig
from harness.models.batches import Completions, Prompts, completions_from_targets, join_completions, join_prompts
from harness.models.speech_lm import SpeechLM
from harness.rewards import Reward
from harness.train.learner import Learner
from harness.vocabulary import STEP_GENERATED_TOKENS

__all__ = [
    "ZERO_STD",
    "DrawMore",
    "Groups",
    "add_references",
    "dynamic_batch",
    "join_groups",
    "off_policy_rows",
    "rollout",
    "rollout_metrics",
]

log = logging.getLogger("harness.train")

DrawMore = Callable[[], tuple[Prompts, list[str]]]  # the next batch of training prompts and their answers
ZERO_STD = 1e-6  # a group whose rewards' std is below this carries no signal (advantage 0)


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


def off_policy_rows(b: int, g: int, mp_grpo: bool, device) -> torch.Tensor:
    """[B*G] bool: True for MP-GRPO's ground-truth rows (the last of each group)."""
    off = torch.zeros(b, g, dtype=torch.bool, device=device)
    if mp_grpo:
        off[:, -1] = True
    return off.view(-1)


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


def rollout_metrics(seen: Groups, cfg: GRPOConfig, device) -> dict[str, float]:
    """What the policy sampled this step: rewards, their spread, lengths, truncation, tokens."""
    g = cfg.group_size
    on = ~off_policy_rows(len(seen), g, cfg.mp_grpo, device)
    rewards = seen.rewards(device)
    lengths = seen.completions.mask.sum(1).float()
    metrics = {
        "reward": float(rewards.view(-1)[on].mean()),
        "reward_std": float(rewards.std(dim=1).mean()),  # mean within-group std
        "frac_zero_std_groups": float((rewards.std(dim=1) < ZERO_STD).float().mean()),
        "completion_len_mean": float(lengths[on].mean()),
        "completion_len_max": float(lengths[on].max()),
        "truncated_frac": float(seen.completions.truncated[on].float().mean()),
        STEP_GENERATED_TOKENS: float(seen.completions.mask[on].sum()),  # sampled (MP-GRPO: G-1 per group)
    }
    for name, values in seen.parts.items():
        on_values = values.reshape(-1)[on.cpu().numpy()]
        metrics[f"reward/{name}"] = float(on_values.mean())
        metrics[f"reward_std/{name}"] = float(on_values.std())
    if cfg.mp_grpo:
        metrics["reward_reference"] = float(rewards[:, -1].mean())
    return metrics
