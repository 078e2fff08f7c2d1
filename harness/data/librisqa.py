"""LibriSQA part I: metadata (JSON list, JSON lines or parquet) + LibriSpeech FLAC clips.

Each row has the clip path (`speech_path`, or another name from `real.COLUMN_ALIASES["audio"]`),
the question, the free-form answer, the transcript and the duration. `data.source` is one file
(then it is train only and `data.splits.test` must name the test file) or the directory holding
`*train*` and `*test*` files. Clip paths start at `data.audio_root` (default: the metadata's
directory); a bare LibriSpeech name (`103-1240-0000.flac`) is also looked up in the corpus layout
`<audio_root>[/LibriSpeech]/<subset>/<speaker>/<chapter>/`. Part I has no validation split: 20% of
train is held out (real.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.config import DataConfig
from harness.data.source import Candidate, DataSourceError, candidate, find_split_files, resolve_audio, resolve_columns

__all__ = ["LIBRISPEECH_NAME", "SUFFIXES", "check_librisqa", "first_row", "read_librisqa", "read_rows", "split_files"]

SUFFIXES = (".json", ".jsonl", ".parquet")
LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-\d+\.flac$")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a LibriSQA metadata file (list of objects, {"data": [...]}, JSON lines, or parquet)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict("records")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise _not_a_list(path)
    return data


def _librispeech_lookup(name: str, roots: list[Path]) -> Path | None:
    m = LIBRISPEECH_NAME.match(name)
    if not m:
        return None
    speaker, chapter = m.groups()
    for root in roots:
        for base in (root, root / "LibriSpeech"):
            for hit in base.glob(f"*/{speaker}/{chapter}/{name}"):
                return hit
    return None


def read_librisqa(cfg: DataConfig, task: str) -> dict[str, list[Candidate]]:
    src = Path(cfg.source).expanduser()
    base = src if src.is_dir() else src.parent
    out: dict[str, list[Candidate]] = {}
    for split, path in split_files(cfg).items():
        rows = read_rows(path)
        if not rows:
            raise _no_rows(path)
        cols = resolve_columns(rows[0].keys(), cfg, task, str(path))
        roots = [Path(cfg.audio_root).expanduser()] if cfg.audio_root else [path.parent, base]
        items = []
        for i, row in enumerate(rows):
            rel = str(row.get(cols["audio"]) or "")
            audio = resolve_audio(rel, roots)
            if not audio.exists():
                audio = _librispeech_lookup(Path(rel).name, roots) or audio
            items.append(candidate(row, cols, audio, f"librisqa-{split}-{i:06d}-{Path(rel).stem}"))
        out[split] = items
    return out


def check_librisqa(cfg: DataConfig, task: str) -> set[str]:
    """The splits `read_librisqa` would find, each with the required columns in its first row."""
    files = split_files(cfg)
    for path in files.values():
        row = first_row(path)
        if row is None:
            raise _no_rows(path)
        resolve_columns(row.keys(), cfg, task, str(path))
    return set(files)


def split_files(cfg: DataConfig) -> dict[str, Path]:
    """Split -> metadata file: the directory's *train* / *dev*|*valid* / *test* files, or the one file
    (train) with data.splits.* next to it."""
    src = Path(cfg.source).expanduser()
    if src.is_dir():
        return find_split_files(src, SUFFIXES, cfg.splits.model_dump())
    files = {"train": src}
    for split in ("validation", "test"):
        name = getattr(cfg.splits, split)
        if name:
            files[split] = src.parent / name
    for split, path in files.items():
        if not path.is_file():
            raise DataSourceError(
                f"data.splits.{split}: {str(path)!r} does not exist. Fix: give a file relative to "
                f"the directory of data.source ({src.parent})."
            )
    return files


def first_row(path: Path) -> dict[str, Any] | None:
    """The first row of a metadata file, or None if it has none: the schema of a parquet file, the first
    line of JSON lines; a JSON document is parsed whole (it has no first row to stop at)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return next(iter(read_rows(path)), None)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            return dict.fromkeys(parquet.schema_arrow.names) if parquet.metadata.num_rows else None
        with open(path, encoding="utf-8") as fh:
            line = next((line for line in fh if line.strip()), None)
        row = None if line is None else json.loads(line)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if row is not None and not isinstance(row, dict):
        raise _not_a_list(path)
    return row


def _unreadable(path: Path, exc: Exception) -> DataSourceError:
    return DataSourceError(
        f"cannot read LibriSQA metadata {path}: {exc}. Fix: point data.source at the released "
        f"part I files (JSON, JSON lines or parquet)."
    )


def _not_a_list(path: Path) -> DataSourceError:
    return DataSourceError(
        f"LibriSQA metadata {path}: expected a list of objects (or JSON lines). "
        f"Fix: point data.source at the released part I files."
    )


def _no_rows(path: Path) -> DataSourceError:
    return DataSourceError(
        f"LibriSQA metadata {path} has no rows. Fix: point data.source (or data.splits.*) at the released part I files."
    )
