"""How much the acoustic encoder's precision moves the log-probs GRPO trains on.

The same weights rounded to bf16 are run three ways: encoder + projector in bf16 under a bf16 LM (the
harness's default on a GPU), encoder + projector in fp32 under a bf16 LM (`model.encoder_dtype:
float32`), and everything in fp32 (the reference: the same rounded weights, no bf16 arithmetic).
Reported: max and mean |difference| of per-token log-probs, and the audio embeddings' relative L2
difference, each against the all-fp32 pass, and bf16 vs fp32 encoder directly.

    python bench/encoder_precision.py      # the cached tiny base on 64 validation examples, CPU (bf16 on CPU)

`bench/gpu_check.py` runs the same comparison on a random 2B of the released shape on a GPU.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's harness

VARIANTS = ("encoder bf16 (default)", "encoder fp32", "all fp32")


def precision_variants(model) -> dict:
    """The three ways to run `model`'s weights rounded to bf16; `model` itself becomes the first."""
    from harness.models.loader import set_encoder_dtype

    bf16 = model.to(torch.bfloat16)
    fp32_encoder = copy.deepcopy(bf16)
    set_encoder_dtype(fp32_encoder, "float32")
    return dict(zip(VARIANTS, (bf16, fp32_encoder, copy.deepcopy(bf16).float())))


@torch.no_grad()
def compare(
    models: dict,
    tokenizer,
    prompts: list[str],
    features: list[torch.Tensor],
    completions=None,
    samples: int = 4,
    max_new_tokens: int = 32,
) -> dict:
    """Log-probs of the same completions under each variant (`completions`: fixed ones, e.g. the reference
    answers; None: `samples` per prompt drawn from the first variant). Returns the statistics."""
    from harness.models.speech_lm import SpeechLM

    logps, audio = {}, {}
    for name, model in models.items():
        lm = SpeechLM(model, tokenizer)
        batch = lm.prepare(prompts, features)
        embeds = lm.embed_prompts(batch)
        if completions is None:
            completions = lm.sample(
                embeds,
                batch.attention_mask,
                samples,
                max_new_tokens,
                generator=torch.Generator(device=lm.device).manual_seed(0),
            )
        logp, _ = lm.completion_logprobs(embeds, batch.attention_mask, completions)
        logps[name] = logp[completions.mask.bool()].float()
        audio[name] = model.model.get_audio_features(batch.features, return_dict=True).pooler_output.float()
    reference = VARIANTS[-1]

    def diff(a: str, b: str) -> dict:
        d = (logps[a] - logps[b]).abs()
        return {
            "max": float(d.max()),
            "mean": float(d.mean()),
            "audio_rel_l2": float((audio[a] - audio[b]).norm() / audio[b].norm()),
        }

    return {
        "tokens": int(completions.mask.sum()),
        "mean_logp": float(logps[reference].mean()),
        **{name: diff(name, reference) for name in VARIANTS[:-1]},
        "bf16 vs fp32 encoder": diff(VARIANTS[0], VARIANTS[1]),
    }


def table(stats: dict) -> list[str]:
    return [
        "| encoder + projector (LM bf16) | max abs diff of log-probs | mean abs diff "
        "| audio embeddings: relative L2 diff |",
        "|---|---|---|---|",
        *(
            f"| {name} vs all fp32 | {stats[name]['max']:.4f} | {stats[name]['mean']:.5f} | "
            f"{stats[name]['audio_rel_l2']:.2e} |"
            for name in VARIANTS[:-1]
        ),
        f"| bf16 vs fp32 encoder | {stats['bf16 vs fp32 encoder']['max']:.4f} | "
        f"{stats['bf16 vs fp32 encoder']['mean']:.5f} | {stats['bf16 vs fp32 encoder']['audio_rel_l2']:.2e} |",
    ]


def main() -> None:
    from harness.config import TrialConfig
    from harness.models.batches import completions_from_targets
    from harness.models.loader import load_speech_lm
    from harness.runtime import configure_threads
    from harness.train.trial import load_task_data

    configure_threads()
    cfg = TrialConfig()
    examples, features = load_task_data(cfg)["validation"].batch(list(range(64)))
    lm = load_speech_lm(cfg.model, torch.device("cpu"))  # the cached tiny base (built on first use)
    answers = completions_from_targets(lm.tokenize_targets([ex.answer for ex in examples]), lm.pad_id, lm.device)
    stats = compare(
        precision_variants(lm.model.eval()), lm.tokenizer, [ex.prompt for ex in examples], features, answers
    )
    print(
        f"tiny base, {len(examples)} validation examples ({cfg.task}), log-probs of the {stats['tokens']} reference "
        f"answer tokens (mean log-prob {stats['mean_logp']:.3f}), CPU:"
    )
    print("\n".join(table(stats)))


if __name__ == "__main__":
    main()
