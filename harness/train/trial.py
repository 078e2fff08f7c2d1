"""One trial end to end: data -> model -> SFT or GRPO steps with validation -> best checkpoint -> test.

`run_trial` knows nothing of Optuna or MLflow: it calls `log(metrics, step)` for per-step and
validation metrics and `report(scores, step)` with each validation's scores (the sweep turns that
into an Optuna report + prune decision by raising `optuna.TrialPruned`).

Work that would come out the same for every trial is done once: the task's data (per process; its
features on disk), and the evaluations of the untouched starting model (validation at step 0, the
base model's greedy test; per process and on disk). Both are exact: the same computation on the
same inputs gives the same numbers (tests/test_throughput.py checks a trial's results with and
without them).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness import distributed
from harness.config import TrialConfig
from harness.data.dataset import BatchSampler, SpokenSet
from harness.eval.evaluate import EVALUATION_VERSION, Evaluation, evaluate
from harness.models.loader import frozen_copy, load_speech_lm
from harness.paths import cache_root
from harness.rewards import parse_reward
from harness.runtime import configure_threads
from harness.train import checkpoint
from harness.train.base_model import starting_point
from harness.train.clock import PhaseClock
from harness.train.grpo import grpo_step, needs_reference
from harness.train.learner import Learner, MicroBatching
from harness.train.optimizer import make_optimizer
from harness.train.sft import sft_step
from harness.vocabulary import BASE_EVAL, GRPO, PARAMS_TOTAL, PARAMS_TRAINABLE, SELECT_METRIC, VAL, metric_key

__all__ = ["TrialResult", "check_finite", "clear_process_caches", "load_task_data", "run_trial", "seed_everything"]


@dataclass
class TrialResult:
    test: Evaluation
    validation: dict[str, float]  # at the selected step
    best_step: int
    steps: int
    generated_tokens: int
    times: dict[str, float]  # seconds per phase of the trial (train, validation, test, data, model, ...)
    samples: dict[int, list[dict]] = field(default_factory=dict)  # step -> sample generations
    resumed_from: int = 0  # the checkpoint step this run continued from (0: started fresh)
    trained_tokens: int = 0  # completion tokens that entered a loss (GRPO: x mu iterations)
    # The best checkpoint's trained tensors (checkpoint.trained: what training changed, on top of the starting
    # checkpoint); None when nothing was trained (base-eval). The sweep logs them as an MLflow model.
    best_weights: dict[str, torch.Tensor] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Computed once per process


_data: OrderedDict[str, dict[str, SpokenSet]] = OrderedDict()  # a worker's trials share their task's data
_initial_evaluations: dict[str, Evaluation] = {}  # evaluations of an untouched starting model


def clear_process_caches() -> None:
    """Forget everything this process kept between trials (data, initial evaluations, encoder outputs in
    memory). Never needed for correctness: the next trial recomputes what it needs."""
    from harness.models import audio_cache

    _data.clear()
    _initial_evaluations.clear()
    audio_cache.clear()


def _data_key(cfg: TrialConfig) -> str:
    return json.dumps([cfg.task, cfg.data.model_dump(mode="json")], sort_keys=True)


def load_task_data(cfg: TrialConfig) -> dict[str, SpokenSet]:
    """The task's train / validation / test splits (kept for the process's next trials: two tasks)."""
    key = _data_key(cfg)
    if key in _data:
        _data.move_to_end(key)
        return dict(_data[key])  # a copy: a caller replacing a split leaves the next trial's data alone
    if cfg.data.source != "synthetic":  # LibriSQA / CoVoST2 / saved HF dataset (harness/data/real.py)
        from harness.data.real import load_real

        splits, report = load_real(cfg.data, cfg.task)  # bad clips are logged there, with their paths
        # features on demand (a corpus does not fit in memory as features), except validation: it is
        # capped by data.validation_size and decoded at every evaluation, so it is computed once
        data = {
            name: SpokenSet.from_examples(examples, lazy=name != "validation", skipped=report.skipped.get(name))
            for name, examples in splits.items()
        }
    else:
        from harness.data.synthetic import load_synthetic

        sizes = {"train": cfg.data.train_size, "validation": cfg.data.validation_size, "test": cfg.data.test_size}
        splits = load_synthetic(cfg.task, sizes, seed=cfg.data.seed, voice=cfg.data.voice)
        data = {name: SpokenSet.from_examples(examples) for name, examples in splits.items()}
    _data[key] = data
    while len(_data) > 2:
        _data.popitem(last=False)
    return dict(data)


def _evaluate_initial(policy, data: SpokenSet, split: str, cfg: TrialConfig, start: str, full: bool) -> Evaluation:
    """`evaluate` of the model as loaded (no step taken), done once and reused: every trial from the same
    starting point, data and evaluation settings gets the same greedy numbers. Kept per process and on
    disk (``<cache>/evaluations/``), like the data's features. Sampled passes depend on the trial's
    seed, so a full evaluation with them is not reused."""
    if full and cfg.eval.sampling_passes:
        return evaluate(policy, data, cfg.eval, seed=cfg.seed, full=True)
    key = hashlib.blake2b(
        json.dumps(
            [
                EVALUATION_VERSION,
                start,
                cfg.model.model_dump(mode="json"),
                _data_key(cfg),
                split,
                cfg.eval.model_dump(mode="json"),
                full,
                distributed.world().size,
            ],
            sort_keys=True,
        ).encode(),
        digest_size=16,
    ).hexdigest()
    if key not in _initial_evaluations:
        path = cache_root() / "evaluations" / f"{key}.pkl"
        try:
            _initial_evaluations[key] = pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            _initial_evaluations[key] = evaluate(policy, data, cfg.eval, seed=cfg.seed, full=full)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(_initial_evaluations[key]))
            os.replace(tmp, path)
    return copy.deepcopy(_initial_evaluations[key])


# --------------------------------------------------------------------------------------------------
# The trial


def run_trial(
    cfg: TrialConfig,
    log: Callable[[dict, int], None] = lambda metrics, step: None,
    report: Callable[[dict[str, float], int], None] = lambda scores, step: None,
    sample_steps: int = 3,
    checkpoint_dir: Path | None = None,
    clock: PhaseClock | None = None,
) -> TrialResult:
    """Train and test one config. With ``checkpoint_dir``, the training state is saved there every
    ``cfg.train.checkpoint_every`` steps and a later call with the same config resumes from it."""
    configure_threads()
    world = distributed.init()  # several processes under torchrun / accelerate launch (distributed.py)
    if not world.main:  # ranks > 0 train and evaluate in step with rank 0, which alone logs
        log, report = (lambda metrics, step: None), (lambda scores, step: None)
    clock = clock or PhaseClock()
    seed_everything(cfg.seed)
    with clock("data"):
        data = load_task_data(cfg)
    if cfg.data.source != "synthetic":  # real data: how many examples, and how many clips were left out
        log(
            {
                f"data/{name}_{k}": float(v)
                for name, s in data.items()
                for k, v in (("examples", len(s)), ("skipped_clips", len(s.skipped)))
            },
            0,
        )

    with clock("model"):
        start = starting_point(cfg.model)  # the checkpoint every trial of this model starts from
        policy = load_speech_lm(cfg.model, path=start.path)
        # Fine-tuning runs in eval mode: no dropout and frozen BatchNorm statistics (the conformer has
        # BatchNorm), so the policy that samples is exactly the policy whose log-probs are trained.
        policy.model.eval()
        grpo = cfg.method == GRPO
        reference = frozen_copy(policy) if grpo and needs_reference(cfg.grpo) else None
        reward = parse_reward(cfg.grpo.reward) if grpo else None
    log(
        {
            PARAMS_TOTAL: float(sum(p.numel() for p in policy.model.parameters())),
            PARAMS_TRAINABLE: float(sum(p.numel() for p in policy.model.parameters() if p.requires_grad)),
        },
        0,
    )

    steps = 0 if cfg.method == BASE_EVAL else cfg.train.steps
    optimizer, scheduler = make_optimizer(policy.model, cfg.train.lr, cfg.train.weight_decay, cfg.train.warmup_steps)
    sampler = BatchSampler(len(data["train"]), cfg.train.batch_size, cfg.seed)
    generator = torch.Generator(device=policy.device).manual_seed(cfg.seed + 1_000_003 * world.rank)
    learner = Learner(
        policy,
        optimizer,
        scheduler,
        cfg.train.max_grad_norm,
        reference,
        generator,
        MicroBatching(cfg.model.micro_batch_size),
        clock,
    )

    def validate(step: int) -> dict[str, float]:
        with clock("validation"):
            if step == 0:
                scores = _evaluate_initial(policy, data["validation"], "validation", cfg, start.identity, False).scores
            else:
                scores = evaluate(policy, data["validation"], cfg.eval, seed=cfg.seed, full=False).scores
        log({metric_key(VAL, k): v for k, v in scores.items()}, step)
        report(scores, step)
        return scores

    digest = cfg.digest()
    saved = checkpoint.load(checkpoint_dir, digest) if steps else None
    if saved is None:
        best_scores, best_step = validate(0), 0
        best_state = copy.deepcopy(policy.model.state_dict()) if steps else None
        samples: dict[int, list[dict]] = {}
        generated, trained, first = 0, 0, 1
    else:  # resume: everything as it was right after step saved["step"]
        best_state = {**copy.deepcopy(policy.model.state_dict()), **saved["best_state"]}
        checkpoint.restore(policy.model, saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_state(saved["rng"], generator, sampler)
        best_scores, best_step = saved["best_scores"], saved["best_step"]
        samples, generated, first = saved["samples"], saved["generated"], saved["step"] + 1
        trained = saved.get("trained", 0)
    sample_at = set(np.linspace(1, steps, sample_steps, dtype=int).tolist()) if steps else set()
    t_train = 0.0
    every = cfg.train.checkpoint_every

    def draw():  # this rank's share of the next training batch: (examples, prompts, answers)
        examples, feats = data["train"].batch(distributed.shard(sampler.next(), world))
        return examples, policy.prepare([ex.prompt for ex in examples], feats), [ex.answer for ex in examples]

    def draw_more():  # further prompts for DAPO's dynamic sampling (grpo.dynamic_sampling)
        return draw()[1:]

    for step in range(first, steps + 1):
        t = time.perf_counter()
        examples, prompts, answers = draw()
        if grpo:
            result = grpo_step(
                learner, prompts, answers, reward, cfg.grpo, step=step, total_steps=steps, draw_more=draw_more
            )
            if step in sample_at:
                samples[step] = [dict(r, prompt=examples[r["prompt"]].prompt) for r in result.samples]
            generated += int(result.metrics["generated_tokens"])
        else:
            result = sft_step(learner, prompts, answers)
        trained += int(result.metrics["trained_tokens"])
        t_train += time.perf_counter() - t
        check_finite(result.metrics, step)
        log(result.metrics, step)

        if step % cfg.train.eval_every == 0 or step == steps:
            scores = validate(step)
            if scores[SELECT_METRIC] > best_scores[SELECT_METRIC]:
                best_scores, best_step = scores, step
                best_state = copy.deepcopy(policy.model.state_dict())
        if checkpoint_dir is not None and every and step % every == 0 and step < steps:
            checkpoint.save(
                checkpoint_dir,
                {
                    "config": digest,
                    "step": step,
                    "model": checkpoint.trained(policy.model, policy.model.state_dict()),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": checkpoint.rng_state(generator, sampler),
                    "best_scores": best_scores,
                    "best_step": best_step,
                    "best_state": checkpoint.trained(policy.model, best_state),
                    "samples": samples,
                    "generated": generated,
                    "trained": trained,
                },
            )

    if best_state is not None:
        policy.model.load_state_dict(best_state)
    with clock("test"):
        if best_step == 0:  # the starting model itself (base-eval, or no step beat it on validation)
            test = _evaluate_initial(policy, data["test"], "test", cfg, start.identity, True)
        else:
            test = evaluate(policy, data["test"], cfg.eval, seed=cfg.seed, full=True)
    log({"best_step": best_step}, steps)
    times = {f"{phase}_s": seconds for phase, seconds in clock.totals.items()}
    times["train_s"] = t_train
    best_weights = checkpoint.trained(policy.model, best_state) if best_state is not None else None
    return TrialResult(
        test,
        best_scores,
        best_step,
        steps,
        generated,
        times,
        samples,
        resumed_from=first - 1 if saved is not None else 0,
        trained_tokens=trained,
        best_weights=best_weights,
    )


def check_finite(metrics: dict, step: int) -> None:
    """A NaN/inf loss, reward or gradient norm ends the trial with the reason (the study goes on)."""
    for key in ("loss", "reward", "grad_norm"):
        value = metrics.get(key)
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"{key} is {value} at step {step}")
