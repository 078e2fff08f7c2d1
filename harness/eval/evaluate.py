"""Evaluation as in the paper's tables: decode a split, score it with every metric (x100).

Greedy decoding gives one set of numbers; with ``eval.sampling_passes = k > 0`` the paper's protocol
(sampling with top-p 0.9, temperature 0.9) runs k passes, each scored on its own, and reports the
mean over passes as ``sampled/<metric>``. The full evaluation (the test split) also returns every
example's scores, per decoding and pass, with BLEU's sufficient statistics: the reports' seed-aware
bootstrap re-scores resamples of the test set from them (corpus BLEU included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from harness import distributed
from harness.config import EvalConfig
from harness.data.dataset import SpokenSet
from harness.eval.bleu_stats import bleu_stats
from harness.eval.metrics import corpus_and_example_scores, corpus_scores
from harness.models.batches import Prefill, Prompts, completions_from_targets
from harness.models.speech_lm import SpeechLM
from harness.vocabulary import METRICS, NLL, SAMPLED, VALIDATION_METRICS

__all__ = ["EVALUATION_VERSION", "Evaluation", "decode", "evaluate", "greedy_and_nll", "reference_nll"]

# Part of every stored evaluation's key (the initial evaluations kept on disk): raise it when the numbers
# `evaluate` returns change. 2: the NLL continues the greedy pass's prefill (equal to float rounding).
EVALUATION_VERSION = 2


@dataclass
class Evaluation:
    scores: dict[str, float]  # corpus-level metrics x100, NLL, and 'sampled/<metric>' (mean over passes)
    ids: list[str] = field(default_factory=list)  # the examples, in order (full evaluation)
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)  # greedy
    per_example: dict[str, np.ndarray] = field(default_factory=dict)  # greedy, metric -> [M] x100
    bleu_stats: np.ndarray | None = None  # greedy, [M, 10] (harness.eval.bleu_stats)
    sampled_per_example: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> [k, M] x100
    sampled_bleu_stats: np.ndarray | None = None  # [k, M, 10]
    sampled_hypotheses: list[list[str]] = field(default_factory=list)  # [k][M]


def reference_nll(
    lm: SpeechLM,
    prompts: Prompts,
    answers: list[str],
    embeds: torch.Tensor | None = None,
    prefill: Prefill | None = None,
) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood of the reference answers (EOS included); returns (loss, tokens).
    Pass the prompts' embeddings if they are already computed, and their `SpeechLM.prefill` (no
    gradients) to continue it rather than run the prompts again. (SFT minimises it.)"""
    targets = completions_from_targets(lm.tokenize_targets(answers), lm.pad_id, lm.device)
    embeds = lm.embed_prompts(prompts) if embeds is None else embeds
    logp, _ = lm.completion_logprobs(embeds, prompts.attention_mask, targets, prefill=prefill)
    mask = targets.mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum(), int(mask.sum())


def _batches(lm: SpeechLM, data: SpokenSet, batch_size: int):
    """(examples, prompts, prompt embeddings) per batch, the audio encoded once per batch."""
    lm.model.eval()
    for start in range(0, len(data), batch_size):
        examples, feats = data.batch(range(start, min(start + batch_size, len(data))))
        prompts = lm.prepare([ex.prompt for ex in examples], feats)
        yield examples, prompts, lm.embed_prompts(prompts)


@torch.no_grad()
def decode(
    lm: SpeechLM, data: SpokenSet, cfg: EvalConfig, greedy: bool = True, generator: torch.Generator | None = None
) -> list[str]:
    texts = []
    for _, prompts, embeds in _batches(lm, data, cfg.batch_size):
        out = lm.sample(
            embeds,
            prompts.attention_mask,
            1,
            cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            greedy=greedy,
            generator=generator,
        )
        texts += lm.decode(out)
    return texts


@torch.no_grad()
def greedy_and_nll(lm: SpeechLM, data: SpokenSet, cfg: EvalConfig) -> tuple[list[str], float]:
    """Greedy hypotheses and the per-token NLL of the references, sharing each batch's encoding and
    its one pass over the prompts (the NLL continues it first and leaves it as it was; the greedy
    tokens are those of `decode`, bit for bit). Under torchrun each rank decodes every N-th example
    and the results are gathered on all ranks."""
    w = distributed.world()
    mine = list(range(w.rank, len(data), w.size))
    texts, total, tokens = [], 0.0, 0
    for examples, prompts, embeds in _batches(lm, data.subset(mine) if w.size > 1 else data, cfg.batch_size):
        start = lm.prefill(embeds, prompts.attention_mask)
        loss, n = reference_nll(lm, prompts, [ex.answer for ex in examples], embeds, prefill=start)
        total, tokens = total + loss.item() * n, tokens + n
        out = lm.sample(embeds, prompts.attention_mask, 1, cfg.max_new_tokens, greedy=True, prefill=start)
        texts += lm.decode(out)
    if w.size > 1:
        texts = distributed.gather_ordered(mine, texts, len(data))
        total, tokens = (sum(x) for x in zip(*distributed.gather_objects((total, tokens))))
    return texts, total / tokens


def evaluate(lm: SpeechLM, data: SpokenSet, cfg: EvalConfig, seed: int = 0, full: bool = True) -> Evaluation:
    """``full=False`` (validation during training): greedy BLEU/ROUGE/METEOR and NLL only, cheap.
    ``full=True`` (test): every metric, per-example scores, and the sampled passes if configured."""
    refs = [ex.answer for ex in data.examples]
    hyps, nll = greedy_and_nll(lm, data, cfg)
    if not full:  # validation: VALIDATION_METRICS, the greedy text metrics among them and the NLL
        scores = {**corpus_scores(hyps, refs, metrics=[m for m in VALIDATION_METRICS if m in METRICS]), NLL: nll}
        return Evaluation({name: scores[name] for name in VALIDATION_METRICS})
    metrics = None if cfg.bertscore else [m for m in METRICS if m != "bertscore"]
    corpus, per_example = corpus_and_example_scores(hyps, refs, metrics)
    scores = {**corpus, NLL: nll}
    result = Evaluation(scores, [ex.id for ex in data.examples], refs, hyps, per_example, bleu_stats(hyps, refs))
    if cfg.sampling_passes:
        generator = torch.Generator(device=lm.device).manual_seed(seed)
        passes = [decode(lm, data, cfg, greedy=False, generator=generator) for _ in range(cfg.sampling_passes)]
        per_pass, examples = zip(*(corpus_and_example_scores(texts, refs, metrics) for texts in passes))
        scores.update({f"{SAMPLED}/{key}": float(np.mean([p[key] for p in per_pass])) for key in per_pass[0]})
        result.sampled_per_example = {m: np.stack([e[m] for e in examples]) for m in examples[0]}
        result.sampled_bleu_stats = np.stack([bleu_stats(texts, refs) for texts in passes])
        result.sampled_hypotheses = passes
    return result
