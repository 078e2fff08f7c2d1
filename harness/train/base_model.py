"""The tiny preset's base model: random init, then pretrained on ASR (+ some AST) of synthetic speech.

Granite Speech knew ASR and speech translation before the study fine-tuned it; the tiny base model
gets the same head start, on sentences that never occur in the SQA/AST study data. It is built in
Granite's two stages:

1. the conformer encoder alone learns to hear: character CTC on the spoken transcripts (Granite's
   encoder is a CTC-trained ASR encoder too); the CTC head is discarded afterwards;
2. with the encoder frozen, projector and language model learn the tasks by SFT (as Granite trains
   its projector and LoRA over a frozen encoder). Trained end to end from random init instead, the
   language model learns the text prior and ignores the audio: noise in place of speech raised
   the validation NLL by only 2 %.

The base of the default `TinySpec` is shipped (`harness.models.tiny_base`): identical on every
machine, checked by its sha256. Another spec's base is built once (cached under
`<cache>/models/tiny-<hash>`) and reused by every trial. `starting_point` says which checkpoint a
trial starts from and how it is identified in the records.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.config import EvalConfig, ModelConfig
from harness.data.dataset import BatchSampler, SpokenSet
from harness.data.example import PROMPTS
from harness.data.synthetic import load_pretraining, vocabulary
from harness.eval.evaluate import evaluate
from harness.eval.hearing import edit_distance
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import TinySpec, build_tiny, train_tokenizer
from harness.models.tiny_base import built_base, shipped_base, tiny_identity
from harness.runtime import configure_threads
from harness.train.learner import Learner
from harness.train.optimizer import make_optimizer
from harness.train.sft import sft_step

__all__ = [
    "CTC_CHARS",
    "StartingPoint",
    "ctc_greedy",
    "ctc_pretrain_encoder",
    "ctc_targets",
    "ensure_tiny_base",
    "pretrain_tiny",
    "starting_point",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartingPoint:
    """The checkpoint a trial starts from: where it is and what identifies it in the records."""

    path: str  # a directory from_pretrained reads (tiny: the shipped or cached base)
    identity: str  # 'tiny-<digest> sha256:<weights> (shipped|built here)', or the checkpoint's revision


def starting_point(cfg: ModelConfig) -> StartingPoint:
    """The tiny preset's base (shipped and checked, or built once here), or the named checkpoint."""
    from harness.models.checkpoint import checkpoint_revision, resolve_checkpoint

    if cfg.name != "tiny":
        return StartingPoint(str(resolve_checkpoint(cfg.name)), checkpoint_revision(cfg))
    shipped = shipped_base(cfg.tiny)
    path = shipped[0] if shipped is not None else ensure_tiny_base(cfg.tiny)
    return StartingPoint(str(path), tiny_identity(cfg.tiny))


