"""Typed configuration of one trial: what a study's fixed settings plus one Optuna sample resolve to.

Every field has the default of the embedded setting (tiny model, synthetic data, CPU). Paper values
are noted where the paper states them (Elmakies et al. 2025, section 4).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AdvantageScale",
    "Columns",
    "DataConfig",
    "EvalConfig",
    "GRPOConfig",
    "ImportanceLevel",
    "LossType",
    "ModelConfig",
    "SFTSchedule",
    "SplitFiles",
    "Strict",
    "TinySpec",
    "TrainConfig",
    "TrialConfig",
]


# The values of the GRPO loss's settings (harness/train/grpo_loss.py: what each means, and its equation)
AdvantageScale = Literal["group", "batch", "none"]  # Eq. (1)'s std: each group's, the batch's, none (Dr. GRPO)
LossType = Literal["dapo", "grpo", "dr_grpo", "bnpo"]  # Eq. (5)'s normaliser Z
ImportanceLevel = Literal["token", "sequence"]  # Eq. (2), or (2s): GSPO's sequence-level ratio
SFTSchedule = Literal["constant", "linear_decay", "cosine_decay"]  # Eq. (8)'s mu_k over the steps


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinySpec(Strict):
    """Sizes of the tiny speech-aware LM and of the pretraining that makes it speech-aware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = 512
    encoder_hidden: int = 96
    encoder_layers: int = 2
    encoder_heads: int = 4
    projector_hidden: int = 64
    projector_layers: int = 1
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    # Pretraining on speech whose texts are disjoint from every study split: mostly ASR, some AST and
    # a little spoken QA, so the base model, like Granite Speech, starts with some skill at both tasks.
    pretrain_examples: int = 1500
    pretrain_ast_fraction: float = 0.3
    pretrain_sqa_fraction: float = 0.15
    pretrain_ctc_steps: int = 500  # stage 1: the encoder alone, character CTC (see base_model.py)
    pretrain_steps: int = 1200  # stage 2: projector + LM over the frozen encoder, SFT
    pretrain_batch_size: int = 16
    pretrain_lr: float = 2e-3
    seed: int = 0
    # 2: stage 2 encodes each clip alone (harness.models.speech_lm), so the frozen encoder's outputs
    # are cached; 1 (until 2026-11-30) encoded padded batches, whose padding reached the real frames.
    recipe: int = 2

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:12]


