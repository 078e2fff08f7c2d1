"""The prepared GPU check: one device call (at most 8 minutes on one H200, from a bare machine) that
measures what the harness has only estimated, and writes one markdown result, `<out>/gpu_check.md`.

Sections, in order (each gets what is left of `--budget-s`; one that would not fit, or fails, is
recorded as such and the next one runs):

1. a GRPO step of Granite Speech 3.3 2B's released shape (random weights, bf16, projector + LoRA r 64,
   gradient checkpointing, micro-batches of 16 rows, 8 prompts x 8 samples x 200 new tokens, 10 s of
   audio per prompt, beta 0.02): step time, its phases, generated tokens/s, peak GPU memory;
2. encoder precision: log-probs of the same completions with the encoder + projector in bf16 (the
   default) vs fp32 (`model.encoder_dtype: float32`), LM in bf16, against an all-fp32 pass;
3. end to end: a random 2B saved the way the release ships (weights, tokenizer with chat template,
   LoRA adapter under the released key names) and a tiny CoVoST2-format corpus written here, run
   by `harness sweep` (one GRPO trial of 2 steps, `encoder_dtype: float32`): validation, checkpoint
   selection, test evaluation with a sampled pass, MLflow tracking and the Optuna study, on CUDA;
4. our GRPO step vs TRL's `GRPOTrainer` (no vLLM) on the 2B text decoder, same settings,
   interleaved: the ratio (only where trl is importable).

`--tiny` (the default without CUDA) runs every section at tiny shapes on CPU, in well under a
minute: `make gpu-check-cpu`, and tests/test_gpu_check.py in CI.

    bash bench/gpu_wheels.sh                          # here, once: bench/.wheels (git-ignored, ~49 MB)
    bash bench/gpu_check.sh                           # on the device: installs the wheels, runs this
    python bench/gpu_check.py --tiny --out /tmp/gc    # CPU, tiny shapes
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_precision import compare, precision_variants, table  # noqa: E402
from grpo_granite_gpu import (  # noqa: E402  (also puts this checkout's harness first on sys.path)
    PROMPT,
    ROOT,
    StepSettings,
    default_dtype,
    grpo_steps,
    parameter_counts,
    random_model,
    released_config,
    speech_policy,
    step_learner,
    synchronize,
    tokenizer_for,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|start_of_role|>{{ m['role'] }}<|end_of_role|>{{ m['content'] }}"
    "<|end_of_text|>\n{% endfor %}{% if add_generation_prompt %}<|start_of_role|>assistant"
    "<|end_of_role|>{% endif %}"
)
PAIRS = [
    ("the cat sleeps on the red chair", "die katze schläft auf dem roten stuhl"),
    ("we walk to the old bridge", "wir gehen zur alten brücke"),
    ("she reads a long book", "sie liest ein langes buch"),
    ("the children play in the garden", "die kinder spielen im garten"),
    ("it rains in the city today", "es regnet heute in der stadt"),
    ("my brother cooks dinner", "mein bruder kocht das abendessen"),
    ("the train leaves at nine", "der zug fährt um neun"),
    ("a dog runs across the field", "ein hund läuft über das feld"),
]
SPLITS = ["train", "train", "train", "train", "dev", "dev", "test", "test"]
E2E_STEPS = 2


class Check:
    """Shapes, device, time budget and the markdown being written."""

    def __init__(self, out: Path, tiny: bool, budget_s: float, started: float, wheels: str):
        self.out, self.tiny, self.wheels = out, tiny, wheels
        self.device = torch.device("cpu" if tiny else "cuda")
        self.dtype = torch.float32 if tiny else torch.bfloat16
        self.deadline = started + budget_s
        self.settings = (
            StepSettings(batch=2, group=2, max_new_tokens=6, audio_s=1.0, micro_batch=2) if tiny else StepSettings()
        )
        self.steps = 1 if tiny else 2
        self.lines: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    def config(self):
        """The released 2B config (`--tiny`: its vocabulary and token layout, tiny widths and depths)."""
        cfg = released_config("2b")
        if self.tiny:
            enc, proj, text = cfg.encoder_config, cfg.projector_config, cfg.text_config
            enc.num_layers, enc.hidden_dim, enc.num_heads, enc.dim_head, enc.output_dim = 2, 32, 2, 16, 16
            proj.num_hidden_layers, proj.hidden_size, proj.num_attention_heads = 1, 32, 2
            proj.intermediate_size, proj.encoder_hidden_size = 64, 32
            text.num_hidden_layers, text.hidden_size, text.intermediate_size = 2, 32, 64
            text.num_attention_heads, text.num_key_value_heads = 4, 2
        return cfg

    def left(self) -> float:
        return self.deadline - time.time()

    def add(self, *lines: str) -> None:
        self.lines += lines
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.md").write_text(
            "\n".join(self.lines) + "\n"
        )  # after every section: a timeout keeps the rest

    def section(self, title: str, needs_s: float, body) -> None:
        """Run one section if `needs_s` seconds are left; its failure is recorded, not raised."""
        self.add("", f"## {title}", "")
        if self.left() < needs_s:
            self.add(f"Not run: {self.left():.0f} s of the budget left, the section needs about {needs_s:.0f} s.")
            return
        start = time.perf_counter()
        try:
            body(self)
        except Exception as err:  # one failing section must not cost the others their device time
            tail = "".join(traceback.format_exception(err)[-6:])
            self.add(f"**FAILED** ({type(err).__name__}: {str(err)[:500]})", "", "```text", tail.rstrip(), "```")
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.add("", f"_Section time: {time.perf_counter() - start:.0f} s._")


# ----------------------------------------------------------------------------- 1. speech GRPO step
def speech_step(check: Check) -> None:
    cfg, s = check.config(), check.settings
    t0 = time.perf_counter()
    model = random_model(cfg, check.device, check.dtype)
    lm, reference = speech_policy(model, tokenizer_for(cfg), s)
    counts = {k: _count(n) for k, n in parameter_counts(model).items()}
    built = time.perf_counter() - t0
    results = grpo_steps(lm, reference, s, check.steps)
    median = statistics.median(r["step_s"] for r in results)
    phases = {k: statistics.fmean(r["phases"][k] for r in results) for k in results[0]["phases"]}
    check.add(
        f"{counts['total']} parameters (encoder {counts['encoder']}, projector {counts['projector']}), "
        f"{counts['trainable']} trainable (projector + LoRA r "
        f"{s.lora_rank}, alpha {s.lora_alpha}); {check.dtype}, encoder dtype {s.encoder_dtype}; "
        f"built in {built:.0f} s. "
        f"B={s.batch} prompts x G={s.group} samples, up to {s.max_new_tokens} new tokens, {s.audio_s:g} s of audio "
        f"per prompt ({results[0]['prompt_tokens']} prompt tokens), gradient checkpointing "
        f"{'on' if s.gradient_checkpointing else 'off'}, micro-batches of {s.micro_batch} rows, beta {s.beta}, "
        f"KL reference = a frozen copy. One warm-up step, then {len(results)} measured.",
        "",
        "| step | time s | generated tokens | tokens/s (sampling) | tokens/s (whole step) | peak GPU memory GiB |",
        "|---|---|---|---|---|---|",
        *(
            f"| {i} | {r['step_s']:.2f} | {r['generated']:.0f} | {r['sample_tokens_per_s']:.0f} | "
            f"{r['step_tokens_per_s']:.0f} | {r['peak_gib']:.1f} |"
            for i, r in enumerate(results, 1)
        ),
        "",
        f"**Median step {median:.2f} s.** Phases (mean s per step, CUDA-synchronised):",
        "",
        "| phase | s | % of step |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {100 * v / median:.0f} |" for k, v in phases.items()),
    )


def _count(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n / 1e3:.1f} K"


# ----------------------------------------------------------------------------- 2. encoder precision
def encoder_precision(check: Check) -> None:
    """bench/encoder_precision.py's comparison on a random model of the released shape, LM in bf16."""
    from harness.models.features import log_mel

    cfg = check.config()
    rng = np.random.RandomState(1)
    feats = [log_mel(rng.randn(int(check.settings.audio_s * 16000)).astype(np.float32) * 0.1) for _ in range(4)]
    models = precision_variants(random_model(cfg, check.device, torch.bfloat16))  # bf16 on CPU too: the GPU's dtypes
    stats = compare(models, tokenizer_for(cfg), [PROMPT] * len(feats), feats)
    d = stats["bf16 vs fp32 encoder"]
    check.add(
        f"{stats['tokens']} completion tokens (4 prompts x 4 samples, up to 32 tokens, {check.settings.audio_s:g} s "
        f"of audio), random weights of the shape above. **bf16 vs fp32 encoder: max |delta log-prob| "
        f"{d['max']:.4f}, mean {d['mean']:.5f}.**",
        "",
        *table(stats),
        "",
        "Random weights spread probability thinly over the 49,160-token vocabulary; a trained checkpoint's "
        "sharper distributions can react differently, so read this as the size of the numerical effect only.",
    )


