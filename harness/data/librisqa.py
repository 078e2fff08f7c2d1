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
from harness.data.real import Candidate, DataSourceError, candidate, find_split_files, resolve_audio, resolve_columns

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
        raise DataSourceError(f"cannot read LibriSQA metadata {path}: {exc}") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataSourceError(f"LibriSQA metadata {path}: expected a list of objects (or JSON lines). "
                              f"Fix: point data.source at the released part I files.")
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
    if src.is_dir():
        files = find_split_files(src, SUFFIXES, cfg.splits.model_dump())
    else:
        files = {"train": src}
        for split in ("validation", "test"):
            name = getattr(cfg.splits, split)
            if name:
                files[split] = src.parent / name
    base = src if src.is_dir() else src.parent
    out: dict[str, list[Candidate]] = {}
    for split, path in files.items():
        if not path.is_file():
            raise DataSourceError(f"data.splits.{split}: {str(path)!r} does not exist.")
        rows = read_rows(path)
        if not rows:
            raise DataSourceError(f"LibriSQA metadata {path} has no rows.")
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
