"""Real data sources -> the same `Example` rows as the synthetic tasks, so training has one code path.

`load_real(cfg.data, task)` picks the reader (`librisqa`, `covost2`, `hf-disk`; `format: auto`
guesses from the files), then, for every source:

1. splits: the source's own train / validation / test; without a validation split, a seeded
   `validation_fraction` (paper: 20%) of train is held out;
2. order: train and validation shuffled with `data.seed`, test in file order;
3. vetting: clips are probed (exists, header readable, non-empty, `max_audio_s`) in that order
   until `*_size` good ones are found. A bad clip is logged with its path and reason and skipped
   (`on_bad_audio: skip`), or stops the load (`error`); more than `max_bad_fraction` bad clips
   stops it too (a wrong `audio_root` is never silently an empty dataset).

`check_source(cfg.data, task)` finds what reading the source would reject (format, task, split
files, required columns) from the metadata alone: a file listing, headers and first rows, no audio.
The study checks (`harness.study.checks`) run it once per source before any trial starts.

Prompts are the paper's (`harness.data.synthetic.PROMPTS`): spoken QA asks the row's question,
translation asks for German.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import DataConfig
from harness.data.audio import AudioError
from harness.data.clips import probe_clip
from harness.data.example import PROMPTS, Example

__all__ = [
    "COLUMN_ALIASES",
    "Candidate",
    "DataSourceError",
    "FORMAT_TASK",
    "LoadReport",
    "REQUIRED",
    "SPLITS",
    "candidate",
    "check_source",
    "detect_format",
    "find_split_files",
    "load_real",
    "resolve_audio",
    "resolve_columns",
]

log = logging.getLogger("harness.data")

SPLITS = ("train", "validation", "test")
FORMAT_TASK = {"librisqa": "sqa", "covost2": "ast"}  # hf-disk serves either task
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


@dataclass
class LoadReport:
    """What vetting did, per split: kept count and (path, reason) of every skipped clip."""

    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    too_long: dict[str, int] = field(default_factory=dict)


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


def detect_format(cfg: DataConfig) -> str:
    if cfg.format != "auto":
        return cfg.format
    src = Path(cfg.source).expanduser()
    if src.is_dir():
        if (src / "dataset_dict.json").exists() or (src / "dataset_info.json").exists():
            return "hf-disk"
        names = [p.name.lower() for p in src.iterdir()]
        if any(n.endswith(".tsv") for n in names):
            return "covost2"
        if any(n.endswith((".json", ".jsonl", ".parquet")) for n in names):
            return "librisqa"
    else:
        suffix = src.suffix.lower()
        if suffix == ".tsv":
            return "covost2"
        if suffix in (".json", ".jsonl", ".parquet"):
            return "librisqa"
    raise DataSourceError(
        f"data.source {str(src)!r}: cannot tell its format (no dataset_dict.json, *.tsv, *.json, "
        f"*.jsonl or *.parquet there). Fix: set data.format to librisqa, covost2 or hf-disk."
    )


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


def check_source(cfg: DataConfig, task: str) -> None:
    """What `load_real` would reject before vetting a clip, read from the metadata alone (file listing,
    headers, first rows; no audio): the format and its task, the split files, the required columns.
    The study checks run this once per source before any trial starts; raises `DataSourceError`."""
    fmt = _source_format(cfg, task)
    _, check = _reader(fmt)
    _need_train_and_test(cfg, fmt, check(cfg, task))


def _source_format(cfg: DataConfig, task: str) -> str:
    """`data.format` (or the one `auto` detects), checked against the trial's task."""
    fmt = detect_format(cfg)
    if fmt in FORMAT_TASK and FORMAT_TASK[fmt] != task:
        raise DataSourceError(
            f"data.source {cfg.source!r} is {fmt} data (task {FORMAT_TASK[fmt]!r}) but the trial's "
            f"task is {task!r}. Fix: set task: {FORMAT_TASK[fmt]} or point data.source elsewhere."
        )
    return fmt


def _reader(fmt: str) -> tuple[Callable, Callable]:
    """(read, check) of a format: `read(cfg, task)` -> split -> candidates; `check(cfg, task)` -> the
    splits found, from the metadata alone."""
    if fmt == "librisqa":
        from harness.data.librisqa import check_librisqa as check
        from harness.data.librisqa import read_librisqa as read
    elif fmt == "covost2":
        from harness.data.covost2 import check_covost2 as check
        from harness.data.covost2 import read_covost2 as read
    else:
        from harness.data.hf_disk import check_hf_disk as check
        from harness.data.hf_disk import read_hf_disk as read
    return read, check


