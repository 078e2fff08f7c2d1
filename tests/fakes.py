"""Shared test doubles for the sweep tests: a tiny study body, a fake `run_trial` and a fake
`load_task_data` (examples without audio: the sweep logs them as MLflow datasets)."""

import itertools
import time

import numpy as np

import harness.train.trial as trial_lib
from harness.config import TinySpec
from harness.data.dataset import SpokenSet
from harness.data.example import PROMPTS, Example
from harness.eval.evaluate import Evaluation

TINY = """
fixed:
  task: sqa
  method: grpo
  train: {steps: 2, batch_size: 2, eval_every: 1}
  grpo: {group_size: 3}
  data: {train_size: 8, validation_size: 4, test_size: 4}
  eval: {bertscore: false, max_new_tokens: 8}
"""


def fake_data(cfg):
    """The splits' examples at the configured sizes, with clip paths but no clips (nothing reads them)."""
    sizes = {"train": cfg.data.train_size, "validation": cfg.data.validation_size, "test": cfg.data.test_size}

    def example(split: str, i: int) -> Example:
        return Example(
            f"{split}-{i}",
            cfg.task,
            f"/fake/{cfg.task}/{split}/{i}.wav",
            PROMPTS[cfg.task].format(question=f"question {i}?"),
            f"answer {i}",
            f"passage {i}",
        )

    return {split: SpokenSet([example(split, i) for i in range(n)], []) for split, n in sizes.items()}


def fake_trial(
    fail=lambda cfg: False,
    val=lambda cfg, step, call: 10.0 + step,
    sleep: float = 0.0,
    weights=None,
    samples=None,
    generated=lambda cfg: 100,
    test_bleu=lambda cfg: 12.5,
    selected=lambda cfg, call: 14.0,
):
    """A `run_trial` that logs a curve ``val(cfg, step, call)`` and returns test BLEU ``test_bleu(cfg)`` and
    ``generated(cfg)`` generated tokens, validation BLEU ``selected(cfg, call)`` at its selected step (1);
    ``weights(cfg)`` gives its best checkpoint's trained tensors (None:
    none), ``samples(cfg)`` its sample tables."""
    calls = itertools.count()

    def run_trial(
        cfg, log=lambda m, s: None, report=lambda v, s: None, sample_steps=3, checkpoint_dir=None, clock=None
    ):
        call = next(calls)
        steps = 0 if cfg.method == "base-eval" else cfg.train.steps
        for step in range(steps + 1):
            time.sleep(sleep)
            if step:
                log({"reward": 0.1 * step, "loss": 1.0 / step, "kl": 0.0, "note": "not a number"}, step)
                if fail(cfg) and step == steps:
                    raise FloatingPointError(f"loss is NaN at step {step}")
            value = val(cfg, step, call)
            log({"val/bleu": value, "val/nll": 2.0}, step)
            report({"bleu": value, "nll": 2.0}, step)
        test = Evaluation(
            {"bleu": test_bleu(cfg), "rouge1": 30.0, "nll": 2.0},
            ["ex-0", "ex-1"],
            ["ref a", "ref b"],
            ["hyp a", "hyp b"],
            {"bleu": np.array([10.0, 15.0]), "rouge1": np.array([20.0, 40.0])},
            np.array([[2, 2, 1, 0, 0, 0, 2, 1, 0, 0], [2, 2, 2, 1, 0, 0, 2, 1, 0, 0]]),
        )
        tables = (
            samples(cfg)
            if samples is not None
            else {1: [{"prompt": "p", "reference": "r", "completion": "c", "reward": 0.5, "off_policy": False}]}
        )
        return trial_lib.TrialResult(
            test,
            {"bleu": selected(cfg, call), "nll": 2.0},
            1,
            steps,
            generated(cfg),
            {"data_s": 0.1, "train_s": 1.0},
            tables,
            best_weights=weights(cfg) if weights is not None else None,
        )

    return run_trial


# A tiny model for tests that build their own (milliseconds to construct and to step).
SMALL_SPEC = TinySpec(
    vocab_size=300,
    encoder_hidden=32,
    encoder_layers=1,
    projector_hidden=32,
    text_hidden=32,
    text_layers=1,
    text_heads=2,
)
