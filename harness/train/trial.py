"""One trial end to end: data -> model -> SFT or GRPO steps with validation -> best checkpoint -> test.

`run_trial` knows nothing of Optuna or MLflow: it calls `log(metrics, step)` for per-step and
validation metrics and `report(value, step)` after each validation (the sweep turns that into an
Optuna report + prune decision by raising `optuna.TrialPruned`).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.config import TrialConfig
from harness.data.dataset import BatchSampler, SpokenSet
from harness.models.loader import frozen_copy, load_speech_lm
from harness.rewards import parse_reward
from harness.runtime import configure_threads
from harness.train import checkpoint, distributed
from harness.train.evaluate import Evaluation, evaluate
from harness.train.grpo import grpo_step
from harness.train.optimizer import make_optimizer
from harness.train.sft import sft_step

SELECT_METRIC = "bleu"  # best checkpoint = highest validation BLEU (the paper's selection)


@dataclass
class TrialResult:
    test: Evaluation
    validation: dict[str, float]  # at the selected step
    best_step: int
    steps: int
    generated_tokens: int
    times: dict[str, float]  # seconds per stage
    samples: dict[int, list[dict]] = field(default_factory=dict)  # step -> sample generations
    resumed_from: int = 0  # the checkpoint step this run continued from (0: started fresh)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_task_data(cfg: TrialConfig) -> dict[str, SpokenSet]:
    from harness.data.synthetic import load_synthetic

    if cfg.data.source != "synthetic":  # LibriSQA / CoVoST2 / saved HF dataset (harness/data/real.py)
        from harness.data.real import load_real

        splits, report = load_real(cfg.data, cfg.task)  # bad clips are logged there, with their paths
        # features on demand (a corpus does not fit in memory as features), except validation: it is
        # capped by data.validation_size and decoded at every evaluation, so it is computed once
        return {name: SpokenSet.from_examples(examples, lazy=name != "validation", skipped=report.skipped.get(name))
                for name, examples in splits.items()}
    sizes = {"train": cfg.data.train_size, "validation": cfg.data.validation_size, "test": cfg.data.test_size}
    splits = load_synthetic(cfg.task, sizes, seed=cfg.data.seed, voice=cfg.data.voice)
    return {name: SpokenSet.from_examples(examples) for name, examples in splits.items()}


def run_trial(
    cfg: TrialConfig,
    log: Callable[[dict, int], None] = lambda metrics, step: None,
    report: Callable[[float, int], None] = lambda value, step: None,
    sample_steps: int = 3,
    checkpoint_dir: Path | None = None,
) -> TrialResult:
    """Train and test one config. With ``checkpoint_dir``, the training state is saved there every
    ``cfg.train.checkpoint_every`` steps and a later call with the same config resumes from it."""
    times: dict[str, float] = {}
    configure_threads()
    world = distributed.init()  # several processes under torchrun / accelerate launch (distributed.py)
    if not world.main:  # ranks > 0 train and evaluate in step with rank 0, which alone logs
        log, report = (lambda metrics, step: None), (lambda value, step: None)
    t = time.perf_counter()
    seed_everything(cfg.seed)
    data = load_task_data(cfg)
    times["data_s"] = time.perf_counter() - t
    if cfg.data.source != "synthetic":  # real data: how many examples, and how many clips were left out
        log({f"data/{name}_{k}": float(v) for name, s in data.items()
             for k, v in (("examples", len(s)), ("skipped_clips", len(s.skipped)))}, 0)

    t = time.perf_counter()
    policy = load_speech_lm(cfg.model)
    # Fine-tuning runs in eval mode: no dropout and frozen BatchNorm statistics (the conformer has
    # BatchNorm), so the policy that samples is exactly the policy whose log-probs are trained.
    policy.model.eval()
    grpo = cfg.method == "grpo"
    reference = frozen_copy(policy) if grpo and cfg.grpo.beta != 0.0 else None
    reward = parse_reward(cfg.grpo.reward) if grpo else None
    times["model_s"] = time.perf_counter() - t

    steps = 0 if cfg.method == "base-eval" else cfg.train.steps
    optimizer, scheduler = make_optimizer(policy.model, cfg.train.lr, cfg.train.weight_decay, cfg.train.warmup_steps)
    sampler = BatchSampler(len(data["train"]), cfg.train.batch_size, cfg.seed)
    generator = torch.Generator(device=policy.device).manual_seed(cfg.seed + 1_000_003 * world.rank)

    def validate(step: int) -> dict[str, float]:
        scores = evaluate(policy, data["validation"], cfg.eval, seed=cfg.seed, full=False).scores
        log({f"val/{k}": v for k, v in scores.items()}, step)
        report(scores[SELECT_METRIC], step)
        return scores

    digest = cfg.digest()
    saved = checkpoint.load(checkpoint_dir, digest) if steps else None
    t = time.perf_counter()
    if saved is None:
        best_scores, best_step = validate(0), 0
        best_state = copy.deepcopy(policy.model.state_dict()) if steps else None
        samples: dict[int, list[dict]] = {}
        generated, first = 0, 1
    else:  # resume: everything as it was right after step saved["step"]
        best_state = {**copy.deepcopy(policy.model.state_dict()), **saved["best_state"]}
        checkpoint.restore(policy.model, saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_state(saved["rng"], generator, sampler)
        best_scores, best_step = saved["best_scores"], saved["best_step"]
        samples, generated, first = saved["samples"], saved["generated"], saved["step"] + 1
    times["validation_s"] = time.perf_counter() - t
    sample_at = set(np.linspace(1, steps, sample_steps, dtype=int).tolist()) if steps else set()
    t_train = 0.0
    every = cfg.train.checkpoint_every

    for step in range(first, steps + 1):
        t = time.perf_counter()
        examples, feats = data["train"].batch(distributed.shard(sampler.next(), world))
        prompts = policy.prepare([ex.prompt for ex in examples], feats)
        answers = [ex.answer for ex in examples]
        if grpo:
            metrics = grpo_step(policy, reference, optimizer, scheduler, prompts, answers, reward, cfg.grpo,
                                cfg.train.max_grad_norm, generator)
            rows = metrics.pop("samples")
            if step in sample_at:
                samples[step] = [dict(r, prompt=examples[r["prompt"]].prompt) for r in rows]
            generated += int(metrics["generated_tokens"])
        else:
            metrics = sft_step(policy, optimizer, scheduler, prompts, answers, cfg.train.max_grad_norm)
        t_train += time.perf_counter() - t
        _check_finite(metrics, step)
        log(metrics, step)

        if step % cfg.train.eval_every == 0 or step == steps:
            t = time.perf_counter()
            scores = validate(step)
            if scores[SELECT_METRIC] > best_scores[SELECT_METRIC]:
                best_scores, best_step = scores, step
                best_state = copy.deepcopy(policy.model.state_dict())
            times["validation_s"] += time.perf_counter() - t
        if checkpoint_dir is not None and every and step % every == 0 and step < steps:
            checkpoint.save(checkpoint_dir, {
                "config": digest, "step": step, "model": checkpoint.trained(policy.model, policy.model.state_dict()),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": checkpoint.rng_state(generator, sampler), "best_scores": best_scores, "best_step": best_step,
                "best_state": checkpoint.trained(policy.model, best_state), "samples": samples,
                "generated": generated})
    times["train_s"] = t_train

    if best_state is not None:
        policy.model.load_state_dict(best_state)
    t = time.perf_counter()
    test = evaluate(policy, data["test"], cfg.eval, seed=cfg.seed, full=True)
    times["test_s"] = time.perf_counter() - t
    log({"best_step": best_step}, steps)
    return TrialResult(test, best_scores, best_step, steps, generated, times, samples,
                       resumed_from=first - 1 if saved is not None else 0)


def _check_finite(metrics: dict, step: int) -> None:
    """A NaN/inf loss, reward or gradient norm ends the trial with the reason (the study goes on)."""
    for key in ("loss", "reward", "grad_norm"):
        value = metrics.get(key)
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"{key} is {value} at step {step}")

