"""Our GRPO step vs TRL's GRPOTrainer, audio once per group vs once per sample, phases, memory.

One run, interleaved (the machine is shared and noisy): blocks of steps alternate between the two
sides of each pair, several repetitions; per step min and median, and the ratio per pair of blocks.

  1. text-only: our `grpo_step` vs TRL `GRPOTrainer` on the same tiny text-only Granite causal LM
     (`GraniteForCausalLM` from config, the tiny base's tokenizer, same initial weights), same
     prompts (the SQA passages as text + question), reward (our batched sentence BLEU) and settings:
     4 prompts x 8 samples, 32 new tokens, T = 1.0, top-p 1, beta 0.02, eps 0.2, DAPO loss, mu = 1,
     fp32, constant lr 1e-4, grad-norm clip 1.0, no gradient checkpointing (TRL's default is on); at
     hidden 64 / 2 layers and hidden 256 / 4 layers;
  2. the speech model (the cached tiny base, a default trial's settings: 8 prompts x 8 samples):
     audio encoded once per group (`SpeechLM`) vs once per sample (`harness.yardsticks.plain.PerSampleLM`: every
     sample's row carries its own copy of the prompt and audio through the encoder, the prefill and
     the training pass, as `generate(num_return_sequences=G)` + a per-row forward would);
  3. our step's phases, read from the step's own clock (`harness.train.clock.PhaseClock`: rollout =
     prompt encoding + sampling, reward, reference log-probs, forward, backward, optimizer; plus
     tracking = an async MLflow `log_metrics` per step into a sqlite store, as trials do) and
     tokens/s;
  4. peak RSS of a default trial (`run_trial(TrialConfig())`, 60 steps, in a child process) and its
     RSS per step (growth across steps).

Our step time counts prompt tokenisation, the step and its tracking call; TRL's is measured from
`on_step_begin` to `on_step_end` (generation, rewards, reference pass, forward/backward, clip,
optimizer). Start-up (model load, trainer construction, first warm-up block) is excluded on both
sides. pi_old costs no pass on either side at mu = 1.

TRL is an optional, bench-only extra (never a runtime dependency). Install it into its own venv:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 -e '.[bench]'
    make bench-trl      # = .venv-bench/bin/python bench/grpo_step.py

Options: --reps R (interleaved repetitions, default 5), --steps K (steps per block, default 3),
--no-trial (skip the default-trial memory run), --quick (R=2, K=2, no trial). One torch thread
(HARNESS_TORCH_THREADS, default 1). Writes bench/results/<date>-<machine>.md (a non-default
run writes <date>-<machine>-short.md, so it never replaces a full result).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HARNESS_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from harness.config import GRPOConfig, TrialConfig  # noqa: E402
from harness.models.speech_lm import SpeechLM  # noqa: E402
from harness.runtime import configure_threads  # noqa: E402
from harness.train.clock import STEP_PHASES  # noqa: E402
from harness.yardsticks.plain import PerSampleLM  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TEXT_SIZES = [(64, 2), (256, 4)]  # (hidden, layers), 4 heads
LR, MAX_GRAD_NORM = 1e-4, 1.0


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Peak RSS of this process image. VmHWM, not ru_maxrss: a child started by multiprocessing is
    forked from this (large) benchmark process before it execs, and ru_maxrss keeps the parent's
    size across the exec; VmHWM starts afresh with the new image."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- our side
class OurRunner:
    """Our GRPO step (prompt tokenisation + grpo_step + async MLflow metric logging) on one model."""

    def __init__(
        self,
        lm: SpeechLM,
        prompts: list[str],
        answers: list[str],
        batch: int,
        cfg: GRPOConfig,
        features: list | None = None,
        tracker=None,
        seed: int = 0,
    ):
        from harness.models.loader import frozen_copy
        from harness.rewards import parse_reward
        from harness.train.learner import Learner
        from harness.train.optimizer import make_optimizer

        lm.model.eval()
        reference = frozen_copy(lm)
        if isinstance(lm, PerSampleLM):
            reference = PerSampleLM(reference.model, lm.tokenizer, lm.system_prompt, lm.group_size)
        optimizer, scheduler = make_optimizer(lm.model, LR, 0.0, 0)
        self.learner = Learner(lm, optimizer, scheduler, MAX_GRAD_NORM, reference, torch.Generator().manual_seed(seed))
        self.policy, self.reward = lm, parse_reward(cfg.reward)
        self.prompts, self.answers, self.features = prompts, answers, features
        self.batch, self.cfg, self.i = batch, cfg, 0
        self.tracker = tracker
        self.tokens: list[int] = []

    def step(self) -> float:
        from harness.train.grpo import grpo_step

        n = len(self.prompts)
        idx = [(self.i + k) % n for k in range(self.batch)]
        self.i += self.batch
        t = time.perf_counter()
        feats = [self.features[k] for k in idx] if self.features is not None else None
        prompts = self.policy.prepare([self.prompts[k] for k in idx], feats)
        metrics = grpo_step(self.learner, prompts, [self.answers[k] for k in idx], self.reward, self.cfg).metrics
        if self.tracker is not None:
            with self.learner.clock("tracking"):
                self.tracker(metrics, self.i // self.batch)
        spent = time.perf_counter() - t
        self.tokens.append(round(metrics["completion_len_mean"] * self.batch * self.cfg.group_size))
        return spent


def mlflow_tracker(root: Path):
    """Per-step metrics logged as trials log them (async, into an MLflow sqlite store)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("bench-grpo-step")
    mlflow.start_run()
    return lambda metrics, step: mlflow.log_metrics(metrics, step=step, synchronous=False)


