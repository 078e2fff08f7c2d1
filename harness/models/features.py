"""Granite Speech log-mel features without torchaudio.

Mirrors ``GraniteSpeechFeatureExtractor`` (which needs torchaudio, a CUDA-only wheel on PyPI):
16 kHz audio, STFT n_fft=512 / window 400 / hop 160 (Hann, centred, reflect padding), 80 HTK mel
bins without normalisation, power spectrum, log10 clipped at 1e-10, floored at (max - 8), /4 + 1,
and pairs of frames stacked into 160-dim vectors. Works for the tiny preset and real checkpoints.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

__all__ = ["HOP_LENGTH", "N_FFT", "N_MELS", "SAMPLE_RATE", "WIN_LENGTH", "log_mel", "num_audio_tokens"]

SAMPLE_RATE = 16_000
N_FFT, WIN_LENGTH, HOP_LENGTH, N_MELS = 512, 400, 160, 80


@lru_cache(maxsize=1)
def _mel_matrix() -> torch.Tensor:
    mel = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=N_MELS,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm=None,
        mel_scale="htk",
    )
    return torch.from_numpy(mel.astype(np.float32))  # [freq, mel]


def log_mel(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """One clip (1-D, 16 kHz) -> features [frames // 2, 160]."""
    wav = torch.as_tensor(audio, dtype=torch.float32).flatten()
    spec = torch.stft(
        wav,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=torch.hann_window(WIN_LENGTH),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spec.abs().pow(2)  # [freq, frames]
    logmel = (power.T @ _mel_matrix()).clamp_(min=1e-10).log10_()  # [frames, mel]
    logmel = torch.maximum(logmel, logmel.max() - 8.0).div_(4).add_(1)
    if logmel.shape[0] % 2 == 1:
        logmel = logmel[:-1]
    return logmel.reshape(-1, 2 * N_MELS)


def num_audio_tokens(num_frames: int, window_size: int = 15, downsample_rate: int = 5) -> int:
    """Number of projector outputs (= `<|audio|>` tokens in the prompt) for `num_frames` feature rows.

    A clip of S samples has (S // 160 + 1) // 2 rows (2 s: 100 rows, 21 tokens).
    """
    return math.ceil(num_frames / window_size) * (window_size // downsample_rate)
