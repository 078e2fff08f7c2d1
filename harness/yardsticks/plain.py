"""The plain path: each sample carries its own copy of the prompt (and its audio) through the model.

This is what a straightforward implementation does (`generate(num_return_sequences=G)` followed by
a per-row forward pass): the audio encoder, the prompt's prefill and the prompt's share of every
log-prob pass run once per *sample*. `SpeechLM` runs them once per *prompt*. `PerSampleLM` is kept
as the yardstick for that: `bench/grpo_step.py` times a GRPO step with it, and the tests check that
the fast path samples the same tokens and computes the same log-probs and gradients.
"""

from __future__ import annotations

import torch

from harness.models.batches import Completions, Prompts
from harness.models.speech_lm import SpeechLM

__all__ = ["PerSampleLM"]


class PerSampleLM(SpeechLM):
    """`SpeechLM` whose prompt embeddings hold one row per sample ([B*G, Lp, H])."""

    def __init__(self, model, tokenizer, system_prompt: str | None = None, group_size: int = 8):
        super().__init__(model, tokenizer, system_prompt)
        self.group_size = group_size

    def embed_prompts(self, prompts: Prompts) -> torch.Tensor:
        g = self.group_size

        def rows(x):
            if x is None:
                return None
            return [v for v in x for _ in range(g)] if isinstance(x, list) else x.repeat_interleave(g, 0)

        return super().embed_prompts(
            Prompts(
                rows(prompts.input_ids),
                rows(prompts.attention_mask),
                rows(prompts.features),
                rows(prompts.features_mask),
                rows(prompts.frames),
                rows(prompts.clip_keys),
            )
        )

    def sample(
        self, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor, group_size: int, *args, **kwargs
    ) -> Completions:
        if group_size != self.group_size:
            raise ValueError(f"PerSampleLM embeds {self.group_size} rows per prompt, asked for {group_size}")
        return super().sample(prompt_embeds, prompt_mask.repeat_interleave(group_size, 0), 1, *args, **kwargs)

    def completion_logprobs(
        self,
        prompt_embeds: torch.Tensor,
        prompt_mask: torch.Tensor,
        completions: Completions,
        with_entropy: bool = False,
        sampler_temperature: float | None = None,
    ):
        per_row = prompt_mask.repeat_interleave(prompt_embeds.shape[0] // prompt_mask.shape[0], 0)
        return super().completion_logprobs(prompt_embeds, per_row, completions, with_entropy, sampler_temperature)