# ----------------------------------------------------------------------------- TRL's side
class TRLRunner:
    """TRL's GRPOTrainer on the same saved model directory; step times from its callbacks."""

    def __init__(
        self,
        model_dir: str,
        tokenizer,
        prompts: list[str],
        answers: list[str],
        batch: int,
        cfg: GRPOConfig,
        suppress_ids: list[int],
        out_dir: str,
        seed: int = 0,
    ):
        from datasets import Dataset
        from transformers import TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer

        from harness.rewards import parse_reward

        reward = parse_reward(cfg.reward)

        def bleu(prompts, completions, answer, **kwargs):  # the same batched reward as ours
            return reward(list(completions), list(answer))[0].tolist()

        runner = self

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                runner.threads.add(torch.get_num_threads())
                runner._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                runner.times.append(time.perf_counter() - runner._t)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "completions/mean_length" in logs:
                    runner.lengths.append(float(logs["completions/mean_length"]))

        self.times: list[float] = []
        self.lengths: list[float] = []  # TRL's own mean completion length per train() call
        self.threads: set[int] = set()  # torch threads seen at TRL's step starts
        args = TRLConfig(
            output_dir=out_dir,
            use_cpu=True,
            bf16=False,
            fp16=False,
            seed=seed,
            data_seed=seed,
            gradient_checkpointing=False,  # TRL's default is True; we recompute nothing either
            per_device_train_batch_size=batch * cfg.group_size,
            gradient_accumulation_steps=1,
            num_generations=cfg.group_size,
            max_completion_length=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=0,
            beta=cfg.beta,
            epsilon=cfg.epsilon,
            loss_type=cfg.loss_type,
            num_iterations=cfg.iterations,
            scale_rewards="group",
            use_vllm=False,
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=MAX_GRAD_NORM,
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            disable_tqdm=True,
            log_completions=False,
            dataloader_num_workers=0,
            max_steps=1,
            generation_kwargs={"suppress_tokens": suppress_ids},
        )
        dataset = Dataset.from_dict({"prompt": prompts, "answer": answers})
        self.trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=bleu,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[Timer()],
        )
        self.trainer.remove_callback(PrinterCallback)  # no per-train() metric dicts on stdout
        self.generate_s: list[float] = []
        model = self.trainer.model
        inner = model.generate

        def timed_generate(*a, **k):
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                self.generate_s.append(time.perf_counter() - t)

        model.generate = timed_generate

    def block(self, steps: int) -> list[float]:
        self.trainer.args.max_steps = steps
        start = len(self.times)
        self.trainer.train()
        return self.times[start:]

    def mean_completion_len(self) -> float:
        return statistics.fmean(self.lengths) if self.lengths else float("nan")


