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

__all__ = ["METRICS", "corpus_scores", "example_scores"]


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
    import sacrebleu

    names = _select(metrics)
    hyps, refs = list(hyps), list(refs)
    if not hyps:
        raise ValueError("corpus_scores needs at least one example")
    means = [n for n in names if n != "bleu"]
    per_example = score_many(means, hyps, refs)  # also validates lengths
    out = {name: float(100.0 * per_example[name].mean()) for name in means}
    if "bleu" in names:
        # force: a hypothesis ending in " ." is not pre-tokenised text here (a small model's spacing);
        # 13a tokenisation splits the period either way, so the score is the same, without the warning.
        out["bleu"] = float(sacrebleu.corpus_bleu(hyps, [refs], force=True).score)
    return {name: out[name] for name in names}
