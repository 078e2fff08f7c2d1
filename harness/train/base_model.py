"""The tiny preset's base model: random init, then pretrained on ASR (+ some AST) of synthetic speech.

Granite Speech knew ASR and speech translation before the study fine-tuned it; the tiny base model
gets the same head start, on sentences that never occur in the SQA/AST study data. It is built once
per `TinySpec` (cached under `<cache>/models/tiny-<hash>`) and reused by every trial.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from harness.config import EvalConfig
from harness.data.dataset import BatchSampler, SpokenSet
from harness.data.synthetic import PROMPTS, load_pretraining, vocabulary
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import TinySpec, build_tiny, train_tokenizer
from harness.paths import cache_dir
from harness.runtime import configure_threads
from harness.train.evaluate import evaluate
from harness.train.optimizer import make_optimizer
from harness.train.sft import sft_step

log = logging.getLogger(__name__)


def ensure_tiny_base(spec: TinySpec) -> Path:
    """Path of the cached base model for `spec`, building it first if needed (process-safe)."""
    root = cache_dir() / "models"
    path = root / f"tiny-{spec.digest()}"
    if (path / "pretraining.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".tiny-{spec.digest()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits here, then finds the model built
        if not (path / "pretraining.json").exists():
            tmp = root / f".tmp-tiny-{spec.digest()}"
            shutil.rmtree(tmp, ignore_errors=True)
            summary = pretrain_tiny(spec, tmp)
            (tmp / "pretraining.json").write_text(json.dumps(summary, indent=2))
            tmp.rename(path)
    return path


def pretrain_tiny(spec: TinySpec, out: Path) -> dict:
    t0 = time.perf_counter()
    configure_threads()
    # Disjoint from every SQA/AST split by construction (see synthetic.reserved_for_pretraining).
    splits = load_pretraining({"train": spec.pretrain_examples, "validation": 64}, seed=spec.seed,
                              ast_fraction=spec.pretrain_ast_fraction, sqa_fraction=spec.pretrain_sqa_fraction)
    train, validation = SpokenSet.from_examples(splits["train"]), SpokenSet.from_examples(splits["validation"])
    # The tokenizer sees the closed vocabulary of the synthetic world and the prompts, not task data.
    corpus = [ex.answer for ex in train.examples] + list(PROMPTS.values()) + sorted(vocabulary())
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    torch.manual_seed(spec.seed)
    lm = SpeechLM(build_tiny(spec, tokenizer), tokenizer)
    optimizer, scheduler = make_optimizer(lm.model, spec.pretrain_lr, 0.01, spec.pretrain_steps // 20,
                                          decay_steps=spec.pretrain_steps)
    sampler = BatchSampler(len(train), spec.pretrain_batch_size, spec.seed)
    lm.model.train()  # learns the conformer's BatchNorm statistics; fine-tuning later freezes them
    losses = []
    for step in range(1, spec.pretrain_steps + 1):
        examples, feats = train.batch(sampler.next())
        prompts = lm.prepare([ex.prompt for ex in examples], feats)
        losses.append(sft_step(lm, optimizer, scheduler, prompts, [ex.answer for ex in examples], 1.0)["loss"])
        if step % 100 == 0:
            log.info("tiny base pretraining step %d/%d loss %.3f", step, spec.pretrain_steps, losses[-1])
        if step % 500 == 0 or step == spec.pretrain_steps:
            scores = evaluate(lm, validation, EvalConfig(bertscore=False), full=False).scores
            lm.model.train()
            log.info("tiny base pretraining step %d validation %s", step,
                     {k: round(v, 2) for k, v in scores.items()})
    lm.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"spec": spec.model_dump(), "train_examples": len(train),
            "tasks": {t: sum(ex.task == t for ex in train.examples) for t in ("asr", "ast", "sqa")},
            "final_loss": sum(losses[-20:]) / len(losses[-20:]), "validation": scores,
            "seconds": time.perf_counter() - t0}