# ----------------------------------------------------------------------------- the runs
def interleave(a, b, reps: int, steps: int) -> tuple[list[float], list[float], list[float]]:
    """Blocks A, B, A, B...; a warm-up block of each first (not counted). Returns the per-step
    times of A and B and the ratio A/B of each pair of block medians."""
    a(1), b(1)
    times_a, times_b, ratios = [], [], []
    for r in range(reps):
        first, second = (a, b) if r % 2 == 0 else (b, a)  # alternate which side goes first
        out_first, out_second = first(steps), second(steps)
        ta, tb = (out_first, out_second) if first is a else (out_second, out_first)
        times_a += ta
        times_b += tb
        ratios.append(statistics.median(ta) / statistics.median(tb))
    return times_a, times_b, ratios


def text_comparison(hidden: int, layers: int, tok, texts, answers, reps, steps, tracker, tmp):
    from transformers import GraniteForCausalLM

    from harness.models.tiny import build_tiny_text

    torch.manual_seed(0)
    model_dir = Path(tmp) / f"text-h{hidden}-l{layers}"
    build_tiny_text(tok, hidden, layers, 4).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    cfg = GRPOConfig(group_size=8, beta=0.02, epsilon=0.2, max_new_tokens=32, temperature=1.0, loss_type="dapo")
    ours = OurRunner(
        SpeechLM(GraniteForCausalLM.from_pretrained(model_dir), tok), texts, answers, 4, cfg, tracker=tracker
    )
    n_params = sum(p.numel() for p in ours.policy.model.parameters())
    trl = TRLRunner(str(model_dir), tok, texts, answers, 4, cfg, ours.policy.suppress_ids, str(Path(tmp) / "trl"))
    configure_threads()  # in case anything reset it
    t_trl, t_ours, ratios = interleave(trl.block, lambda k: [ours.step() for _ in range(k)], reps, steps)
    if trl.threads != {torch.get_num_threads()}:
        print(f"warning: TRL's steps ran with torch threads {sorted(trl.threads)}", file=sys.stderr)
    return dict(
        params=n_params,
        trl=t_trl,
        ours=t_ours,
        ratios=ratios,
        trl_generate=trl.generate_s,
        trl_len=trl.mean_completion_len(),
        ours_tokens=ours.tokens,
        ours_runner=ours,
    )


def phase_table(runner: OurRunner, steps: int) -> dict[str, float]:
    """Mean seconds per step of each phase over `steps` further steps of our runner (its step clock)."""
    clock = runner.learner.clock
    before = clock.snapshot()
    total = 0.0
    for _ in range(steps):
        total += runner.step()
    spent = {k: v / steps for k, v in clock.since(before).items()}
    spent["other (prepare, advantages, loss, metrics)"] = total / steps - sum(spent.values())
    spent["step"] = total / steps
    spent["tokens"] = statistics.fmean(runner.tokens[-steps:])
    return spent


