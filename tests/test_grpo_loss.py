"""The GRPO / MP-GRPO objective against independent, loop-by-loop computations."""

import math

import pytest
import torch

from harness.config import GRPOConfig
from harness.train.grpo_loss import group_advantages, grpo_loss, k3_kl, uses_sft


def loss_cfg(**fields) -> GRPOConfig:
    """The loss's settings (GRPOConfig's fields) with beta 0, no reference model, unless given."""
    return GRPOConfig(**{"beta": 0.0, **fields})


def test_group_advantages_match_hand_computation():
    rewards = torch.tensor([[0.1, 0.5, 0.9, 0.5], [0.2, 0.2, 0.2, 0.2]])
    adv = group_advantages(rewards, "group", eps=1e-4)
    r = [0.1, 0.5, 0.9, 0.5]
    mean = sum(r) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)  # sample std
    assert adv[0].tolist() == pytest.approx([(x - mean) / (std + 1e-4) for x in r], rel=1e-5)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # zero-std group: no signal, no NaN


def test_batch_and_no_scaling():
    rewards = torch.tensor([[0.0, 1.0], [0.2, 0.4]])
    flat = [0.0, 1.0, 0.2, 0.4]
    m = sum(flat) / 4
    batch_std = math.sqrt(sum((x - m) ** 2 for x in flat) / 3)
    expected_centred = [-0.5, 0.5, -0.1, 0.1]
    assert group_advantages(rewards, "none").flatten().tolist() == pytest.approx(expected_centred)
    assert group_advantages(rewards, "batch", eps=0).flatten().tolist() == pytest.approx(
        [c / batch_std for c in expected_centred], rel=1e-5
    )
    with pytest.raises(ValueError, match="unknown advantage scale"):
        group_advantages(rewards, "global")


def test_k3_kl_values_and_sign():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -2.0, -0.1])
    expected = [math.exp(r - p) - (r - p) - 1 for p, r in zip(logp.tolist(), ref.tolist())]
    assert k3_kl(logp, ref).tolist() == pytest.approx(expected, rel=1e-6)
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def _loss_by_loops(logp, old, adv, mask, off, ref, beta, eps_lo, eps_hi, aggregation):
    """Independent scalar computation of the objective (Eqs. 2-5) with Python loops."""
    per_seq, total, count = [], 0.0, 0
    for i in range(len(logp)):
        seq_sum, seq_n = 0.0, 0
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            behaviour = 0.0 if off[i] else old[i][t]
            rho = math.exp(logp[i][t] - behaviour)
            if off[i]:
                s = rho * adv[i]
            else:
                s = min(rho * adv[i], min(max(rho, 1 - eps_lo), 1 + eps_hi) * adv[i])
            d = math.exp(ref[i][t] - logp[i][t]) - (ref[i][t] - logp[i][t]) - 1
            value = s - beta * d
            seq_sum, seq_n = seq_sum + value, seq_n + 1
        per_seq.append(seq_sum / max(seq_n, 1))
        total, count = total + seq_sum, count + seq_n
    return -(total / count) if aggregation == "dapo" else -(sum(per_seq) / len(per_seq))


@pytest.mark.parametrize("aggregation", ["dapo", "grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_matches_loops_with_padding_and_reference_sample(aggregation, beta):
    g = torch.Generator().manual_seed(0)
    n, length = 4, 5
    logp = -torch.rand(n, length, generator=g) * 2
    old = logp + torch.randn(n, length, generator=g) * 0.4  # ratios well outside [0.8, 1.2] too
    ref = logp + torch.randn(n, length, generator=g) * 0.3
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]])
    off = torch.tensor([False, False, False, True])
    settings = loss_cfg(beta=beta, epsilon=0.2, epsilon_high=0.28, loss_type=aggregation)
    loss, stats = grpo_loss(logp, old, adv, mask, settings, off, ref)
    expected = _loss_by_loops(
        logp.tolist(),
        old.tolist(),
        adv.tolist(),
        mask.tolist(),
        off.tolist(),
        ref.tolist(),
        beta,
        0.2,
        0.28,
        aggregation,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # Padding must not matter: garbage in padded positions changes nothing.
    noisy = logp.clone()
    noisy[mask == 0] = 123.0
    loss2, _ = grpo_loss(noisy, old, adv, mask, settings, off, ref)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)


