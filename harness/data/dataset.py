"""Spoken examples with their log-mel features computed once, and batches drawn from them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.data.audio import load_audio
from harness.models.features import log_mel


@dataclass
class SpokenSet:
    examples: list  # harness.data.synthetic.Example (or a real-data example with the same fields)
    features: list[torch.Tensor]  # [frames, 160] per example, computed once

    @classmethod
    def from_examples(cls, examples: list) -> "SpokenSet":
        return cls(list(examples), [log_mel(load_audio(ex.audio)) for ex in examples])

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, indices) -> tuple[list, list[torch.Tensor]]:
        return [self.examples[i] for i in indices], [self.features[i] for i in indices]


class BatchSampler:
    """Endless shuffled batches (each epoch a fresh permutation from a seeded generator)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, min(batch_size, n)
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []

    def next(self) -> list[int]:
        if len(self.order) < self.batch_size:
            self.order += torch.randperm(self.n, generator=self.generator).tolist()
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size:]
        return batch
