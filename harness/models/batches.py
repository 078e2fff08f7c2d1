"""The batches a `harness.models.speech_lm.SpeechLM` takes and returns: left-padded prompts with their audio
features (`Prompts`), right-padded completions (`Completions`), a batch of prompts run once through
the LM (`Prefill`), and how batches are joined (`join_prompts`, `join_completions`) or made from
reference answers (`completions_from_targets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import Cache

__all__ = ["Completions", "Prefill", "Prompts", "completions_from_targets", "join_completions", "join_prompts"]


@dataclass
class Prompts:
    """A left-padded batch of prompts with their audio features."""

    input_ids: torch.Tensor  # [B, Lp], audio placeholders expanded to one token per audio embedding
    attention_mask: torch.Tensor  # [B, Lp]
    features: torch.Tensor | None  # [B, T, 160] log-mel features, padded; None for text-only prompts
    features_mask: torch.Tensor | None  # [B, A] which projector outputs are real audio (not padding)
    frames: list[int] | None = None  # each clip's own feature rows (features[b, :frames[b]])
    clip_keys: list[str] | None = None  # each clip's content digest (audio_cache.clip_key)

    def take(self, rows: list[int]) -> Prompts:
        """These prompts' rows `rows`, in that order, padded only as far as their longest needs."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.input_ids.device)
        pick = lambda x: None if x is None else x[idx]
        taken = Prompts(
            self.input_ids[idx],
            self.attention_mask[idx],
            pick(self.features),
            pick(self.features_mask),
            None if self.frames is None else [self.frames[r] for r in rows],
            None if self.clip_keys is None else [self.clip_keys[r] for r in rows],
        )
        return join_prompts([taken], pad_id=0) if rows else taken  # cutting padding needs no pad id


def join_prompts(parts: list[Prompts], pad_id: int) -> Prompts:
    """Several batches of prompts as one, left-padded to its longest prompt, features and audio
    tokens to its longest clip (DAPO's dynamic sampling trains on groups kept from several draws).
    A prompt's embedding does not depend on its batch (`SpeechLM.embed_prompts`)."""
    parts = [p for p in parts if p.input_ids.shape[0]]
    width = max(int(p.attention_mask.sum(1).max()) for p in parts)
    ids = torch.cat([_fit(p.input_ids, width, pad_id, left=True) for p in parts])
    mask = torch.cat([_fit(p.attention_mask, width, 0, left=True) for p in parts])
    if parts[0].features is None:  # text only
        return Prompts(ids, mask, None, None)
    frames = [n for p in parts for n in p.frames]
    audio = max(int(p.features_mask.sum(1).max()) for p in parts)
    features = torch.cat([_fit(p.features, max(frames), 0.0, left=False) for p in parts])
    features_mask = torch.cat([_fit(p.features_mask, audio, False, left=False) for p in parts])
    return Prompts(ids, mask, features, features_mask, frames, [k for p in parts for k in p.clip_keys])


@dataclass
class Completions:
    """Right-padded completions, row b*G + g belongs to prompt b."""

    ids: torch.Tensor  # [N, Lc]
    mask: torch.Tensor  # [N, Lc] 1 up to and including EOS
    truncated: torch.Tensor  # [N] bool: no EOS within the token budget

    def take(self, rows: list[int]) -> Completions:
        """These rows, in that order (padding as it was)."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.ids.device)
        return Completions(self.ids[idx], self.mask[idx], self.truncated[idx])


@dataclass
class Prefill:
    """A batch of prompts run once through the LM (no gradients): what `SpeechLM.sample` and
    `SpeechLM.completion_logprobs` continue from, so that evaluation decodes and scores the
    reference answers after one pass over each prompt."""

    cache: Cache  # the prompts' KV cache
    logits: torch.Tensor  # [B, V] next-token logits after each prompt
    positions: torch.Tensor  # [B, Lp] the prompts' position ids


def join_completions(parts: list[Completions], pad_id: int) -> Completions:
    """Several batches of completions as one, right-padded to its longest completion."""
    parts = [p for p in parts if p.ids.shape[0]]
    width = max(int(p.mask.sum(1).max()) for p in parts)
    return Completions(
        torch.cat([_fit(p.ids, width, pad_id, left=False) for p in parts]),
        torch.cat([_fit(p.mask, width, 0, left=False) for p in parts]),
        torch.cat([p.truncated for p in parts]),
    )


def _fit(x: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    """x [B, W, ...] cut or padded with `value` to width `width` along dim 1, on the left or the right
    (what is cut is padding: every row's content fits in `width`)."""
    if x.shape[1] >= width:
        return x[:, x.shape[1] - width :] if left else x[:, :width]
    pad = torch.full((x.shape[0], width - x.shape[1], *x.shape[2:]), value, dtype=x.dtype, device=x.device)
    return torch.cat([pad, x] if left else [x, pad], 1)


def completions_from_targets(targets: list[list[int]], pad_id: int, device) -> Completions:
    """Reference answers (token ids, EOS included) as right-padded completions."""
    length = max(map(len, targets))
    ids = torch.full((len(targets), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(targets), length), dtype=torch.long)
    for i, row in enumerate(targets):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return Completions(ids.to(device), mask.to(device), torch.zeros(len(targets), dtype=torch.bool, device=device))
