"""What the synthetic tasks are: generator version, voice and speeds, default sizes (the prompts and the
`Example` row are `harness.data.example`'s)."""

from __future__ import annotations

from harness.data.example import PROMPTS, TASKS, Example
from harness.vocabulary import AUDIO_TOKEN

GENERATOR_VERSION = 1
VOICE = "en-us"
# espeak-ng words per minute: passages are spoken a little faster to keep them at ~2-4 s.
SPEED_PASSAGE = 190
SPEED_SENTENCE = 175

DEFAULT_SIZES: dict[str, int] = {"train": 256, "validation": 64, "test": 64}
DEFAULT_PRETRAIN_SIZES: dict[str, int] = {"train": 2048, "validation": 128}
# Generation order: the test set of a seed does not change when the train size does.
SPLIT_ORDER = ("test", "validation", "train")

__all__ = [
    "AUDIO_TOKEN",
    "DEFAULT_PRETRAIN_SIZES",
    "DEFAULT_SIZES",
    "GENERATOR_VERSION",
    "PROMPTS",
    "SPEED_PASSAGE",
    "SPEED_SENTENCE",
    "TASKS",
    "VOICE",
    "Example",
]
