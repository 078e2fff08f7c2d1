"""What an example is, for synthetic and real data alike, and the paper's prompts."""

from __future__ import annotations

from dataclasses import dataclass

from harness.vocabulary import AUDIO_TOKEN

__all__ = ["PROMPTS", "TASKS", "Example"]

# The paper's prompts (Elmakies et al. 2025, section 4); asr is the tiny base's pretraining task.
PROMPTS: dict[str, str] = {
    "sqa": AUDIO_TOKEN + " listen to the audio and answer the following question: {question}",
    "ast": AUDIO_TOKEN + " listen to the speech and translate it into German.",
    "asr": AUDIO_TOKEN + " can you transcribe the speech into a written format?",
}
TASKS = tuple(PROMPTS)


@dataclass(frozen=True)
class Example:
    id: str
    task: str  # "sqa" | "ast" | "asr"
    audio: str  # path of the clip (synthetic: a 16 kHz mono WAV)
    prompt: str  # text prompt with exactly one <|audio|> placeholder
    answer: str  # reference output
    transcript: str  # the English text that is spoken in ``audio`` ("" when the source has none)
