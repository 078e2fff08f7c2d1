"""GRPO steps on a random-initialised Granite Speech 3.3 model of the released shape, bf16 on a GPU.

The model is built from the released config (tests/fixtures/granite-speech-3.3-<size>.config.json,
see tests/fixtures/README.md: the 2B has 3.01 B parameters, its encoder 440 M) with a word-level
tokenizer of Granite's id layout; the projector and a LoRA adapter (r 64, alpha 32 on q/v, the
release's) are trained, a frozen copy is the KL reference, and `harness.train.grpo.grpo_step` runs
exactly as in a trial: B prompts of random audio x G samples of up to `--max-new-tokens` (a random
model rarely stops early: the worst case), BLEU reward, gradient checkpointing and micro-batches of
16 rows as in studies/paper_real. Per step: time and its phases (CUDA-synchronised), generated
tokens per second, peak GPU memory.

    python bench/grpo_granite_gpu.py                     # 2B, B=8, G=8, 200 new tokens, 10 s clips
    python bench/grpo_granite_gpu.py --size 8b --encoder-dtype float32
    python bench/grpo_granite_gpu.py --device cpu --layers 1 --max-new-tokens 4 --steps 1   # smoke test

`bench/gpu_check.py` uses the pieces below for its one-call GPU check.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's harness, not another installed copy

FIXTURES = ROOT / "tests" / "fixtures"
PROMPT = "<|audio|> listen to the audio and answer the following question : what is said ?"
ANSWER = "what is said"


@dataclass
class StepSettings:
    """One GRPO step's shape and the settings of studies/paper_real."""

    batch: int = 8  # prompts (B)
    group: int = 8  # samples per prompt (G)
    max_new_tokens: int = 200
    audio_s: float = 10.0
    micro_batch: int = 16  # rows per log-prob pass (0: all)
    gradient_checkpointing: bool = True
    beta: float = 0.02
    lora_rank: int = 64
    lora_alpha: int = 32
    encoder_dtype: str = "auto"  # model.encoder_dtype


def released_config(size: str = "2b", layers: int | None = None):
    from harness.yardsticks.shapes import published_config

    return published_config(FIXTURES / f"granite-speech-3.3-{size}.config.json", layers)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def random_model(cfg, device: torch.device, dtype: torch.dtype):
    """Granite Speech from `cfg` with random weights, created on `device` in `dtype` (no fp32 copy first)."""
    from transformers import GraniteSpeechForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        return GraniteSpeechForConditionalGeneration(cfg).eval()


def tokenizer_for(cfg, extra_words: str = ""):
    from harness.yardsticks.shapes import granite_like_tokenizer

    words = " ".join(dict.fromkeys(f"{PROMPT.replace('<|audio|>', '')} {extra_words}".split()))
    return granite_like_tokenizer(cfg.text_config.vocab_size, cfg.audio_token_index, words)


