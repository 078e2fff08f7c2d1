"""Evaluation metrics as reported in the paper's tables (all x100).

Scorers are those of :mod:`harness.rewards.metrics`; only BLEU differs at corpus level
(``sacrebleu.corpus_bleu`` rather than a mean of sentence BLEU). Record
``harness.rewards.meteor_backend()`` and ``harness.rewards.metrics.BERTSCORE_MODEL`` with results:
METEOR without WordNet and BERTScore with MiniLM are not the paper's exact variants.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.rewards.metrics import score_many
from harness.vocabulary import METRICS

__all__ = ["METRICS", "corpus_and_example_scores", "corpus_scores", "example_scores"]


def _select(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """``metrics`` (None = all) in ``METRICS`` order; e.g. leave out bertscore to save time."""
    if metrics is None:
        return METRICS
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid: {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in metrics)


def example_scores(
    hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Per-example scores x100 (bleu = sentence BLEU), for paired bootstrap tests."""
    names = _select(metrics)
    scores = score_many(names, list(hyps), list(refs))
    return {name: 100.0 * scores[name] for name in names}


def corpus_scores(hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Corpus BLEU and mean BERTScore-F1 / ROUGE-F1 / METEOR, all x100 (``metrics``: None = all)."""
    names = _select(metrics)
    hyps, refs = _nonempty(hyps, refs)
    return _corpus(names, score_many([n for n in names if n != "bleu"], hyps, refs), hyps, refs)


def corpus_and_example_scores(
    hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] | None = None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """``(corpus_scores(...), example_scores(...))`` with each metric scored once: the same numbers,
    bit for bit (a test evaluation needs both; BERTScore and METEOR dominate its scoring time)."""
    names = _select(metrics)
    hyps, refs = _nonempty(hyps, refs)
    scores = score_many(names, hyps, refs)
    return _corpus(names, scores, hyps, refs), {name: 100.0 * scores[name] for name in names}


def _nonempty(hyps: Sequence[str], refs: Sequence[str]) -> tuple[list[str], list[str]]:
    hyps, refs = list(hyps), list(refs)
    if not hyps:
        raise ValueError("corpus_scores needs at least one example")
    return hyps, refs


def _corpus(
    names: tuple[str, ...], scores: dict[str, np.ndarray], hyps: list[str], refs: list[str]
) -> dict[str, float]:
    """Corpus level from per-example scores in [0, 1]: their mean x100, except BLEU (corpus BLEU)."""
    import sacrebleu

    out = {name: float(100.0 * scores[name].mean()) for name in names if name != "bleu"}
    if "bleu" in names:
        # force: a hypothesis ending in " ." is not pre-tokenised text here (a small model's spacing);
        # 13a tokenisation splits the period either way, so the score is the same, without the warning.
        out["bleu"] = float(sacrebleu.corpus_bleu(hyps, [refs], force=True).score)
    return {name: out[name] for name in names}
