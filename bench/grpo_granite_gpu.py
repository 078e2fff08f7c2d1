"""GRPO steps on a random-initialised Granite-Speech-shaped model (2B by default), bf16 on a GPU.

Builds the model from the published config (tests/fixtures/granite-speech-3.3-<size>.config.json;
`--layers` cuts every stack's depth for a quick run), a word-level tokenizer with Granite's id layout,
the projector + LoRA (r=64 on q/v) trainable, a frozen reference for the KL term, and runs
`harness.train.grpo.grpo_step` exactly as a trial does: B prompts of random audio x G samples,
up to `--max-new-tokens` each (a random model rarely stops early, so this is the worst case), BLEU
reward. Prints per step the time (rollout / reward / update), generated tokens per second, and the
peak GPU memory.

    python bench/grpo_granite_gpu.py                       # 2B, B=8, G=8, 200 new tokens, 10 s clips
    python bench/grpo_granite_gpu.py --size 8b --micro-batch 8 --gradient-checkpointing
    python bench/grpo_granite_gpu.py --device cpu --layers 1 --max-new-tokens 4 --steps 1   # smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's harness, not another installed copy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["2b", "8b"], default="2b")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default: the published depth)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="prompts per step (B)")
    p.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--audio-s", type=float, default=10.0)
    p.add_argument("--micro-batch", type=int, default=0, help="rows per log-prob pass (0: all)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--beta", type=float, default=0.02)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()

    from transformers import GraniteSpeechForConditionalGeneration

    from harness.config import GRPOConfig, ModelConfig
    from harness.models.features import log_mel
    from harness.models.loader import frozen_copy, set_trainable
    from harness.models.shapes import granite_like_tokenizer, published_config
    from harness.models.speech_lm import AUDIO_TOKEN, SpeechLM
    from harness.rewards import parse_reward
    from harness.train.grpo import grpo_step
    from harness.train.optimizer import make_optimizer

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = published_config(ROOT / "tests" / "fixtures" / f"granite-speech-3.3-{args.size}.config.json", args.layers)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = GraniteSpeechForConditionalGeneration(cfg).to(dtype).eval()
    set_trainable(model, ModelConfig(trainable="projector+lora", lora_rank=64, lora_alpha=32))
    model.to(device=device, dtype=dtype)
    tok = granite_like_tokenizer(cfg.text_config.vocab_size, cfg.audio_token_index,
                                 "listen to the audio and answer following question : what is said ?")
    lm = SpeechLM(model, tok)
    lm.micro_batch_size = args.micro_batch
    if args.gradient_checkpointing:
        lm.enable_gradient_checkpointing()
    reference = frozen_copy(lm) if args.beta else None
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model {args.size} ({cfg.text_config.num_hidden_layers} decoder layers): {n_params / 1e9:.2f} B params, "
          f"{n_train / 1e6:.1f} M trainable, {dtype}, {device}; built in {time.perf_counter() - t0:.1f} s")

    grpo = GRPOConfig(group_size=args.group, beta=args.beta, max_new_tokens=args.max_new_tokens)
    optimizer, scheduler = make_optimizer(model, 1e-5, 0.0, 0)
    reward = parse_reward("bleu")
    rng = np.random.RandomState(0)
    generator = torch.Generator(device=device).manual_seed(0)
    prompt = f"{AUDIO_TOKEN} listen to the audio and answer the following question : what is said ?"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(1, args.steps + 1):
        feats = [log_mel(rng.randn(int(args.audio_s * 16000)).astype(np.float32) * 0.1) for _ in range(args.batch)]
        prompts = lm.prepare([prompt] * args.batch, feats)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        m = grpo_step(lm, reference, optimizer, scheduler, prompts, ["what is said"] * args.batch, reward, grpo,
                      1.0, generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        generated = m["completion_len_mean"] * args.batch * args.group
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        print(f"step {step}: {m['step_time_s']:.2f} s (rollout {m['time_rollout_s']:.2f}, reward "
              f"{m['time_reward_s']:.2f}, update {m['time_update_s']:.2f}); {generated:.0f} tokens generated, "
              f"{m['tokens_per_s']:.0f} tok/s in rollout; prompt {prompts.input_ids.shape[1]} tokens; "
              f"peak memory {peak:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
