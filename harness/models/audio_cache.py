"""The frozen audio encoder's outputs, computed once per clip per process.

Fine-tuning keeps the conformer encoder frozen (`model.trainable: projector+llm` or
`projector+lora`), and `SpeechLM.encode_clip` encodes each clip alone, so the encoder's output for
a clip is a fixed function of the encoder's weights and the clip's features. A trial used to encode
the same clip again at every step that drew it (twice: policy and KL reference), at every
validation and at the test; a worker that runs several trials did it again for each. Here each
clip is encoded once and the result reused: the same tensor the encoder would return, so nothing
downstream changes (tests/test_throughput.py checks a whole trial gives identical scores with the
cache off).

Keys are digests of content, not object identities: ``module_key(encoder)`` hashes the weights
and buffers, ``clip_key(features)`` the clip's features. Entries are kept in memory,
least-recently-used within ``HARNESS_ENCODER_CACHE_MB`` (default 1024; 0 turns the cache off), and
written to disk under ``<cache>/encoder/<encoder digest>/`` (up to ``HARNESS_ENCODER_DISK_MB``,
default 2048; 0: no disk), so a worker's first trial reads them too (like the data's features,
they are a fixed function of the base model and the data). `torch.save` / `torch.load` round-trip
a tensor exactly.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = [
    "BUDGET_ENV",
    "DEFAULT_BUDGET_MB",
    "DEFAULT_DISK_MB",
    "DISK_ENV",
    "clear",
    "clip_key",
    "encoded",
    "module_key",
]

BUDGET_ENV, DISK_ENV = "HARNESS_ENCODER_CACHE_MB", "HARNESS_ENCODER_DISK_MB"
DEFAULT_BUDGET_MB, DEFAULT_DISK_MB = 1024, 2048

_entries: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
_bytes = 0
_lock = threading.Lock()
_disk_bytes: dict[Path, int] = {}  # per encoder directory: bytes on disk (scanned once per process)
stats = {"hits": 0, "disk": 0, "misses": 0}


def clip_key(features: torch.Tensor) -> str:
    """Digest of one clip's features (shape, dtype and values)."""
    data = features.detach().to("cpu").contiguous()
    digest = hashlib.blake2b(str((tuple(data.shape), str(data.dtype))).encode(), digest_size=16)
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_key(module: torch.nn.Module) -> str:
    """Digest of a module's parameters and buffers (names, shapes, dtypes, values)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}{tuple(data.shape)}{data.dtype}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _budget(env: str, default_mb: int) -> int:
    return int(float(os.environ.get(env, default_mb)) * 2**20)


def _disk_path(key: tuple[str, str]) -> Path:
    from harness.paths import cache_dir

    return cache_dir() / "encoder" / key[0] / f"{key[1]}.pt"


def _from_disk(key: tuple[str, str], device: torch.device) -> torch.Tensor | None:
    path = _disk_path(key)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError):  # absent, or a half-written file of a killed process
        return None


def _to_disk(key: tuple[str, str], value: torch.Tensor) -> None:
    path = _disk_path(key)
    folder = path.parent
    if folder not in _disk_bytes:
        folder.mkdir(parents=True, exist_ok=True)
        _disk_bytes[folder] = sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
    size = value.numel() * value.element_size()
    if _disk_bytes[folder] + size > _budget(DISK_ENV, DEFAULT_DISK_MB):
        return
    tmp = folder / f".{key[1]}.{os.getpid()}.tmp"
    torch.save(value.detach().to("cpu").contiguous(), tmp)
    os.replace(tmp, path)  # atomic: another worker reads the whole file or none
    _disk_bytes[folder] += size


def encoded(
    key: tuple[str, str],
    compute: Callable[[], torch.Tensor],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The cached output for ``key`` (encoder digest, clip digest): from memory, from disk, or computed
    by ``compute`` (and then kept in both)."""
    global _bytes
    budget = _budget(BUDGET_ENV, DEFAULT_BUDGET_MB)
    if budget <= 0:
        with torch.no_grad():
            return compute()
    with _lock:
        hit = _entries.get(key)
        if hit is not None:
            _entries.move_to_end(key)
            stats["hits"] += 1
            return hit
    value = _from_disk(key, torch.device(device))
    if value is not None:
        stats["disk"] += 1
    else:
        with torch.no_grad():
            value = compute()
        stats["misses"] += 1
        _to_disk(key, value)
    size = value.numel() * value.element_size()
    if size <= budget:
        with _lock:
            if key not in _entries:
                _entries[key] = value
                _bytes += size
            while _bytes > budget:
                _, old = _entries.popitem(last=False)
                _bytes -= old.numel() * old.element_size()
    return value


def clear() -> None:
    """Forget every in-memory entry (tests; the cache never needs clearing for correctness)."""
    global _bytes
    with _lock:
        _entries.clear()
        _bytes = 0
        stats.update(hits=0, disk=0, misses=0)