# ----------------------------------------------------------------------------- 3. end to end
def write_corpus(root: Path) -> Path:
    """covost_v2.en_de.tsv + 16 kHz WAV clips (harmonic tones of 1.5-3 s) in CoVoST2's layout."""
    import soundfile as sf

    (root / "clips").mkdir(parents=True, exist_ok=True)
    lines = ["path\tsentence\ttranslation\tclient_id\tsplit"]
    for i, ((en, de), split) in enumerate(zip(PAIRS, SPLITS)):
        t = np.arange(int(16000 * (1.5 + 0.2 * i))) / 16000
        audio = sum(np.sin(2 * np.pi * (120 + 15 * i) * k * t) / k for k in range(1, 5)) * 0.2
        sf.write(root / "clips" / f"clip_{i}.wav", audio.astype(np.float32), 16000)
        lines.append(f"clip_{i}.wav\t{en}\t{de}\tclient{i}\t{split}")
    (root / "covost_v2.en_de.tsv").write_text("\n".join(lines) + "\n")
    return root / "covost_v2.en_de.tsv"


def write_released_checkpoint(check: Check, path: Path) -> None:
    """Random weights saved the way Granite Speech 3.3 ships: model, tokenizer with a chat template, and
    a LoRA adapter (r 64, alpha 32 on q/v, live: lora_B non-zero) under the released tensor names."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    cfg = check.config()
    words = " ".join(w for pair in PAIRS for w in pair) + " You are a helpful assistant"
    tok = tokenizer_for(cfg, words)
    tok.chat_template = CHAT_TEMPLATE
    model = random_model(cfg, check.device, check.dtype)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    peft_model = get_peft_model(
        model, LoraConfig(r=64, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft_model.save_pretrained(path)
    adapter = path / "adapter_model.safetensors"
    state = load_file(str(adapter))
    save_file(
        {k.replace("base_model.model.model.language_model.", "language_model.model."): v for k, v in state.items()},
        str(adapter),
    )


STUDY = """\
description: bench/gpu_check.py end to end (random weights, tiny corpus)
fixed:
  task: ast
  method: grpo
  data: {{source: {tsv}, format: covost2, train_size: 4, validation_size: 2, test_size: 2}}
  model: {{name: {checkpoint}, trainable: projector+lora, gradient_checkpointing: true, micro_batch_size: 4,
          encoder_dtype: float32}}
  train: {{steps: {steps}, batch_size: 2, lr: 1.0e-4, warmup_steps: 0, eval_every: 1, checkpoint_every: 1}}
  grpo: {{reward: bleu, group_size: 4, beta: 0.02, max_new_tokens: {tokens}}}
  eval: {{max_new_tokens: {tokens}, sampling_passes: 1, batch_size: 2, bertscore: false}}
