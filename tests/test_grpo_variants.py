"""The GRPO step's variants (issue 16) on a small speech model: every loss type's micro-batched update
equals one pass of the loss over independently computed log-probs, CHORD's SFT term adds its own
gradient, DAPO's dynamic sampling keeps the groups whose rewards differ and draws more prompts, the
rollout temperature reaches every GRPO pass; and a short trial runs dynamic sampling with a
decaying SFT term."""

import numpy as np
import pytest
import torch
from fakes import SMALL_SPEC, grads_of, make_learner, make_prompts

from harness.config import GRPOConfig, TrialConfig
from harness.eval.evaluate import reference_nll
from harness.models.batches import Completions, completions_from_targets, join_prompts
from harness.models.features import log_mel
from harness.models.loader import frozen_copy
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import build_tiny, train_tokenizer
from harness.train.grpo import grpo_step
from harness.train.grpo_loss import grpo_loss, loss_mask
from harness.train.grpo_rollout import dynamic_batch, rollout
from harness.train.grpo_update import Batch, micro_batched_update
from harness.vocabulary import STEP_GENERATED_TOKENS, STEP_TRAINED_TOKENS

SPEC = SMALL_SPEC
ANSWERS = ["die katze schläft", "wir gehen nach hause", "er liest ein buch", "sie singt"]
G = 4


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(ANSWERS * 5 + ["listen to the speech"], SPEC.vocab_size)


def _lm(tok) -> SpeechLM:
    torch.manual_seed(0)
    return SpeechLM(build_tiny(SPEC, tok).eval(), tok)


CLIPS, PROMPT = (12000, 16000), "<|audio|> listen to the speech"  # the test prompts: two clips


def _completions(lm, rows: int, length: int, seed: int) -> Completions:
    """Drawable tokens; rows 0, 3, 6, ... truncated (no EOS), the others EOS-terminated at various lengths."""
    g = torch.Generator().manual_seed(seed)
    drawable = torch.tensor([i for i in range(len(lm.tokenizer)) if i not in lm.suppress_ids and i != lm.eos_id])
    ids = drawable[torch.randint(len(drawable), (rows, length), generator=g)]
    mask = torch.ones(rows, length, dtype=torch.long)
    truncated = torch.tensor([i % 3 == 0 for i in range(rows)])
    for i in range(rows):
        if not truncated[i]:
            end = (2 * i) % length  # the EOS position
            ids[i, end] = lm.eos_id
            ids[i, end + 1 :] = lm.pad_id
            mask[i, end + 1 :] = 0
    return Completions(ids, mask, truncated)


