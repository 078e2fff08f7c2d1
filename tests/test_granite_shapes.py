"""The harness against Granite Speech 3.3 2B/8B shapes: the published configs (fixtures, see
tests/fixtures/README.md) fit our feature and prompt code, and a model with the 2B's widths and
vocabulary but one layer per stack runs a micro-batched GRPO step through `SpeechLM` on CPU."""

from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

from harness.config import GRPOConfig
from harness.models.features import N_MELS, log_mel, num_audio_tokens
from harness.models.shapes import granite_like_tokenizer, published_config
from harness.models.speech_lm import AUDIO_TOKEN, SpeechLM

FIXTURES = Path(__file__).parent / "fixtures"


def published(size: str, layers: int | None = None) -> GraniteSpeechConfig:
    return published_config(FIXTURES / f"granite-speech-3.3-{size}.config.json", layers)


@pytest.mark.parametrize("size", ["2b", "8b"])
def test_published_config_fits_the_harness(size):
    cfg = published(size)
    assert cfg.encoder_config.input_dim == 2 * N_MELS  # our log-mel stacks pairs of 80-bin frames
    assert cfg.projector_config.encoder_hidden_size == cfg.encoder_config.hidden_dim
    assert cfg.window_size % cfg.downsample_rate == 0
    assert num_audio_tokens(100, cfg.window_size, cfg.downsample_rate) == 21  # 2 s of audio
    assert cfg.audio_token_index < cfg.text_config.vocab_size
    assert cfg.has_lora_adapter and cfg.text_config.model_type == "granite"
    assert cfg.text_config.hidden_size == {"2b": 2048, "8b": 4096}[size]


@pytest.mark.slow
@pytest.mark.skipif(psutil.virtual_memory().available < 6 * 2**30, reason="needs ~3 GB free memory")
def test_two_b_widths_one_layer_deep_runs_a_grpo_update():
    from harness.models.loader import set_trainable
    from harness.config import ModelConfig
    from harness.train.grpo import micro_batched_update

    cfg = published("2b", layers=1)
    assert (cfg.encoder_config.num_layers, cfg.projector_config.num_hidden_layers,
            cfg.text_config.num_hidden_layers) == (1, 1, 1)
    torch.manual_seed(0)
    model = GraniteSpeechForConditionalGeneration(cfg).eval()
    assert model.lm_head.weight.shape == (49160, 2048)
    tok = granite_like_tokenizer(cfg.text_config.vocab_size, cfg.audio_token_index,
                                 "listen to the speech and translate it into german .")
    set_trainable(model, ModelConfig(trainable="projector+lora", lora_rank=64, lora_alpha=32))
    lm = SpeechLM(model, tok)
    lm.micro_batch_size = 2
    rng = np.random.RandomState(0)
    feats = [log_mel(rng.randn(n).astype(np.float32) * 0.1) for n in (32000, 24000)]
    prompts = lm.prepare([f"{AUDIO_TOKEN} listen to the speech and translate it into german ."] * 2, feats)
    assert (prompts.input_ids == cfg.audio_token_index).sum(1).tolist() == [21, 15]
    g = 3
    embeds = lm.embed_prompts(prompts)
    with torch.no_grad():
        comp = lm.sample(embeds.detach(), prompts.attention_mask, g, 4, generator=torch.Generator().manual_seed(0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    adv = torch.tensor([1.0, -1.0, 0.0, 0.5, -0.5, 0.0])
    loss, stats, logp, _, grad_norm = micro_batched_update(
        lm, opt, embeds, prompts.attention_mask, comp, None, adv, torch.zeros(2 * g, dtype=torch.bool), None,
        GRPOConfig(group_size=g, beta=0.0), 1.0, g, with_entropy=True, what="2B-shaped GRPO loss")
    assert torch.isfinite(logp).all() and np.isfinite(float(loss)) and grad_norm > 0
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or ".projector." in n for n in trained)
