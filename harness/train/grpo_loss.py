"""The GRPO / MP-GRPO objective, read top to bottom.

Notation (Elmakies et al. 2025, following DeepSeekMath's GRPO and DAPO's token-level loss):
for a prompt q the group holds G completions o_1..o_G with rewards r_1..r_G.

  (1) advantage   A_i = (r_i - mean(r)) / (std(r) + eps)                   shared by every token of o_i
  (2) ratio       rho_{i,t} = pi_theta(o_{i,t} | q, o_{i,<t}) / pi_old(o_{i,t} | q, o_{i,<t})
  (3) surrogate   s_{i,t} = min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i)
  (4) KL (k3)     D_{i,t} = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1
  (5) loss        L = - 1/sum_i|o_i| * sum_i sum_t (s_{i,t} - beta D_{i,t})     (DAPO, token level)
              or  L = - 1/G sum_i 1/|o_i| sum_t (s_{i,t} - beta D_{i,t})          ('grpo', per sequence)

MP-GRPO puts the ground-truth reference into the group as an off-policy sample. Its behaviour
probability is taken as 1, so in (2) its ratio is pi_theta(o_t) itself, and it is not clipped in (3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["AdvantageScale", "Aggregation", "LossSettings", "LossStats", "group_advantages", "grpo_loss", "k3_kl"]

AdvantageScale = Literal["group", "batch", "none"]
Aggregation = Literal["dapo", "grpo"]


def group_advantages(rewards: torch.Tensor, scale: AdvantageScale = "group", eps: float = 1e-4) -> torch.Tensor:
    """Eq. (1). rewards [B, G] -> advantages [B, G].

    scale="group" divides by each group's std (sample std, as TRL), "batch" by the std of the whole
    batch, "none" only centres (Dr. GRPO). A group whose rewards are all equal gets advantage 0.
    """
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "group":
        return centred / (rewards.std(dim=1, keepdim=True) + eps)
    if scale == "batch":
        return centred / (rewards.std() + eps)
    if scale == "none":
        return centred
    raise ValueError(f"unknown advantage scale {scale!r}: use group, batch or none")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Eq. (4), per token: unbiased, always >= 0 estimator of KL(pi_theta || pi_ref) (Schulman's k3)."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


@dataclass(frozen=True)
class LossSettings:
    """The objective's settings (from `GRPOConfig`; see `harness.train.grpo.loss_settings`)."""

    beta: float = 0.0  # (4)-(5): KL coefficient; 0 needs no reference model
    epsilon: float = 0.2  # (3): lower clip
    epsilon_high: float | None = None  # (3): DAPO's clip-higher; None = epsilon
    aggregation: Aggregation = "dapo"  # (5)

    @property
    def uses_reference(self) -> bool:
        """Whether the loss needs log pi_ref: the one place that decides if a reference model exists."""
        return self.beta != 0.0


@dataclass
class LossStats:
    kl: float | None  # mean k3 KL over completion tokens; None without a reference (beta = 0)
    clip_low: float  # share of on-policy tokens where the lower clip is active (rho < 1 - eps, A < 0)
    clip_high: float  # share of on-policy tokens where the upper clip is active (rho > 1 + eps, A > 0)
    ratio_mean: float  # mean rho over on-policy tokens


def grpo_loss(
    logp: torch.Tensor,  # [N, L] log pi_theta of each completion token (differentiable)
    old_logp: torch.Tensor,  # [N, L] log pi_old at sampling time (ignored for off-policy rows)
    advantages: torch.Tensor,  # [N] one per completion (Eq. 1, flattened groups)
    mask: torch.Tensor,  # [N, L] 1 for completion tokens (EOS included), 0 for padding
    settings: LossSettings,
    off_policy: torch.Tensor | None = None,  # [N] bool, True for MP-GRPO's ground-truth rows
    ref_logp: torch.Tensor | None = None,  # [N, L] log pi_ref, needed when settings.uses_reference
) -> tuple[torch.Tensor, LossStats]:
    mask = mask.to(logp.dtype)
    if off_policy is None:
        off_policy = torch.zeros(logp.shape[0], dtype=torch.bool, device=logp.device)
    off = off_policy[:, None]
    eps_low = settings.epsilon
    eps_high = settings.epsilon if settings.epsilon_high is None else settings.epsilon_high

    # (2) rho = pi_theta / pi_old; for the reference sample pi_old = 1, i.e. log pi_old = 0.
    log_old = torch.where(off, torch.zeros_like(old_logp), old_logp.detach())
    ratio = torch.exp(logp - log_old)
    adv = advantages[:, None].to(logp.dtype)

    # (3) clipped surrogate; the off-policy reference sample is not clipped.
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv
    surrogate = torch.where(off, unclipped, torch.minimum(unclipped, clipped))

    # (4) KL penalty to the frozen reference model.
    per_token = surrogate
    kl = None
    if settings.uses_reference:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        kl = k3_kl(logp, ref_logp.detach())
        per_token = per_token - settings.beta * kl

    # (5) aggregate over completion tokens and negate (we minimise). Padding is selected away, not
    # multiplied by 0, so whatever sits there (even inf) cannot leak into the loss.
    per_token = torch.where(mask.bool(), per_token, torch.zeros_like(per_token))
    if settings.aggregation == "dapo":
        loss = -per_token.sum() / mask.sum().clamp(min=1)
    elif settings.aggregation == "grpo":
        loss = -(per_token.sum(1) / mask.sum(1).clamp(min=1)).mean()
    else:
        raise ValueError(f"unknown aggregation {settings.aggregation!r}: use dapo or grpo")

    with torch.no_grad():
        on = mask.bool() & ~off
        n_on = on.sum().clamp(min=1)
        stats = LossStats(
            kl=None if kl is None else float(kl[mask.bool()].sum() / mask.sum().clamp(min=1)),
            clip_low=float(((ratio < 1 - eps_low) & (adv < 0) & on).sum() / n_on),
            clip_high=float(((ratio > 1 + eps_high) & (adv > 0) & on).sum() / n_on),
            ratio_mean=float(ratio[on].sum() / n_on),
        )
    return loss, stats
