"""One trial end to end: data -> model -> SFT or GRPO steps with validation -> best checkpoint -> test.

`run_trial` knows nothing of Optuna or MLflow: it calls `log(metrics, step)` for per-step and
validation metrics and `report(scores, step)` with each validation's scores (the sweep turns that
into an Optuna report + prune decision by raising `optuna.TrialPruned`).

Work that would come out the same for every trial is done once (`harness.train.process_cache`): the
task's data (per process; its features on disk), and the evaluations of the untouched starting model
(validation at step 0, the base model's greedy test; per process and on disk). `load_task_data` and
`clear_process_caches` are named here too, where the sweep and the tests reach them.
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

from harness import distributed
from harness.config import TrialConfig
from harness.data.dataset import BatchSampler, SpokenSet
from harness.eval.evaluate import Evaluation, evaluate
from harness.models.loader import frozen_copy, load_speech_lm
from harness.models.speech_lm import SpeechLM
from harness.rewards import Reward, parse_reward
from harness.runtime import configure_threads
from harness.train import checkpoint
from harness.train.base_model import StartingPoint, starting_point
from harness.train.clock import PhaseClock
from harness.train.grpo import grpo_step
from harness.train.grpo_loss import uses_reference
from harness.train.learner import Learner, MicroBatching
from harness.train.optimizer import make_optimizer
from harness.train.process_cache import clear_process_caches, evaluate_initial, load_task_data
from harness.train.sft import sft_step
from harness.vocabulary import (
    BASE_EVAL,
    BEST_STEP,
    GRPO,
    PARAMS_TOTAL,
    PARAMS_TRAINABLE,
    SELECT_METRIC,
    STEP_GENERATED_TOKENS,
    STEP_TRAINED_TOKENS,
    VAL,
    metric_key,
)

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
    trial = _set_up(cfg, world, clock, log, report)
    steps = 0 if cfg.method == BASE_EVAL else cfg.train.steps
    progress = (_resume(trial, checkpoint_dir) if steps else None) or _start(trial, steps)
    sample_at = set(np.linspace(1, steps, sample_steps, dtype=int).tolist()) if steps else set()
    for step in range(progress.step + 1, steps + 1):
        _train_step(trial, progress, step, steps, keep_samples=step in sample_at)
        if step % cfg.train.eval_every == 0 or step == steps:
            _keep_if_best(trial, progress, step, _validate(trial, step))
        if checkpoint_dir is not None and _checkpoint_due(cfg, step, steps):
            _save_checkpoint(trial, progress, checkpoint_dir)
    test = _test(trial, progress)
    log({BEST_STEP: progress.best_step}, steps)
    return _result(trial, progress, test, steps)


@dataclass
class _Trial:
    """What a trial trains and evaluates, loaded once: its data, the policy with its optimiser
    (`learner`), the reward (GRPO), the batch order, and where results go."""

    cfg: TrialConfig
    data: dict[str, SpokenSet]
    start: StartingPoint  # the checkpoint every trial of this model starts from
    learner: Learner
    sampler: BatchSampler
    reward: Reward | None  # GRPO's
    world: distributed.World
    clock: PhaseClock
    log: Callable[[dict, int], None]
    report: Callable[[dict[str, float], int], None]

    @property
    def policy(self) -> SpeechLM:
        return self.learner.policy


@dataclass
class _Progress:
    """Where training stands after `step`: what a checkpoint saves and a trial's result reports."""

    best_scores: dict[str, float]  # validation at best_step
    best_step: int
    best_state: dict[str, torch.Tensor] | None  # the policy's state_dict at best_step (None: nothing trained)
    samples: dict[int, list[dict]] = field(default_factory=dict)  # step -> sample generations
    generated: int = 0  # tokens the rollouts sampled, over the steps
    trained: int = 0  # completion tokens that entered a loss, over the steps
    step: int = 0  # the last step taken
    resumed_from: int = 0  # the checkpoint step this run continued from (0: started fresh)
    train_s: float = 0.0  # seconds in training steps (this run's)


def _set_up(cfg: TrialConfig, world: distributed.World, clock: PhaseClock, log, report) -> _Trial:
    """The task's data and the model, optimiser, reward and batch order a trial trains with."""
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
        start = starting_point(cfg.model)
        policy = load_speech_lm(cfg.model, path=start.path)
        # Fine-tuning runs in eval mode: no dropout and frozen BatchNorm statistics (the conformer has
        # BatchNorm), so the policy that samples is exactly the policy whose log-probs are trained.
        policy.model.eval()
        grpo = cfg.method == GRPO
        reference = frozen_copy(policy) if grpo and uses_reference(cfg.grpo) else None
        reward = parse_reward(cfg.grpo.reward) if grpo else None
    log(
        {
            PARAMS_TOTAL: float(sum(p.numel() for p in policy.model.parameters())),
            PARAMS_TRAINABLE: float(sum(p.numel() for p in policy.model.parameters() if p.requires_grad)),
        },
        0,
    )
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
    return _Trial(cfg, data, start, learner, sampler, reward, world, clock, log, report)


def _validate(trial: _Trial, step: int) -> dict[str, float]:
    """Validation scores at `step` (step 0: the starting model's, computed once), logged and reported."""
    cfg, policy = trial.cfg, trial.policy
    with trial.clock("validation"):
        if step == 0:
            scores = evaluate_initial(policy, trial.data["validation"], "validation", cfg, trial.start.identity, False)
        else:
            scores = evaluate(policy, trial.data["validation"], cfg.eval, seed=cfg.seed, full=False)
    trial.log({metric_key(VAL, k): v for k, v in scores.scores.items()}, step)
    trial.report(scores.scores, step)
    return scores.scores