def test_clipped_surrogate_gradient():
    # One on-policy sequence of 4 tokens, A > 0: tokens with rho > 1 + eps get zero gradient.
    old = torch.zeros(1, 4)
    log_rho = torch.tensor([[0.0, 0.1, 0.3, -0.5]])  # rho = 1, 1.105, 1.35 (clipped), 0.61
    logp = log_rho.clone().requires_grad_(True)
    adv = torch.tensor([2.0])
    loss, stats = grpo_loss(logp, old, adv, torch.ones(1, 4), loss_cfg(epsilon=0.2))
    loss.backward()
    rho = log_rho.exp()[0]
    # d(-mean_t rho_t A)/d logp_t = -rho_t A / 4 where not clipped, 0 where clipped
    expected = [-(rho[t].item() * 2.0) / 4 if t != 2 else 0.0 for t in range(4)]
    assert logp.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert stats.clip_high == pytest.approx(0.25)
    assert stats.clip_low == 0.0  # rho < 0.8 but A > 0: the lower clip is not active

    # A < 0: the token with rho < 1 - eps is clipped (zero gradient), the one with rho > 1 + eps is not.
    logp = log_rho.clone().requires_grad_(True)
    loss, stats = grpo_loss(logp, old, torch.tensor([-2.0]), torch.ones(1, 4), loss_cfg(epsilon=0.2))
    loss.backward()
    expected = [(rho[t].item() * 2.0) / 4 if t != 3 else 0.0 for t in range(4)]
    assert logp.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert stats.clip_low == pytest.approx(0.25)


def test_on_policy_gradient_is_advantage_times_score():
    # With pi_old = pi_theta (mu = 1), the gradient is -A * grad log pi / |tokens| per token.
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.8]])).requires_grad_(True)
    loss, stats = grpo_loss(logp, logp.detach(), torch.tensor([1.5]), torch.ones(1, 3), loss_cfg())
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-0.5] * 3)
    assert stats.ratio_mean == pytest.approx(1.0)


def test_mp_grpo_reference_sample_weight_and_gradient():
    # Off-policy ground truth: rho = pi_theta(token) (behaviour prob 1), never clipped.
    probs = torch.tensor([[0.9, 0.05, 0.5]])
    logp = probs.log().requires_grad_(True)
    old = torch.full((1, 3), -7.0)  # must be ignored for the reference row
    adv = torch.tensor([1.0])
    loss, stats = grpo_loss(logp, old, adv, torch.ones(1, 3), loss_cfg(epsilon=0.2), off_policy=torch.tensor([True]))
    assert loss.item() == pytest.approx(-(0.9 + 0.05 + 0.5) / 3, rel=1e-6)
    loss.backward()
    # d(-pi A / 3)/d log pi = -pi A / 3: low-probability reference tokens get little weight.
    assert logp.grad[0].tolist() == pytest.approx([-0.9 / 3, -0.05 / 3, -0.5 / 3], rel=1e-5)
    assert stats.clip_low == 0.0 and stats.clip_high == 0.0  # clip stats count on-policy tokens only


def test_beta_needs_reference_and_bad_loss_type():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(x, x, torch.ones(1), torch.ones(1, 2), loss_cfg(beta=0.1))
    with pytest.raises(ValueError, match="loss_type"):
        loss_cfg(loss_type="mean")


# ---------------------------------------------------------------------------------------------------
# The field's variants (issue 16): loss_type, sequence-level ratios (GSPO), LUFFY's shaping and
# unclipped on-policy rows, truncation masking, the padding guard, CHORD's SFT term and schedule.


def _variant_loss_by_loops(logp, old, adv, mask, off, ref, s: GRPOConfig):
    """Independent computation of Eqs. (2)-(5) with Python loops over 0-d tensors (so autograd gives
    the gradient of this computation, not of the vectorised one)."""
    n, length = logp.shape
    eps_hi = s.epsilon if s.epsilon_high is None else s.epsilon_high
    per_row = []  # (sum over the row's tokens of s - beta D, number of tokens)
    for i in range(n):
        tokens = [t for t in range(length) if mask[i][t]]
        behaviour = {t: (0.0 if off[i] else old[i, t].item()) for t in tokens}
        if s.importance_level == "sequence":
            mean_log = sum((logp[i, t] - behaviour[t] for t in tokens), torch.tensor(0.0, dtype=logp.dtype))
            mean_log = mean_log / max(len(tokens), 1)
            rhos = {t: torch.exp(mean_log) for t in tokens}
        else:
            rhos = {t: torch.exp(logp[i, t] - behaviour[t]) for t in tokens}
        total = torch.tensor(0.0, dtype=logp.dtype)
        for t in tokens:
            rho, a = rhos[t], float(adv[i])
            if off[i]:
                weight = rho if s.mp_shaping_gamma is None else rho / (rho + s.mp_shaping_gamma)
                value = weight * a
            elif s.remove_clip:
                value = rho * a
            else:
                value = torch.minimum(rho * a, torch.clamp(rho, 1 - s.epsilon, 1 + eps_hi) * a)
            if s.beta:
                d = ref[i, t].item() - logp[i, t]
                value = value - s.beta * (torch.exp(d) - d - 1)
            total = total + value
        per_row.append((total, len(tokens)))
    tokens_all = sum(k for _, k in per_row)
    if s.loss_type in ("dapo", "bnpo"):
        return -sum(v for v, _ in per_row) / tokens_all
    if s.loss_type == "dr_grpo":
        return -sum(v for v, _ in per_row) / (n * s.max_new_tokens)
    return -sum(v / max(k, 1) for v, k in per_row) / n


