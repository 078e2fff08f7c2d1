"""A speech-aware LM as the training code sees it: prompts in, sampled completions and log-probs out.

`SpeechLM` wraps a transformers Granite Speech model (the tiny preset or a real checkpoint) with its
tokenizer. It does three things, each in one method:

- `embed_prompts`: encode each prompt's audio once (conformer encoder + Q-Former projector) and
  merge it into the prompt's token embeddings at the `<|audio|>` positions. Each clip goes through
  the encoder alone, at its own length: transformers' batched call pads the clips of a batch and
  the encoder (no attention mask) lets the padding reach the real frames through its attention
  blocks and convolutions, so a clip's embedding depended on which clips shared its batch. Encoded
  alone it is a function of the clip, which makes the frozen encoder's output cacheable
  (`harness.models.audio_cache`): every clip is encoded once per process, not once per step,
  reference pass and evaluation;
- `sample`: draw G completions per prompt from those embeddings with a lean KV-cache loop
  (the prompt is prefilled once and its cache repeated G times);
- `completion_logprobs`: per-token log-probs (and entropy) of given completions, the one
  differentiable pass the losses need (again the prompt runs once and its cache serves the group).

Both sampling and log-probs reuse the prompt embeddings, so the audio encoder runs once per
prompt, not once per sample. The batches it takes and returns (`Prompts`, `Completions`, `Prefill`)
are `harness.models.batches`'. `harness.yardsticks.plain.PerSampleLM` is the plain per-sample path the
tests and `bench/grpo_step.py` compare this one with.

The same class drives a plain text-only causal LM (e.g. `GraniteForCausalLM`): prompts prepared
without audio features are embedded by the token embedding alone, everything else is shared. The
benchmark against TRL (`bench/grpo_step.py`) uses that path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.config import ModelConfig
from harness.models import audio_cache
from harness.models.batches import Completions, Prefill, Prompts
from harness.models.features import num_audio_tokens
from harness.vocabulary import AUDIO_TOKEN

__all__ = ["SpeechLM"]


class SpeechLM:
    def __init__(self, model, tokenizer, system_prompt: str | None = None):
        self.model = model
        self._checkpointed: list[torch.nn.Module] = []  # decoder layers recomputed in backward
        self._encoder_key: str | None = None  # digest of the frozen encoder's weights (encode_clip)
        self.tokenizer = tokenizer
        self.system_prompt = _checked_system_prompt(tokenizer, system_prompt)
        self.audio_token_id = getattr(model.config, "audio_token_id", None)  # None: a text-only LM
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        # Never sample these: an audio token without audio makes the model raise, pad/bos are noise.
        self.suppress_ids = sorted(
            {i for i in (self.audio_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) if i is not None}
            - {self.eos_id}
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder layer's activations in backward. Fine-tuning runs in eval mode (no
        dropout, frozen BatchNorm); transformers checkpoints only layers in training mode, so the
        decoder layers alone (not their dropouts) are flagged as training during a grad-enabled pass."""
        decoder = self.model.model.language_model if self.audio_token_id is not None else self.model.model
        decoder.activation_checkpointing_enable({"use_reentrant": False})
        self._checkpointed = [
            m for m in decoder.modules() if getattr(m, "gradient_checkpointing", False) and m is not decoder
        ]

    # ----------------------------------------------------------------------------- text
    def format_prompt(self, prompt: str) -> str:
        """Prompt text -> model input text: the checkpoint's chat template with the fixed system prompt,
        or, for a tokenizer without a template (the tiny preset, text-only benchmark LMs, which are
        trained on this form), the prompt and a newline."""
        if self.system_prompt is None:
            return prompt + "\n"
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def tokenize_targets(self, texts: list[str]) -> list[list[int]]:
        """Reference answers as completion token ids, EOS-terminated."""
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.eos_id] for t in texts]

    def decode(self, completions: Completions) -> list[str]:
        texts = []
        for ids, mask in zip(completions.ids.tolist(), completions.mask.tolist()):
            kept = [i for i, m in zip(ids, mask) if m and i != self.eos_id]
            texts.append(self.tokenizer.decode(kept, skip_special_tokens=True).strip())
        return texts

    def prepare(self, prompts: list[str], features: list[torch.Tensor] | None = None) -> Prompts:
        """Tokenise prompts, expanding each `<|audio|>` to as many tokens as the clip has embeddings.

        Without `features` the prompts are text only (no `<|audio|>` expected)."""
        if features is None:
            return self._prepare_text(prompts)
        rows, n_audio = [], []
        for text, feats in zip(prompts, features):
            if text.count(AUDIO_TOKEN) != 1:
                raise ValueError(f"prompt must contain exactly one {AUDIO_TOKEN}: {text!r}")
            n = num_audio_tokens(feats.shape[0], self.model.config.window_size, self.model.config.downsample_rate)
            n_audio.append(n)
            formatted = self.format_prompt(text).replace(AUDIO_TOKEN, AUDIO_TOKEN * n)
            rows.append(self.tokenizer(formatted, add_special_tokens=False)["input_ids"])
        input_ids, attention_mask = self._left_pad(rows)
        frames = [f.shape[0] for f in features]
        padded = torch.stack([F.pad(f, (0, 0, 0, max(frames) - f.shape[0]), value=float(f.min())) for f in features])
        features_mask = torch.arange(max(n_audio))[None, :] < torch.tensor(n_audio)[:, None]
        device = self.device
        return Prompts(
            input_ids,
            attention_mask,
            padded.to(device, self.model.dtype),
            features_mask.to(device),
            frames,
            [audio_cache.clip_key(f) for f in features],
        )

    def _prepare_text(self, prompts: list[str]) -> Prompts:
        rows = [self.tokenizer(self.format_prompt(text), add_special_tokens=False)["input_ids"] for text in prompts]
        return Prompts(*self._left_pad(rows), features=None, features_mask=None)

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left padding: every completion starts at the same column."""
        length = max(map(len, rows))
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for b, row in enumerate(rows):
            input_ids[b, length - len(row) :] = torch.tensor(row)
            attention_mask[b, length - len(row) :] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    # ----------------------------------------------------------------------------- model passes
    def embed_prompts(self, prompts: Prompts) -> torch.Tensor:
        """[B, Lp, H] prompt embeddings with the audio encoded once per prompt, each clip alone."""
        if prompts.features is None:  # text only
            return self._embed_tokens(prompts.input_ids)
        core = self.model.model
        encoded = [
            self.encode_clip(prompts.features[b, :n], prompts.clip_keys[b]) for b, n in enumerate(prompts.frames)
        ]
        longest = max(prompts.frames)  # zero padding, as the projector pads a clip to whole windows itself
        padded = torch.stack([F.pad(e, (0, 0, 0, longest - e.shape[0])) for e in encoded])
        audio = core.projector(padded)  # windows of 15 frames are projected independently
        return core.get_merged_audio_embeddings(prompts.input_ids, audio, prompts.features_mask)

    def encode_clip(self, features: torch.Tensor, key: str) -> torch.Tensor:
        """The conformer encoder's output [T, H] for one clip's features [T, 160]. A frozen encoder in
        eval mode is a fixed function: its outputs are cached per process (`audio_cache`), keyed by
        the encoder's weights and the clip's content, and shared by every SpeechLM with that encoder
        (the policy and the KL reference)."""
        encoder = self.model.model.encoder
        frozen = not encoder.training and not any(p.requires_grad for p in encoder.parameters())
        if not frozen:
            return encoder(features[None]).last_hidden_state[0]
        if self._encoder_key is None:
            self._encoder_key = audio_cache.module_key(encoder)
        return audio_cache.encoded(
            (self._encoder_key, key), lambda: encoder(features[None]).last_hidden_state[0], features.device
        )

    def _embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def completion_logprobs(
        self,
        prompt_embeds: torch.Tensor,
        prompt_mask: torch.Tensor,
        completions: Completions,
        with_entropy: bool = False,
        sampler_temperature: float | None = None,
        prefill: Prefill | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log pi(token) for each completion token, [N, Lc]; row b*G + g continues prompt b.

        `sampler_temperature` None: the model's own distribution, log_softmax(logits) (SFT, evaluation
        NLL). A temperature T: the distribution `sample` draws from at T, log_softmax(logits / T) with
        the never-sampled `suppress_ids` at -inf (the GRPO policy and reference passes, as TRL divides
        the logits by its sampling temperature); `sample`'s top-p truncation is not reflected (nor is
        it in TRL). The entropy is that of the same distribution. Padded positions read 0.

        With one prompt per completion this is one forward pass over prompt + completion. With G
        completions per prompt, the prompt is run once (with gradients) and its KV cache repeated G
        times for the completions to attend to, as in sampling: the same log-probs and gradients as
        running each prompt G times (to float rounding; tests/test_fast_path.py), without G copies
        of the prompt's forward and backward.

        `prefill` (without gradients, one completion per prompt): the prompts' pass already made
        (`prefill`), continued here instead of running the prompts again, and left as it was (the
        completions' cache entries are cropped off) for `sample` to continue from. The log-probs are
        then those of the cached path, equal to the single pass's to float rounding.
        """
        n, lc = completions.ids.shape
        repeats = n // prompt_embeds.shape[0]
        if prefill is not None and (repeats != 1 or torch.is_grad_enabled()):
            raise ValueError("a prefill serves one completion per prompt, without gradients")
        mask = torch.cat([prompt_mask.repeat_interleave(repeats, 0), completions.mask.to(prompt_mask.dtype)], 1)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        # Gradient checkpointing (real checkpoints) recomputes layers without a KV cache: one pass then.
        recompute = self._checkpointed if torch.is_grad_enabled() else []
        for layer in recompute:
            layer.training = True  # the layer only; its submodules (dropout) stay in eval mode
        try:
            if (repeats == 1 and prefill is None) or recompute:
                embeds = torch.cat(
                    [prompt_embeds.repeat_interleave(repeats, 0), self._embed_tokens(completions.ids)], 1
                )
                logits = self.model(
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=False,
                    logits_to_keep=lc + 1,
                ).logits[:, :-1]
            else:
                lp = prompt_mask.shape[1]
                start = self._run_prompts(prompt_embeds, prompt_mask) if prefill is None else prefill
                cache = start.cache
                logits = start.logits[:, None].repeat_interleave(repeats, 0)  # each completion's first token
                if lc > 1:  # completion tokens 0..Lc-2 predict tokens 1..Lc-1
                    cache.batch_repeat_interleave(repeats)
                    rest = self.model(
                        inputs_embeds=self._embed_tokens(completions.ids[:, :-1]),
                        attention_mask=mask[:, :-1],
                        position_ids=positions[:, lp:-1],
                        cache=cache,
                        use_cache=True,
                    ).logits
                    logits = torch.cat([logits, rest], 1)
                    if prefill is not None:
                        cache.crop(-(lc - 1))  # the prompts' cache as it was
        finally:
            for layer in recompute:
                layer.training = False
        logits = logits.float()
        if sampler_temperature is not None:
            logits = self._as_sampled(logits, sampler_temperature)
        logp_all = logits.log_softmax(-1)
        logp = logp_all.gather(-1, completions.ids.unsqueeze(-1)).squeeze(-1)
        # 0 at padding (where the pad id, a suppressed id, would read -inf), with no gradient there
        logp = torch.where(completions.mask.bool(), logp, torch.zeros_like(logp))
        entropy = None
        if with_entropy:
            with torch.no_grad():
                probs = logp_all.exp()
                entropy = -torch.where(probs > 0, probs * logp_all, torch.zeros_like(probs)).sum(-1)
        return logp, entropy

    def _as_sampled(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Logits of the distribution `sample` draws from at `temperature` (before top-p): suppressed
        ids at -inf, divided by the temperature."""
        if self.suppress_ids:
            ids = torch.tensor(self.suppress_ids, device=logits.device)
            logits = logits.index_fill(-1, ids, float("-inf"))
        return logits / temperature

    @torch.no_grad()
    def prefill(self, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor) -> Prefill:
        """One pass over the prompts, kept for `sample` (and `completion_logprobs`) to continue from."""
        return self._run_prompts(prompt_embeds, prompt_mask)

    def _run_prompts(self, prompt_embeds: torch.Tensor, prompt_mask: torch.Tensor) -> Prefill:
        """The prompts through the LM with a KV cache (with gradients when they are enabled)."""
        positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
        out = self.model(
            inputs_embeds=prompt_embeds,
            attention_mask=prompt_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        return Prefill(out.cache, out.logits[:, -1], positions)

    @torch.no_grad()
    def sample(
        self,
        prompt_embeds: torch.Tensor,
        prompt_mask: torch.Tensor,
        group_size: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        prefill: Prefill | None = None,
    ) -> Completions:
        """G completions per prompt. The prompt is prefilled once (or `prefill` is continued, and used
        up); its KV cache is repeated G times."""
        start = self.prefill(prompt_embeds, prompt_mask) if prefill is None else prefill
        cache, positions = start.cache, start.positions
        if group_size > 1:
            cache.batch_repeat_interleave(group_size)
        logits = start.logits.float().repeat_interleave(group_size, 0)
        mask = prompt_mask.repeat_interleave(group_size, 0)
        position = positions[:, -1].repeat_interleave(group_size, 0)
        n = logits.shape[0]
        tokens = torch.full((n, max_new_tokens), self.pad_id, dtype=torch.long, device=logits.device)
        finished = torch.zeros(n, dtype=torch.bool, device=logits.device)
        for t in range(max_new_tokens):
            logits[:, self.suppress_ids] = float("-inf")
            token = _choose(logits, temperature, top_p, greedy, generator)
            token = torch.where(finished, self.pad_id, token)
            tokens[:, t] = token
            finished |= token == self.eos_id
            if bool(finished.all()) or t == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            position = position + 1
            out = self.model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=position[:, None],
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            logits = out.logits[:, -1].float()
        tokens = tokens[:, : t + 1]
        is_eos = tokens == self.eos_id
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0  # strictly after the first EOS
        completion_mask = (~after_eos).long()
        return Completions(tokens, completion_mask, ~is_eos.any(1))


def _checked_system_prompt(tokenizer, system_prompt: str | None) -> str | None:
    """A tokenizer with a chat template needs a fixed, non-empty system prompt (Granite's template
    writes today's date into the prompt when there is none, so prompts would change from day to day);
    a system prompt needs a chat template to go into (it would otherwise be dropped silently)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if has_template and not (system_prompt or "").strip():
        raise ValueError(
            "model.system_prompt is empty: the checkpoint's chat template then fills in its own "
            "system prompt (Granite's has today's date), so prompts would not be reproducible. "
            f"Fix: set model.system_prompt to a fixed text (the default is "
            f"{ModelConfig.model_fields['system_prompt'].default!r})."
        )
    if system_prompt is not None and not has_template:
        raise ValueError(
            "the tokenizer has no chat template, so model.system_prompt cannot be applied and prompts "
            "would not be formatted as the checkpoint expects. Fix: use the checkpoint's own tokenizer "
            "files (tokenizer_config.json with 'chat_template', or chat_template.jinja)."
        )
    return system_prompt


def _choose(
    logits: torch.Tensor, temperature: float, top_p: float, greedy: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """Next token by greedy choice, or temperature + nucleus (top-p) sampling."""
    if greedy:
        return logits.argmax(-1)
    probs = (logits / temperature).softmax(-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p  # smallest set whose mass reaches top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
