"""Loading a real Granite Speech checkpoint (a local directory, or a hub name already in the local
cache) with the LoRA adapter it ships.

Granite Speech 3.3 2B/8B repositories hold the full model (`config.json`, weights, tokenizer with
its chat template) and, beside it, the LoRA adapter for the decoder (`adapter_config.json`,
`adapter_model.safetensors`). transformers' `from_pretrained` loads that adapter through
`load_adapter`, which needs peft >= 0.22 (not released as of this writing: PyPI has 0.21.2), so
the base model is loaded from a view of the directory without the adapter files, and the adapter
is injected with peft's `inject_adapter_in_model` (the LoRA layers are then plain modules that are
always active) and its weights copied in by name. Adapter key layouts of transformers 4.x
(`language_model.model.layers...`) and 5.x (`model.language_model.layers...`) are both accepted;
an adapter tensor that matches no LoRA weight, or a LoRA weight left without a tensor, is an error.
The tokenizer must carry the checkpoint's chat template (prompts are formatted with it).

`checkpoint_revision` names the exact weights a run starts from (recorded on every trial run as the
MLflow tag `harness.vocabulary.TAG_CHECKPOINT`): the hub commit of a cached snapshot, else a content hash of the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

__all__ = [
    "ADAPTER_FILES",
    "CheckpointError",
    "WEIGHT_SUFFIXES",
    "adapter_key_to_lm",
    "attach_adapter",
    "checkpoint_revision",
    "content_hash",
    "load_checkpoint",
    "resolve_checkpoint",
]


if TYPE_CHECKING:
    from harness.config import ModelConfig

log = logging.getLogger("harness.models")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin")  # model shards and adapter weights, at the checkpoint's top level
_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")  # .../models--org--name/snapshots/<commit>/
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256 of the bytes


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as configured; the message names the path and the fix."""


def resolve_checkpoint(name: str) -> Path:
    """A local directory, or a hub name resolved from the local cache only (never downloads)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"model.name {name!r}: directory has no config.json. Fix: point at the checkpoint "
                f"directory (with config.json, *.safetensors, tokenizer files)."
            )
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not cached, or not a repo id
        raise CheckpointError(
            f"model.name {name!r} is neither a directory nor a hub model in the local cache "
            f"({type(exc).__name__}). Fix: download it once on a connected machine "
            f"(`huggingface-cli download {name} --local-dir DIR`) and set model.name: DIR."
        ) from None


def _base_view(path: Path) -> tempfile.TemporaryDirectory:
    """A temp directory of symlinks to every file of `path` except the adapter's."""
    view = tempfile.TemporaryDirectory(prefix="harness-base-")
    for item in path.iterdir():
        if item.name not in ADAPTER_FILES:
            os.symlink(item.resolve(), Path(view.name) / item.name)
    return view