def default_trial_memory(queue) -> None:
    """Child process: one default trial; RSS after each step and the process's peak RSS."""
    from harness.train.trial import run_trial

    configure_threads()
    per_step: dict[int, float] = {}
    peak_in_steps = [0.0]

    def log(metrics, step):
        if "loss" in metrics:
            per_step[step] = rss_mb()
            peak_in_steps[0] = peak_rss_mb()  # data, model, validations and steps so far

    t = time.perf_counter()
    result = run_trial(TrialConfig(), log=log)
    queue.put(
        dict(
            per_step=per_step,
            peak=peak_rss_mb(),
            peak_in_steps=peak_in_steps[0],
            wall=time.perf_counter() - t,
            steps=result.steps,
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-trial", action="store_true", help="skip the default-trial memory run")
    parser.add_argument("--quick", action="store_true", help="--reps 2 --steps 2 --no-trial")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.steps, args.no_trial = 2, 2, True
    try:
        import trl
    except ImportError:
        print(
            "TRL is not installed: python3 -m venv .venv-bench && "
            ".venv-bench/bin/pip install torch==2.13.0 -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    import transformers

    threads = configure_threads()
    load_start = os.getloadavg()
    started = time.perf_counter()

    from transformers import AutoTokenizer

    from harness.train.base_model import ensure_tiny_base
    from harness.train.trial import load_task_data

    trial_cfg = TrialConfig()
    base = ensure_tiny_base(trial_cfg.model.tiny)
    tok = AutoTokenizer.from_pretrained(base)
    data = load_task_data(trial_cfg)["train"]
    texts = [ex.prompt.replace("<|audio|>", ex.transcript) for ex in data.examples]  # text-only prompts
    answers = [ex.answer for ex in data.examples]

    text_results = {}
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp:
        tracker = mlflow_tracker(Path(tmp))

        # 1 + 3 + 4: text-only, ours vs TRL, two sizes
        for hidden, layers in TEXT_SIZES:
            print(f"text-only h{hidden}/{layers}L: ours vs TRL ...", flush=True)
            res = text_comparison(hidden, layers, tok, texts, answers, args.reps, args.steps, tracker, tmp)
            res["phases"] = phase_table(res.pop("ours_runner"), args.steps)
            text_results[(hidden, layers)] = res

        # 2 + 3: speech model, audio once per group vs once per sample
        print("speech model: audio once per group vs once per sample ...", flush=True)
        from harness.models.loader import load_speech_lm

        cfg = trial_cfg.grpo
        speech = {}
        for name in ("once", "per_sample"):
            lm = load_speech_lm(trial_cfg.model)
            if name == "per_sample":
                lm = PerSampleLM(lm.model, lm.tokenizer, lm.system_prompt, cfg.group_size)
            speech[name] = OurRunner(
                lm,
                [ex.prompt for ex in data.examples],
                answers,
                trial_cfg.train.batch_size,
                cfg,
                features=data.features,
                tracker=tracker,
            )
        t_per, t_once, sp_ratios = interleave(
            lambda k: [speech["per_sample"].step() for _ in range(k)],
            lambda k: [speech["once"].step() for _ in range(k)],
            args.reps,
            args.steps,
        )
        speech_phases = phase_table(speech["once"], args.steps)
        import mlflow

        mlflow.end_run()

    trial = None
    if not args.no_trial:
        print("default trial (memory) ...", flush=True)
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=default_trial_memory, args=(queue,))
        child.start()
        trial = queue.get()
        child.join()

    report = render(
        args,
        threads,
        load_start,
        time.perf_counter() - started,
        text_results,
        dict(
            per_sample=t_per,
            once=t_once,
            ratios=sp_ratios,
            phases=speech_phases,
            batch=trial_cfg.train.batch_size,
            group=cfg.group_size,
        ),
        trial,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__),
    )
    print("\n" + report)
    RESULTS.mkdir(exist_ok=True)
    default = (args.reps, args.steps, args.no_trial) == (5, 3, False)  # a shorter run does not replace it
    path = RESULTS / f"{dt.date.today().isoformat()}-{platform.node() or 'machine'}{'' if default else '-short'}.md"
    path.write_text(report)
    print(f"written to {path}")
    return 0


# ----------------------------------------------------------------------------- the report
def _ms(x: float) -> str:
    return f"{1000 * x:.1f}"


def _row(values: list[float]) -> str:
    return f"{_ms(min(values))} | {_ms(statistics.median(values))}"


def _ratios(r: list[float]) -> str:
    return f"**{statistics.median(r):.2f}x** (min {min(r):.2f}, max {max(r):.2f})"


def render(args, threads, load_start, wall, text_results, speech, trial, versions) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    lines = [
        f"# GRPO step benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: `{platform.node()}`, {cpu}, {os.cpu_count()} cores, torch {versions['torch']}, "
        f"transformers {versions['transformers']}, trl {versions['trl']}, **{threads} torch thread**, fp32, CPU. "
        f"Load average at start {load_start[0]:.2f} / end {os.getloadavg()[0]:.2f} (a shared machine: other jobs "
        f"ran beside this one, so read medians and the per-pair ratios). {args.reps} interleaved repetitions x "
        f"{args.steps} steps per side after a warm-up step each; benchmark wall time {wall:.0f} s.",
        "",
        "Command: `make bench-trl` (= `.venv-bench/bin/python bench/grpo_step.py`).",
        "",
        "## 1. Our GRPO step vs TRL GRPOTrainer (text-only Granite causal LM, 4 prompts x 8 samples, 32 new "
        "tokens, T=1, beta=0.02, eps=0.2, DAPO, sentence-BLEU reward)",
        "",
        "| model | params | TRL min ms | TRL median ms | ours min ms | ours median ms | TRL / ours (per pair) "
        "| TRL generate ms (median) | ours rollout ms (prompt encoding + sampling) | tokens/step TRL / ours |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (hidden, layers), r in text_results.items():
        lines.append(
            f"| h{hidden} / {layers} layers | {r['params'] / 1e6:.2f} M | {_row(r['trl'])} | {_row(r['ours'])} | "
            f"{_ratios(r['ratios'])} | {_ms(statistics.median(r['trl_generate']))} | "
            f"{_ms(r['phases']['rollout'])} | {r['trl_len'] * 32:.0f} / {statistics.fmean(r['ours_tokens']):.0f} |"
        )
    lines.append("")
    lines.append(
        "Per-pair ratios (TRL / ours, block medians): "
        + "; ".join(
            f"h{h}/{layer}L: " + ", ".join(f"{x:.2f}" for x in r["ratios"]) for (h, layer), r in text_results.items()
        )
    )
    lines += [
        "",
        f"## 2. Speech model (cached tiny base, {speech['batch']} prompts x {speech['group']} samples, default "
        "trial settings): audio encoded once per group vs once per sample",
        "",
        "| path | min ms | median ms |",
        "|---|---|---|",
        f"| once per sample (plain path) | {_row(speech['per_sample'])} |",
        f"| once per group (ours) | {_row(speech['once'])} |",
        "",
        f"Speed-up once-per-group over once-per-sample, per pair: {_ratios(speech['ratios'])}.",
        "",
        "## 3. Where our step's time goes (mean ms per step over extra steps after the timed blocks)",
        "",
    ]
    settings = [(f"text h{h}/{layer}L", r["phases"]) for (h, layer), r in text_results.items()]
    settings.append(("speech (default trial)", speech["phases"]))
    names = [*STEP_PHASES, "tracking", "other (prepare, advantages, loss, metrics)"]
    lines.append("| phase | " + " | ".join(f"{s} ms | %" for s, _ in settings) + " |")
    lines.append("|---|" + "---|---|" * len(settings))
    for name in names:
        cells = []
        for _, p in settings:
            cells += [_ms(p.get(name, 0.0)), f"{100 * p.get(name, 0.0) / p['step']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **step** | " + " | ".join(f"**{_ms(p['step'])}** | 100" for _, p in settings) + " |")
    lines.append(
        "| generated tokens / s (step; sampling only) | "
        + " | ".join(f"{p['tokens'] / p['step']:.0f} | {p['tokens'] / p['rollout']:.0f}" for _, p in settings)
        + " |"
    )
    harness = [100 * (p.get("tracking", 0) + p.get("reward", 0)) / p["step"] for _, p in settings]
    lines += [
        "",
        "Harness overhead (tracking + rewards) share of the step: "
        + ", ".join(f"{s}: {h:.1f} %" for (s, _), h in zip(settings, harness))
        + ". (Storage, i.e. Optuna calls, happens per validation, not per step: see "
        "`bench/tracking_overhead.py`.)",
        "",
        "## Targets (issue 7)",
        "",
        *(
            f"- ours >= 1.5x faster than TRL at h{h}/{layer}L: median per-pair ratio "
            f"{statistics.median(r['ratios']):.2f}x -> {'met' if statistics.median(r['ratios']) >= 1.5 else 'NOT met'}"
            for (h, layer), r in text_results.items()
        ),
        f"- audio once per group >= 1.5x faster than once per sample: {statistics.median(speech['ratios']):.2f}x -> "
        f"{'met' if statistics.median(speech['ratios']) >= 1.5 else 'NOT met'}",
        f"- harness overhead (tracking + rewards) < 5 % of the step: max {max(harness):.1f} % -> "
        f"{'met' if max(harness) < 5 else 'NOT met'}",
        "",
        "## 4. Memory of a default trial",
        "",
    ]
    if trial is None:
        lines.append("Skipped (--no-trial).")
    else:
        per = trial["per_step"]
        steps = sorted(per)
        windows = [steps[i : i + 10] for i in range(0, len(steps), 10)]
        series = ", ".join(f"{w[0]}-{w[-1]}: {statistics.fmean(per[s] for s in w):.0f}" for w in windows)
        lines += [
            f"`run_trial(TrialConfig())` ({trial['steps']} GRPO steps, validation every 20, then the test "
            f"evaluation) in a child process, wall {trial['wall']:.0f} s: **peak RSS {trial['peak']:.0f} MB** for the "
            f"whole trial, {trial['peak_in_steps']:.0f} MB up to the last GRPO step. Mean RSS after the steps of each "
            f"10-step window (MB): {series}; step 1: {per[steps[0]]:.0f}.",
        ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
