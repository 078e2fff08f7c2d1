"""Corpus BLEU from per-sentence sufficient statistics, so a bootstrap can re-score any resample.

Corpus BLEU is not a mean of sentence scores: it is computed once from n-gram counts summed over
the corpus (Papineni et al. 2002). Any resample of the test set (examples drawn with replacement,
possibly repeated) therefore has its BLEU determined by the sum of its sentences' statistics:

1. `bleu_stats` records, per sentence, the 10 statistics sacreBLEU itself sums: ``sys_len,
   ref_len, correct_1..4, total_1..4`` (default 13a tokenisation, case-sensitive, one reference),
   read from the public ``BLEU.sentence_score(h, [r])`` result (``.sys_len``, ``.ref_len``,
   ``.counts``, ``.totals``; the counts do not depend on the smoothing used for the sentence score).
   An empty or whitespace-only hypothesis has sys_len 0 and no n-grams, exactly as in a corpus score.
2. `corpus_bleu_from_stats` re-implements ``BLEU.compute_bleu`` vectorised over any leading dims,
   with the settings of ``sacrebleu.corpus_bleu(hyps, [refs], force=True)`` as used by
   `harness.eval.metrics.corpus_scores`: max order 4, brevity penalty, and sacreBLEU's *default*
   ``smooth_method="exp"`` (NIST geometric sequence, mteval-v13a): an order with ``total_n > 0`` but
   ``correct_n == 0`` gets precision ``100 / (2**k * total_n)``, k counting the zero-match orders so
   far. Without it (``smooth_method="none"``) such a corpus scores 0; it only matters for tiny
   corpora or resamples with no 4-gram match. The score is 0 when no n-gram matches at all, or when
   some order has no n-grams (every hypothesis shorter than n), as in sacreBLEU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_ORDER", "N_STATS", "bleu_stats", "corpus_bleu_from_stats"]

MAX_ORDER = 4
N_STATS = 2 + 2 * MAX_ORDER  # sys_len, ref_len, correct_1..4, total_1..4


def bleu_stats(hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """Per-sentence BLEU statistics, int64 ``[M, 10]``: sys_len, ref_len, correct_1..4, total_1..4."""
    from sacrebleu.metrics import BLEU

    hyps, refs = list(hyps), list(refs)
    if len(hyps) != len(refs):
        raise ValueError(f"bleu_stats needs as many hypotheses as references, got {len(hyps)} and {len(refs)}")
    # Step 1: one BLEU object (13a, no lowercasing); effective_order only silences the sentence-score
    # warning, force the "already tokenised" one (as corpus_scores does): neither changes the counts.
    bleu = BLEU(force=True, effective_order=True)
    out = np.zeros((len(hyps), N_STATS), dtype=np.int64)
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        s = bleu.sentence_score(hyp, [ref])
        out[i] = [s.sys_len, s.ref_len, *s.counts, *s.totals]
    return out


def corpus_bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU x100 from summed statistics ``[..., 10]`` -> ``[...]``, equal to
    ``sacrebleu.corpus_bleu(hyps, [refs], force=True).score`` of the sentences summed."""
    stats = np.asarray(stats, dtype=float)
    if stats.shape[-1] != N_STATS:
        raise ValueError(f"BLEU statistics have {N_STATS} columns, got shape {stats.shape}")
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct, total = stats[..., 2 : 2 + MAX_ORDER], stats[..., 2 + MAX_ORDER :]
    # Step 2a: brevity penalty exp(1 - r/c) when the system is shorter, 0 for an empty system.
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        # Step 2b: precisions, "exp" smoothing 100 / (2**k * total_n) for the k-th zero-match order.
        zero = correct == 0
        smooth = 2.0 ** np.cumsum(zero, axis=-1)
        precision = np.where(zero, 100.0 / (smooth * total), 100.0 * correct / total)
        log_mean = np.log(precision).sum(axis=-1) / MAX_ORDER
    # Step 2c: 0 when nothing matches or some order has no n-grams (sacreBLEU's early stop / break).
    defined = correct.any(axis=-1) & (total > 0).all(axis=-1)
    return np.where(defined, bp * np.exp(np.where(defined, log_mean, 0.0)), 0.0)