def _adapter_state(path: Path) -> dict[str, torch.Tensor]:
    if (path / "adapter_model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(path / "adapter_model.safetensors"))
    if (path / "adapter_model.bin").is_file():
        return torch.load(path / "adapter_model.bin", map_location="cpu", weights_only=True)
    raise CheckpointError(
        f"{path}: adapter_config.json but no adapter_model.safetensors / .bin. "
        f"Fix: copy the adapter weights from the checkpoint release, or remove adapter_config.json."
    )


def adapter_key_to_lm(key: str) -> str:
    """Saved adapter key -> name inside the decoder (`model.model.language_model`), adapter 'default'."""
    key = re.sub(r"^base_model\.model\.", "", key)
    key = re.sub(r"^(language_model\.model\.|model\.language_model\.)", "", key)
    return re.sub(r"\.(lora_[AB]|lora_embedding_[AB]|lora_magnitude_vector)\.(weight|bias)$", r".\1.default.\2", key)


def attach_adapter(model, path: Path) -> int:
    """Inject the checkpoint's LoRA adapter into the decoder and load its weights; returns tensors loaded."""
    from peft import LoraConfig, inject_adapter_in_model

    config = json.loads((path / "adapter_config.json").read_text())
    known = set(LoraConfig.__dataclass_fields__)
    lora = LoraConfig(
        **{
            k: v
            for k, v in config.items()
            if k in known and k not in ("base_model_name_or_path", "revision", "peft_type")
        }
    )
    lm = model.model.language_model
    inject_adapter_in_model(lora, lm)
    state = {adapter_key_to_lm(k): v for k, v in _adapter_state(path).items()}
    params = dict(lm.named_parameters())
    unknown = sorted(k for k in state if k not in params)
    missing = sorted(k for k in params if "lora_" in k and k not in state)
    if unknown or missing:
        raise CheckpointError(
            f"{path}/adapter_model.*: adapter tensors do not match the decoder's LoRA layers "
            f"(unmatched: {unknown[:3]}, not in the file: {missing[:3]}). Fix: check that "
            f"adapter_config.json belongs to this checkpoint."
        )
    with torch.no_grad():
        for key, value in state.items():
            params[key].copy_(value.to(params[key].dtype))
    model._harness_adapter = str(path)
    return len(state)


def load_checkpoint(name: str, dtype: torch.dtype):
    """(model, tokenizer, checkpoint path) with the bundled adapter attached if there is one."""
    from transformers import AutoTokenizer, GraniteSpeechForConditionalGeneration

    path = resolve_checkpoint(name)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tokenizer, "chat_template", None):  # checked before the (large) weights are read
        raise CheckpointError(
            f"{path}: the tokenizer has no chat template, so prompts cannot be formatted the way "
            f"the model was trained. Fix: copy the release's tokenizer files (tokenizer_config.json "
            f"with 'chat_template', or chat_template.jinja) into the checkpoint directory."
        )
    has_adapter = (path / "adapter_config.json").is_file()
    view = _base_view(path) if has_adapter else None
    try:
        model = GraniteSpeechForConditionalGeneration.from_pretrained(view.name if view else str(path), dtype=dtype)
    finally:
        if view:
            view.cleanup()
    if has_adapter:
        attach_adapter(model, path)
    elif model.config.has_lora_adapter:
        log.warning(
            "%s: config.json says has_lora_adapter: true but there is no adapter_config.json: the model "
            "runs without its adapter (a new one is trained with model.trainable: projector+lora). Fix: copy "
            "the adapter files of the release next to the model.",
            path,
        )
    return model, tokenizer, path


def checkpoint_revision(cfg: ModelConfig) -> str:
    """Which weights `cfg.name` names, reproducibly: the hub commit hash of a cached snapshot
    (`.../snapshots/<commit>/`), else `sha256:<hex>`, a content hash of the checkpoint's weight files
    (see `content_hash`); for the tiny preset, its base's digest and sha256, shipped or built here
    (`harness.models.tiny_base.tiny_identity`; nothing is built)."""
    if cfg.name == "tiny":
        from harness.models.tiny_base import tiny_identity

        return tiny_identity(cfg.tiny)
    path = resolve_checkpoint(cfg.name)
    parts = path.absolute().parts
    for parent, part in zip(parts, parts[1:]):
        if parent == "snapshots" and _SNAPSHOT.match(part):
            return part
    return f"sha256:{content_hash(path)}"


def content_hash(path: Path) -> str:
    """sha256 over the sorted lines `<file name> <sha256 of its bytes>` of the weight files
    (`*.safetensors`, `*.bin`) directly in `path`: model shards and adapter alike."""
    files = sorted(f for f in path.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise CheckpointError(
            f"{path}: no weight files (*.safetensors, *.bin). Fix: point model.name at the "
            f"checkpoint directory holding the model's weights."
        )
    listing = "".join(f"{f.name} {_file_sha256(f)}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 16 MiB chunks; remembered per (path, size, mtime) so a worker
    running many trials on one checkpoint reads its gigabytes once."""
    real = path.resolve()  # hub snapshots link to blobs
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(real, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]
