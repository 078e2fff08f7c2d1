"""What the tasks are: generator version, voice and speeds, prompts, default sizes, the `Example` row."""

from __future__ import annotations

from dataclasses import dataclass


GENERATOR_VERSION = 1
AUDIO_TOKEN = "<|audio|>"
VOICE = "en-us"
# espeak-ng words per minute: passages are spoken a little faster to keep them at ~2-4 s.
SPEED_PASSAGE = 190
SPEED_SENTENCE = 175

PROMPTS: dict[str, str] = {
    "sqa": AUDIO_TOKEN + " listen to the audio and answer the following question: {question}",
    "ast": AUDIO_TOKEN + " listen to the speech and translate it into German.",
    "asr": AUDIO_TOKEN + " can you transcribe the speech into a written format?",
}
TASKS = tuple(PROMPTS)

DEFAULT_SIZES: dict[str, int] = {"train": 256, "validation": 64, "test": 64}
DEFAULT_PRETRAIN_SIZES: dict[str, int] = {"train": 2048, "validation": 128}
# Generation order: the test set of a seed does not change when the train size does.
_SPLIT_ORDER = ("test", "validation", "train")


@dataclass(frozen=True)
class Example:
    id: str
    task: str  # "sqa" | "ast" | "asr"
    audio: str  # absolute path of a 16 kHz mono WAV
    prompt: str  # text prompt with exactly one <|audio|> placeholder
    answer: str  # reference output
    transcript: str  # the English text that is spoken in ``audio``