def ensure_tiny_base(spec: TinySpec) -> Path:
    """Path of the cached base model for `spec`, building it first if needed (process-safe)."""
    path = built_base(spec)
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    if (path / "pretraining.json").exists():
        return path
    with open(root / f".tiny-{spec.digest()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits here, then finds the model built
        if not (path / "pretraining.json").exists():
            tmp = root / f".tmp-tiny-{spec.digest()}"
            shutil.rmtree(tmp, ignore_errors=True)
            summary = pretrain_tiny(spec, tmp)
            (tmp / "pretraining.json").write_text(json.dumps(summary, indent=2))
            tmp.rename(path)
    return path


def _progress(stage: str, step: int, total: int, start: float) -> None:
    """One line on stderr for the (minutes-long) base build: stage, step/total, elapsed, ETA."""
    elapsed = time.perf_counter() - start
    eta = elapsed / step * (total - step) if step else float("nan")
    print(
        f"building the tiny base model: {stage} step {step}/{total}, {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def pretrain_tiny(spec: TinySpec, out: Path) -> dict:
    t0 = time.perf_counter()
    configure_threads()
    # Disjoint from every SQA/AST split by construction (see synthetic.reserved_for_pretraining).
    splits = load_pretraining(
        {"train": spec.pretrain_examples, "validation": 64},
        seed=spec.seed,
        ast_fraction=spec.pretrain_ast_fraction,
        sqa_fraction=spec.pretrain_sqa_fraction,
    )
    train, validation = SpokenSet.from_examples(splits["train"]), SpokenSet.from_examples(splits["validation"])
    # The tokenizer sees the closed vocabulary of the synthetic world and the prompts, not task data.
    corpus = [ex.answer for ex in train.examples] + list(PROMPTS.values()) + sorted(vocabulary())
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    torch.manual_seed(spec.seed)
    lm = SpeechLM(build_tiny(spec, tokenizer), tokenizer)
    ctc = ctc_pretrain_encoder(lm.model.model.encoder, train, validation, spec)
    encoder = lm.model.model.encoder
    encoder.requires_grad_(False)
    optimizer, scheduler = make_optimizer(
        lm.model, spec.pretrain_lr, 0.01, spec.pretrain_steps // 20, decay_steps=spec.pretrain_steps
    )
    learner = Learner(lm, optimizer, scheduler, max_grad_norm=1.0)
    sampler = BatchSampler(len(train), spec.pretrain_batch_size, spec.seed)
    lm.model.train()
    encoder.eval()  # frozen, BatchNorm statistics included
    losses = []
    stage_start = time.perf_counter()
    for step in range(1, spec.pretrain_steps + 1):
        examples, feats = train.batch(sampler.next())
        prompts = lm.prepare([ex.prompt for ex in examples], feats)
        losses.append(sft_step(learner, prompts, [ex.answer for ex in examples]).metrics["loss"])
        if step % 100 == 0:
            log.info("tiny base pretraining step %d/%d loss %.3f", step, spec.pretrain_steps, losses[-1])
            _progress("stage 2/2 (SFT over the frozen encoder)", step, spec.pretrain_steps, stage_start)
        if step % 500 == 0 or step == spec.pretrain_steps:
            scores = evaluate(lm, validation, EvalConfig(bertscore=False), full=False).scores
            lm.model.train()
            encoder.eval()
            log.info("tiny base pretraining step %d validation %s", step, {k: round(v, 2) for k, v in scores.items()})
    encoder.requires_grad_(True)
    lm.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "spec": spec.model_dump(),
        "train_examples": len(train),
        "tasks": {t: sum(ex.task == t for ex in train.examples) for t in ("asr", "ast", "sqa")},
        "ctc": ctc,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "validation": scores,
        "seconds": time.perf_counter() - t0,
    }


CTC_CHARS = " abcdefghijklmnopqrstuvwxyz'"  # index 0 is the CTC blank, characters are 1..28


def ctc_targets(text: str) -> list[int]:
    return [CTC_CHARS.index(c) + 1 for c in text.lower() if c in CTC_CHARS]


def ctc_greedy(log_probs: torch.Tensor, length: int) -> str:
    ids = log_probs[:length].argmax(-1).tolist()
    return "".join(CTC_CHARS[i - 1] for k, i in enumerate(ids) if i != 0 and (k == 0 or i != ids[k - 1]))


def ctc_pretrain_encoder(encoder: torch.nn.Module, train: SpokenSet, validation: SpokenSet, spec: TinySpec) -> dict:
    """Stage 1: character CTC on the transcripts through a throwaway linear head; returns the final
    training loss and the validation character error rate (greedy CTC decoding)."""
    head = torch.nn.Linear(spec.encoder_hidden, len(CTC_CHARS) + 1)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=spec.pretrain_lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50))
    sampler = BatchSampler(len(train), spec.pretrain_batch_size, spec.seed)

    def log_probs(feats: list[torch.Tensor]) -> torch.Tensor:
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        return head(encoder(padded).last_hidden_state).log_softmax(-1)  # [B, T, chars + 1]

    encoder.train()
    start = time.perf_counter()
    for step in range(1, spec.pretrain_ctc_steps + 1):
        examples, feats = train.batch(sampler.next())
        targets = [ctc_targets(ex.transcript) for ex in examples]
        loss = F.ctc_loss(
            log_probs(feats).transpose(0, 1),
            torch.tensor(sum(targets, [])),
            torch.tensor([f.shape[0] for f in feats]),
            torch.tensor([len(t) for t in targets]),
            zero_infinity=True,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if step % 100 == 0:
            log.info("tiny base CTC step %d/%d loss %.3f", step, spec.pretrain_ctc_steps, loss.item())
            _progress("stage 1/2 (encoder, CTC)", step, spec.pretrain_ctc_steps, start)
    encoder.eval()
    errors = chars = 0
    with torch.no_grad():
        for start in range(0, len(validation), 32):
            examples, feats = validation.batch(range(start, min(start + 32, len(validation))))
            for ex, lp, feat in zip(examples, log_probs(feats), feats):
                ref = "".join(CTC_CHARS[i - 1] for i in ctc_targets(ex.transcript))
                errors, chars = errors + edit_distance(ctc_greedy(lp, feat.shape[0]), ref), chars + len(ref)
    return {
        "steps": spec.pretrain_ctc_steps,
        "final_loss": loss.item() if spec.pretrain_ctc_steps else None,
        "validation_cer": errors / max(chars, 1),
    }