sampler: grid
seeds: [0]
objective: {{metric: test/sampled/bleu, direction: maximize}}
"""


def end_to_end(check: Check) -> None:
    missing = [
        m
        for m in ("mlflow", "optuna", "soundfile", "nltk", "rouge_score", "pandas", "pydantic", "typer")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        check.add(f"Not run: {', '.join(missing)} not importable (wheels: {check.wheels}; see bench/gpu_wheels.sh).")
        return
    root = check.tmp / "e2e"
    t0 = time.perf_counter()
    tsv = write_corpus(root / "data")
    write_released_checkpoint(check, root / "checkpoint")
    gc.collect()
    if check.device.type == "cuda":
        torch.cuda.empty_cache()
    prepared = time.perf_counter() - t0
    study = root / "gpu_check.yaml"
    study.write_text(
        STUDY.format(tsv=tsv, checkpoint=root / "checkpoint", steps=E2E_STEPS, tokens=8 if check.tiny else 32)
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HARNESS_CACHE": str(root / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "sweep",
        str(study),
        "--no-report",
        "--storage",
        str(root / "optuna.log"),
        "--tracking-uri",
        uri,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=max(30, check.left() - 20))
    wall = time.perf_counter() - t0
    check.add(
        f"Prepared (corpus + checkpoint written) in {prepared:.0f} s; `harness sweep gpu_check.yaml "
        f"--no-report` exited {proc.returncode} after {wall:.0f} s.",
        "",
        "```yaml",
        study.read_text().rstrip(),
        "```",
    )
    if proc.returncode != 0:
        check.add("", "```text", (proc.stdout + proc.stderr)[-3000:].rstrip(), "```")
        return
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gpu_check")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.role` = 'trial'")
    run = runs[0]
    m = run.data.metrics
    val = [(h.step, h.value) for h in client.get_metric_history(run.info.run_id, "val/bleu")]
    loss = [round(h.value, 4) for h in client.get_metric_history(run.info.run_id, "loss")]
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    check.add(
        "",
        f"Trial run `{run.info.run_name}`: status **{run.info.status}**, state tag "
        f"{run.data.tags.get('harness.state')}, checkpoint revision tag "
        f"`{run.data.tags.get('harness.checkpoint_revision')}`, {len(runs)} trial run(s).",
        "",
        f"- GRPO loss per step: {loss}; validation BLEU by step: {val}; selected step (best_step): "
        f"{m.get('best_step')}",
        "- test: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(m.items()) if k.startswith("test/")),
        "- trial times (s): "
        + ", ".join(f"{k[5:]} {v:.1f}" for k, v in sorted(m.items()) if k.startswith("time/"))
        + f"; wall {m.get('wall_time_s', float('nan')):.1f}",
        f"- system metrics logged: {sorted(k for k in m if k.startswith('system/'))[:6]}",
        f"- artifacts: {artifacts}",
    )


# ----------------------------------------------------------------------------- 4. ours vs TRL
def text_policy(model, tokenizer, settings: StepSettings):
    """(policy, frozen reference or None) of our step on a text-only Granite decoder: `SpeechLM`'s text
    path, LoRA on q/v, gradient checkpointing of the decoder layers."""
    from peft import LoraConfig, inject_adapter_in_model

    from harness.models.loader import frozen_copy
    from harness.models.speech_lm import SpeechLM

    inject_adapter_in_model(
        LoraConfig(
            r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
        ),
        model,
    )
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    lm = SpeechLM(model, tokenizer)
    reference = frozen_copy(lm) if settings.beta else None
    if settings.gradient_checkpointing:
        lm.enable_gradient_checkpointing()
    return lm, reference


def versus_trl(check: Check) -> None:
    if importlib.util.find_spec("trl") is None:
        check.add(
            "Not run: trl is not installed here (it needs datasets + pyarrow, ~55 MB of wheels beyond the "
            "carry limit next to the harness's own; `bench/grpo_step.py` compares on CPU)."
        )
        return
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import GraniteForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    from harness.config import GRPOConfig
    from harness.rewards import parse_reward
    from harness.train.grpo import grpo_step

    s, device = check.settings, check.device
    cfg = check.config().text_config
    tok = tokenizer_for(check.config(), " ".join(f"w{i}" for i in range(200)))
    words = [f"w{i}" for i in range(200)]
    rng = np.random.RandomState(0)
    prompt_words = 120 if not check.tiny else 12  # about the speech prompt's length (audio tokens + text)
    texts = [" ".join(rng.choice(words, prompt_words)) for _ in range(4 * s.batch)]
    answers = [" ".join(rng.choice(words, 6)) for _ in texts]
    torch.manual_seed(0)
    with torch.device(device), default_dtype(check.dtype):
        base = GraniteForCausalLM(cfg).eval()
    trl_model = copy.deepcopy(base)
    lm, reference = text_policy(base, tok, s)
    reward = parse_reward("bleu")
    grpo = GRPOConfig(group_size=s.group, beta=s.beta, max_new_tokens=s.max_new_tokens, loss_type="dapo")
    learner = step_learner(lm, reference, s)
    cursor = [0]

    def ours(steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            i = cursor[0] % len(texts)
            cursor[0] += s.batch
            synchronize(device)
            t = time.perf_counter()
            prompts = lm.prepare(texts[i : i + s.batch])
            grpo_step(learner, prompts, answers[i : i + s.batch], reward, grpo)
            synchronize(device)
            times.append(time.perf_counter() - t)
        return times

    rows = s.batch * s.group
    micro = s.micro_batch or rows
    trl_times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            synchronize(device)
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            trl_times.append(time.perf_counter() - self.start)

    def bleu(prompts, completions, answer, **kwargs):
        return reward(list(completions), list(answer))[0].tolist()

    args = TRLConfig(
        output_dir=str(check.tmp / "trl"),
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda",
        seed=0,
        gradient_checkpointing=s.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=rows // micro,
        num_generations=s.group,
        max_completion_length=s.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=s.beta,
        epsilon=0.2,
        loss_type="dapo",
        num_iterations=1,
        scale_rewards="group",
        use_vllm=False,
        learning_rate=1e-5,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
        max_steps=1,
        generation_kwargs={"suppress_tokens": lm.suppress_ids},
    )
    trainer = GRPOTrainer(
        model=trl_model,
        reward_funcs=bleu,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": texts, "answer": answers}),
        processing_class=tok,
        peft_config=LoraConfig(
            r=s.lora_rank, lora_alpha=s.lora_alpha, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
        ),
        callbacks=[Timer()],
    )
    trainer.remove_callback(PrinterCallback)  # no metric dict per train() call on stdout

    def theirs(steps: int) -> list[float]:
        start = len(trl_times)
        trainer.args.max_steps = steps
        trainer.train()
        return trl_times[start:]

    ours(1), theirs(1)  # warm-up, not counted
    pairs = []
    while len(pairs) < (1 if check.tiny else 3) and check.left() > 3 * (pairs[-1][0] + pairs[-1][1] if pairs else 0):
        first, second = (ours, theirs) if len(pairs) % 2 == 0 else (theirs, ours)  # alternate who goes first
        a, b = first(1)[0], second(1)[0]
        pairs.append((a, b) if first is ours else (b, a))
    ratios = [t / o for o, t in pairs]
    check.add(
        f"Text decoder of the released 2B config ({_count(sum(p.numel() for p in base.parameters()))} "
        f"parameters), random weights, {check.dtype}; both sides: LoRA r {s.lora_rank} / alpha {s.lora_alpha} on "
        f"q/v, gradient checkpointing, {s.batch} prompts x {s.group} samples, up to {s.max_new_tokens} new tokens, "
        f"T 1.0, beta {s.beta}, DAPO loss, BLEU reward, {micro} rows per forward/backward ({rows // micro} "
        f"accumulation steps in TRL), prompts of {prompt_words} tokens; trl {trl.__version__}, no vLLM. One warm-up "
        "step each, then single steps alternating (who goes first alternates too).",
        "",
        "| pair | ours s | TRL s | TRL / ours |",
        "|---|---|---|---|",
        *(f"| {i} | {o:.2f} | {t:.2f} | {t / o:.2f} |" for i, (o, t) in enumerate(pairs, 1)),
        "",
        f"**TRL / ours: {statistics.median(ratios):.2f}x** (median of {len(ratios)} pairs).",
    )


# ----------------------------------------------------------------------------- main
def environment(check: Check) -> list[str]:
    versions = {}
    for package in ("torch", "transformers", "peft", "accelerate", "trl", "mlflow", "optuna"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = "not installed"
        except Exception as err:  # a package that is there but does not import
            versions[package] = f"broken ({type(err).__name__})"
    gpu = (
        (
            f"{torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
            f"CUDA {torch.version.cuda}"
        )
        if torch.cuda.is_available()
        else "no GPU"
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return [
        f"# GPU check, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "Mode: **"
        + ("tiny shapes on CPU (a test of the script, not a measurement)" if check.tiny else "released 2B shapes")
        + "**"
        f"; device {check.device} ({gpu}); {platform.node()}, python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; commit {commit.stdout.strip() or os.environ.get('HARNESS_COMMIT', 'unknown')}; wheels: {check.wheels}; "
        f"budget {check.left():.0f} s. Command: `{' '.join(sys.argv)}`.",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu-check")))
    p.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (the default without CUDA)")
    p.add_argument("--budget-s", type=float, default=450.0, help="seconds for all sections (the device call: 480)")
    p.add_argument("--started", type=float, default=None, help="epoch seconds the budget started (gpu_check.sh)")
    p.add_argument("--wheels", default="not used", help="how the carried wheels installed (gpu_check.sh)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tiny = args.tiny or not torch.cuda.is_available()
    check = Check(args.out, tiny, args.budget_s, args.started or time.time(), args.wheels)
    if tiny:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    check.add(*environment(check))
    gpu = not tiny  # rough section costs on one H200 (seconds), so a late section is skipped, not cut off
    try:
        check.section("1. GRPO step, Granite Speech 3.3 2B shape", 150 if gpu else 5, speech_step)
        check.section("2. Encoder precision: bf16 vs fp32 encoder + projector", 60 if gpu else 5, encoder_precision)
        check.section(
            "3. End to end: `harness sweep`, one GRPO trial on a random 2B saved like the release",
            150 if gpu else 10,
            end_to_end,
        )
        check.section("4. Our GRPO step vs TRL GRPOTrainer, 2B text decoder", 120 if gpu else 5, versus_trl)
    finally:
        shutil.rmtree(check.tmp, ignore_errors=True)  # the e2e checkpoint: 6 GB at the 2B shape
    print((check.out / "gpu_check.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