VARIANTS = [
    dict(loss_type="dapo"),
    dict(loss_type="bnpo"),
    dict(loss_type="grpo"),
    dict(loss_type="dr_grpo"),
    dict(loss_type="grpo", importance_level="sequence"),
    dict(loss_type="dapo", mask_truncated=True),
    dict(loss_type="dr_grpo", mask_truncated=True, beta=0.05),
    dict(loss_type="bnpo", mp_grpo=True, mp_shaping_gamma=0.1, remove_clip=True),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_micro_batched_update_equals_one_pass_of_the_loss(tok, variant):
    """Rows in chunks of 3 (3 + 3 + 2, one chunk cutting a group) and all rows at once give the loss
    and the gradient of grpo_loss over log-probs computed independently at the rollout temperature."""
    lm = _lm(tok)
    prompts = make_prompts(lm, CLIPS, PROMPT)
    cfg = GRPOConfig(group_size=G, temperature=0.8, max_new_tokens=9, **variant)
    comp = _completions(lm, 2 * G, 9, seed=1)
    adv = torch.linspace(-1, 1.2, 2 * G)
    off = torch.tensor([cfg.mp_grpo and i % G == G - 1 for i in range(2 * G)])
    in_loss = loss_mask(comp.mask, comp.truncated, cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        base, _ = lm.completion_logprobs(
            lm.embed_prompts(prompts), prompts.attention_mask, comp, sampler_temperature=0.8
        )
    old = base + 0.3 * torch.randn(base.shape, generator=g)  # pi_old != pi_theta: ratios off 1, some clipped
    ref = base + 0.2 * torch.randn(base.shape, generator=g) if cfg.beta else None

    # independent: the model's log-probs of the tempered, suppressed distribution, one grpo_loss call
    lm.model.zero_grad(set_to_none=True)
    logits = lm.completion_logprobs(lm.embed_prompts(prompts), prompts.attention_mask, comp, sampler_temperature=0.8)[0]
    expected, _ = grpo_loss(logits, old, adv, in_loss, cfg, off, ref)
    expected.backward()
    expected_grads = grads_of(lm)
    assert expected_grads

    for rows in (0, 3):
        lm.model.zero_grad(set_to_none=True)
        batch = Batch(lm.embed_prompts(prompts), prompts.attention_mask, comp, adv, off, ref, G, 0.8, in_loss)
        update = micro_batched_update(make_learner(lm, rows), batch, cfg, old, with_entropy=False, what="test")
        assert update.loss == pytest.approx(expected.item(), rel=1e-5, abs=1e-7), rows
        got = grads_of(lm)
        assert got.keys() == expected_grads.keys()
        for name in got:
            torch.testing.assert_close(got[name], expected_grads[name], atol=1e-6, rtol=1e-4, msg=f"{rows} {name}")


@pytest.mark.parametrize("phi", [False, True])
def test_sft_term_adds_its_gradient(tok, phi):
    """CHORD: the update minimises (1 - mu) L_GRPO + mu L_SFT; L_SFT is the references' NLL at
    temperature 1 (reference_nll, the SFT step's loss), or its phi-weighted form."""
    lm = _lm(tok)
    prompts = make_prompts(lm, CLIPS, PROMPT)
    mu = 0.3
    cfg = GRPOConfig(group_size=G, beta=0.0, temperature=0.8, sft_weight=mu, sft_phi=phi)
    comp = _completions(lm, 2 * G, 7, seed=2)
    adv = torch.linspace(-1, 1, 2 * G)
    off = torch.zeros(2 * G, dtype=torch.bool)
    answers = ANSWERS[:2]
    targets = completions_from_targets(lm.tokenize_targets(answers), lm.pad_id, lm.device)

    lm.model.zero_grad(set_to_none=True)
    logp = lm.completion_logprobs(lm.embed_prompts(prompts), prompts.attention_mask, comp, sampler_temperature=0.8)[0]
    policy_loss, _ = grpo_loss(logp, logp.detach(), adv, comp.mask, cfg, off)
    if phi:  # -sum sg(p (1 - p)) log p / tokens, from the model's own log-probs
        own = lm.completion_logprobs(lm.embed_prompts(prompts), prompts.attention_mask, targets)[0]
        p = own.detach().exp()
        sft = -(p * (1 - p) * own * targets.mask).sum() / targets.mask.sum()
    else:
        sft, _ = reference_nll(lm, prompts, answers)
    ((1 - mu) * policy_loss + mu * sft).backward()
    expected = grads_of(lm)

    lm.model.zero_grad(set_to_none=True)
    batch = Batch(lm.embed_prompts(prompts), prompts.attention_mask, comp, adv, off, None, G, 0.8, None, targets, mu)
    update = micro_batched_update(make_learner(lm, rows=3), batch, cfg, None, with_entropy=False, what="test")
    assert update.grpo_loss == pytest.approx(policy_loss.item(), rel=1e-5, abs=1e-7)
    assert update.sft_nll == pytest.approx(sft.item(), rel=1e-5)
    assert update.loss == pytest.approx((1 - mu) * policy_loss.item() + mu * sft.item(), rel=1e-5)
    got = grads_of(lm)
    assert got.keys() == expected.keys()
    for name in got:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-4, msg=name)


class Scripted:
    """Reward 0.5 for every completion of a prompt whose answer starts with 'flat' (a group of equal
    rewards), otherwise a counter (rewards that differ within the group)."""

    spec = "scripted"

    def __init__(self):
        self.count = 0

    def __call__(self, hyps, refs):
        out = []
        for ref in refs:
            self.count += 1
            out.append(0.5 if ref.startswith("flat") else (self.count % 10) / 10)
        out = np.array(out)
        return out, {"scripted": out}


def _source(lm, batches: list[list[str]]):
    """draw_more over fixed batches of answers (prompts with clips of different lengths)."""
    queue = [
        (
            lm.prepare(
                ["<|audio|> listen to the speech"] * len(a),
                [
                    log_mel(np.random.RandomState(10 * k + i).randn(10000 + 3000 * i).astype(np.float32) * 0.1)
                    for i in range(len(a))
                ],
            ),
            a,
        )
        for k, a in enumerate(batches)
    ]
    return lambda: queue.pop(0)


def test_dynamic_sampling_keeps_differing_groups_and_draws_more(tok):
    lm = _lm(tok)
    cfg = GRPOConfig(group_size=3, beta=0.0, max_new_tokens=5, dynamic_sampling=True, dynamic_sampling_max_draws=3)
    learner = make_learner(lm, generator=torch.Generator().manual_seed(0))
    draw = _source(lm, [["flat 1", "keep 1", "flat 2"], ["keep 2", "flat 3", "keep 3"], ["keep 4"] * 3])
    prompts, answers = draw()
    with torch.no_grad():
        first = rollout(learner, prompts, answers, lm.embed_prompts(prompts), Scripted(), cfg)
    reward = Scripted()
    reward.count = first.totals.size
    train, drawn, metrics = dynamic_batch(learner, first, draw, reward, cfg)
    assert train.answers == ["keep 1", "keep 2", "keep 3"]  # the first B groups whose rewards differ
    assert [len(d) for d in drawn] == [3, 3]  # one extra batch was enough; "keep 4" never drawn
    assert metrics == {
        "dynamic/groups_drawn": 6.0,
        "dynamic/groups_kept": 3.0,
        "dynamic/draws": 1.0,
        "dynamic/batch_fill": 1.0,
    }
    second = drawn[1]
    assert train.texts == first.texts[3:6] + second.texts[0:3] + second.texts[6:9]
    assert train.totals.tolist() == [first.totals[1].tolist(), second.totals[0].tolist(), second.totals[2].tolist()]
    for row, (source, r) in enumerate([(first, 3), (second, 0), (second, 6)]):  # completions: same tokens
        for j in range(3):
            n = int(source.completions.mask[r + j].sum())
            assert torch.equal(train.completions.ids[3 * row + j, :n], source.completions.ids[r + j, :n])
            assert int(train.completions.mask[3 * row + j].sum()) == n
    # the joined prompts embed as each draw's own (left padding aside): the update sees the same prompts
    with torch.no_grad():
        joined = lm.embed_prompts(train.prompts)
        for row, (source, k) in enumerate([(first, 1), (second, 0), (second, 2)]):
            alone = lm.embed_prompts(source.prompts.take([k]))[0]
            width = int(source.prompts.attention_mask[k].sum())
            torch.testing.assert_close(joined[row, -width:], alone[-width:], atol=1e-6, rtol=1e-6)
            assert int(train.prompts.attention_mask[row].sum()) == width


def test_dynamic_sampling_short_and_empty_batches(tok):
    lm = _lm(tok)
    cfg = GRPOConfig(group_size=3, beta=0.0, max_new_tokens=5, dynamic_sampling=True, dynamic_sampling_max_draws=1)
    learner = make_learner(lm, generator=torch.Generator().manual_seed(0))
    draw = _source(lm, [["flat 1", "keep 1", "flat 2"], ["flat 3", "flat 4", "flat 5"]])
    prompts, answers = draw()
    result = grpo_step(learner, prompts, answers, Scripted(), cfg, draw_more=draw)
    m = result.metrics
    assert (m["dynamic/groups_drawn"], m["dynamic/groups_kept"], m["dynamic/draws"]) == (6, 1, 1)
    assert m["dynamic/batch_fill"] == pytest.approx(1 / 3)  # short: trained on the one group kept
    assert m["frac_zero_std_groups"] == pytest.approx(5 / 6)  # rollout metrics: every group drawn
    assert m[STEP_TRAINED_TOKENS] <= 3 * 5 and m[STEP_GENERATED_TOKENS] > m[STEP_TRAINED_TOKENS]
    # nothing differs anywhere: the first draw is trained on as it is (its advantages are all 0)
    draw = _source(lm, [["flat 1", "flat 2"], ["flat 3", "flat 4"]])
    prompts, answers = draw()
    m = grpo_step(learner, prompts, answers, Scripted(), cfg, draw_more=draw).metrics
    assert (m["dynamic/groups_kept"], m["dynamic/batch_fill"], m["dynamic/groups_drawn"]) == (0, 0, 4)
    with pytest.raises(ValueError, match="draw_more"):
        grpo_step(learner, prompts, answers, Scripted(), cfg)


def test_rollout_temperature_reaches_policy_and_reference_passes(tok):
    """At T = 0.7 the policy's first update and the KL reference (a frozen copy) read the same
    distribution: KL 0. (Had only one of them been tempered, the KL would be well above 0.)"""
    lm = _lm(tok)
    cfg = GRPOConfig(group_size=3, beta=0.04, temperature=0.7, max_new_tokens=6)
    learner = make_learner(lm, reference=frozen_copy(lm), generator=torch.Generator().manual_seed(0))
    prompts = make_prompts(lm, CLIPS, PROMPT)
    m = grpo_step(learner, prompts, ANSWERS[:2], Scripted(), cfg).metrics
    assert m["kl"] == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():  # the same completions at T = 1 against T = 0.7: a clearly nonzero KL
        embeds = lm.embed_prompts(prompts)
        comp = lm.sample(embeds, prompts.attention_mask, 3, 6, temperature=0.7, generator=torch.Generator())
        hot = lm.completion_logprobs(embeds, prompts.attention_mask, comp, sampler_temperature=0.7)[0]
        cold = lm.completion_logprobs(embeds, prompts.attention_mask, comp, sampler_temperature=1.0)[0]
    kl = torch.exp(cold - hot) - (cold - hot) - 1
    assert float(kl[comp.mask.bool()].mean()) > 1e-4  # (a near-uniform random model: small, not 0)


def test_joined_prompts_keep_text_only_batches(tok):
    from harness.models.tiny import build_tiny_text

    torch.manual_seed(0)
    lm = SpeechLM(build_tiny_text(tok, hidden=32, layers=1).eval(), tok)
    a, b = lm.prepare(["wir gehen", "sie"]), lm.prepare(["er liest ein buch nach hause"])
    joined = join_prompts([a, b.take([0])], lm.pad_id)
    assert joined.features is None and joined.input_ids.shape == (3, b.input_ids.shape[1])
    assert joined.attention_mask.sum(1).tolist() == a.attention_mask.sum(1).tolist() + b.attention_mask.sum(1).tolist()


@pytest.mark.slow
def test_trial_with_dynamic_sampling_and_a_decaying_sft_term():
    from harness.train.trial import run_trial

    cfg = TrialConfig.model_validate(
        {
            "task": "sqa",
            "method": "grpo",
            "data": {"train_size": 64, "validation_size": 16, "test_size": 16},
            "train": {"steps": 3, "batch_size": 4, "eval_every": 3},
            "grpo": {
                "reward": "rougeL",
                "group_size": 4,
                "beta": 0.0,
                "max_new_tokens": 12,
                "dynamic_sampling": True,
                "dynamic_sampling_max_draws": 2,
                "sft_weight": 0.5,
                "sft_weight_schedule": "linear_decay",
                "mask_truncated": True,
            },
            "eval": {"bertscore": False, "max_new_tokens": 12},
        }
    )
    logged = []
    result = run_trial(cfg, log=lambda m, s: logged.append((s, m)))
    steps = [m for _, m in logged if "reward" in m]
    assert len(steps) == 3
    assert [m["sft/weight"] for m in steps] == pytest.approx([0.5, 0.25, 0.0])
    assert all(m["sft/nll"] > 0 for m in steps[:2]) and "sft/nll" not in steps[2]
    for m in steps:
        assert m["dynamic/groups_drawn"] == 4 * (1 + m["dynamic/draws"]) and m["dynamic/draws"] <= 2
        assert 0 <= m["dynamic/groups_kept"] <= 4 and m["dynamic/batch_fill"] == m["dynamic/groups_kept"] / 4
        assert 0 <= m["truncated_masked_frac"] <= 1 and np.isfinite(m["loss"]) and np.isfinite(m["loss_grpo"])
    assert result.generated_tokens == sum(int(m[STEP_GENERATED_TOKENS]) for m in steps)
