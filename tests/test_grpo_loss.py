"""The GRPO / MP-GRPO objective against independent, loop-by-loop computations."""

import math

import pytest
import torch

from harness.train.grpo_loss import LossSettings, group_advantages, grpo_loss, k3_kl


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
        [c / batch_std for c in expected_centred], rel=1e-5)
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
    settings = LossSettings(beta=beta, epsilon=0.2, epsilon_high=0.28, aggregation=aggregation)
    loss, stats = grpo_loss(logp, old, adv, mask, settings, off, ref)
    expected = _loss_by_loops(logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), off.tolist(),
                              ref.tolist(), beta, 0.2, 0.28, aggregation)
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
    loss, stats = grpo_loss(logp, old, adv, torch.ones(1, 4), LossSettings(epsilon=0.2))
    loss.backward()
    rho = log_rho.exp()[0]
    # d(-mean_t rho_t A)/d logp_t = -rho_t A / 4 where not clipped, 0 where clipped
    expected = [-(rho[t].item() * 2.0) / 4 if t != 2 else 0.0 for t in range(4)]
    assert logp.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert stats.clip_high == pytest.approx(0.25)
    assert stats.clip_low == 0.0  # rho < 0.8 but A > 0: the lower clip is not active

    # A < 0: the token with rho < 1 - eps is clipped (zero gradient), the one with rho > 1 + eps is not.
    logp = log_rho.clone().requires_grad_(True)
    loss, stats = grpo_loss(logp, old, torch.tensor([-2.0]), torch.ones(1, 4), LossSettings(epsilon=0.2))
    loss.backward()
    expected = [(rho[t].item() * 2.0) / 4 if t != 3 else 0.0 for t in range(4)]
    assert logp.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert stats.clip_low == pytest.approx(0.25)


def test_on_policy_gradient_is_advantage_times_score():
    # With pi_old = pi_theta (mu = 1), the gradient is -A * grad log pi / |tokens| per token.
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.8]])).requires_grad_(True)
    loss, stats = grpo_loss(logp, logp.detach(), torch.tensor([1.5]), torch.ones(1, 3), LossSettings())
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-0.5] * 3)
    assert stats.ratio_mean == pytest.approx(1.0)


def test_mp_grpo_reference_sample_weight_and_gradient():
    # Off-policy ground truth: rho = pi_theta(token) (behaviour prob 1), never clipped.
    probs = torch.tensor([[0.9, 0.05, 0.5]])
    logp = probs.log().requires_grad_(True)
    old = torch.full((1, 3), -7.0)  # must be ignored for the reference row
    adv = torch.tensor([1.0])
    loss, stats = grpo_loss(logp, old, adv, torch.ones(1, 3), LossSettings(epsilon=0.2), off_policy=torch.tensor([True]))
    assert loss.item() == pytest.approx(-(0.9 + 0.05 + 0.5) / 3, rel=1e-6)
    loss.backward()
    # d(-pi A / 3)/d log pi = -pi A / 3: low-probability reference tokens get little weight.
    assert logp.grad[0].tolist() == pytest.approx([-0.9 / 3, -0.05 / 3, -0.5 / 3], rel=1e-5)
    assert stats.clip_low == 0.0 and stats.clip_high == 0.0  # clip stats count on-policy tokens only


def test_beta_needs_reference_and_bad_aggregation():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(x, x, torch.ones(1), torch.ones(1, 2), LossSettings(beta=0.1))
    with pytest.raises(ValueError, match="aggregation"):
        grpo_loss(x, x, torch.ones(1), torch.ones(1, 2), LossSettings(aggregation="mean"))