def _batch(seed=0):
    """Six rows (float64, so that sums in another order agree to ~1e-15), padding, two reference rows."""
    g = torch.Generator().manual_seed(seed)
    n, length = 6, 5
    logp = -torch.rand(n, length, generator=g, dtype=torch.float64) * 2
    old = logp + torch.randn(n, length, generator=g, dtype=torch.float64) * 0.3
    ref = logp + torch.randn(n, length, generator=g, dtype=torch.float64) * 0.3
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.3, 0.9], dtype=torch.float64)
    mask = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    )
    off = torch.tensor([False, False, True, False, False, True])
    return logp, old, adv, mask, off, ref


VARIANTS = [
    dict(loss_type="dapo"),
    dict(loss_type="bnpo"),
    dict(loss_type="grpo"),
    dict(loss_type="dr_grpo", max_new_tokens=7),
    dict(loss_type="grpo", importance_level="sequence"),
    dict(loss_type="dapo", importance_level="sequence"),
    dict(loss_type="dr_grpo", max_new_tokens=5, importance_level="sequence", beta=0.04),
    dict(loss_type="dapo", mp_grpo=True, mp_shaping_gamma=0.1),
    dict(loss_type="grpo", mp_grpo=True, mp_shaping_gamma=0.5, beta=0.04),
    dict(loss_type="dapo", remove_clip=True),
    dict(loss_type="bnpo", remove_clip=True, importance_level="sequence"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_variants_match_loops_in_value_and_gradient(variant):
    logp, old, adv, mask, off, ref = _batch()
    s = loss_cfg(epsilon=0.2, epsilon_high=0.28, **variant)
    mine = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(mine, old, adv, mask, s, off, ref)
    loss.backward()
    theirs = logp.clone().requires_grad_(True)
    expected = _variant_loss_by_loops(theirs, old, adv, mask.tolist(), off.tolist(), ref, s)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-15)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-12, atol=1e-15)
    assert (mine.grad[mask == 0] == 0).all()


def test_normalisers_by_hand():
    # Two rows, per-token loss l = -A (pi_old = pi_theta, no KL): row 0 has 2 tokens (A=1), row 1 has 4 (A=-0.25).
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    adv = torch.tensor([1.0, -0.25])
    token_sum = -(2 * 1.0 + 4 * -0.25)  # -1.0
    loss = {
        t: grpo_loss(logp, logp, adv, mask, loss_cfg(loss_type=t, max_new_tokens=10))[0].item()
        for t in ("dapo", "bnpo", "dr_grpo", "grpo")
    }
    assert loss["dapo"] == pytest.approx(token_sum / 6)  # tokens
    assert loss["bnpo"] == pytest.approx(token_sum / 6)  # one process: bnpo == dapo
    assert loss["dr_grpo"] == pytest.approx(token_sum / (2 * 10))  # rows x max_new_tokens
    assert loss["grpo"] == pytest.approx(-(1.0 + -0.25) / 2)  # mean of per-row means
    with pytest.raises(ValueError, match="max_new_tokens"):  # dr_grpo's constant: at least one token
        loss_cfg(loss_type="dr_grpo", max_new_tokens=0)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_chunk_weights_sum_chunks_to_the_full_batch_loss(variant):
    """micro_batched_update's decomposition: for every loss type, the weighted losses of row chunks
    (3 + 2 + 1 rows, one cutting through a group) add up to the full batch's loss, and so do their
    gradients."""
    from harness.train.grpo_loss import chunk_weight

    logp, old, adv, mask, off, ref = _batch(1)
    s = loss_cfg(epsilon=0.2, epsilon_high=0.28, mask_truncated=True, **variant)
    full = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(full, old, adv, mask, s, off, ref)
    loss.backward()
    chunked = logp.clone().requires_grad_(True)
    total = 0.0
    for r0, r1 in ((0, 3), (3, 5), (5, 6)):
        part, _ = grpo_loss(chunked[r0:r1], old[r0:r1], adv[r0:r1], mask[r0:r1], s, off[r0:r1], ref[r0:r1])
        part = part * chunk_weight(s, mask[r0:r1], mask)
        part.backward()
        total += part.item()
    assert total == pytest.approx(loss.item(), rel=1e-12, abs=1e-15)
    torch.testing.assert_close(chunked.grad, full.grad, rtol=1e-12, atol=1e-15)


