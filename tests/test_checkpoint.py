"""`model.name: <dir>`: a Granite Speech checkpoint saved the way the 3.3 releases ship (model +
tokenizer with a chat template + LoRA adapter files beside them, `has_lora_adapter: true`), built
tiny here from config: its adapter in every key layout, the chat template and system prompt a real
checkpoint must have, the revision a run records. Also gradient checkpointing and micro-batched
GRPO updates against the one-pass computation."""

import copy
import json
import shutil

import pytest
import torch
from fakes import SMALL_SPEC, grads_of, make_learner, make_prompts
from safetensors.torch import load_file, save_file

from harness.config import GRPOConfig, ModelConfig, TinySpec, TrialConfig
from harness.models import checkpoint as checkpoint_lib
from harness.models.checkpoint import CheckpointError, checkpoint_revision, content_hash, load_checkpoint
from harness.models.loader import frozen_copy, load_speech_lm, set_encoder_dtype, set_trainable
from harness.models.speech_lm import SpeechLM
from harness.models.tiny import build_tiny, train_tokenizer
from harness.models.tiny_base import ASSETS, WEIGHTS, file_sha256
from harness.vocabulary import TAG_CHECKPOINT as REVISION_TAG

CHAT_TEMPLATE = (
    "{% for m in messages %}<|start_of_role|>{{ m['role'] }}<|end_of_role|>{{ m['content'] }}"
    "<|end_of_text|>\n{% endfor %}{% if add_generation_prompt %}<|start_of_role|>assistant"
    "<|end_of_role|>{% endif %}"
)
SPEC = SMALL_SPEC.model_copy(update={"text_layers": 2})  # two decoder layers: checkpointing per layer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(dir, in-memory model with the same adapter) of a tiny checkpoint with a bundled adapter."""
    from peft import LoraConfig, get_peft_model

    path = tmp_path_factory.mktemp("granite-tiny")
    texts = ["the ball is red", "die Katze schläft", "listen to the audio and answer the following question"] * 5
    tok = train_tokenizer(texts + ["<|start_of_role|>", "<|end_of_role|>", "system user assistant"], SPEC.vocab_size)
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    model = build_tiny(SPEC, tok)
    model.config.has_lora_adapter = True
    model.save_pretrained(path)
    tok.save_pretrained(path)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter (lora_B starts at zero: it would change nothing)
    peft_model.save_pretrained(path)
    assert (path / "adapter_config.json").exists() and (path / "adapter_model.safetensors").exists()
    return path, peft_model.base_model.model.eval(), tok


CLIPS = (16000, 20000)  # samples of the test prompts' two clips


def test_checkpoint_dir_loads_with_active_adapter_and_trains_projector_and_lora(checkpoint):
    path, reference_model, tok = checkpoint
    lm = load_speech_lm(ModelConfig(name=str(path), trainable="projector+lora"), torch.device("cpu"))
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".projector." in n for n in trainable)
    assert any("lora_" in n for n in trainable) and any(".projector." in n for n in trainable)
    saved = load_file(str(path / "adapter_model.safetensors"))
    lora = {n: p for n, p in lm.model.named_parameters() if "lora_" in n}
    assert len(lora) == len(saved) == 2 * 2 * SPEC.text_layers  # A and B of q_proj, v_proj per layer
    # chat template with the fixed system prompt
    text = lm.format_prompt("<|audio|> hello")
    assert text.startswith("<|start_of_role|>system<|end_of_role|>" + ModelConfig().system_prompt)
    assert text.endswith("<|start_of_role|>assistant<|end_of_role|>")

    # log-probs of the loaded model == those of the in-memory model with the same adapter, != without it
    prompts = make_prompts(lm, CLIPS)
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        comp = lm.sample(embeds, prompts.attention_mask, 2, 5, generator=torch.Generator().manual_seed(0))
        ours, _ = lm.completion_logprobs(embeds, prompts.attention_mask, comp)
        ref_lm = SpeechLM(reference_model, tok, ModelConfig().system_prompt)
        theirs, _ = ref_lm.completion_logprobs(ref_lm.embed_prompts(prompts), prompts.attention_mask, comp)
        no_adapter = copy.deepcopy(lm)
        for n, p in no_adapter.model.named_parameters():
            if "lora_B" in n:
                p.zero_()
        without, _ = no_adapter.completion_logprobs(no_adapter.embed_prompts(prompts), prompts.attention_mask, comp)
    m = comp.mask.bool()
    torch.testing.assert_close(ours[m], theirs[m], atol=1e-5, rtol=1e-5)
    assert (ours[m] - without[m]).abs().max() > 1e-3
    # the KL reference starts from the same weights, adapter included
    assert "lora_A" in " ".join(n for n, _ in frozen_copy(lm).model.named_parameters())


