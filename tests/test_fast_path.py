"""The fast rollout / log-prob path against the plain path, on a speech model and a text-only LM.

Plain path = what a straightforward implementation does: transformers' `generate` with
`num_return_sequences=G` (every sample prefills its own prompt and, for speech, re-encodes its
audio), and one forward pass per completion over its own copy of the prompt (`PerSampleLM`).
Fast path = `SpeechLM`: audio encoded and prompt prefilled once per prompt, KV cache repeated G
times, in sampling and in the log-prob passes. Under a fixed seed they must draw the same tokens,
and give the same log-probs, gradients and GRPO updates up to float rounding.
"""

import pytest
import torch
from fakes import make_prompts

from harness.config import GRPOConfig
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import TinySpec, build_tiny, build_tiny_text, train_tokenizer
from harness.rewards import parse_reward
from harness.train.grpo import grpo_step
from harness.train.learner import Learner
from harness.yardsticks.plain import PerSampleLM

G = 4
TEXTS = ["Anna lives in Berlin.", "Anna wohnt in Berlin.", "listen to the speech", "Where does Anna live?"]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS * 5, 300)


def _speech(tok):
    torch.manual_seed(0)
    return SpeechLM(build_tiny(TinySpec(), tok).eval(), tok)


def _text(tok):
    torch.manual_seed(0)
    return SpeechLM(build_tiny_text(tok, hidden=64, layers=2).eval(), tok)


@pytest.mark.parametrize("kind", ["speech", "text"])
def test_sampler_draws_the_same_tokens_as_generate(tok, kind):
    lm = _speech(tok) if kind == "speech" else _text(tok)
    # Clips of one length: transformers' generate encodes the batch's audio in one padded call, which
    # lets padding reach the real frames; SpeechLM encodes each clip alone (test_speech_lm.py).
    prompts = make_prompts(lm, lengths=(32000, 32000, 32000))
    audio = (
        {}
        if prompts.features is None
        else dict(input_features=prompts.features, input_features_mask=prompts.features_mask)
    )
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            fast = lm.sample(lm.embed_prompts(prompts), prompts.attention_mask, G, 16)
        torch.manual_seed(seed)
        out = lm.model.generate(
            input_ids=prompts.input_ids,
            attention_mask=prompts.attention_mask,
            **audio,
            do_sample=True,
            num_return_sequences=G,
            max_new_tokens=16,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            suppress_tokens=lm.suppress_ids,
            pad_token_id=lm.pad_id,
            eos_token_id=lm.eos_id,
            bos_token_id=None,
        )
        plain = out[:, prompts.input_ids.shape[1] :]
        assert fast.ids.shape == plain.shape
        assert torch.equal(fast.ids, plain), f"seed {seed}"


@pytest.mark.parametrize("kind", ["speech", "text"])
def test_logprobs_and_gradients_equal_per_sample_pass(tok, kind):
    lm = _speech(tok) if kind == "speech" else _text(tok)
    plain = PerSampleLM(lm.model, tok, group_size=G)
    prompts = make_prompts(lm)
    with torch.no_grad():
        completions = lm.sample(
            lm.embed_prompts(prompts), prompts.attention_mask, G, 12, generator=torch.Generator().manual_seed(0)
        )
    weights = torch.randn(completions.ids.shape, generator=torch.Generator().manual_seed(1))

    def logp_and_grads(which):
        lm.model.zero_grad(set_to_none=True)
        logp, entropy = which.completion_logprobs(
            which.embed_prompts(prompts), prompts.attention_mask, completions, with_entropy=True
        )
        (logp * weights * completions.mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in lm.model.named_parameters() if p.grad is not None}
        return logp.detach(), entropy, grads

    fast_logp, fast_entropy, fast_grads = logp_and_grads(lm)
    plain_logp, plain_entropy, plain_grads = logp_and_grads(plain)
    valid = completions.mask.bool()
    torch.testing.assert_close(fast_logp[valid], plain_logp[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_entropy[valid], plain_entropy[valid], atol=1e-5, rtol=1e-5)
    assert fast_grads.keys() == plain_grads.keys() and len(fast_grads) > 10
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("kind", ["speech", "text"])
def test_grpo_step_fast_path_equals_plain_path(tok, kind):
    """Two full GRPO steps (beta > 0, a reference model) from the same weights and seed: same samples,
    same rewards, same loss and KL, same updated weights. The update is plain SGD: Adam divides by the
    root of the second moment, which turns a rounding-level gradient difference into a full lr-sized
    step wherever the gradient is near 0 (so a weight comparison after Adam depends on the CPU's float
    reduction order); under SGD a weight differs by lr times the gradient's rounding difference."""
    cfg = GRPOConfig(group_size=G, beta=0.04, max_new_tokens=10, reward="rouge1")
    runs = []
    for plain in (False, True):
        lm = _speech(tok) if kind == "speech" else _text(tok)
        ref = _speech(tok) if kind == "speech" else _text(tok)
        ref.model.requires_grad_(False)
        if plain:
            lm = PerSampleLM(lm.model, tok, group_size=G)
            ref = PerSampleLM(ref.model, tok, group_size=G)
        optimizer = torch.optim.SGD([p for p in lm.model.parameters() if p.requires_grad], lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        learner = Learner(lm, optimizer, scheduler, 1.0, ref, torch.Generator().manual_seed(0))
        prompts, answers = make_prompts(lm), ["Anna lives in Berlin.", "in Berlin", "Anna wohnt in Berlin."]
        steps = [grpo_step(learner, prompts, answers, parse_reward(cfg.reward), cfg) for _ in range(2)]
        runs.append((steps, {n: p.detach().clone() for n, p in lm.model.named_parameters()}))
    (fast, fast_w), (plain, plain_w) = runs
    for a, b in zip(fast, plain):
        assert [s["completion"] for s in a.samples] == [s["completion"] for s in b.samples]
        a, b = a.metrics, b.metrics
        assert a["reward"] == b["reward"] and a["completion_len_mean"] == b["completion_len_mean"]
        for key in ("loss", "kl", "entropy", "grad_norm", "ratio_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    for name in fast_w:
        torch.testing.assert_close(fast_w[name], plain_w[name], atol=1e-5, rtol=1e-4, msg=name)