def _need_train_and_test(cfg: DataConfig, fmt: str, splits: Collection[str]) -> None:
    if not {"train", "test"} <= set(splits):
        raise DataSourceError(
            f"data.source {cfg.source!r} ({fmt}): found splits {sorted(splits)}; train and test are "
            f"needed. Fix: set data.splits.train / data.splits.test."
        )


def load_real(cfg: DataConfig, task: str) -> tuple[dict[str, list[Example]], LoadReport]:
    fmt = _source_format(cfg, task)
    read, _ = _reader(fmt)
    raw = dict(read(cfg, task))
    _need_train_and_test(cfg, fmt, raw)
    if "validation" not in raw:  # the paper holds out 20% of LibriSQA train
        order = list(range(len(raw["train"])))
        random.Random(cfg.seed).shuffle(order)
        n_val = max(1, round(cfg.validation_fraction * len(order)))
        held = set(order[:n_val])
        raw["validation"] = [c for i, c in enumerate(raw["train"]) if i in held]
        raw["train"] = [c for i, c in enumerate(raw["train"]) if i not in held]
    sizes = {"train": cfg.train_size, "validation": cfg.validation_size, "test": cfg.test_size}
    report = LoadReport()
    out: dict[str, list[Example]] = {}
    for split in SPLITS:
        rows = list(raw[split])
        if split != "test":
            random.Random(f"{cfg.seed}-{split}").shuffle(rows)
        out[split] = _vet(rows, sizes[split], cfg, task, split, fmt, report)
    log.info(
        "real data %s (%s): kept %s, skipped %s, too long %s",
        cfg.source,
        fmt,
        report.kept,
        {k: len(v) for k, v in report.skipped.items()},
        report.too_long,
    )
    return out, report


def _vet(
    rows: list[Candidate], size: int, cfg: DataConfig, task: str, split: str, fmt: str, report: LoadReport
) -> list[Example]:
    kept: list[Example] = []
    bad: list[tuple[str, str]] = []
    too_long = seen = 0
    for c in rows:
        if len(kept) >= size:
            break
        seen += 1
        try:
            if (task == "sqa" and not c.question) or not c.answer:
                raise AudioError(f"row {c.id} has an empty {'question' if not c.question else 'answer'}")
            duration = probe_clip(c.audio)
        except AudioError as exc:
            if cfg.on_bad_audio == "error":
                raise DataSourceError(
                    f"{split} split of {cfg.source}: {exc}. Fix: repair or remove the clip, or set "
                    f"data.on_bad_audio: skip."
                ) from None
            bad.append((str(c.audio), str(exc)))
            if len(bad) <= 20:
                log.warning("skipping %s example %s: %s", split, c.id, exc)
            continue
        if cfg.max_audio_s is not None and duration > cfg.max_audio_s:
            too_long += 1
            continue
        prompt = PROMPTS[task].format(question=c.question) if task == "sqa" else PROMPTS[task]
        kept.append(Example(c.id, task, str(c.audio), prompt, c.answer, c.transcript))
    report.kept[split], report.skipped[split], report.too_long[split] = len(kept), bad, too_long
    if len(bad) > 20:
        log.warning("skipped %d more bad %s clips (first 20 logged)", len(bad) - 20, split)
    if seen and len(bad) > cfg.max_bad_fraction * seen:
        listed = "; ".join(f"{p} ({why})" for p, why in bad[:3])
        raise DataSourceError(
            f"{split} split of {cfg.source} ({fmt}): {len(bad)} of {seen} clips are missing or "
            f"unreadable, more than data.max_bad_fraction = {cfg.max_bad_fraction}; e.g. {listed}. "
            f"Fix: check data.audio_root (clip paths start there), or raise data.max_bad_fraction."
        )
    if not kept:
        raise DataSourceError(
            f"{split} split of {cfg.source} ({fmt}): no usable example (of {len(rows)} rows; "
            f"{too_long} longer than data.max_audio_s). Fix: check the source and data.max_audio_s."
        )
    return kept


def resolve_audio(rel: str, roots: list[Path]) -> Path:
    """A clip path from metadata: absolute, or the first existing `root / rel` (else the first root's)."""
    path = Path(rel).expanduser()
    if path.is_absolute():
        return path
    for root in roots:
        if (root / path).exists():
            return root / path
    return roots[0] / path