def _start(trial: _Trial, steps: int) -> _Progress:
    """A fresh start: the starting model validated at step 0 is the best so far."""
    scores = _validate(trial, 0)
    best_state = copy.deepcopy(trial.policy.model.state_dict()) if steps else None
    return _Progress(scores, 0, best_state)


def _resume(trial: _Trial, checkpoint_dir: Path | None) -> _Progress | None:
    """Everything as it was right after the checkpoint's step, or None without a checkpoint of this config."""
    saved = checkpoint.load(checkpoint_dir, trial.cfg.digest())
    if saved is None:
        return None
    learner = trial.learner
    model = learner.policy.model
    best_state = {**copy.deepcopy(model.state_dict()), **saved["best_state"]}
    checkpoint.restore(model, saved["model"])
    learner.optimizer.load_state_dict(saved["optimizer"])
    learner.scheduler.load_state_dict(saved["scheduler"])
    checkpoint.set_rng_state(saved["rng"], learner.generator, trial.sampler)
    step = saved["step"]
    return _Progress(
        saved["best_scores"],
        saved["best_step"],
        best_state,
        saved["samples"],
        saved["generated"],
        saved.get("trained", 0),
        step=step,
        resumed_from=step,
    )


def _draw(trial: _Trial):
    """This rank's share of the next training batch: (examples, prompts, answers)."""
    examples, feats = trial.data["train"].batch(distributed.shard(trial.sampler.next(), trial.world))
    return examples, trial.policy.prepare([ex.prompt for ex in examples], feats), [ex.answer for ex in examples]


def _train_step(trial: _Trial, progress: _Progress, step: int, steps: int, keep_samples: bool) -> None:
    """One SFT or GRPO step on the next batch: its metrics checked and logged, the counts added up."""
    t = time.perf_counter()
    examples, prompts, answers = _draw(trial)
    if trial.cfg.method == GRPO:
        result = grpo_step(
            trial.learner,
            prompts,
            answers,
            trial.reward,
            trial.cfg.grpo,
            step=step,
            total_steps=steps,
            draw_more=lambda: _draw(trial)[1:],  # further prompts for DAPO's dynamic sampling
        )
        if keep_samples:
            progress.samples[step] = [dict(r, prompt=examples[r["prompt"]].prompt) for r in result.samples]
        progress.generated += int(result.metrics[STEP_GENERATED_TOKENS])
    else:
        result = sft_step(trial.learner, prompts, answers)
    progress.trained += int(result.metrics[STEP_TRAINED_TOKENS])
    progress.train_s += time.perf_counter() - t
    progress.step = step
    check_finite(result.metrics, step)
    trial.log(result.metrics, step)


def _keep_if_best(trial: _Trial, progress: _Progress, step: int, scores: dict[str, float]) -> None:
    """The selection rule: the checkpoint with the best validation SELECT_METRIC so far is kept."""
    if scores[SELECT_METRIC] > progress.best_scores[SELECT_METRIC]:
        progress.best_scores, progress.best_step = scores, step
        progress.best_state = copy.deepcopy(trial.policy.model.state_dict())


def _checkpoint_due(cfg: TrialConfig, step: int, steps: int) -> bool:
    """Every `train.checkpoint_every` steps (0: never), but not after the last step (the trial ends)."""
    every = cfg.train.checkpoint_every
    return bool(every) and step % every == 0 and step < steps


def _save_checkpoint(trial: _Trial, progress: _Progress, checkpoint_dir: Path) -> None:
    """The resumable state after `progress.step` (what `_resume` reads)."""
    learner, model = trial.learner, trial.policy.model
    checkpoint.save(
        checkpoint_dir,
        {
            "config": trial.cfg.digest(),
            "step": progress.step,
            "model": checkpoint.trained(model, model.state_dict()),
            "optimizer": learner.optimizer.state_dict(),
            "scheduler": learner.scheduler.state_dict(),
            "rng": checkpoint.rng_state(learner.generator, trial.sampler),
            "best_scores": progress.best_scores,
            "best_step": progress.best_step,
            "best_state": checkpoint.trained(model, progress.best_state),
            "samples": progress.samples,
            "generated": progress.generated,
            "trained": progress.trained,
        },
    )


def _test(trial: _Trial, progress: _Progress) -> Evaluation:
    """The selected checkpoint's full evaluation on the test split."""
    cfg, policy = trial.cfg, trial.policy
    if progress.best_state is not None:
        policy.model.load_state_dict(progress.best_state)
    with trial.clock("test"):
        if progress.best_step == 0:  # the starting model itself (base-eval, or no step beat it on validation)
            return evaluate_initial(policy, trial.data["test"], "test", cfg, trial.start.identity, True)
        return evaluate(policy, trial.data["test"], cfg.eval, seed=cfg.seed, full=True)


def _result(trial: _Trial, progress: _Progress, test: Evaluation, steps: int) -> TrialResult:
    times = {f"{phase}_s": seconds for phase, seconds in trial.clock.totals.items()}
    times["train_s"] = progress.train_s
    model = trial.policy.model
    return TrialResult(
        test,
        progress.best_scores,
        progress.best_step,
        steps,
        progress.generated,
        times,
        progress.samples,
        resumed_from=progress.resumed_from,
        trained_tokens=progress.trained,
        best_weights=checkpoint.trained(model, progress.best_state) if progress.best_state is not None else None,
    )


def check_finite(metrics: dict, step: int) -> None:
    """A NaN/inf loss, reward or gradient norm ends the trial with the reason (the study goes on)."""
    for key in ("loss", "reward", "grad_norm"):
        value = metrics.get(key)
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"{key} is {value} at step {step}")
