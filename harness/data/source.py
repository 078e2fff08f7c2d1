"""What every real-data reader shares (`harness.data.librisqa`, `covost2`, `hf_disk`; `harness.data.real`
picks one and vets its rows): the error a bad source raises, a metadata row before its clip is vetted
(`Candidate`), the usual column names of each field and their resolution, the split files of a
directory and a clip's path from metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import DataConfig

__all__ = [
    "COLUMN_ALIASES",
    "Candidate",
    "DataSourceError",
    "REQUIRED",
    "SPLITS",
    "candidate",
    "find_split_files",
    "resolve_audio",
    "resolve_columns",
]

SPLITS = ("train", "validation", "test")
# Usual names of each field in released metadata, tried in order (data.columns overrides).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "audio": ("audio", "speech_path", "audio_path", "path", "file", "filename", "wav"),
    "question": ("question", "query", "instruction"),
    "answer": ("answer", "translation", "target", "response", "output"),
    "transcript": ("transcript", "text", "sentence", "speech_text", "transcription"),
}
REQUIRED = {"sqa": ("audio", "question", "answer"), "ast": ("audio", "answer")}


class DataSourceError(ValueError):
    """Real data that cannot be used as configured; the message names the file/field and the fix."""


@dataclass
class Candidate:
    """One metadata row before its clip is vetted."""

    id: str
    audio: Path
    question: str
    answer: str
    transcript: str
    duration: float | None = None  # from metadata, if it has one


def resolve_columns(keys: Iterable[str], cfg: DataConfig, task: str, where: str) -> dict[str, str | None]:
    """Our field -> the source's column name; missing required ones raise naming `where` and the fix."""
    keys = list(keys)
    out: dict[str, str | None] = {}
    for name, aliases in COLUMN_ALIASES.items():
        chosen = getattr(cfg.columns, name)
        if chosen is not None:
            if chosen not in keys:
                raise DataSourceError(
                    f"{where}: data.columns.{name} = {chosen!r} is not a column; it has {keys}. "
                    f"Fix: set data.columns.{name} to one of them."
                )
            out[name] = chosen
            continue
        out[name] = next((a for a in aliases if a in keys), None)
    if task == "ast" and cfg.columns.answer is None and "translation" in keys:
        out["answer"] = "translation"
    for name in REQUIRED[task]:
        if out[name] is None:
            raise DataSourceError(
                f"{where}: no column for {name!r} (looked for {list(COLUMN_ALIASES[name])}); "
                f"it has {keys}. Fix: set data.columns.{name} to the column that holds it."
            )
    return out


def candidate(row: Mapping[str, Any], cols: Mapping[str, str | None], audio: Path, row_id: str) -> Candidate:
    def text(name: str) -> str:
        col = cols.get(name)
        value = row.get(col) if col else None
        return "" if value is None else " ".join(str(value).split())

    duration = row.get("duration")
    try:
        duration = float(duration) if duration not in (None, "") else None
    except (TypeError, ValueError):
        duration = None
    return Candidate(row_id, audio, text("question"), text("answer"), text("transcript"), duration)


def find_split_files(directory: Path, suffixes: tuple[str, ...], given: Mapping[str, str | None]) -> dict[str, Path]:
    """Split -> file: `given` (relative to `directory`) first, else by name: *train*, *dev*|*valid*, *test*."""
    out: dict[str, Path] = {}
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    patterns = {"train": ("train",), "validation": ("dev", "valid"), "test": ("test",)}
    for split in SPLITS:
        if given.get(split):
            path = directory / given[split]
            if not path.is_file():
                raise DataSourceError(
                    f"data.splits.{split}: {str(path)!r} does not exist. "
                    f"Fix: give a file relative to data.source ({directory})."
                )
            out[split] = path
            continue
        hits = [p for p in files if any(k in p.name.lower() for k in patterns[split])]
        if len(hits) > 1:
            raise DataSourceError(
                f"data.source {str(directory)!r}: several {split} files {[p.name for p in hits]}. "
                f"Fix: set data.splits.{split} to one of them."
            )
        if hits:
            out[split] = hits[0]
    return out


def resolve_audio(rel: str, roots: list[Path]) -> Path:
    """A clip path from metadata: absolute, or the first existing `root / rel` (else the first root's)."""
    path = Path(rel).expanduser()
    if path.is_absolute():
        return path
    for root in roots:
        if (root / path).exists():
            return root / path
    return roots[0] / path
