"""One loader for speech-aware LMs: the `tiny` preset or a real Granite Speech checkpoint.

Trainable-parameter policies:
- `all`: every weight is trained;
- `projector+llm`: everything but the audio encoder (the tiny preset's default): Granite Speech keeps
  its CTC-trained encoder frozen, and so does fine-tuning of the tiny base, whose decoder was trained
  to read the frozen encoder's features (updating the encoder too made validation BLEU swing by
  +-5 between evaluations);
- `projector+lora`: the public Granite Speech fine-tuning recipe: the Q-Former projector and a LoRA
  adapter on the decoder's attention are trained, the rest is frozen. A checkpoint that ships its
  own adapter (Granite Speech 3.3 does) trains that adapter; otherwise a new one is added.

`model.encoder_dtype: float32` keeps the acoustic encoder and the projector in fp32 while the LM
runs in bf16 (`set_encoder_dtype`).

A real checkpoint's bundled adapter is attached by `checkpoint.load_checkpoint`. The LoRA adapter
is switched on here and stays on: `SpeechLM` never calls `generate()`, whose
Granite Speech override is the only thing that toggles it, so every sampling and log-prob pass
runs with it (a real checkpoint's `forward()` alone would otherwise run without it).
"""

from __future__ import annotations

import copy
import functools
import os

import torch
from transformers import AutoTokenizer, GraniteSpeechForConditionalGeneration

from harness.config import ModelConfig
from harness.models.checkpoint import load_checkpoint
from harness.models.speech_lm import SpeechLM
from harness.models.tiny_base import BaseModelError, shipped_base

__all__ = ["default_device", "frozen_copy", "load_speech_lm", "set_encoder_dtype", "set_trainable"]


def default_device() -> torch.device:
    """cuda:LOCAL_RANK under torchrun / accelerate launch, cuda otherwise, else cpu."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))


def load_speech_lm(cfg: ModelConfig, device: torch.device | None = None, *, path: str | None = None) -> SpeechLM:
    """The trainable policy from ``path`` (`harness.train.base_model.starting_point` finds or builds the
    tiny base), by default the shipped tiny base or the checkpoint ``cfg.name`` names."""
    device = device or default_device()
    if path is None:
        path = cfg.name
        if cfg.name == "tiny":
            shipped = shipped_base(cfg.tiny)
            if shipped is None:
                raise BaseModelError(
                    f"no shipped base for TinySpec {cfg.tiny.digest()}: build it first "
                    "(harness.train.base_model.starting_point)"
                )
            path = str(shipped[0])
    if cfg.name == "tiny":
        model = GraniteSpeechForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:  # a real checkpoint: bf16 on GPU, its bundled LoRA adapter attached (checkpoint.py)
        model, tokenizer, _ = load_checkpoint(path, torch.bfloat16 if device.type == "cuda" else torch.float32)
    model.to(device)
    set_encoder_dtype(model, cfg.encoder_dtype)
    set_trainable(model, cfg)
    lm = SpeechLM(model, tokenizer, system_prompt=cfg.system_prompt if cfg.name != "tiny" else None)
    if cfg.gradient_checkpointing:
        lm.enable_gradient_checkpointing()
    return lm


def set_encoder_dtype(model: GraniteSpeechForConditionalGeneration, encoder_dtype: str) -> None:
    """`float32`: the encoder and projector weights become fp32 (a bf16 checkpoint's values exactly), the
    LM keeps its dtype. Two forward hooks cast at the boundaries: features enter the encoder in fp32,
    the projector's output leaves in the LM's dtype, so the LM sees one dtype. `auto`: unchanged."""
    if encoder_dtype == "auto":
        return
    core = model.model
    lm_dtype = core.language_model.get_input_embeddings().weight.dtype
    core.encoder.to(torch.float32).register_forward_pre_hook(functools.partial(_cast_inputs, dtype=torch.float32))
    core.projector.to(torch.float32).register_forward_hook(functools.partial(_cast_output, dtype=lm_dtype))


def _cast_inputs(module, args, dtype):
    return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _cast_output(module, args, output, dtype):
    return output.to(dtype)


def set_trainable(model: GraniteSpeechForConditionalGeneration, cfg: ModelConfig) -> None:
    if cfg.trainable in ("all", "projector+llm"):
        model.requires_grad_(True)
        if cfg.trainable == "projector+llm":
            model.model.encoder.requires_grad_(False)
        return
    model.requires_grad_(False)
    if getattr(model, "_harness_adapter", None):
        pass  # the checkpoint's own adapter, injected by checkpoint.attach_adapter: always active
    elif getattr(model, "_hf_peft_config_loaded", False):
        model.enable_adapters()  # an adapter loaded by transformers itself (peft >= 0.22)
    else:
        # peft's in-place injection (transformers' `add_adapter` needs peft >= 0.22, not released):
        # the LoRA layers replace the decoder's q/v projections and are always active.
        from peft import LoraConfig, inject_adapter_in_model

        inject_adapter_in_model(
            LoraConfig(
                r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
            ),
            model.model.language_model,
        )
    for name, param in model.named_parameters():
        if "lora_" in name or ".projector." in name:
            param.requires_grad_(True)


def frozen_copy(lm: SpeechLM) -> SpeechLM:
    """The reference policy for the KL term: the starting weights, frozen, adapter state included."""
    model = copy.deepcopy(lm.model).eval().requires_grad_(False)
    return SpeechLM(model, lm.tokenizer, lm.system_prompt)
