"""The `tiny` preset: a random-initialised Granite Speech model built from config, for CPU.

Same classes as Granite Speech 3.3 2B/8B (conformer encoder -> windowed Q-Former projector ->
Granite decoder), shrunk to widths of 64-128 and a byte-level BPE vocabulary trained offline on
the text the model will see. `harness.config.TinySpec` is the whole recipe; its hash names the
cached base model.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GraniteConfig,
    GraniteForCausalLM,
    GraniteSpeechConfig,
    GraniteSpeechForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from harness.config import TinySpec
from harness.vocabulary import AUDIO_TOKEN

__all__ = ["SPECIAL_TOKENS", "build_tiny", "build_tiny_text", "text_config", "train_tokenizer"]

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", AUDIO_TOKEN]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained in milliseconds on the corpus: no unknown tokens, short sequences."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        extra_special_tokens={"audio_token": AUDIO_TOKEN},
    )


def build_tiny(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> GraniteSpeechForConditionalGeneration:
    """Random-initialised Granite Speech model of the spec's sizes, matched to the tokenizer."""
    config = GraniteSpeechConfig(
        encoder_config=dict(
            input_dim=160,
            num_layers=spec.encoder_layers,
            hidden_dim=spec.encoder_hidden,
            num_heads=spec.encoder_heads,
            feedforward_mult=4,
            output_dim=42,
            context_size=200,
            max_pos_emb=512,
            dropout=0.0,
            conv_kernel_size=15,
            conv_expansion_factor=2,
        ),
        projector_config=dict(
            model_type="blip_2_qformer",
            hidden_size=spec.projector_hidden,
            num_hidden_layers=spec.projector_layers,
            num_attention_heads=4,
            intermediate_size=4 * spec.projector_hidden,
            encoder_hidden_size=spec.encoder_hidden,
            cross_attention_frequency=1,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            max_position_embeddings=2048,
        ),
        text_config=dict(
            model_type="granite", **text_config(tokenizer, spec.text_hidden, spec.text_layers, spec.text_heads)
        ),
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        has_lora_adapter=False,
        downsample_rate=5,
        window_size=15,
    )
    return GraniteSpeechForConditionalGeneration(config)


def text_config(tokenizer: PreTrainedTokenizerFast, hidden: int, layers: int, heads: int) -> dict:
    """The Granite decoder's settings, shared by the speech model and the text-only LM."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        attention_dropout=0.0,
        embedding_multiplier=1.0,
        logits_scaling=1.0,
        residual_multiplier=1.0,
        attention_multiplier=1.0 / (hidden // heads) ** 0.5,
    )


def build_tiny_text(
    tokenizer: PreTrainedTokenizerFast, hidden: int = 64, layers: int = 2, heads: int = 4
) -> GraniteForCausalLM:
    """A random-initialised text-only Granite causal LM with the same tokenizer (benchmarks, tests)."""
    return GraniteForCausalLM(GraniteConfig(**text_config(tokenizer, hidden, layers, heads)))
