"""Shared test doubles for the sweep tests: a tiny study body and a fake `run_trial`."""

import itertools
import time

import numpy as np

import harness.train.trial as trial_lib
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


def fake_trial(fail=lambda cfg: False, val=lambda cfg, step, call: 10.0 + step, sleep: float = 0.0):
    calls = itertools.count()

    def run_trial(cfg, log=lambda m, s: None, report=lambda v, s: None, sample_steps=3, checkpoint_dir=None,
                  clock=None):
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
        test = Evaluation({"bleu": 12.5, "rouge1": 30.0, "nll": 2.0}, ["ex-0", "ex-1"], ["ref a", "ref b"],
                          ["hyp a", "hyp b"], {"bleu": np.array([10.0, 15.0]), "rouge1": np.array([20.0, 40.0])},
                          np.array([[2, 2, 1, 0, 0, 0, 2, 1, 0, 0], [2, 2, 2, 1, 0, 0, 2, 1, 0, 0]]))
        samples = {1: [{"prompt": "p", "reference": "r", "completion": "c", "reward": 0.5, "off_policy": False}]}
        return trial_lib.TrialResult(test, {"bleu": 14.0, "nll": 2.0}, 1, steps, 100,
                                     {"data_s": 0.1, "train_s": 1.0}, samples)

    return run_trial