def test_dapo_counts_every_process_tokens_bnpo_its_own():
    from harness.train.grpo_loss import chunk_weight

    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # this process: 5 tokens; mean over processes: 8
    dapo, bnpo = loss_cfg(loss_type="dapo"), loss_cfg(loss_type="bnpo")
    assert chunk_weight(dapo, mask[:1], mask, tokens_per_process=8.0) == pytest.approx(2 / 8)
    assert chunk_weight(bnpo, mask[:1], mask, tokens_per_process=8.0) == pytest.approx(2 / 5)
    assert chunk_weight(dapo, mask, mask, tokens_per_process=5.0) == 1.0  # one process: the plain token mean
    grpo = loss_cfg(loss_type="grpo")
    assert chunk_weight(grpo, mask[:1], mask) == pytest.approx(1 / 2)


def test_sequence_ratio_is_one_clipped_value_per_sequence():
    # GSPO: log-ratios 0.1, 0.3, -0.1 -> s = exp(0.1) on all three tokens; gradient -s A / 3 per token.
    old = torch.zeros(1, 3)
    logp = torch.tensor([[0.1, 0.3, -0.1]]).requires_grad_(True)
    s = loss_cfg(epsilon=0.2, loss_type="grpo", importance_level="sequence")
    loss, stats = grpo_loss(logp, old, torch.tensor([2.0]), torch.ones(1, 3), s)
    seq = math.exp(0.1)
    assert loss.item() == pytest.approx(-seq * 2.0, rel=1e-6)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-seq * 2.0 / 3] * 3, rel=1e-6)
    assert stats.ratio_mean == pytest.approx(seq) and stats.clip_high == 0.0
    # s = exp(0.3) > 1.2 with A > 0: the whole sequence is clipped (no gradient), counted once
    logp = torch.tensor([[0.3, 0.5, 0.1], [0.0, 0.0, 0.0]]).requires_grad_(True)
    loss, stats = grpo_loss(logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.tensor([[1, 1, 1], [1, 0, 0]]), s)
    loss.backward()
    assert logp.grad[0].abs().sum() == 0
    assert stats.clip_high == pytest.approx(0.5)  # one of two sequences (token level would say 3 of 4)


def test_luffy_shaping_of_the_reference_row():
    # f(p) = p / (p + gamma): loss -mean_t f(p_t) A, gradient d/dlog p = -gamma p / (p + gamma)^2 A / |o|
    gamma, probs = 0.1, [0.9, 0.05, 0.5]
    logp = torch.tensor([probs]).log().requires_grad_(True)
    s = loss_cfg(mp_grpo=True, mp_shaping_gamma=gamma)
    loss, stats = grpo_loss(
        logp, torch.full((1, 3), -7.0), torch.tensor([1.0]), torch.ones(1, 3), s, off_policy=torch.tensor([True])
    )
    assert loss.item() == pytest.approx(-sum(p / (p + gamma) for p in probs) / 3, rel=1e-6)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-gamma * p / (p + gamma) ** 2 / 3 for p in probs], rel=1e-5)
    assert stats.off_ratio_mean == pytest.approx(sum(probs) / 3)
    assert stats.off_weight_mean == pytest.approx(sum(p / (p + gamma) for p in probs) / 3)


def test_remove_clip_keeps_the_gradient_of_clipped_tokens():
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.3, 0.0]]).requires_grad_(True)  # rho = 1.35 (beyond 1 + eps), 1
    loss, stats = grpo_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), loss_cfg(remove_clip=True))
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-math.exp(0.3) / 2, -0.5], rel=1e-6)
    assert stats.clip_high == 0.0


