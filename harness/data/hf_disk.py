"""A Hugging Face `datasets` dataset saved with `save_to_disk`, with an audio column.

`data.source` is the directory (a `DatasetDict` with train / validation|dev / test splits, names
overridable with `data.splits.*`, or a single `Dataset`, which is train only). The audio column is
read without `datasets`' decoder (which needs torchcodec): a clip stored as a file path is used in
place; a clip stored as bytes is written once, as is, to
`<cache>/data/hf-disk-<fingerprint>/<split>/<row>.<ext>` and decoded from there like any other file.
Only the rows a trial selects are written (vetting stops at the split's size).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from harness.config import DataConfig
from harness.data.source import Candidate, DataSourceError, candidate, resolve_columns
from harness.paths import cache_dir

__all__ = ["SPLIT_NAMES", "check_hf_disk", "read_hf_disk"]

SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "dev", "valid"), "test": ("test",)}


def _open(src: Path):
    try:
        from datasets import Dataset, load_from_disk
    except ImportError:
        raise DataSourceError("data.format hf-disk needs the `datasets` package. Fix: pip install datasets.") from None
    try:
        ds = load_from_disk(str(src))
    except Exception as exc:  # FileNotFoundError, or not a saved dataset
        raise _not_saved(src, exc) from None
    return {"train": ds} if isinstance(ds, Dataset) else dict(ds)


def _clip_file(value, split: str, index: int, root: Path, base: Path) -> Path:
    """The clip of one row as a file: its stored path if it exists, else its bytes written to `root`."""
    if isinstance(value, str):
        path = Path(value)
        return path if path.is_absolute() else base / path
    if not isinstance(value, dict):
        return root / split / f"{index:07d}.missing"
    stored = value.get("path")
    data = value.get("bytes")
    if stored and not data:
        path = Path(stored)
        return path if path.is_absolute() else base / path
    if not data:
        return root / split / f"{index:07d}.missing"
    ext = Path(stored).suffix if stored and Path(stored).suffix else ".audio"
    path = root / split / f"{index:07d}{ext}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def read_hf_disk(cfg: DataConfig, task: str) -> dict[str, list[Candidate]]:
    src = Path(cfg.source).expanduser()
    parts = _open(src)
    from datasets import Audio

    fingerprint = hashlib.sha256(
        str(src.resolve()).encode() + "".join(f"{k}:{d._fingerprint}" for k, d in sorted(parts.items())).encode()
    )
    root = cache_dir() / "data" / f"hf-disk-{fingerprint.hexdigest()[:12]}"
    out: dict[str, list] = {}
    for split, name in _pick_splits(cfg, parts, src).items():
        ds = parts[name]
        cols = resolve_columns(ds.column_names, cfg, task, f"{src} [{name}]")
        audio_col = cols["audio"]
        if isinstance(ds.features.get(audio_col), Audio):
            ds = ds.cast_column(audio_col, Audio(decode=False))
        out[split] = [_Row(ds, i, cols, split, root, src) for i in range(len(ds))]
    return out


def check_hf_disk(cfg: DataConfig, task: str) -> set[str]:
    """The splits `read_hf_disk` would find and their columns, from the JSON files `save_to_disk` writes
    next to the arrow tables (`datasets` is not imported, no table is opened)."""
    src = Path(cfg.source).expanduser()
    columns = _saved_columns(src)
    chosen = _pick_splits(cfg, columns, src)
    for name in chosen.values():
        resolve_columns(columns[name], cfg, task, f"{src} [{name}]")
    return set(chosen)


def _saved_columns(src: Path) -> dict[str, list[str]]:
    """Split name -> column names, from dataset_dict.json and each split's dataset_info.json (a single
    saved Dataset is the train split)."""
    try:
        if (src / "dataset_dict.json").is_file():
            dirs = {name: src / name for name in json.loads((src / "dataset_dict.json").read_text())["splits"]}
        else:
            dirs = {"train": src}
        return {name: list(json.loads((d / "dataset_info.json").read_text())["features"]) for name, d in dirs.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _not_saved(src, exc) from None


def _pick_splits(cfg: DataConfig, names: Iterable[str], src: Path) -> dict[str, str]:
    """Our split -> the dataset's split name: data.splits.*, else the usual names (dev, valid, ...)."""
    names = sorted(names)
    out: dict[str, str] = {}
    for split, usual in SPLIT_NAMES.items():
        chosen = getattr(cfg.splits, split)
        if chosen is not None and chosen not in names:
            raise DataSourceError(
                f"data.splits.{split} = {chosen!r} is not a split of {src}; it has {names}. "
                f"Fix: set data.splits.{split} to one of them."
            )
        name = chosen or next((n for n in usual if n in names), None)
        if name is not None:
            out[split] = name
    return out


def _not_saved(src: Path, exc: Exception) -> DataSourceError:
    return DataSourceError(
        f"data.source {str(src)!r}: not a `save_to_disk` dataset ({exc}). Fix: point data.source "
        f"at a directory written by `save_to_disk`, or set data.format."
    )


class _Row:
    """A Candidate whose row (and clip bytes) are read from the arrow table only when vetted."""

    def __init__(self, ds, index: int, cols, split: str, root: Path, base: Path):
        self._ds, self._index, self._cols, self._split, self._root, self._base = ds, index, cols, split, root, base
        self._loaded: Candidate | None = None

    def _load(self) -> Candidate:
        if self._loaded is None:
            row = self._ds[self._index]
            audio = _clip_file(row[self._cols["audio"]], self._split, self._index, self._root, self._base)
            self._loaded = candidate(row, self._cols, audio, f"hf-{self._split}-{self._index:07d}")
        return self._loaded

    def __getattr__(self, name):  # id, audio, question, answer, transcript, duration
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)
