"""The GRPO / MP-GRPO objective and the field's variants of it, read top to bottom.

Notation (Elmakies et al. 2025, following DeepSeekMath's GRPO and DAPO's token-level loss):
for a prompt q the group holds G completions o_1..o_G with rewards r_1..r_G; a batch holds N rows
(B prompts x G), and m_{i,t} is 1 on the completion tokens of o_i (EOS included), 0 on padding.

  (0) padding     every per-token input is set to 0 where m = 0 before any arithmetic
  (1) advantage   A_i = (r_i - mean(r)) / (std(r) + eps)                    shared by every token of o_i
  (2) ratio       rho_{i,t} = exp(log pi_theta(o_{i,t} | q, o_{i,<t}) - log pi_old(o_{i,t} | q, o_{i,<t}))
  (2s)            rho_{i,t} = exp(1/|o_i| sum_u (log pi_theta - log pi_old)_{i,u})   for every t   (sequence)
  (3) surrogate   s_{i,t} = min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i)
  (3u)            s_{i,t} = rho A_i                                                   (remove_clip)
  (3o)            s_{i,t} = f(rho) A_i,  f(x) = x  or  x / (x + gamma)          (off-policy reference row)
  (4) KL (k3)     D_{i,t} = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1
  (5) loss        L_GRPO = -1/Z sum_i sum_t m_{i,t} (s_{i,t} - beta D_{i,t}),  Z by loss_type:
                      dapo     Z = completion tokens of the global batch (all processes)
                      bnpo     Z = completion tokens of this process's batch
                      dr_grpo  Z = N * max_new_tokens
              or  L_GRPO = -1/N sum_i 1/|o_i| sum_t m_{i,t} (s_{i,t} - beta D_{i,t})     ('grpo', per sequence)
  (6) truncation  m_{i,t} = 0 for every t when o_i has no EOS within the token budget   (mask_truncated)
  (7) SFT         L_SFT = -1/sum_b |y_b| sum_b sum_t phi_{b,t} log pi_theta(y_{b,t} | q_b, y_{b,<t})
                  on each prompt's reference answer y_b;  phi = 1, or sg[p (1 - p)], p = pi_theta(y_{b,t})
  (8) total       L = (1 - mu_k) L_GRPO + mu_k L_SFT   at training step k = 1..K

The settings are `GRPOConfig`'s fields, read here as they are (a new knob: its field there, its
equation line here): scale_rewards (1); importance_level (2) token / (2s) sequence; epsilon,
epsilon_high (3); remove_clip (3u); mp_shaping_gamma = gamma (3o), unset: f = identity; beta (4)-(5),
0: no reference model; loss_type, max_new_tokens (5); mask_truncated (6); sft_phi (7); sft_weight,
sft_weight_final, sft_weight_schedule (8). Their value lists are `harness.config`'s Literals.

Where each comes from, and what it settles:

(0) Padding may hold anything (the log-prob pass gives -inf at a padded position whose token is a
    suppressed id; a ratio there can overflow). Selecting padding away after exp() keeps the loss
    finite but not its gradient (0 * inf = NaN in exp's backward), so it is zeroed first.
(1) std is the sample std (Bessel), as TRL (trl/trainer/grpo_trainer.py,
    GRPOTrainer._generate_and_score_completions: `nanstd`); scale_rewards 'batch' divides by the
    batch's std, 'none' only centres (Dr. GRPO). The sample std of G rewards is sqrt(G/(G-1)) times
    their population std, so A is sqrt((G-1)/G) times the population-std advantage; (3) is linear in
    A, so the objective is sqrt((G-1)/G) [s_pop - beta sqrt(G/(G-1)) D]: relative to the surrogate
    the KL weighs beta sqrt(G/(G-1)) (G=4: 1.155 beta, G=8: 1.069 beta, G=12: 1.044 beta). Comparing
    group sizes at one beta compares slightly different effective KL weights (in TRL too).
(2) pi_old is the policy that sampled (log-probs at the rollout temperature, suppressed tokens
    masked: SpeechLM.completion_logprobs). (2s) is GSPO (Zheng et al. 2025, "Group Sequence Policy
    Optimization") as TRL's importance_sampling_level="sequence" (GRPOTrainer._compute_loss): the
    mean log-ratio over the sequence's tokens, exponentiated, one value per sequence that every
    token of it carries (gradient through the mean); it is clipped as in (3), and clip statistics
    count sequences. With a token-sum loss_type (dapo, bnpo, dr_grpo) a sequence then weighs by its
    length (TRL warns); GSPO's own setup is loss_type 'grpo'.
    MP-GRPO's ground-truth row has behaviour probability 1 (log pi_old := 0): its ratio is
    pi_theta(o_t) (token) or the geometric mean of pi_theta over its tokens (sequence).
(3) PPO's clipped surrogate with DAPO's clip-higher (eps_high). (3u) is LUFFY's loss_remove_clip
    (Yan et al. 2025, "Learning to Reason under Off-Policy Guidance"; ElliottYan/LUFFY
    luffy/verl/verl/mix_src/mix_core_alg.py, compute_token_on_off_policy_loss): on-policy rows
    unclipped. (3o) The off-policy row is never clipped; f = identity is MP-GRPO, f(x) = x/(x+gamma)
    is LUFFY's policy shaping (off_policy_reshape "p_div_p_<gamma>", applied there to pi_theta
    itself): its gradient gamma/(x+gamma)^2 * grad x lifts low-probability reference tokens relative
    to high-probability ones. At sequence level f is applied to the sequence ratio.
(4) Schulman's k3 estimator of KL(pi_theta || pi_ref), unbiased and >= 0, as TRL.
(5) TRL's GRPOTrainer._compute_loss, l = per-token loss: 'grpo' ((l*m).sum(-1) / m.sum(-1)).mean();
    'bnpo' (l*m).sum() / m.sum() over the local batch; 'dr_grpo' (l*m).sum() / (l.size(0) *
    max_completion_length) (TRL's max_completion_length is max_new_tokens here; Liu et al. 2025,
    "Understanding R1-Zero-Like Training: A Critical Perspective": a constant normaliser removes the
    length bias); 'dapo' (l*m).sum() /
    (num_items_in_batch / num_processes), num_items_in_batch counting the global batch's tokens, so
    after the processes' gradients are averaged Z is the global token count. Here one step's batch
    is one process's share of the prompts (row chunks are a memory device whose weighted losses sum
    to it: `chunk_weight`), so on one process bnpo == dapo, as in TRL without gradient accumulation.
    dr_grpo's constant uses this process's N rows and max_new_tokens (an MP-GRPO reference longer
    than that does not change the constant).
(6) TRL's mask_truncated_completions (GRPOTrainer._generate_and_score_completions), DAPO's overlong
    filtering (Yu et al. 2025): a truncated completion keeps its place in its group's advantage (1)
    and in the row counts N of 'grpo' and 'dr_grpo', and adds no tokens to Z.
(7)-(8) CHORD (Zhang et al. 2025, "On-Policy RL Meets Off-Policy Experts: Harmonizing Supervised
    Fine-Tuning and Reinforcement Learning via Dynamic Weighting"; Trinity-RFT
    trinity/algorithm/policy_loss_fn/chord_policy_loss.py: MIXCHORDPolicyLossFn mixes
    (1 - mu) * grpo + mu * sft, SFTPhiLossFn weighs tokens by the detached phi = p (1 - p)). L_SFT
    is the SFT loss (token mean, temperature 1, the model's full distribution; not the rollout's).
    mu_k (`sft_weight`): constant, or from sft_weight at step 1 to sft_weight_final at step K,
    linearly or by a half cosine (Trinity's schedule without its warm-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import get_args

import torch

from harness import distributed
from harness.config import AdvantageScale, GRPOConfig, ImportanceLevel, LossType, SFTSchedule

__all__ = [
    "GLOBAL_TOKENS",
    "NORMALISERS",
    "PER_SEQUENCE",
    "ROWS_X_LENGTH",
    "TOKENS",
    "LossStats",
    "aggregate",
    "chunk_weight",
    "group_advantages",
    "grpo_loss",
    "importance_ratio",
    "k3_kl",
    "loss_mask",
    "sft_loss",
    "sft_weight",
    "shaped",
    "tokens_per_process",
    "uses_reference",
    "uses_sft",
]

# Eq. (5)'s normaliser Z of each loss_type, decided here only.
GLOBAL_TOKENS, TOKENS, ROWS_X_LENGTH, PER_SEQUENCE = "global tokens", "tokens", "rows x max_new_tokens", "per sequence"
NORMALISERS: dict[str, str] = {"dapo": GLOBAL_TOKENS, "bnpo": TOKENS, "dr_grpo": ROWS_X_LENGTH, "grpo": PER_SEQUENCE}
if set(NORMALISERS) != set(get_args(LossType)):
    raise ImportError(f"grpo_loss.NORMALISERS covers {sorted(NORMALISERS)}, config.LossType {get_args(LossType)}")


def _unknown(what: str, value: str, literal) -> ValueError:
    return ValueError(f"unknown {what} {value!r}: use one of {', '.join(get_args(literal))}")


def uses_reference(cfg: GRPOConfig) -> bool:
    """Whether the loss needs log pi_ref (4): the one place that decides if a reference model exists."""
    return cfg.beta != 0.0


def uses_sft(cfg: GRPOConfig) -> bool:
    """Whether (8) has an SFT term at some step (the step then runs a pass over the references)."""
    return cfg.sft_weight != 0.0 or (cfg.sft_weight_schedule != "constant" and cfg.sft_weight_final != 0.0)


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
    raise _unknown("advantage scale", scale, AdvantageScale)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Eq. (4), per token: unbiased, always >= 0 estimator of KL(pi_theta || pi_ref) (Schulman's k3)."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


@dataclass
class LossStats:
    kl: float | None  # mean k3 KL over completion tokens; None without a reference (beta = 0)
    clip_low: float  # share of on-policy units (tokens; sequences for (2s)) where the lower clip is active
    clip_high: float  # share of on-policy units where the upper clip is active (0 with remove_clip)
    ratio_mean: float  # mean rho over on-policy units
    off_ratio_mean: float | None = None  # mean rho over the off-policy rows' units (MP-GRPO); None without
    off_weight_mean: float | None = None  # mean f(rho) there, (3o) with gamma; None without shaping


def loss_mask(mask: torch.Tensor, truncated: torch.Tensor, cfg: GRPOConfig) -> torch.Tensor:
    """Eq. (6): the completion mask [N, L], with every token of a truncated row [N] masked when
    cfg.mask_truncated."""
    if not cfg.mask_truncated:
        return mask
    return mask * (~truncated.bool())[:, None].to(mask.dtype)


def _zero_padding(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Eq. (0): x where keep, else 0; the gradient at padding is exactly 0 whatever x holds there."""
    return torch.where(keep, x, torch.zeros_like(x))


