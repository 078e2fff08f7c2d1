"""Granite Speech models of the released shapes without the released weights: the published
config (a `config.json` of the 3.3 2B/8B release) and a tokenizer with Granite's id layout
(0 = `<|end_of_text|>` as bos/eos/pad, `<|audio|>` at the config's `audio_token_index`, the whole
vocabulary present), for shape tests and GPU benchmarks of random-initialised models."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import GraniteSpeechConfig, PreTrainedTokenizerFast

from harness.models.speech_lm import AUDIO_TOKEN

__all__ = ["granite_like_tokenizer", "published_config"]


def published_config(path: str | Path, layers: int | None = None) -> GraniteSpeechConfig:
    """The config at `path`; `layers` cuts every stack (encoder, projector, decoder) to that depth."""
    cfg = GraniteSpeechConfig.from_dict(json.loads(Path(path).read_text()))
    if layers:
        cfg.encoder_config.num_layers = min(cfg.encoder_config.num_layers, layers)
        cfg.projector_config.num_hidden_layers = min(cfg.projector_config.num_hidden_layers, layers)
        cfg.text_config.num_hidden_layers = layers
    return cfg


def granite_like_tokenizer(vocab_size: int, audio_id: int, words: str) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over `vocab_size` ids; `words` (space separated) get ids from 100 on."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {i: f"<w{i}>" for i in range(vocab_size)}
    vocab[0], vocab[1], vocab[audio_id] = "<|end_of_text|>", "<unk>", AUDIO_TOKEN
    for i, w in enumerate(words.split()):
        vocab[100 + i] = w
    tok = Tokenizer(models.WordLevel({t: i for i, t in vocab.items()}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<|end_of_text|>", AUDIO_TOKEN])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|end_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
        unk_token="<unk>",
    )
