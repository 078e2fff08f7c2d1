"""Text generation per task: the texts (no audio) of every split, drawn deterministically from a seed
without duplicates, and the split of the text space between pretraining and the study tasks."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from harness.data.synthetic.lexicon import normalize_text
from harness.data.synthetic.passages import make_sqa_item
from harness.data.synthetic.sentences import make_ast_pair
from harness.data.synthetic.spec import GENERATOR_VERSION, PROMPTS, SPEED_PASSAGE, SPEED_SENTENCE, SPLIT_ORDER

__all__ = [
    "GENERATORS",
    "TextItem",
    "check_sizes",
    "generate_pretraining_texts",
    "generate_texts",
    "ordered_splits",
    "reserved_for_pretraining",
    "unique_stream",
]


@dataclass(frozen=True)
class TextItem:
    task: str
    transcript: str
    prompt: str
    answer: str
    speed: int


def _sqa_text(rng: random.Random) -> TextItem:
    item = make_sqa_item(rng)
    prompt = PROMPTS["sqa"].format(question=item.question)
    return TextItem("sqa", item.passage, prompt, item.answer, SPEED_PASSAGE)


def _ast_text(rng: random.Random) -> TextItem:
    en, de = make_ast_pair(rng)
    return TextItem("ast", en, PROMPTS["ast"], de, SPEED_SENTENCE)


def _asr_text(rng: random.Random) -> TextItem:
    # ASR sentences of the same kinds as the SQA passages and the AST sentences.
    if rng.random() < 0.5:
        text, speed = make_sqa_item(rng).passage, SPEED_PASSAGE
    else:
        text, speed = make_ast_pair(rng)[0], SPEED_SENTENCE
    return TextItem("asr", text, PROMPTS["asr"], text, speed)


GENERATORS: dict[str, Callable[[random.Random], TextItem]] = {
    "sqa": _sqa_text,
    "ast": _ast_text,
    "asr": _asr_text,
}


def ordered_splits(sizes: Mapping[str, int]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in sizes]
    return known + sorted(s for s in sizes if s not in SPLIT_ORDER)


def check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    if not sizes:
        raise ValueError("sizes must name at least one split")
    out = {}
    for split, n in sizes.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(split)):
            raise ValueError(f"bad split name {split!r}")
        if int(n) < 0:
            raise ValueError(f"split {split!r} has negative size {n}")
        out[str(split)] = int(n)
    return out


def reserved_for_pretraining(text: str) -> bool:
    """The text space is split once and for all: a quarter (by hash of the normalised transcript)
    belongs to the base model's pretraining, the rest to the study tasks. So no spoken text of any
    SQA/AST split, whatever its seed or size, can occur in pretraining."""
    return int(hashlib.sha256(normalize_text(text).encode()).hexdigest(), 16) % 4 == 0


def unique_stream(
    make: Callable[[random.Random], TextItem],
    rng: random.Random,
    seen: set[str],
    n: int,
    pretraining: bool = False,
) -> list[TextItem]:
    """Draw ``n`` items whose normalised transcripts are not in ``seen`` (updated in place) and lie
    in the pretraining part of the text space if ``pretraining`` else in the task part."""
    out: list[TextItem] = []
    attempts, max_attempts = 0, 200 * n + 1000
    while len(out) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"could not draw {n} distinct texts ({len(out)} found): the template space is "
                "too small for the requested sizes"
            )
        item = make(rng)
        key = normalize_text(item.transcript)
        if key in seen or reserved_for_pretraining(key) != pretraining:
            continue
        seen.add(key)
        out.append(item)
    return out


def generate_texts(task: str, sizes: Mapping[str, int], seed: int = 0) -> dict[str, list[TextItem]]:
    """The texts of :func:`load_synthetic` without audio (deterministic, no duplicates)."""
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(GENERATORS)}")
    sizes = check_sizes(sizes)
    rng = random.Random(f"synthetic:{task}:v{GENERATOR_VERSION}:{seed}")
    seen: set[str] = set()
    return {split: unique_stream(GENERATORS[task], rng, seen, sizes[split]) for split in ordered_splits(sizes)}


def generate_pretraining_texts(
    sizes: Mapping[str, int],
    seed: int = 0,
    exclude: Iterable[str] = (),
    ast_fraction: float = 0.5,
    sqa_fraction: float = 0.0,
) -> dict[str, list[TextItem]]:
    """Texts of :func:`load_pretraining`: a shuffled mix per split of AST pairs (``ast_fraction``),
    spoken QA items (``sqa_fraction``) and ASR items (half SQA-style passages, half AST-style
    sentences), all spoken texts distinct, in the pretraining part of the text space, and disjoint
    (after :func:`normalize_text`) from ``exclude``."""
    sizes = check_sizes(sizes)
    if not (0.0 <= ast_fraction and 0.0 <= sqa_fraction and ast_fraction + sqa_fraction <= 1.0):
        raise ValueError("ast_fraction and sqa_fraction must be >= 0 and sum to at most 1")
    rng = random.Random(f"pretraining:v{GENERATOR_VERSION}:{seed}")
    seen = {normalize_text(t) for t in exclude}

    def asr_passage(r: random.Random) -> TextItem:
        text = make_sqa_item(r).passage
        return TextItem("asr", text, PROMPTS["asr"], text, SPEED_PASSAGE)

    def asr_sentence(r: random.Random) -> TextItem:
        text = make_ast_pair(r)[0]
        return TextItem("asr", text, PROMPTS["asr"], text, SPEED_SENTENCE)

    out: dict[str, list[TextItem]] = {}
    for split in ordered_splits(sizes):
        n = sizes[split]
        n_ast, n_sqa = round(n * ast_fraction), round(n * sqa_fraction)
        n_passage = (n - n_ast - n_sqa) // 2
        n_sentence = n - n_ast - n_sqa - n_passage
        items = (
            unique_stream(_ast_text, rng, seen, n_ast, pretraining=True)
            + unique_stream(_sqa_text, rng, seen, n_sqa, pretraining=True)
            + unique_stream(asr_passage, rng, seen, n_passage, pretraining=True)
            + unique_stream(asr_sentence, rng, seen, n_sentence, pretraining=True)
        )
        rng.shuffle(items)
        out[split] = items
    return out