def test_mask_truncated_removes_the_rows_tokens_only():
    from harness.train.grpo_loss import loss_mask

    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]])
    truncated = torch.tensor([True, False, True])
    assert loss_mask(mask, truncated, loss_cfg()).tolist() == mask.tolist()
    masked = loss_mask(mask, truncated, loss_cfg(mask_truncated=True))
    assert masked.tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 0]]
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.4, 0.0], [-0.1, -0.2, -0.3]])
    adv = torch.tensor([1.0, -2.0, 0.5])
    # dapo: only row 1's two tokens (-A each); grpo: row 1's mean over the N = 3 rows (the masked rows count)
    dapo, _ = grpo_loss(logp, logp, adv, masked, loss_cfg(mask_truncated=True))
    assert dapo.item() == pytest.approx(2.0)  # -(A = -2) on each of the two tokens, / 2
    grpo, _ = grpo_loss(logp, logp, adv, masked, loss_cfg(loss_type="grpo", mask_truncated=True))
    assert grpo.item() == pytest.approx(2.0 / 3)


@pytest.mark.parametrize("garbage", [float("inf"), float("-inf"), float("nan"), 1e4])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_padding_garbage_gives_a_finite_loss_and_gradient(garbage, level):
    """A padded position whose log-ratio overflows used to give a NaN gradient through torch.where."""
    logp, old, adv, mask, off, ref = _batch(2)
    s = loss_cfg(beta=0.04, epsilon_high=0.28, importance_level=level)
    clean = logp.clone().requires_grad_(True)
    expected, _ = grpo_loss(clean, old, adv, mask, s, off, ref)
    expected.backward()
    pad = mask == 0
    # the garbage sits in the differentiated tensor itself (as in a log-prob pass's output), and in
    # pi_old and pi_ref, so the log-ratios there overflow either way
    dirty = logp.masked_fill(pad, garbage).requires_grad_(True)
    loss, stats = grpo_loss(dirty, old.masked_fill(pad, -garbage), adv, mask, s, off, ref.masked_fill(pad, garbage))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert torch.isfinite(dirty.grad).all()  # was NaN at padding (0 * inf in exp's backward)
    torch.testing.assert_close(dirty.grad, clean.grad, rtol=0, atol=0)
    assert math.isfinite(stats.kl) and math.isfinite(stats.ratio_mean)


def test_sft_term_by_hand():
    from harness.train.grpo_loss import sft_loss

    probs = [[0.5, 0.25, 0.9], [0.8, 0.1, 1.0]]
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    logp = torch.tensor(probs).log().requires_grad_(True)
    loss = sft_loss(logp, mask, loss_cfg())
    tokens = [(i, t) for i in range(2) for t in range(3) if mask[i][t]]
    assert loss.item() == pytest.approx(-sum(math.log(probs[i][t]) for i, t in tokens) / 5, rel=1e-6)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 5] * 5 + [0.0])
    # CHORD-phi: tokens weighted by the detached p (1 - p)
    logp = torch.tensor(probs).log().requires_grad_(True)
    loss = sft_loss(logp, mask, loss_cfg(sft_phi=True))
    phi = {(i, t): probs[i][t] * (1 - probs[i][t]) for i, t in tokens}
    assert loss.item() == pytest.approx(-sum(phi[k] * math.log(probs[k[0]][k[1]]) for k in tokens) / 5, rel=1e-6)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx(
        [-phi[0, t] / 5 for t in range(3)] + [-phi[1, 0] / 5, -phi[1, 1] / 5, 0.0]
    )


def test_sft_weight_schedules():
    from harness.train.grpo_loss import sft_weight

    const = loss_cfg(sft_weight=0.3)
    assert [sft_weight(const, k, 5) for k in (1, 3, 5)] == [0.3, 0.3, 0.3] and uses_sft(const)
    lin = loss_cfg(sft_weight=0.4, sft_weight_final=0.0, sft_weight_schedule="linear_decay")
    assert [sft_weight(lin, k, 5) for k in range(1, 6)] == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
    cos = loss_cfg(sft_weight=0.4, sft_weight_final=0.1, sft_weight_schedule="cosine_decay")
    assert [sft_weight(cos, k, 3) for k in (1, 2, 3)] == pytest.approx([0.4, 0.25, 0.1])
    assert sft_weight(cos, 2, 5) == pytest.approx(0.1 + 0.3 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert not uses_sft(loss_cfg())
    assert uses_sft(loss_cfg(sft_weight=0.0, sft_weight_final=0.2, sft_weight_schedule="linear_decay"))
