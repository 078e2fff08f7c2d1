"""The lean rollout / log-prob path against transformers' own Granite Speech forward pass."""

import numpy as np
import pytest
import torch
from fakes import make_prompts

from harness.models.batches import completions_from_targets
from harness.models.features import log_mel, num_audio_tokens
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import TinySpec, build_tiny, train_tokenizer


@pytest.fixture(scope="module")
def lm():
    tok = train_tokenizer(["Anna lives in Berlin.", "Anna wohnt in Berlin.", "listen to the speech"] * 5, 300)
    torch.manual_seed(0)
    return SpeechLM(build_tiny(TinySpec(), tok), tok)


def test_audio_token_count_matches_granite_formula(lm):
    # ceil(((samples // 160 + 1) // 2) / 15) * 3: a 2 s clip gives 21 audio tokens.
    assert num_audio_tokens((32000 // 160 + 1) // 2) == 21
    prompts = make_prompts(lm)
    n_audio = (prompts.input_ids == lm.audio_token_id).sum(1).tolist()
    assert n_audio == [21, 30, 15]
    assert prompts.features_mask.sum(1).tolist() == n_audio


def _transformers_logits(lm, prompts, b, ids, mask):
    """transformers' own forward for prompt b's rows: its clip alone (no padding), input_ids with audio."""
    rows = ids.shape[0]
    n, audio = prompts.frames[b], int(prompts.features_mask[b].sum())
    return lm.model(
        input_ids=ids,
        input_features=prompts.features[b : b + 1, :n].expand(rows, -1, -1),
        input_features_mask=prompts.features_mask[b : b + 1, :audio].expand(rows, -1),
        attention_mask=mask,
        position_ids=(mask.cumsum(1) - 1).clamp(min=0),
    ).logits


def test_logprobs_equal_transformers_forward(lm):
    prompts = make_prompts(lm)
    lp = prompts.input_ids.shape[1]
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        sampled = lm.sample(embeds, prompts.attention_mask, 2, 12, generator=torch.Generator().manual_seed(1))
        logp, _ = lm.completion_logprobs(embeds, prompts.attention_mask, sampled)
        # Independent: transformers' forward with input_ids + input_features on the full sequences.
        ids = torch.cat([prompts.input_ids.repeat_interleave(2, 0), sampled.ids], 1)
        mask = torch.cat([prompts.attention_mask.repeat_interleave(2, 0), sampled.mask], 1)
        logits = torch.cat(
            [_transformers_logits(lm, prompts, b, ids[2 * b : 2 * b + 2], mask[2 * b : 2 * b + 2]) for b in range(3)]
        )
        ref = logits[:, lp - 1 : -1].log_softmax(-1).gather(-1, sampled.ids[..., None]).squeeze(-1)
    valid = sampled.mask.bool()
    assert torch.allclose(logp[valid], ref[valid], atol=1e-4)


def test_a_clips_embedding_does_not_depend_on_its_batch(lm):
    """Each clip is encoded alone: its prompt embedding in a batch of clips of other lengths equals its
    embedding alone. (transformers' batched encoder lets padding reach real frames: checked too.)"""
    rng = np.random.RandomState(0)
    feats = [log_mel(rng.randn(n).astype(np.float32) * 0.1) for n in (32000, 48000, 24000)]
    text = "<|audio|> listen to the speech and translate it into German."
    batch = lm.prepare([text] * 3, feats)
    with torch.no_grad():
        together = lm.embed_prompts(batch)
        for b, feat in enumerate(feats):
            alone = lm.embed_prompts(lm.prepare([text], [feat]))
            torch.testing.assert_close(together[b, -alone.shape[1] :], alone[0], atol=1e-6, rtol=1e-6)
        core = lm.model.model
        padded = core.encoder(batch.features).last_hidden_state  # transformers' batched call
        alone = core.encoder(batch.features[2:3, : batch.frames[2]]).last_hidden_state
    assert (padded[2, : batch.frames[2]] - alone[0]).abs().max() > 1e-4  # the leak the design avoids


def test_greedy_sampling_is_argmax_and_masks_after_eos(lm):
    prompts = make_prompts(lm)
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        greedy = lm.sample(embeds, prompts.attention_mask, 1, 10, greedy=True)
        ids = torch.cat([prompts.input_ids, greedy.ids], 1)
        mask = torch.cat([prompts.attention_mask, greedy.mask], 1)
        logits = torch.cat([_transformers_logits(lm, prompts, b, ids[b : b + 1], mask[b : b + 1]) for b in range(3)])
    argmax = logits[:, prompts.input_ids.shape[1] - 1 : -1]
    argmax[..., lm.suppress_ids] = float("-inf")
    valid = greedy.mask.bool()
    assert torch.equal(argmax.argmax(-1)[valid], greedy.ids[valid])
    for row, row_mask, trunc in zip(greedy.ids, greedy.mask, greedy.truncated):
        eos = (row == lm.eos_id).nonzero()
        if len(eos):  # mask is 1 up to and including the first EOS, 0 after
            assert row_mask[: eos[0] + 1].all() and not row_mask[eos[0] + 1 :].any() and not trunc
        else:
            assert row_mask.all() and trunc


def test_seeded_sampling_is_reproducible_and_never_emits_suppressed_tokens(lm):
    prompts = make_prompts(lm)
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        a = lm.sample(embeds, prompts.attention_mask, 4, 16, top_p=0.9, generator=torch.Generator().manual_seed(3))
        b = lm.sample(embeds, prompts.attention_mask, 4, 16, top_p=0.9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.ids, b.ids)
    assert a.ids.shape[0] == 12
    for token in lm.suppress_ids:
        assert not (a.ids[a.mask.bool()] == token).any()


def test_targets_are_eos_terminated(lm):
    targets = completions_from_targets(lm.tokenize_targets(["Anna wohnt in Berlin.", "Ja."]), lm.pad_id, "cpu")
    assert targets.ids[0, targets.mask[0].sum() - 1] == lm.eos_id
    assert targets.ids[1, targets.mask[1].sum() - 1] == lm.eos_id
    assert lm.decode(targets) == ["Anna wohnt in Berlin.", "Ja."]


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_grpo_logprobs_are_of_the_distribution_that_sampled(lm, temperature):
    """The GRPO passes' log pi (sampler_temperature=T) is log_softmax(logits / T) with the sampler's
    suppressed ids at -inf, from transformers' own forward; the entropy is that distribution's. At
    T = 1 the only change from the model's own log-probs is the suppressed ids' mass."""
    prompts = make_prompts(lm)
    lp = prompts.input_ids.shape[1]
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        sampled = lm.sample(
            embeds, prompts.attention_mask, 2, 12, temperature=temperature, generator=torch.Generator().manual_seed(2)
        )
        logp, entropy = lm.completion_logprobs(
            embeds, prompts.attention_mask, sampled, with_entropy=True, sampler_temperature=temperature
        )
        own, _ = lm.completion_logprobs(embeds, prompts.attention_mask, sampled)
        ids = torch.cat([prompts.input_ids.repeat_interleave(2, 0), sampled.ids], 1)
        mask = torch.cat([prompts.attention_mask.repeat_interleave(2, 0), sampled.mask], 1)
        logits = torch.cat(
            [_transformers_logits(lm, prompts, b, ids[2 * b : 2 * b + 2], mask[2 * b : 2 * b + 2]) for b in range(3)]
        )[:, lp - 1 : -1].float()
    assert lm.suppress_ids  # pad, bos and the audio token
    masked = logits.clone()
    masked[..., lm.suppress_ids] = float("-inf")
    dist = (masked / temperature).log_softmax(-1)
    expected = dist.gather(-1, sampled.ids[..., None]).squeeze(-1)
    probs = dist.exp()
    expected_entropy = -(probs * dist.nan_to_num(neginf=0.0)).sum(-1)
    valid = sampled.mask.bool()
    torch.testing.assert_close(logp[valid], expected[valid], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(entropy[valid], expected_entropy[valid], atol=1e-4, rtol=1e-5)
    assert (logp[~valid] == 0).all() and torch.isfinite(entropy).all()
    own_expected = logits.log_softmax(-1).gather(-1, sampled.ids[..., None]).squeeze(-1)
    torch.testing.assert_close(own[valid], own_expected[valid], atol=1e-4, rtol=1e-5)  # SFT / NLL: unchanged
    if temperature == 1.0:  # log pi = own log-prob - log(mass of the tokens the sampler can draw)
        keep = torch.ones(logits.shape[-1], dtype=torch.bool)
        keep[lm.suppress_ids] = False
        drawable = logits.log_softmax(-1)[..., keep].logsumexp(-1)
        assert (drawable[valid] < 0).all()  # the suppressed ids had some mass
        torch.testing.assert_close(logp[valid], (own - drawable)[valid], atol=1e-5, rtol=1e-5)


def test_a_prefill_serves_the_reference_log_probs_then_greedy_decoding_unchanged(lm):
    """Evaluation runs each prompt once: the reference answers' log-probs continue the prefill and leave
    it as it was, so the greedy tokens after it are those of a fresh `sample`, bit for bit; the
    log-probs equal the single pass over prompt + answer to float rounding."""
    prompts = make_prompts(lm)
    answers = completions_from_targets(
        [lm.tokenize_targets(["Anna wohnt in Berlin."])[0], [lm.eos_id], lm.tokenize_targets(["Anna."])[0]],
        lm.pad_id,
        lm.device,
    )
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        start = lm.prefill(embeds, prompts.attention_mask)
        cached, _ = lm.completion_logprobs(embeds, prompts.attention_mask, answers, prefill=start)
        assert start.cache.get_seq_length() == prompts.input_ids.shape[1]  # cropped back to the prompts
        continued = lm.sample(embeds, prompts.attention_mask, 1, 12, greedy=True, prefill=start)
        fresh = lm.sample(embeds, prompts.attention_mask, 1, 12, greedy=True)
        single, _ = lm.completion_logprobs(embeds, prompts.attention_mask, answers)
    assert torch.equal(continued.ids, fresh.ids) and torch.equal(continued.mask, fresh.mask)
    assert torch.allclose(cached, single, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one completion per prompt"):
        lm.completion_logprobs(
            embeds, prompts.attention_mask, answers, prefill=lm.prefill(embeds, prompts.attention_mask)
        )
