"""The harness against Granite Speech 3.3 2B/8B shapes: the published configs (fixtures, see
tests/fixtures/README.md) hold the released values, fit our feature and prompt code, have the
released parameter counts (counted on the meta device, nothing allocated), and a model with the
2B's widths and vocabulary but one layer per stack runs a micro-batched GRPO step through
`SpeechLM` on CPU."""

from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

from harness.config import GRPOConfig
from harness.models.features import N_MELS, log_mel, num_audio_tokens
from harness.models.speech_lm import AUDIO_TOKEN, SpeechLM
from harness.yardsticks.shapes import granite_like_tokenizer, published_config

FIXTURES = Path(__file__).parent / "fixtures"

# The released values (hub revision 3.3.2) as IBM's foundation-model-stack (fms/models/granite_speech.py,
# variants 3.3-2b / 3.3-8b) and KerasFormers' port (kerasformers/models/granite_speech/config.py) state
# them; (2b, 8b) where they differ. Sources: tests/fixtures/README.md.
RELEASED = {
    "audio_token_index": 49159,
    "window_size": 15,
    "downsample_rate": 5,
    "has_lora_adapter": True,
    "encoder_config.input_dim": 160,
    "encoder_config.num_layers": 16,
    "encoder_config.hidden_dim": 1024,
    "encoder_config.output_dim": 256,
    "encoder_config.num_heads": 8,
    "encoder_config.dim_head": 128,
    "encoder_config.feedforward_mult": 4,
    "encoder_config.context_size": 200,
    "encoder_config.max_pos_emb": 512,
    "encoder_config.conv_kernel_size": 15,
    "encoder_config.conv_expansion_factor": 2,
    "projector_config.hidden_size": 1024,
    "projector_config.encoder_hidden_size": 1024,
    "projector_config.num_hidden_layers": 2,
    "projector_config.num_attention_heads": 16,
    "projector_config.intermediate_size": 4096,
    "projector_config.cross_attention_frequency": 1,
    "projector_config.layer_norm_eps": 1e-12,
    "text_config.vocab_size": 49160,
    "text_config.hidden_size": (2048, 4096),
    "text_config.intermediate_size": (8192, 12800),
    "text_config.num_hidden_layers": 40,
    "text_config.num_attention_heads": 32,
    "text_config.num_key_value_heads": 8,
    "text_config.rms_norm_eps": 1e-5,
    "text_config.rope_parameters.rope_theta": 10_000_000.0,
    "text_config.embedding_multiplier": 12.0,
    "text_config.residual_multiplier": 0.22,
    "text_config.attention_multiplier": (0.015625, 0.0078125),
    "text_config.logits_scaling": (8.0, 16.0),
    "text_config.tie_word_embeddings": True,
    "text_config.eos_token_id": 0,
    "text_config.pad_token_id": 0,
}
# Parameters of the released shapes (LM head tied to the embedding): total, encoder, projector. The
# encoder is 440 M with 16 layers (275 M with the first release's 10, which made the 2B 2.84 B).
PARAMETERS = {"2b": (3_009_219_840, 439_980_288, 35_697_664), "8b": (8_648_645_888, 439_980_288, 37_796_864)}


def published(size: str, layers: int | None = None) -> GraniteSpeechConfig:
    return published_config(FIXTURES / f"granite-speech-3.3-{size}.config.json", layers)


def _field(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("size", ["2b", "8b"])
def test_fixture_holds_the_released_values(size):
    cfg = published(size)
    wrong = {}
    for dotted, value in RELEASED.items():
        expected = value[("2b", "8b").index(size)] if isinstance(value, tuple) else value
        if _field(cfg, dotted) != expected:
            wrong[dotted] = (_field(cfg, dotted), expected)
    assert not wrong, f"fixture field: (has, released): {wrong}"


@pytest.mark.parametrize("size", ["2b", "8b"])
def test_released_shapes_have_the_released_parameter_counts(size):
    with torch.device("meta"):  # shapes only: no memory for 3 / 8.6 B parameters
        model = GraniteSpeechForConditionalGeneration(published(size))
    core = model.model
    counts = tuple(sum(p.numel() for p in m.parameters()) for m in (model, core.encoder, core.projector))
    assert counts == PARAMETERS[size]
    assert model.lm_head.weight is core.language_model.embed_tokens.weight  # tied: counted once


@pytest.mark.parametrize("size", ["2b", "8b"])
def test_published_config_fits_the_harness(size):
    cfg = published(size)
    assert cfg.encoder_config.input_dim == 2 * N_MELS  # our log-mel stacks pairs of 80-bin frames
    assert cfg.projector_config.encoder_hidden_size == cfg.encoder_config.hidden_dim
    assert cfg.window_size % cfg.downsample_rate == 0
    assert num_audio_tokens(100, cfg.window_size, cfg.downsample_rate) == 21  # 2 s of audio
    assert cfg.audio_token_index == cfg.text_config.vocab_size - 1  # <|audio|> is the last id of 49160
    assert cfg.has_lora_adapter and cfg.text_config.model_type == "granite"
    assert cfg.text_config.hidden_size == {"2b": 2048, "8b": 4096}[size]


@pytest.mark.slow
@pytest.mark.skipif(psutil.virtual_memory().available < 6 * 2**30, reason="needs ~3 GB free memory")
def test_two_b_widths_one_layer_deep_runs_a_grpo_update():
    from harness.config import ModelConfig
    from harness.models.loader import set_trainable
    from harness.train.grpo_update import Batch, micro_batched_update
    from harness.train.learner import Learner, MicroBatching

    cfg = published("2b", layers=1)
    assert (
        cfg.encoder_config.num_layers,
        cfg.projector_config.num_hidden_layers,
        cfg.text_config.num_hidden_layers,
    ) == (1, 1, 1)
    torch.manual_seed(0)
    model = GraniteSpeechForConditionalGeneration(cfg).eval()
    assert model.lm_head.weight.shape == (49160, 2048)
    tok = granite_like_tokenizer(
        cfg.text_config.vocab_size, cfg.audio_token_index, "listen to the speech and translate it into german ."
    )
    set_trainable(model, ModelConfig(trainable="projector+lora", lora_rank=64, lora_alpha=32))
    lm = SpeechLM(model, tok)
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
    learner = Learner(lm, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), 1.0, chunking=MicroBatching(2))
    batch = Batch(embeds, prompts.attention_mask, comp, adv, torch.zeros(2 * g, dtype=torch.bool), None, g)
    update = micro_batched_update(
        learner,
        batch,
        GRPOConfig(group_size=g, beta=0.0),
        None,
        with_entropy=True,
        what="2B-shaped GRPO loss",
    )
    assert torch.isfinite(update.logp).all() and np.isfinite(update.loss) and update.grad_norm > 0
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or ".projector." in n for n in trained)
