"""Our log-mel features (`harness.models.features`, no torchaudio) against transformers'
`GraniteSpeechFeatureExtractor`, on single clips and on a padded batch of clips of different lengths.

The extractor's own code runs here, with one object replaced. It needs torchaudio for exactly one
thing, `torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400,
hop_length=160, n_mels=80)`, and torchaudio cannot be imported here (the PyPI wheel is a CUDA build
that fails on import: libc10_cuda.so), so `requires_backends` refuses to run it. The test gives the
extractor's module `MelSpectrogramStandIn` in its place and disables that check; everything else is
the extractor's code: zero-padding the batch, log10 / clip at 1e-10 / floor at max - 8 / 4 + 1,
dropping an odd last frame, stacking frame pairs, the audio-token counts and the mask.

The stand-in is written from torchaudio's source (transforms.MelSpectrogram with its defaults:
periodic Hann window of 400 samples centred in the 512-point FFT, frames centred with reflect
padding, power 2; functional.melscale_fbanks: HTK triangles between 0 and 8 kHz, no norm), in
float64 numpy: independent of `torch.stft` and of transformers' `mel_filter_bank`, which our
features use.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers.models.granite_speech.feature_extraction_granite_speech as extraction
from fakes import SMALL_SPEC

from harness.models.features import HOP_LENGTH, log_mel, num_audio_tokens
from harness.models.speech_lm import AUDIO_TOKEN, SpeechLM
from harness.models.tiny import build_tiny, train_tokenizer

WINDOW_HALF = 200  # the 400-sample window reaches 200 samples either side of a frame's centre


class MelSpectrogramStandIn:
    """torchaudio.transforms.MelSpectrogram for the arguments the extractor passes: [B, S] -> [B, mels, frames]."""

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int):
        self.n_fft, self.hop = n_fft, hop_length
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)  # torch.hann_window: periodic
        left = (n_fft - win_length) // 2  # torch.stft centres a shorter window in the FFT frame
        self.window = np.zeros(n_fft)
        self.window[left : left + win_length] = hann
        self.fb = _melscale_fbanks(n_fft // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate)

    def to(self, device):
        return self

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        x = np.pad(audio.double().numpy(), ((0, 0), (self.n_fft // 2, self.n_fft // 2)), mode="reflect")
        frames = 1 + (x.shape[1] - self.n_fft) // self.hop
        index = np.arange(self.n_fft)[None, :] + self.hop * np.arange(frames)[:, None]
        power = np.abs(np.fft.rfft(x[:, index] * self.window, axis=-1)) ** 2  # [B, frames, freqs]
        return torch.from_numpy((power @ self.fb).transpose(0, 2, 1).astype(np.float32))


def _melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale='htk'): [freqs, mels]."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    mel = np.linspace(2595.0 * math.log10(1.0 + f_min / 700.0), 2595.0 * math.log10(1.0 + f_max / 700.0), n_mels + 2)
    f_pts = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


@pytest.fixture
def extractor(monkeypatch):
    monkeypatch.setattr(
        extraction,
        "torchaudio",
        SimpleNamespace(transforms=SimpleNamespace(MelSpectrogram=MelSpectrogramStandIn)),
        raising=False,
    )
    monkeypatch.setattr(extraction, "requires_backends", lambda *args, **kwargs: None)
    return extraction.GraniteSpeechFeatureExtractor()


def clip(samples: int, seed: int) -> np.ndarray:
    """Speech-like test audio: a few harmonics with a slow envelope, plus noise."""
    rng = np.random.RandomState(seed)
    t = np.arange(samples) / 16000
    f0 = 110 + 40 * seed
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.rand() * 6) / k for k in range(1, 6))
    return (0.3 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.randn(samples)).astype(np.float32)


def audio_tokens(samples: int) -> int:
    """The extractor's count, as a formula: ceil(((samples // 160 + 1) // 2) / 15) * 3."""
    return math.ceil(((samples // 160 + 1) // 2) / 15) * 3


def clean_rows(samples: int) -> int:
    """Feature rows (frame pairs) whose STFT windows lie inside the clip: padding cannot touch them."""
    last_clean_frame = (samples - WINDOW_HALF) // HOP_LENGTH
    return (last_clean_frame + 1) // 2


LENGTHS = [32000, 23999, 16161, 7201]  # 2 s, and shorter clips with odd frame counts / partial windows


@pytest.mark.parametrize("samples", LENGTHS)
def test_log_mel_matches_the_extractor_on_one_clip(extractor, samples):
    audio = clip(samples, seed=samples % 7)
    theirs = extractor([audio])["input_features"][0]
    ours = log_mel(audio)
    assert ours.shape == theirs.shape == ((samples // HOP_LENGTH + 1) // 2, 160)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_padded_batch_keeps_each_clip_s_features_and_token_counts(extractor):
    """Measured here: ours vs the extractor on a clip alone, max |diff| 1.4e-5; the extractor's batch
    changes a shorter clip's last valid row by up to 0.4 (its STFT window sees the zero padding), ours
    keep every valid row. Rows past a clip differ too: the extractor's are the clip's floor (row max - 2,
    the features of silence), ours the clip's minimum (`SpeechLM.prepare`); the encoder has no
    attention mask, so in a batch padding rows reach the valid rows' encodings either way."""
    audios = [clip(n, seed=i) for i, n in enumerate(LENGTHS)]
    batch = extractor(audios)
    alone = [extractor([a])["input_features"][0] for a in audios]
    counts = [audio_tokens(n) for n in LENGTHS]
    assert batch["audio_embed_sizes"] == counts == [num_audio_tokens(log_mel(a).shape[0]) for a in audios]

    # our prompts: features computed per clip, then padded; the mask and <|audio|> runs match the extractor's
    tok = train_tokenizer(["listen to the audio"], 300)
    lm = SpeechLM(
        build_tiny(SMALL_SPEC, tok),
        tok,
    )
    prompts = lm.prepare([f"{AUDIO_TOKEN} listen to the audio"] * len(audios), [log_mel(a) for a in audios])
    assert torch.equal(prompts.features_mask, batch["input_features_mask"])
    assert (prompts.input_ids == lm.audio_token_id).sum(1).tolist() == counts
    for b, audio in enumerate(audios):
        rows = alone[b].shape[0]
        # ours: a clip's features in the batch are its features alone, on every valid row
        torch.testing.assert_close(prompts.features[b, :rows], log_mel(audio), atol=0, rtol=0)
        torch.testing.assert_close(prompts.features[b, :rows], alone[b], atol=1e-4, rtol=0)
        # the extractor pads the audio with zeros before the STFT: the same on rows whose windows lie
        # inside the clip, different on the last row or two of a shorter clip (its windows reach the zeros)
        clean = clean_rows(LENGTHS[b])
        assert rows - clean <= 2
        torch.testing.assert_close(batch["input_features"][b, :clean], alone[b][:clean], atol=1e-5, rtol=0)
        if LENGTHS[b] < max(LENGTHS):
            assert (batch["input_features"][b, clean:rows] - alone[b][clean:]).abs().max() > 1e-3
            silence = batch["input_features"][b, rows + 1 :]  # rows wholly in the zero padding
            torch.testing.assert_close(
                silence, torch.full_like(silence, float(alone[b].max()) - 2.0), atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("samples", [257, 319, 320, 4799, 4800, 4801, 4960, 9600, 16000, 48001])
def test_token_count_formula_edges(extractor, samples):
    frames = log_mel(np.zeros(samples, dtype=np.float32) + 1e-3).shape[0]
    assert frames == (samples // HOP_LENGTH + 1) // 2
    assert num_audio_tokens(frames) == audio_tokens(samples) == extractor._get_num_audio_features([samples])[0]