def importance_ratio(log_ratio: torch.Tensor, keep: torch.Tensor, level: ImportanceLevel) -> torch.Tensor:
    """Eq. (2) [N, L] per token, or Eq. (2s) [N, 1] per sequence (broadcast over its tokens)."""
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        return torch.exp(log_ratio.sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1))
    raise _unknown("importance_level", level, ImportanceLevel)


def shaped(ratio: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Eq. (3o)'s f: identity (MP-GRPO), or LUFFY's x / (x + gamma)."""
    return ratio if gamma is None else ratio / (ratio + gamma)


def aggregate(values: torch.Tensor, m: torch.Tensor, cfg: GRPOConfig) -> torch.Tensor:
    """Eq. (5)'s sum and normaliser over masked per-token values [N, L] (0 at padding); m: the mask."""
    z = NORMALISERS[cfg.loss_type]
    if z in (GLOBAL_TOKENS, TOKENS):  # on one process's batch; see chunk_weight for the global count
        return values.sum() / m.sum().clamp(min=1)
    if z == ROWS_X_LENGTH:
        return values.sum() / (m.shape[0] * cfg.max_new_tokens)
    return (values.sum(1) / m.sum(1).clamp(min=1)).mean()  # PER_SEQUENCE


def tokens_per_process(cfg: GRPOConfig, mask: torch.Tensor) -> float | None:
    """Z / number of processes for a normaliser over the global batch's tokens (dapo): the mean of the
    processes' token counts in `mask`, to pass to `chunk_weight`; None for the other normalisers.
    Collective: every process calls it at the same point."""
    if NORMALISERS[cfg.loss_type] != GLOBAL_TOKENS:
        return None
    return distributed.mean_over_processes(float(mask.sum()))


def chunk_weight(
    cfg: GRPOConfig, chunk_mask: torch.Tensor, batch_mask: torch.Tensor, tokens_per_process: float | None = None
) -> float:
    """The factor that makes `grpo_loss` on a chunk of a batch's rows a summand of the batch's (5):
    the weighted chunk losses sum to the loss of the whole batch. Token normalisers weigh a chunk by
    its share of the tokens, row means by its share of the rows. `tokens_per_process`: dapo's Z
    divided by the number of processes (TRL: num_items_in_batch / num_processes), i.e. the mean of
    the processes' token counts (`tokens_per_process`); None on one process. bnpo always uses this
    process's tokens."""
    z = NORMALISERS[cfg.loss_type]
    if z in (GLOBAL_TOKENS, TOKENS):
        count = batch_mask.sum() if z == TOKENS or tokens_per_process is None else tokens_per_process
        return float(chunk_mask.sum()) / max(float(count), 1.0)
    return chunk_mask.shape[0] / batch_mask.shape[0]


def grpo_loss(
    logp: torch.Tensor,  # [N, L] log pi_theta of each completion token (differentiable)
    old_logp: torch.Tensor,  # [N, L] log pi_old at sampling time (ignored for off-policy rows)
    advantages: torch.Tensor,  # [N] one per completion (Eq. 1, flattened groups)
    mask: torch.Tensor,  # [N, L] 1 for completion tokens in the loss (Eq. 6), 0 for padding
    cfg: GRPOConfig,
    off_policy: torch.Tensor | None = None,  # [N] bool, True for MP-GRPO's ground-truth rows
    ref_logp: torch.Tensor | None = None,  # [N, L] log pi_ref, needed when uses_reference(cfg)
) -> tuple[torch.Tensor, LossStats]:
    keep = mask.bool()
    m = mask.to(logp.dtype)
    if off_policy is None:
        off_policy = torch.zeros(logp.shape[0], dtype=torch.bool, device=logp.device)
    off = off_policy[:, None]
    eps_low = cfg.epsilon
    eps_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
    adv = advantages[:, None].to(logp.dtype)

    # (0) nothing at padding reaches the arithmetic below.
    logp = _zero_padding(logp, keep)
    log_old = _zero_padding(old_logp.detach(), keep)

    # (2) / (2s) rho = pi_theta / pi_old; for the reference sample pi_old = 1, i.e. log pi_old = 0.
    log_old = torch.where(off, torch.zeros_like(log_old), log_old)
    ratio = importance_ratio(logp - log_old, keep, cfg.importance_level)

    # (3) clipped surrogate, (3u) unclipped with remove_clip; (3o) the off-policy row: f(rho) A, never clipped.
    unclipped = ratio * adv
    on_policy = (
        unclipped if cfg.remove_clip else torch.minimum(unclipped, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)
    )
    surrogate = torch.where(off, shaped(ratio, cfg.mp_shaping_gamma) * adv, on_policy)

    # (4) KL penalty to the frozen reference model.
    per_token = surrogate  # [N, L], or [N, 1] for (2s) without KL: broadcast over the tokens in (5)
    kl = None
    if uses_reference(cfg):
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        kl = k3_kl(logp, _zero_padding(ref_logp.detach(), keep))
        per_token = per_token - cfg.beta * kl

    # (5) aggregate over the completion tokens in the loss and negate (we minimise).
    loss = -aggregate(per_token * m, m, cfg)

    with torch.no_grad():
        units = keep if cfg.importance_level == "token" else keep.any(1, keepdim=True)  # (2s): sequences
        on, off_units = units & ~off, units & off
        n_on = on.sum().clamp(min=1)
        clipping = not cfg.remove_clip
        stats = LossStats(
            kl=None if kl is None else float((kl * m).sum() / m.sum().clamp(min=1)),
            clip_low=float(((ratio < 1 - eps_low) & (adv < 0) & on).sum() / n_on) if clipping else 0.0,
            clip_high=float(((ratio > 1 + eps_high) & (adv > 0) & on).sum() / n_on) if clipping else 0.0,
            ratio_mean=float((ratio * on).sum() / n_on),
        )
        if off_units.any():
            stats.off_ratio_mean = float((ratio * off_units).sum() / off_units.sum())
            if cfg.mp_shaping_gamma is not None:
                stats.off_weight_mean = float((shaped(ratio, cfg.mp_shaping_gamma) * off_units).sum() / off_units.sum())
    return loss, stats


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, cfg: GRPOConfig) -> torch.Tensor:
    """Eq. (7): token-mean NLL of the reference answers, [B, L] log-probs at temperature 1; with
    cfg.sft_phi each token weighs phi = p (1 - p), detached (CHORD-phi)."""
    keep = mask.bool()
    m = mask.to(logp.dtype)
    logp = _zero_padding(logp, keep)  # (0)
    phi = (logp.exp() * (1 - logp.exp())).detach() if cfg.sft_phi else torch.ones_like(logp)
    return -(phi * logp * m).sum() / m.sum().clamp(min=1)


def sft_weight(cfg: GRPOConfig, step: int, total_steps: int) -> float:
    """Eq. (8)'s mu_k at training step k = `step` (1-based) of K = `total_steps`: sft_weight at step 1,
    sft_weight_final at step K for the decaying schedules (linear, or half a cosine)."""
    start, end = cfg.sft_weight, cfg.sft_weight_final
    if cfg.sft_weight_schedule == "constant" or total_steps <= 1:
        return start
    x = min(max((step - 1) / (total_steps - 1), 0.0), 1.0)
    if cfg.sft_weight_schedule == "linear_decay":
        return end + (start - end) * (1 - x)
    if cfg.sft_weight_schedule == "cosine_decay":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * x))
    raise _unknown("sft_weight_schedule", cfg.sft_weight_schedule, SFTSchedule)