def speech_policy(model, tokenizer, settings: StepSettings):
    """(policy, frozen reference or None): projector + LoRA trainable, as `model.trainable: projector+lora`."""
    from harness.config import ModelConfig
    from harness.models.loader import frozen_copy, set_encoder_dtype, set_trainable
    from harness.models.speech_lm import SpeechLM

    set_encoder_dtype(model, settings.encoder_dtype)
    set_trainable(
        model, ModelConfig(trainable="projector+lora", lora_rank=settings.lora_rank, lora_alpha=settings.lora_alpha)
    )
    lm = SpeechLM(model, tokenizer)
    if settings.gradient_checkpointing:
        lm.enable_gradient_checkpointing()
    return lm, (frozen_copy(lm) if settings.beta else None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_learner(lm, reference, settings: StepSettings):
    """The `Learner` of the benchmarks' GRPO steps: AdamW at 1e-5, clip 1.0, a seeded generator,
    micro-batches of ``settings.micro_batch`` rows, a clock that synchronises the device."""
    from harness.train.clock import PhaseClock
    from harness.train.learner import Learner, MicroBatching
    from harness.train.optimizer import make_optimizer

    optimizer, scheduler = make_optimizer(lm.model, 1e-5, 0.0, 0)
    return Learner(
        lm,
        optimizer,
        scheduler,
        1.0,
        reference,
        torch.Generator(device=lm.device).manual_seed(0),
        MicroBatching(settings.micro_batch),
        PhaseClock(lm.device),
    )


def grpo_steps(lm, reference, settings: StepSettings, steps: int, warmup: int = 1) -> list[dict]:
    """`warmup` + `steps` GRPO steps on random audio; per measured step its time, phases (the step's own
    clock, CUDA-synchronised at every phase boundary), tokens and the peak GPU memory (allocated since
    the first measured step)."""
    from harness.config import GRPOConfig
    from harness.models.features import log_mel
    from harness.rewards import parse_reward
    from harness.train.clock import STEP_PHASES
    from harness.train.grpo import grpo_step
    from harness.vocabulary import STEP_GENERATED_TOKENS, STEP_TIME, time_key

    device = lm.device
    grpo = GRPOConfig(group_size=settings.group, beta=settings.beta, max_new_tokens=settings.max_new_tokens)
    learner = step_learner(lm, reference, settings)
    reward = parse_reward("bleu")
    rng = np.random.RandomState(0)
    results = []
    for step in range(warmup + steps):
        if step == warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        feats = [
            log_mel(rng.randn(int(settings.audio_s * 16000)).astype(np.float32) * 0.1) for _ in range(settings.batch)
        ]
        prompts = lm.prepare([PROMPT] * settings.batch, feats)
        synchronize(device)
        m = grpo_step(learner, prompts, [ANSWER] * settings.batch, reward, grpo).metrics
        synchronize(device)
        if step < warmup:
            continue
        spent = {phase: m[time_key(phase, step=True)] for phase in STEP_PHASES if time_key(phase, step=True) in m}
        results.append(
            dict(
                step_s=m[STEP_TIME],
                phases=spent,
                generated=m[STEP_GENERATED_TOKENS],
                sample_tokens_per_s=m["tokens_per_s"],
                step_tokens_per_s=m[STEP_GENERATED_TOKENS] / m[STEP_TIME],
                prompt_tokens=int(prompts.input_ids.shape[1]),
                completion_len=m["completion_len_mean"],
                peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
            )
        )
    return results


def parameter_counts(model) -> dict[str, int]:
    core = model.model
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "encoder": sum(p.numel() for p in core.encoder.parameters()),
        "projector": sum(p.numel() for p in core.projector.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["2b", "8b"], default="2b")
    p.add_argument("--layers", type=int, default=None, help="cut every stack to this depth (default: released)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="prompts per step (B)")
    p.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--audio-s", type=float, default=10.0)
    p.add_argument("--micro-batch", type=int, default=16, help="rows per log-prob pass (0: all)")
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--encoder-dtype", choices=["auto", "float32"], default="auto")
    p.add_argument("--beta", type=float, default=0.02)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    settings = StepSettings(
        batch=args.batch,
        group=args.group,
        max_new_tokens=args.max_new_tokens,
        audio_s=args.audio_s,
        micro_batch=args.micro_batch,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        beta=args.beta,
        encoder_dtype=args.encoder_dtype,
    )
    cfg = released_config(args.size, args.layers)
    t0 = time.perf_counter()
    model = random_model(cfg, device, dtype)
    lm, reference = speech_policy(model, tokenizer_for(cfg), settings)
    counts = parameter_counts(model)
    print(
        f"model {args.size} ({cfg.text_config.num_hidden_layers} decoder layers): {counts['total'] / 1e9:.2f} B "
        f"parameters (encoder {counts['encoder'] / 1e6:.0f} M), {counts['trainable'] / 1e6:.1f} M trainable, "
        f"{dtype}, encoder {args.encoder_dtype}, {device}; built in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    results = grpo_steps(lm, reference, settings, args.steps)
    for i, r in enumerate(results, 1):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        print(
            f"step {i}: {r['step_s']:.2f} s ({phases}); {r['generated']:.0f} tokens generated, "
            f"{r['sample_tokens_per_s']:.0f} tok/s sampling, {r['step_tokens_per_s']:.0f} tok/s per step; prompt "
            f"{r['prompt_tokens']} tokens; peak memory {r['peak_gib']:.1f} GiB",
            flush=True,
        )
    print(f"median step {statistics.median(r['step_s'] for r in results):.2f} s")


if __name__ == "__main__":
    main()