def _copy(path, dst):
    """A copy of the checkpoint directory (files only) to change one thing in."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in path.iterdir():
        shutil.copy(f, dst / f.name)
    return dst


def _logprobs(lm, comp=None):
    """Log-probs of fixed completions (sampled from `lm` when not given) of two audio prompts."""
    prompts = make_prompts(lm, CLIPS)
    with torch.no_grad():
        embeds = lm.embed_prompts(prompts)
        if comp is None:
            comp = lm.sample(embeds, prompts.attention_mask, 2, 5, generator=torch.Generator().manual_seed(0))
        return lm.completion_logprobs(embeds, prompts.attention_mask, comp)[0][comp.mask.bool()], comp


PEFT_PREFIX = "base_model.model.model.language_model."  # how peft saves the adapter of a transformers 5 model


@pytest.mark.parametrize(
    "prefix",
    [
        "base_model.model.language_model.model.",  # peft on transformers 4.x
        "language_model.model.",
    ],  # the 3.3 releases' adapter_model.safetensors
    ids=["transformers-4", "released"],
)
def test_adapter_key_layouts_load_and_are_live(checkpoint, tmp_path, prefix):
    path, _, _ = checkpoint
    _copy(path, tmp_path)
    state = load_file(str(path / "adapter_model.safetensors"))
    assert all(k.startswith(PEFT_PREFIX) for k in state)
    renamed = {k.replace(PEFT_PREFIX, prefix): v for k, v in state.items()}
    if prefix == "language_model.model.":
        assert "language_model.model.layers.0.self_attn.q_proj.lora_A.weight" in renamed
    save_file(renamed, str(tmp_path / "adapter_model.safetensors"))
    lm = load_speech_lm(ModelConfig(name=str(tmp_path), trainable="projector+lora"), torch.device("cpu"))
    lora = dict(lm.model.model.language_model.named_parameters())
    for key, value in state.items():  # every tensor landed in its LoRA weight
        torch.testing.assert_close(lora[key.replace(PEFT_PREFIX, "").replace(".weight", ".default.weight")], value)
    # live: the same log-probs as the checkpoint in peft's own layout (tested against the in-memory
    # model above), and not those of the model with the adapter switched off
    expected, comp = _logprobs(
        load_speech_lm(ModelConfig(name=str(path), trainable="projector+lora"), torch.device("cpu"))
    )
    got, _ = _logprobs(lm, comp)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for name, p in lm.model.named_parameters():
        if "lora_B" in name:
            p.data.zero_()
    assert (_logprobs(lm, comp)[0] - expected).abs().max() > 1e-3

    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    cfg["target_modules"] = ["k_proj"]  # an adapter that does not fit is an error naming the file
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="adapter_model"):
        load_speech_lm(ModelConfig(name=str(tmp_path), trainable="projector+lora"), torch.device("cpu"))


def test_checkpoint_without_chat_template_is_an_error(checkpoint, tmp_path):
    path, model, tok = checkpoint
    _copy(path, tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"{tmp_path}: the tokenizer has no chat template.*Fix: copy"):
        load_speech_lm(ModelConfig(name=str(tmp_path), trainable="projector+lora"), torch.device("cpu"))
    # SpeechLM itself: a system prompt without a template is refused, not dropped; without a system
    # prompt (the tiny preset, text-only benchmark LMs) a template-less tokenizer formats plain text
    plain = copy.copy(tok)
    plain.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        SpeechLM(model, plain, "You are a helpful assistant.")
    assert SpeechLM(model, plain).format_prompt("<|audio|> hello") == "<|audio|> hello\n"


@pytest.mark.parametrize("system_prompt", ["", "  "])
def test_empty_system_prompt_with_a_chat_template_is_an_error(checkpoint, system_prompt):
    """Granite's template writes today's date into the prompt when no system prompt is given."""
    path, model, tok = checkpoint
    with pytest.raises(ValueError, match="model.system_prompt is empty.*today's date.*Fix: set model.system_prompt"):
        load_speech_lm(
            ModelConfig(name=str(path), trainable="projector+lora", system_prompt=system_prompt), torch.device("cpu")
        )
    with pytest.raises(ValueError, match="model.system_prompt is empty"):
        SpeechLM(model, tok)


def test_checkpoint_revision_is_a_content_hash_computed_once(checkpoint, tmp_path, monkeypatch):
    path, _, _ = checkpoint
    _copy(path, tmp_path)
    weights = sorted(f.name for f in tmp_path.iterdir() if f.name.endswith(".safetensors"))
    assert weights == ["adapter_model.safetensors", "model.safetensors"]
    revision = checkpoint_revision(ModelConfig(name=str(tmp_path)))
    assert revision == checkpoint_revision(ModelConfig(name=str(path))) == f"sha256:{content_hash(path)}"
    assert len(revision) == len("sha256:") + 64

    def no_reading(*args, **kwargs):
        raise AssertionError("a weight file was read again")

    monkeypatch.setattr(checkpoint_lib, "open", no_reading, raising=False)  # shadows the builtin in the module
    assert checkpoint_revision(ModelConfig(name=str(tmp_path))) == revision  # (path, size, mtime) known
    monkeypatch.undo()
    adapter = load_file(str(tmp_path / "adapter_model.safetensors"))
    first = next(iter(adapter))
    adapter[first] = adapter[first] + 1.0  # a different adapter: a different revision
    save_file(adapter, str(tmp_path / "adapter_model.safetensors"))
    assert checkpoint_revision(ModelConfig(name=str(tmp_path))) != revision
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no weight files"):
        checkpoint_revision(ModelConfig(name=str(tmp_path / "empty")))


def test_checkpoint_revision_of_a_hub_snapshot_and_of_tiny(checkpoint, tmp_path, monkeypatch):
    import huggingface_hub.constants

    path, _, _ = checkpoint
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--ibm-granite--granite-speech-tiny"
    _copy(path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert checkpoint_revision(ModelConfig(name="ibm-granite/granite-speech-tiny")) == commit
    assert checkpoint_revision(ModelConfig(name=str(repo / "snapshots" / commit))) == commit
    # the tiny preset: the name of its base model, without building it
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    spec = TinySpec(seed=12345)
    assert checkpoint_revision(ModelConfig(tiny=spec)) == f"tiny-{spec.digest()} (not built yet)"
    assert not (tmp_path / "cache").exists()


def test_every_trial_run_records_its_checkpoint_revision(checkpoint, tmp_path, stores, fake):
    from fakes import study_file
    from test_sweep import runs_of

    from harness.study import load_study
    from harness.sweep import run_sweep

    path, _, _ = checkpoint
    fake()
    study = study_file(
        tmp_path,
        f"""
        space:
          model.name: {{choices: [tiny, {path}]}}
        """,
    )
    storage, uri = stores
    run_sweep(load_study(study), storage=storage, tracking_uri=uri, progress=False)
    _, _, _, trials = runs_of(uri, "tiny")
    tags = {r.data.params["model.name"]: r.data.tags.get(REVISION_TAG) for r in trials}
    shipped = (
        f"tiny-{TinySpec().digest()} sha256:{file_sha256(ASSETS / f'tiny-{TinySpec().digest()}' / WEIGHTS)} (shipped)"
    )
    assert tags == {"tiny": shipped, str(path): f"sha256:{content_hash(path)}"}


def test_fp32_encoder_under_a_bf16_lm(checkpoint):
    """model.encoder_dtype: float32 on a bf16 model (bf16 as on a GPU; CPU bf16 is fine for a test):
    fp32 encoder + projector, bf16 LM, and a GRPO update with finite log-probs and gradients."""
    from harness.train.grpo_update import Batch, micro_batched_update

    path, _, _ = checkpoint

    def bf16_lm(encoder_dtype):
        model, tok, _ = load_checkpoint(str(path), torch.bfloat16)
        set_encoder_dtype(model, encoder_dtype)
        set_trainable(model, ModelConfig(trainable="projector+lora"))
        return SpeechLM(model.eval(), tok, ModelConfig().system_prompt)

    lm = bf16_lm("float32")
    core = lm.model.model
    assert {p.dtype for m in (core.encoder, core.projector) for p in m.parameters()} == {torch.float32}
    assert {p.dtype for p in core.language_model.parameters()} == {torch.bfloat16}
    prompts = make_prompts(lm, CLIPS)
    embeds = lm.embed_prompts(prompts)
    assert prompts.features.dtype == torch.float32 and embeds.dtype == torch.bfloat16  # cast at both ends
    comp = lm.sample(embeds.detach(), prompts.attention_mask, 3, 5, generator=torch.Generator().manual_seed(0))
    # the same bf16 checkpoint with a bf16 encoder: close log-probs, not the same ones
    plain = bf16_lm("auto")
    assert {p.dtype for p in plain.model.parameters()} == {torch.bfloat16}
    plain_prompts = make_prompts(plain, CLIPS)
    with torch.no_grad():
        ours, _ = lm.completion_logprobs(embeds, prompts.attention_mask, comp)
        theirs, _ = plain.completion_logprobs(plain.embed_prompts(plain_prompts), plain_prompts.attention_mask, comp)
    diff = (ours - theirs)[comp.mask.bool()].abs().max()
    assert 0 < diff < 0.5
    params = [p for p in lm.model.parameters() if p.requires_grad]
    batch = Batch(
        embeds, prompts.attention_mask, comp, torch.linspace(-1, 1, 6), torch.zeros(6, dtype=torch.bool), None, 3
    )
    update = micro_batched_update(
        make_learner(lm, optimizer=torch.optim.AdamW(params, lr=1e-4), max_grad_norm=1.0),
        batch,
        GRPOConfig(group_size=3, beta=0.0),
        None,
        with_entropy=False,
        what="GRPO loss, fp32 encoder",
    )
    assert torch.isfinite(update.logp).all() and update.grad_norm > 0
    projector = [p for n, p in lm.model.named_parameters() if ".projector." in n]
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in projector)


def test_gradient_checkpointing_and_micro_batches_give_the_same_gradients(checkpoint):
    from harness.train.grpo_loss import grpo_loss
    from harness.train.grpo_update import Batch, micro_batched_update, reference_logprobs

    path, _, _ = checkpoint
    plain = load_speech_lm(ModelConfig(name=str(path), trainable="projector+lora"), torch.device("cpu"))
    ckpt = load_speech_lm(
        ModelConfig(name=str(path), trainable="projector+lora", gradient_checkpointing=True), torch.device("cpu")
    )
    assert len(ckpt._checkpointed) == SPEC.text_layers
    prompts = make_prompts(plain, CLIPS)
    g = 4
    with torch.no_grad():
        comp = plain.sample(
            plain.embed_prompts(prompts), prompts.attention_mask, g, 6, generator=torch.Generator().manual_seed(1)
        )
    adv = torch.linspace(-1, 1, 2 * g)
    off = torch.zeros(2 * g, dtype=torch.bool)
    cfg = GRPOConfig(group_size=g, beta=0.0)
    for lm in (plain, ckpt):
        lm.model.eval()

    # one pass over all 8 rows, no checkpointing (log-probs of the distribution that sampled: T = 1,
    # suppressed tokens masked, as micro_batched_update takes them)
    logp, _ = plain.completion_logprobs(
        plain.embed_prompts(prompts), prompts.attention_mask, comp, sampler_temperature=1.0
    )
    loss, _ = grpo_loss(logp, logp.detach(), adv, comp.mask, cfg, off)
    loss.backward()
    expected = grads_of(plain)
    # checkpointed decoder layers, rows in chunks of 3 (3 + 3 + 2, one chunk spanning two groups)
    calls = []
    for layer in ckpt._checkpointed:
        func = layer._gradient_checkpointing_func
        layer._gradient_checkpointing_func = lambda *a, _f=func, **k: calls.append(1) or _f(*a, **k)
    batch = Batch(ckpt.embed_prompts(prompts), prompts.attention_mask, comp, adv, off, None, g)
    update = micro_batched_update(make_learner(ckpt, rows=3), batch, cfg, None, with_entropy=True, what="test")
    got_loss, got_logp = update.loss, update.logp
    got = grads_of(ckpt)
    assert len(calls) == 3 * SPEC.text_layers  # every decoder layer recomputed, once per chunk
    assert not any(m.training for m in ckpt.model.modules())  # eval mode restored
    assert got.keys() == expected.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(float(got_loss), loss.item(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_logp, logp.detach(), atol=1e-5, rtol=1e-5)
    ref = reference_logprobs(plain, prompts, comp, g, 3)  # the KL reference's pass, in chunks of 3 rows
    torch.testing.assert_close(ref, logp.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_two_step_grpo_trial_on_checkpoint_dir(checkpoint, tmp_path):
    from test_real_data import make_covost2

    from harness.train.trial import run_trial

    path, _, _ = checkpoint
    cfg = TrialConfig.model_validate(
        {
            "task": "ast",
            "method": "grpo",
            "data": {"source": str(make_covost2(tmp_path)), "train_size": 2, "validation_size": 1, "test_size": 1},
            "model": {"name": str(path), "trainable": "projector+lora", "micro_batch_size": 2},
            "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "warmup_steps": 0, "lr": 1e-2},
            "grpo": {"group_size": 3, "max_new_tokens": 5},
            "eval": {"bertscore": False, "max_new_tokens": 5, "batch_size": 2},
        }
    )
    logged = []
    result = run_trial(cfg, log=lambda m, s: logged.append((s, m)))
    assert result.steps == 2 and [s for s, m in logged if "loss" in m] == [1, 2]
