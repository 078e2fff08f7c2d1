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
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DataConfig
from harness.data.audio import AudioError
from harness.data.clips import probe_clip
from harness.data.covost2 import check_covost2, read_covost2
from harness.data.example import PROMPTS, Example
from harness.data.hf_disk import check_hf_disk, read_hf_disk
from harness.data.librisqa import check_librisqa, read_librisqa
from harness.data.source import SPLITS, Candidate, DataSourceError

__all__ = ["DataSourceError", "FORMAT_TASK", "LoadReport", "READERS", "check_source", "detect_format", "load_real"]

log = logging.getLogger("harness.data")

FORMAT_TASK = {"librisqa": "sqa", "covost2": "ast"}  # hf-disk serves either task
# Each format's (read, check): `read(cfg, task)` -> split -> candidates; `check(cfg, task)` -> the splits
# found, from the metadata alone.
READERS: dict[str, tuple[Callable, Callable]] = {
    "librisqa": (read_librisqa, check_librisqa),
    "covost2": (read_covost2, check_covost2),
    "hf-disk": (read_hf_disk, check_hf_disk),
}


@dataclass
class LoadReport:
    """What vetting did, per split: kept count and (path, reason) of every skipped clip."""

    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    too_long: dict[str, int] = field(default_factory=dict)


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


def check_source(cfg: DataConfig, task: str) -> None:
    """What `load_real` would reject before vetting a clip, read from the metadata alone (file listing,
    headers, first rows; no audio): the format and its task, the split files, the required columns.
    The study checks run this once per source before any trial starts; raises `DataSourceError`."""
    fmt = _source_format(cfg, task)
    _, check = READERS[fmt]
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


def _need_train_and_test(cfg: DataConfig, fmt: str, splits: Collection[str]) -> None:
    if not {"train", "test"} <= set(splits):
        raise DataSourceError(
            f"data.source {cfg.source!r} ({fmt}): found splits {sorted(splits)}; train and test are "
            f"needed. Fix: set data.splits.train / data.splits.test."
        )


def load_real(cfg: DataConfig, task: str) -> tuple[dict[str, list[Example]], LoadReport]:
    fmt = _source_format(cfg, task)
    read, _ = READERS[fmt]
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
