"""How well a model hears: its transcription of a task's test clips, scored by word and character
error rate, in the study's voice and in another (the tiny base's pretraining voice).

The reports explain the speech-translation results by the tiny base mishearing the study's voice
(`data.voice: en-gb`; it was pretrained on `en-us`), as Granite Speech meets new speakers in CoVoST2.
This measures it: the base is asked to transcribe (the ASR prompt it was pretrained on) the spoken
test texts of a task, synthesised in each voice, and every transcript is scored against what was
said. Errors are edit distances over lower-cased words / characters without punctuation, summed
over the clips and divided by the reference length (corpus WER / CER). `harness.sweep.hearing`
measures it once per study, when the study ends, and logs the table on the study's run.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd

from harness.config import EvalConfig, TrialConfig
from harness.data.dataset import SpokenSet
from harness.data.example import PROMPTS

__all__ = ["edit_distance", "normalize", "transcription_errors"]


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def edit_distance(a: list | str, b: list | str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each 1) between two sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def transcription_errors(
    cfg: TrialConfig, voices: list[str], path: str, checkpoint: str, max_new_tokens: int = 128
) -> pd.DataFrame:
    """Per clip of ``cfg``'s task test split, spoken in each voice: what the starting model (loaded from
    ``path``; ``checkpoint`` its identity, recorded) transcribes, and its word and character errors
    against what was said."""
    from harness.data.synthetic import load_synthetic
    from harness.eval.evaluate import decode
    from harness.models.loader import load_speech_lm

    lm = load_speech_lm(cfg.model, path=path)
    rows = []
    for voice in voices:
        test = load_synthetic(
            cfg.task, {"train": 1, "validation": 1, "test": cfg.data.test_size}, seed=cfg.data.seed, voice=voice
        )["test"]
        asr = [replace(ex, prompt=PROMPTS["asr"], answer=ex.transcript) for ex in test]
        hyps = decode(lm, SpokenSet.from_examples(asr), EvalConfig(max_new_tokens=max_new_tokens))
        for ex, hyp in zip(asr, hyps):
            ref, got = normalize(ex.transcript), normalize(hyp)
            rows.append(
                {
                    "task": cfg.task,
                    "voice": voice,
                    "id": ex.id,
                    "reference": ex.transcript,
                    "transcript": hyp,
                    "word_errors": edit_distance(ref.split(), got.split()),
                    "words": len(ref.split()),
                    "char_errors": edit_distance(ref, got),
                    "chars": len(ref),
                    "checkpoint": checkpoint,
                }
            )
    return pd.DataFrame(rows)