class SplitFiles(Strict):
    """Real data: which file (or, for `hf-disk`, which split name) holds each split, relative to
    `data.source`. Unset entries are found by name (`*train*`, `*dev*`/`*valid*`, `*test*`)."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None


class Columns(Strict):
    """Real data: column / JSON key names of each Example field; unset = the format's usual names
    (see harness/data/source.py: COLUMN_ALIASES)."""

    audio: str | None = None
    question: str | None = None
    answer: str | None = None
    transcript: str | None = None


class DataConfig(Strict):
    # 'synthetic', or a local path of real data: a LibriSQA JSON/JSONL/parquet file or its directory,
    # a CoVoST2 TSV or its directory, or a `datasets.save_to_disk` directory (see `format`).
    source: str = "synthetic"
    format: Literal["auto", "librisqa", "covost2", "hf-disk"] = "auto"  # auto: from the files at `source`
    audio_root: str | None = None  # real data: where relative clip paths start (default: next to the metadata)
    splits: SplitFiles = SplitFiles()
    columns: Columns = Columns()
    validation_fraction: float = Field(0.2, gt=0, lt=1)  # held out of train when no validation split (paper: 20%)
    on_bad_audio: Literal["skip", "error"] = "skip"  # missing/unreadable clips: skip (each logged) or stop
    max_bad_fraction: float = Field(0.01, ge=0, le=1)  # 'skip' still stops if more than this share is bad
    max_audio_s: float | None = Field(None, gt=0)  # drop longer clips (counted and logged); None keeps all
    # Sizes: exact for synthetic data; caps for real data (train/validation drawn with `seed`, test in file order).
    # synthetic data: the espeak-ng voice of the study's speech. The base model heard only 'en-us', so
    # the default 'en-gb' makes the study's speakers new to it, as CoVoST2's and LibriSQA's are to
    # Granite Speech (on en-us the base already translated what it heard: AST BLEU 21.7, vs 12.5 here)
    voice: str = Field("en-gb", pattern=r"^[a-z][a-z0-9+-]*$")
    train_size: int = Field(1024, ge=1)  # with 256, fine-tuning overfit before it generalised
    validation_size: int = Field(256, ge=1)  # short answers: corpus BLEU on 128 swung +-2 between evaluations
    test_size: int = Field(512, ge=1)
    seed: int = 0  # the data seed; the trial seed is separate so seeds vary training, not data


class ModelConfig(Strict):
    name: str = "tiny"  # 'tiny' (built from config, cached) or a local dir / hub name of a checkpoint
    trainable: Literal["all", "projector+llm", "projector+lora"] = "projector+llm"  # see models/loader.py
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    system_prompt: str = "You are a helpful assistant that listens to audio and answers in text."
    gradient_checkpointing: bool = False  # recompute decoder activations in backward (real checkpoints, long audio)
    # Acoustic encoder + projector precision: 'auto' = the LM's (bf16 on GPU, fp32 on CPU); 'float32' keeps
    # them in fp32 under a bf16 LM (IBM calls Granite Speech precision-sensitive; see models/loader.py)
    encoder_dtype: Literal["auto", "float32"] = "auto"
    # Rows (prompt x sample) per log-prob forward/backward in a GRPO update; gradients are
    # accumulated over chunks. 0 = all B*G rows in one pass (fine for the tiny model).
    micro_batch_size: int = Field(0, ge=0)
    tiny: TinySpec = TinySpec()


class TrainConfig(Strict):
    steps: int = Field(100, ge=0)
    batch_size: int = Field(8, ge=1)  # prompts per step (GRPO: each with G samples)
    lr: float = Field(1e-4, gt=0)  # fresh Adam moments at 1e-3 disrupted the pretrained tiny model
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int = Field(25, ge=1)  # validation (greedy) every n steps; the best step is kept
    checkpoint_every: int = Field(20, ge=0)  # save the resumable state every n steps in sweeps (0: never)


class GRPOConfig(Strict):
    reward: str = "bleu"  # a metric or weighted sum, e.g. 'bleu+0.5*bertscore'
    group_size: int = Field(8, ge=2)  # G (paper: 8, searched 4-12)
    beta: float = Field(0.02, ge=0)  # KL coefficient (paper: 0.02); 0 loads no reference model
    epsilon: float = Field(0.2, gt=0, lt=1)
    epsilon_high: float | None = Field(None, gt=0)  # DAPO clip-higher; None = epsilon
    iterations: int = Field(1, ge=1)  # mu: updates per generated batch
    temperature: float = Field(1.0, gt=0)  # rollout temperature (paper: 1.0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(32, ge=1)  # paper: 200
    scale_rewards: AdvantageScale = "group"
    mp_grpo: bool = False  # Mixed-Policy GRPO: G-1 samples + the ground-truth reference
    # The field's variants (definitions and sources: harness/train/grpo_loss.py's header; README "Algorithms").
    loss_type: LossType = "dapo"  # the loss normaliser (TRL's loss_type; dapo: the paper's): grpo_loss.NORMALISERS
    mask_truncated: bool = False  # no loss on completions without EOS within max_new_tokens (DAPO, TRL)
    importance_level: ImportanceLevel = "token"  # sequence: GSPO's sequence-level ratio
    remove_clip: bool = False  # LUFFY's loss_remove_clip: on-policy ratios unclipped
    mp_shaping_gamma: float | None = Field(None, gt=0)  # LUFFY: the reference row's weight pi/(pi+gamma)
    # DAPO's dynamic sampling: groups whose rewards are all equal are dropped and more prompts drawn
    # (at most dynamic_sampling_max_draws extra batches) until the batch is full again
    dynamic_sampling: bool = False
    dynamic_sampling_max_draws: int = Field(3, ge=0)
    # CHORD: L = (1 - mu) L_GRPO + mu L_SFT (NLL of the reference answer); mu = sft_weight at step 1,
    # constant or decaying to sft_weight_final at the last step; sft_phi weighs tokens by p(1 - p)
    sft_weight: float = Field(0.0, ge=0, le=1)
    sft_weight_schedule: SFTSchedule = "constant"
    sft_weight_final: float = Field(0.0, ge=0, le=1)
    sft_phi: bool = False

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, spec: str) -> str:
        from harness.rewards import parse_reward

        parse_reward(spec)  # raises RewardSpecError (a ValueError) naming the bad metric
        return spec

    @model_validator(mode="after")
    def _shaping_needs_mp(self) -> GRPOConfig:
        if self.mp_shaping_gamma is not None and not self.mp_grpo:
            raise ValueError(
                "grpo.mp_shaping_gamma reshapes MP-GRPO's ground-truth row, which only grpo.mp_grpo: "
                "true puts into the groups: set grpo.mp_grpo: true, or leave mp_shaping_gamma unset"
            )
        return self


class EvalConfig(Strict):
    max_new_tokens: int = Field(40, ge=1)
    sampling_passes: int = Field(0, ge=0)  # k passes with the paper's sampling, averaged; 0 = greedy only
    temperature: float = Field(0.9, gt=0)  # paper: 0.9
    top_p: float = Field(0.9, gt=0, le=1)  # paper: 0.9
    batch_size: int = Field(32, ge=1)
    bertscore: bool = True


class TrialConfig(Strict):
    task: Literal["sqa", "ast"] = "sqa"
    method: Literal["base-eval", "sft", "grpo"] = "grpo"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    grpo: GRPOConfig = GRPOConfig()
    eval: EvalConfig = EvalConfig()

    def digest(self) -> str:
        """Identifies the resolved config (what a checkpoint belongs to)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _mp_needs_room(self) -> TrialConfig:
        if self.method == "grpo" and self.grpo.mp_grpo and self.grpo.group_size < 3:
            raise ValueError("grpo.mp_grpo needs group_size >= 3 (G-1 >= 2 on-policy samples plus the reference)")
        return self
