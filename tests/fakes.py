"""Shared test doubles and helpers: a tiny study body, a fake `run_trial` and a fake `load_task_data`
(examples without audio: the sweep logs them as MLflow datasets) for the sweep tests; prompts, learners
and gradients of small models; the CLI in-process; a study file; polling for a condition."""

import itertools
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import harness.train.trial as trial_lib
from harness.config import TinySpec
from harness.data.dataset import SpokenSet
from harness.data.example import PROMPTS, Example
from harness.eval.evaluate import Evaluation
from harness.models.features import log_mel
from harness.train.learner import Learner, MicroBatching
from harness.vocabulary import AUDIO_TOKEN

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


# Helpers of the model tests ---------------------------------------------------------------------

TRANSLATE_PROMPT = f"{AUDIO_TOKEN} listen to the speech and translate it into German."


def make_prompts(lm, lengths=(32000, 48000, 24000), text: str = TRANSLATE_PROMPT, seed: int = 0):
    """One prompt ``text`` per clip of ``lengths`` samples of seeded noise (x 0.1). A text-only model
    (no audio token) gets three text prompts of different lengths instead (left padding)."""
    if lm.audio_token_id is None:
        return lm.prepare(["Where does Anna live?", "Anna lives in", "listen to the speech and translate it"])
    rng = np.random.RandomState(seed)
    feats = [log_mel(rng.randn(n).astype(np.float32) * 0.1) for n in lengths]
    return lm.prepare([text] * len(lengths), feats)


def make_learner(lm, rows=0, reference=None, generator=None, optimizer=None, max_grad_norm=1e9) -> Learner:
    """A Learner of ``lm`` with a constant schedule, log-prob passes of ``rows`` rows (0: all); by default
    SGD at lr 0 over the trainable parameters (gradients only: the weights stay as they are)."""
    if optimizer is None:
        optimizer = torch.optim.SGD([p for p in lm.model.parameters() if p.requires_grad], lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return Learner(lm, optimizer, scheduler, max_grad_norm, reference, generator, MicroBatching(rows))


def grads_of(lm) -> dict[str, torch.Tensor]:
    """A copy of every parameter gradient of ``lm``'s model, by name."""
    return {n: p.grad.clone() for n, p in lm.model.named_parameters() if p.grad is not None}


# Helpers of the CLI and sweep tests -------------------------------------------------------------


def invoke(*args: str, env: dict | None = None):
    """The ``harness`` CLI in this process (typer's CliRunner); a traceback in its output fails the test."""
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def study_file(tmp_path: Path, body: str, name: str = "tiny", base: str = TINY) -> Path:
    """``<tmp_path>/<name>.yaml`` (a study is named after its file unless it says): ``base`` (TINY's fixed
    settings; "" for none) followed by ``body``, dedented."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(base.lstrip("\n") + textwrap.dedent(body).lstrip("\n"))
    return path


def wait_for(condition, timeout: float, what: str, procs: dict | None = None, every: float = 0.5) -> object:
    """Poll ``condition`` every ``every`` seconds until it is truthy, and return its value; fail after
    ``timeout`` seconds, or early if one of ``procs`` ({process: its log file}) failed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        for p, log in (procs or {}).items():
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(
                    f"a process exited with {p.returncode} while waiting for {what}: {log.read_text()[-2000:]}"
                )
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
