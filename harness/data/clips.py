"""Reading real-world audio clips: any format libsndfile decodes (WAV, FLAC, MP3, OGG), any rate,
any channel count -> 16 kHz mono float32. No torchaudio.

Resampling is scipy's polyphase filter (``scipy.signal.resample_poly``, Kaiser window), the standard
band-limited resampler; 16 kHz input is returned untouched, so the synthetic WAV data reads exactly
as before. MP3 needs libsndfile >= 1.1 (soundfile's bundled 1.2.2 has it): :func:`check_formats`
says so by name when it is missing.
"""

from __future__ import annotations

import io
from math import gcd
from pathlib import Path

import numpy as np

from harness.data.audio import SAMPLE_RATE, AudioError

__all__ = ["check_formats", "probe_clip", "read_clip", "to_16k_mono"]


def check_formats(*formats: str) -> None:
    """Raise :class:`AudioError` naming any format (e.g. 'MP3') this libsndfile cannot decode."""
    import soundfile as sf

    have = set(sf.available_formats())
    missing = [f for f in formats if f.upper() not in have]
    if missing:
        raise AudioError(
            f"libsndfile {sf.__libsndfile_version__} cannot decode {', '.join(missing)} "
            f"(needs >= 1.1 for MP3). Fix: `pip install -U soundfile` (bundles libsndfile 1.2)."
        )


def to_16k_mono(data: np.ndarray, rate: int) -> np.ndarray:
    """[samples] or [samples, channels] at ``rate`` -> float32 mono at 16 kHz."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.asarray(mono, dtype=np.float32)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = gcd(int(rate), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    return np.ascontiguousarray(mono)


def read_clip(source: str | Path | bytes) -> np.ndarray:
    """Decode a clip (a path, or the file's bytes) to 16 kHz mono float32; errors name the path."""
    import soundfile as sf

    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else name
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as exc:  # LibsndfileError, RuntimeError, OSError, ...
        raise AudioError(f"cannot read audio file {name}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio {name} is empty (0 samples)")
    return to_16k_mono(data, rate)


def probe_clip(path: str | Path) -> float:
    """Duration in seconds from the header; raises :class:`AudioError` (naming the path) if the file
    is missing, unreadable or empty. Cheap: used to vet every selected clip at load time."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"cannot read audio file {path}: {exc}") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"audio file {path} is empty")
    return info.frames / info.samplerate
