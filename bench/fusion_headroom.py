"""How much fusing K trials into one process could save at most, on this CPU (issue 22's question).

Fused trials (HFTA-style: K models of one architecture stacked, their batches run as one) save only
what a wider batch saves over K narrow ones: the per-operation overhead (Python, dispatch, kernel
launch) is paid once for K trials, the arithmetic is not. This bench measures that ceiling directly,
with the harness's own code and the shipped tiny base: the same work done as K batches of one trial's
size, one after the other, against one batch K times as wide, with **one set of weights**. A real fused
step can only be slower than the wide batch (K weight sets: batched matmuls instead of one, K
optimizers, K samplers), so the ratio is an upper bound on what fusion buys for each phase:

  1. a GRPO step (rollout, rewards, reference and policy log-probs, backward, optimizer): K steps of
     ``train.batch_size`` prompts x G samples, against one step of K x ``train.batch_size`` prompts;
  2. validation (greedy decoding + reference NLL of 256 examples): ``eval.batch_size`` prompts per batch,
     against K x ``eval.batch_size``;
  3. a sampled test pass (512 examples, the paper's top-p sampling): the same two batch sizes.

The projected trial time weighs each phase's ceiling by where a trial's time goes now (the phase
seconds of `bench/results/2026-11-30-sweep-throughput.md`), and the projected speed-up against
978bd76 multiplies in the 2.26x measured there. Interleaved (A, B, A, B, ...), min of each side per rep.

  python bench/fusion_headroom.py [--k 8] [--reps 3]

One torch thread (HARNESS_TORCH_THREADS, default 1), as a sweep worker has. Writes
bench/results/<date>-fusion-headroom.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HARNESS_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from harness.config import EvalConfig, TrialConfig  # noqa: E402
from harness.eval.evaluate import decode, greedy_and_nll  # noqa: E402
from harness.provenance import git_commit  # noqa: E402
from harness.runtime import configure_threads  # noqa: E402
from harness.train.clock import STEP_PHASES  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# Where a default GRPO trial's 34.9 s went at 2bbbe95 (bench/results/2026-11-30-sweep-throughput.md),
# and the speed-up over 978bd76 measured there.
TRIAL_SECONDS = {"training step": 26.1, "validation": 4.5, "test": 3.6}
OTHER_SECONDS = 34.9 - sum(TRIAL_SECONDS.values())  # start-up, checkpoints, logging: not fusable here
SPEEDUP_SO_FAR = 2.26


def grpo_runner(trial: TrialConfig, batch: int):
    """A GRPO learner on the shipped tiny base, stepping through the training prompts ``batch`` at a time."""
    from harness.models.loader import frozen_copy, load_speech_lm
    from harness.rewards import parse_reward
    from harness.train.grpo import grpo_step
    from harness.train.learner import Learner
    from harness.train.optimizer import make_optimizer
    from harness.train.trial import load_task_data

    data = load_task_data(trial)["train"]
    lm = load_speech_lm(trial.model)
    lm.model.eval()
    optimizer, scheduler = make_optimizer(lm.model, trial.train.lr, 0.0, 0)
    learner = Learner(lm, optimizer, scheduler, trial.train.max_grad_norm, frozen_copy(lm), torch.Generator())
    learner.generator.manual_seed(trial.seed)
    reward, position = parse_reward(trial.grpo.reward), [0]

    def step() -> dict[str, float]:
        idx = [(position[0] + k) % len(data) for k in range(batch)]
        position[0] += batch
        examples, feats = data.batch(idx)
        before = learner.clock.snapshot()
        prompts = lm.prepare([ex.prompt for ex in examples], feats)
        grpo_step(learner, prompts, [ex.answer for ex in examples], reward, trial.grpo)
        return learner.clock.since(before)

    return step


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(narrow, wide, k: int, reps: int) -> tuple[list[float], list[float]]:
    """K calls of ``narrow`` against one of ``wide``, alternating which goes first; a warm-up of each."""
    narrow(), wide()
    a, b = [], []
    for r in range(reps):
        runs = [("a", lambda: sum(timed(narrow) for _ in range(k))), ("b", lambda: timed(wide))]
        for side, fn in runs if r % 2 == 0 else runs[::-1]:
            (a if side == "a" else b).append(fn())
    return a, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=8, help="trials fused (default 8: a configuration's seeds)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    threads = configure_threads()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    trial = TrialConfig()
    k, b = args.k, trial.train.batch_size
    rows = []

    # 1. GRPO step: K steps of b prompts vs one of K*b (phases from the step's own clock)
    narrow_step, wide_step = grpo_runner(trial, b), grpo_runner(trial, k * b)
    phases_narrow: list[dict] = []
    phases_wide: list[dict] = []
    a, w = interleave(
        lambda: phases_narrow.append(narrow_step()), lambda: phases_wide.append(wide_step()), k, args.reps
    )
    rows.append(("training step", f"{k} x {b} prompts x G={trial.grpo.group_size}", f"{k * b} prompts", a, w))
    phase_rows = []
    for phase in STEP_PHASES:
        narrow_s = statistics.median(p.get(phase, 0.0) for p in phases_narrow) * k
        wide_s = statistics.median(p.get(phase, 0.0) for p in phases_wide)
        if narrow_s or wide_s:
            phase_rows.append((phase, narrow_s, wide_s))

    # 2-3. validation (greedy + NLL) and a sampled test pass at eval.batch_size vs K times it
    from harness.models.loader import load_speech_lm
    from harness.train.trial import load_task_data

    data = load_task_data(trial)
    lm = load_speech_lm(trial.model)
    narrow_cfg = trial.eval
    wide_cfg = EvalConfig(**{**narrow_cfg.model_dump(), "batch_size": k * narrow_cfg.batch_size})
    validation = data["validation"]
    val_subset = validation.subset(range(min(len(validation), k * narrow_cfg.batch_size)))
    a, w = interleave(
        lambda: greedy_and_nll(lm, val_subset.subset(range(narrow_cfg.batch_size)), narrow_cfg),
        lambda: greedy_and_nll(lm, val_subset, wide_cfg),
        k,
        args.reps,
    )
    rows.append(("validation", f"{k} x {narrow_cfg.batch_size} examples", f"{len(val_subset)} examples", a, w))
    test = data["test"].subset(range(k * narrow_cfg.batch_size))
    gen = torch.Generator()
    a, w = interleave(
        lambda: decode(lm, test.subset(range(narrow_cfg.batch_size)), narrow_cfg, greedy=False, generator=gen),
        lambda: decode(lm, test, wide_cfg, greedy=False, generator=gen),
        k,
        args.reps,
    )
    rows.append(("test", f"{k} x {narrow_cfg.batch_size} examples, sampled", f"{len(test)} examples", a, w))

    out = render(args, threads, load, time.perf_counter() - started, rows, phase_rows)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{dt.date.today():%Y-%m-%d}-fusion-headroom.md"
    path.write_text(out)
    print(out)
    print(f"wrote {path}")
    return 0


def render(args, threads, load, wall, rows, phase_rows) -> str:
    k = args.k
    lines = [
        f"# Fusion headroom: {k} trials' work as {k} narrow batches vs one wide batch",
        "",
        f"`python bench/fusion_headroom.py --k {k} --reps {args.reps}` at commit `{git_commit()}`, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{threads} torch thread(s); load average at start {load:.2f}; {wall / 60:.1f} min.",
        "",
        "One set of weights on both sides, so the wide batch is the **ceiling** of what fusing "
        f"{k} trials can save (a fused step adds stacked-weight matmuls, {k} optimizers and samplers). "
        "Seconds per rep (min over reps; median in brackets).",
        "",
        f"| phase | {k} narrow | 1 wide | {k} narrow (s) | 1 wide (s) | ceiling |",
        "|---|---|---|---|---|---|",
    ]
    ceilings = {}
    for name, narrow_desc, wide_desc, a, w in rows:
        ceilings[name] = min(a) / min(w)
        lines.append(
            f"| {name} | {narrow_desc} | {wide_desc} | {min(a):.2f} ({statistics.median(a):.2f}) | "
            f"{min(w):.2f} ({statistics.median(w):.2f}) | {ceilings[name]:.2f}x |"
        )
    lines += [
        "",
        f"Training step by phase (medians; the narrow side is {k} steps):",
        "",
        f"| phase | {k} narrow (s) | 1 wide (s) | ceiling |",
        "|---|---|---|---|",
    ]
    for phase, narrow_s, wide_s in phase_rows:
        ratio = f"{narrow_s / wide_s:.2f}x" if wide_s else "—"
        lines.append(f"| {phase} | {narrow_s:.2f} | {wide_s:.2f} | {ratio} |")
    now = sum(TRIAL_SECONDS.values()) + OTHER_SECONDS
    fused = sum(s / ceilings[name] for name, s in TRIAL_SECONDS.items()) + OTHER_SECONDS
    lines += [
        "",
        f"**Projection.** A default GRPO trial spent {now:.1f} s at 2bbbe95: "
        + ", ".join(f"{name} {s:.1f} s" for name, s in TRIAL_SECONDS.items())
        + f", other {OTHER_SECONDS:.1f} s (bench/results/2026-11-30-sweep-throughput.md). At these ceilings a "
        f"fused trial would take at best {fused:.1f} s: {now / fused:.2f}x, i.e. at most "
        f"{SPEEDUP_SO_FAR * now / fused:.2f}x the trials per hour of 978bd76 (the issue's target: 4x).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
