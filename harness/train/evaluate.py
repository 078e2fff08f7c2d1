"""Evaluation as in the paper's tables: decode a split, score it with every metric (x100).

Greedy decoding gives the primary numbers; with `sampling_passes = k > 0` the paper's sampling
(top-p 0.9, T 0.9) is run k times and the metrics averaged over passes (reported as `sampled/*`).
Per-example scores are returned too, for paired significance tests in the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from harness.config import EvalConfig
from harness.data.dataset import SpokenSet
from harness.eval.metrics import METRICS, corpus_scores, example_scores
from harness.models.speech_lm import SpeechLM
from harness.train import distributed
from harness.train.sft import sft_loss


@dataclass
class Evaluation:
    scores: dict[str, float]  # corpus-level metrics x100 (+ 'nll', and 'sampled/<metric>' if k > 0)
    per_example: dict[str, np.ndarray] = field(default_factory=dict)  # greedy, x100
    hypotheses: list[str] = field(default_factory=list)


def _batches(lm: SpeechLM, data: SpokenSet, batch_size: int):
    """(examples, prompts, prompt embeddings) per batch, the audio encoded once per batch."""
    lm.model.eval()
    for start in range(0, len(data), batch_size):
        examples, feats = data.batch(range(start, min(start + batch_size, len(data))))
        prompts = lm.prepare([ex.prompt for ex in examples], feats)
        yield examples, prompts, lm.embed_prompts(prompts)


@torch.no_grad()
def decode(lm: SpeechLM, data: SpokenSet, cfg: EvalConfig, greedy: bool = True,
           generator: torch.Generator | None = None) -> list[str]:
    texts = []
    for _, prompts, embeds in _batches(lm, data, cfg.batch_size):
        out = lm.sample(embeds, prompts.attention_mask, 1, cfg.max_new_tokens, temperature=cfg.temperature,
                        top_p=cfg.top_p, greedy=greedy, generator=generator)
        texts += lm.decode(out)
    return texts


@torch.no_grad()
def greedy_and_nll(lm: SpeechLM, data: SpokenSet, cfg: EvalConfig) -> tuple[list[str], float]:
    """Greedy hypotheses and the per-token NLL of the references, sharing each batch's encoding.
    Under torchrun each rank decodes every N-th example and the results are gathered on all ranks."""
    w = distributed.world()
    mine = list(range(w.rank, len(data), w.size))
    texts, total, tokens = [], 0.0, 0
    for examples, prompts, embeds in _batches(lm, data.subset(mine) if w.size > 1 else data, cfg.batch_size):
        out = lm.sample(embeds, prompts.attention_mask, 1, cfg.max_new_tokens, greedy=True)
        texts += lm.decode(out)
        loss, n = sft_loss(lm, prompts, [ex.answer for ex in examples], embeds)
        total, tokens = total + loss.item() * n, tokens + n
    if w.size > 1:
        texts = distributed.gather_ordered(mine, texts, len(data))
        total, tokens = (sum(x) for x in zip(*distributed.gather_objects((total, tokens))))
    return texts, total / tokens


def evaluate(lm: SpeechLM, data: SpokenSet, cfg: EvalConfig, seed: int = 0, full: bool = True) -> Evaluation:
    """`full=False` (used during training) scores greedy BLEU/ROUGE/METEOR and NLL only: cheap."""
    refs = [ex.answer for ex in data.examples]
    hyps, nll = greedy_and_nll(lm, data, cfg)
    metrics = None if full and cfg.bertscore else [m for m in METRICS if m != "bertscore"]
    scores = corpus_scores(hyps, refs, metrics=metrics)
    scores["nll"] = nll
    per_example = example_scores(hyps, refs, metrics=metrics) if full else {}
    if full and cfg.sampling_passes:
        generator = torch.Generator(device=lm.device).manual_seed(seed)
        passes = [corpus_scores(decode(lm, data, cfg, greedy=False, generator=generator), refs, metrics=metrics)
                  for _ in range(cfg.sampling_passes)]
        for key in passes[0]:
            scores[f"sampled/{key}"] = float(np.mean([p[key] for p in passes]))
    return Evaluation(scores, per_example, hyps)
