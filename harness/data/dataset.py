"""Spoken examples with their log-mel features, and batches drawn from them.

Features are computed once up front (synthetic data: small, reused every step), or, for real
corpora too large to hold as features, on access (`lazy=True`): decoding + log-mel costs a few ms
per clip, small next to a GPU step. Clips of any rate/format read as 16 kHz mono (`clips.read_clip`).
Up-front features are kept on disk too (`<cache>/features/`, keyed by the clips' paths, sizes and
modification times), so the next process loads them instead of decoding every clip again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.data.clips import read_clip
from harness.models.features import log_mel

__all__ = ["BatchSampler", "LazyFeatures", "SpokenSet", "all_features", "clip_features"]


def clip_features(path: str) -> torch.Tensor:
    return log_mel(read_clip(path))


def all_features(paths: list[str]) -> list[torch.Tensor]:
    """Every clip's features, loaded from the features cache or computed (and then saved there)."""
    from harness.paths import cache_dir

    stamp = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    key = hashlib.blake2b(json.dumps(stamp).encode(), digest_size=16).hexdigest()
    path = cache_dir() / "features" / f"{key}.pt"
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError):
        pass
    features = [clip_features(p) for p in paths]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
    torch.save(features, tmp)
    os.replace(tmp, Path(path))
    return features


class LazyFeatures(Sequence):
    """features[i] decodes examples[i]'s clip when asked (an unreadable clip raises naming its path)."""

    def __init__(self, examples: list):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):
        return clip_features(self.examples[i].audio)


@dataclass
class SpokenSet:
    examples: list  # harness.data.example.Example
    features: Sequence[torch.Tensor]  # [frames, 160] per example
    skipped: list[tuple[str, str]] = field(default_factory=list)  # real data: (clip path, reason) left out

    @classmethod
    def from_examples(cls, examples: list, lazy: bool = False, skipped: list | None = None) -> SpokenSet:
        examples = list(examples)
        return cls(
            examples,
            LazyFeatures(examples) if lazy else all_features([ex.audio for ex in examples]),
            list(skipped or []),
        )

    def __len__(self) -> int:
        return len(self.examples)

    def subset(self, indices: list[int]) -> SpokenSet:
        examples = [self.examples[i] for i in indices]
        lazy = isinstance(self.features, LazyFeatures)
        return SpokenSet(examples, LazyFeatures(examples) if lazy else [self.features[i] for i in indices])

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
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return batch
