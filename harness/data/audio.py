"""Offline speech synthesis (espeak-ng + sox) for the synthetic spoken tasks (clips are read back by
:mod:`harness.data.clips`, like real data).

All audio the harness feeds to a model is 16 kHz mono 16-bit PCM WAV. ``synthesize`` writes one
clip; ``synthesize_many`` writes many in parallel (each clip is two short subprocesses, so threads
are enough: the work happens in the child processes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = [
    "AudioError",
    "INSTALL_HINT",
    "MissingToolError",
    "PIPELINE_VERSION",
    "SAMPLE_RATE",
    "SynthesisError",
    "check_tools",
    "default_workers",
    "synthesize",
    "synthesize_many",
]

SAMPLE_RATE = 16_000
# Bumped whenever the commands below change what a clip sounds like (part of dataset cache keys).
PIPELINE_VERSION = "espeak-ng+sox-D-trimtail50ms"
INSTALL_HINT = "install it with `apt-get install espeak-ng sox`"


class MissingToolError(RuntimeError):
    """espeak-ng or sox is not on PATH."""


class AudioError(ValueError):
    """An audio file could not be read or is not 16 kHz."""


class SynthesisError(RuntimeError):
    """espeak-ng or sox ran but failed."""


def check_tools() -> None:
    """Raise :class:`MissingToolError` unless both espeak-ng and sox are on PATH."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise MissingToolError(f"{tool} not found: {INSTALL_HINT}")


def _run(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:  # vanished between check_tools and now
        raise MissingToolError(f"{cmd[0]} not found: {INSTALL_HINT}") from exc
    if proc.returncode != 0:
        raise SynthesisError(f"{cmd[0]} failed with exit code {proc.returncode}: {proc.stderr.strip()[:500]}")


# sox effects that cut espeak-ng's ~0.3 s of trailing silence down to 50 ms.
_TRIM_TAIL = ["reverse", "silence", "1", "0.02", "-45d", "reverse", "pad", "0", "0.05"]


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 175, trim_tail: bool = True) -> None:
    """Speak ``text`` with espeak-ng and write it to ``path`` as 16 kHz mono 16-bit WAV.

    ``espeak-ng -v voice -s speed -w tmp.wav text`` then ``sox tmp.wav -r 16000 -c 1 -b 16 path``
    (``-D``: no dither, so a text always gives the same bytes; with ``trim_tail``, effects that
    shorten the trailing silence to 50 ms).

    The intermediate 22.05 kHz espeak output goes to a temporary file next to ``path`` and the
    final file is moved into place, so ``path`` never holds a partial clip.
    """
    check_tools()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = " ".join(str(text).split())
    if not text:
        raise ValueError("cannot synthesise empty text")
    if text.startswith("-"):  # would be parsed as an espeak-ng option
        text = " " + text
    fd, raw = tempfile.mkstemp(suffix=".raw.wav", dir=path.parent)
    os.close(fd)
    fd, out = tempfile.mkstemp(suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        _run(["espeak-ng", "-v", voice, "-s", str(int(speed)), "-w", raw, text])
        sox = ["sox", "-D", raw, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", out]
        _run(sox + (_TRIM_TAIL if trim_tail else []))
        os.replace(out, path)
    finally:
        for tmp in (raw, out):
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def default_workers() -> int:
    """Parallel espeak-ng/sox pipelines: 2 per core, between 4 and 8."""
    return max(4, min(8, 2 * (os.cpu_count() or 1)))


def synthesize_many(
    items: Iterable[tuple[str, Path]] | Sequence[tuple[str, Path]],
    voice: str = "en-us",
    speed: int = 175,
    workers: int | None = None,
) -> None:
    """Synthesise ``(text, path)`` pairs in parallel; the first failure is raised."""
    items = list(items)
    if not items:
        return
    check_tools()  # fail fast with the install hint, before spawning anything
    workers = workers or default_workers()
    if workers <= 1 or len(items) == 1:
        for text, path in items:
            synthesize(text, path, voice=voice, speed=speed)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(synthesize, text, path, voice, speed) for text, path in items]
        for fut in futures:
            fut.result()
