"""The tiny base model is speech-aware: its encoder was CTC-trained to hear, and the decoder uses the
audio (noise in place of speech makes the references much less likely)."""

import json

import pytest
import torch

from harness.config import EvalConfig, ModelConfig, TinySpec, TrialConfig
from harness.data.dataset import SpokenSet
from harness.eval.evaluate import evaluate, reference_nll
from harness.eval.hearing import edit_distance
from harness.models.loader import load_speech_lm
from harness.train.base_model import CTC_CHARS, ctc_greedy, ctc_targets, ensure_tiny_base
from harness.train.trial import load_task_data


def test_ctc_helpers_against_hand_computations():
    assert ctc_targets("Hi, Bo's!") == [CTC_CHARS.index(c) + 1 for c in "hi bo's"]
    # frames: h h <blank> i i <blank> <blank> i  -> "hii" (a blank separates repeated labels)
    h, i = CTC_CHARS.index("h") + 1, CTC_CHARS.index("i") + 1
    frames = [h, h, 0, i, i, 0, 0, i, h]
    log_probs = torch.full((len(frames), len(CTC_CHARS) + 1), -10.0)
    log_probs[torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    assert ctc_greedy(log_probs, 8) == "hii"  # the 9th frame is padding
    assert ctc_greedy(log_probs, 9) == "hiih"
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert edit_distance("abc", "abc") == 0 and edit_distance("ab", "ba") == 2


@pytest.mark.slow
def test_base_model_hears_the_audio():
    spec = ModelConfig().tiny
    summary = json.loads((ensure_tiny_base(spec) / "pretraining.json").read_text())
    assert summary["ctc"]["validation_cer"] < 0.05  # measured: 0.7 % after 500 CTC steps

    lm = load_speech_lm(ModelConfig())
    # in the voice it was pretrained on (the studies' default voice, en-gb, is new to it)
    data = load_task_data(TrialConfig(task="ast", data={"voice": "en-us", "validation_size": 32, "test_size": 8}))
    data = data["validation"]
    examples, feats = data.batch(range(len(data)))
    answers = [ex.answer for ex in examples]
    generator = torch.Generator().manual_seed(0)
    noise = [torch.randn(f.shape, generator=generator) * f.std() + f.mean() for f in feats]
    with torch.no_grad():
        real_nll = reference_nll(lm, lm.prepare([ex.prompt for ex in examples], feats), answers)[0].item()
        noise_nll = reference_nll(lm, lm.prepare([ex.prompt for ex in examples], noise), answers)[0].item()
    # measured: 0.87 with the speech, 2.2-2.7 with noise of the same length and level
    assert noise_nll > real_nll + 0.8, (real_nll, noise_nll)
    # it translates unseen sentences well above chance, yet leaves room to fine-tune
    bleu = evaluate(lm, SpokenSet(examples, feats), EvalConfig(bertscore=False), full=False).scores["bleu"]
    assert 10 < bleu < 60, bleu


def test_shipped_base_is_checked(tmp_path, monkeypatch) -> None:
    """The shipped base loads only if its weights match their recorded sha256."""
    import shutil

    import harness.models.tiny_base as tiny_base

    spec = TinySpec()
    path, sha = tiny_base.shipped_base(spec)
    assert sha == tiny_base.SHIPPED_SHA256[spec.digest()] == tiny_base.file_sha256(path / tiny_base.WEIGHTS)
    copy = tmp_path / "assets" / path.name
    shutil.copytree(path, copy)
    monkeypatch.setattr(tiny_base, "ASSETS", tmp_path / "assets")
    assert tiny_base.shipped_base(spec)[1] == sha
    with open(copy / tiny_base.WEIGHTS, "r+b") as f:  # one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(tiny_base.BaseModelError, match="does not match the shipped base"):
        tiny_base.shipped_base(spec)
    (copy / tiny_base.WEIGHTS).unlink()
    with pytest.raises(tiny_base.BaseModelError, match="missing"):
        tiny_base.shipped_base(spec)
