"""CoVoST2 en->de: the released TSV (path, sentence, translation, client_id[, split]) + Common Voice
MP3 clips.

`data.source` is either the single `covost_v2.en_de.tsv` with a `split` column (train / dev / test;
rows of other splits, e.g. CoVoST's extended `train_covost`, are ignored unless named train) or a
directory of per-split files (`*train*.tsv`, `*dev*.tsv`, `*test*.tsv`, as `get_covost_splits.py`
writes them). Clip names start at `data.audio_root` (default: the TSV's directory); `<root>/clips/`
(Common Voice's layout) is tried too. The translation is the answer, the English sentence the
transcript. TSVs are read without quote processing, as the release writes them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from harness.config import DataConfig
from harness.data.source import Candidate, DataSourceError, candidate, find_split_files, resolve_audio, resolve_columns

__all__ = ["SPLIT_NAMES", "check_covost2", "iter_tsv", "read_covost2"]

SPLIT_NAMES = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}


def iter_tsv(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a TSV, read as they are needed (the source check stops after the first ones)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataSourceError(
            f"cannot read CoVoST2 TSV {path}: {exc}. Fix: point data.source at the UTF-8 TSV(s) of the CoVoST2 release."
        ) from None


def read_covost2(cfg: DataConfig, task: str) -> dict[str, list[Candidate]]:
    src = Path(cfg.source).expanduser()
    if src.is_dir():
        files = find_split_files(src, (".tsv",), cfg.splits.model_dump())
        tables = {split: list(iter_tsv(path)) for split, path in files.items()}
        where = {split: str(path) for split, path in files.items()}
    else:
        rows = list(iter_tsv(src))
        if rows:
            _need_split_column(src, rows[0])
        tables = {}
        for row in rows:
            split = SPLIT_NAMES.get(row["split"])
            if split:
                tables.setdefault(split, []).append(row)
        where = {split: str(src) for split in tables}
    base = src if src.is_dir() else src.parent
    roots = [Path(cfg.audio_root).expanduser()] if cfg.audio_root else [base]
    roots += [r / "clips" for r in roots]
    out: dict[str, list[Candidate]] = {}
    for split, rows in tables.items():
        if not rows:
            continue
        cols = resolve_columns(rows[0].keys(), cfg, task, where[split])
        out[split] = [
            candidate(
                row,
                cols,
                resolve_audio(row[cols["audio"]] or "", roots),
                f"covost2-{split}-{i:06d}-{Path(row[cols['audio']] or '').stem}",
            )
            for i, row in enumerate(rows)
        ]
    if not out:
        raise _no_rows(src)
    return out


def check_covost2(cfg: DataConfig, task: str) -> set[str]:
    """The splits `read_covost2` would find, and their columns, from each TSV's first rows: per-split
    files are read to their first row; the single TSV until both a train and a test row are seen."""
    src = Path(cfg.source).expanduser()
    found: set[str] = set()
    if src.is_dir():
        for split, path in find_split_files(src, (".tsv",), cfg.splits.model_dump()).items():
            first = next(iter_tsv(path), None)
            if first is not None:
                resolve_columns(first.keys(), cfg, task, str(path))
                found.add(split)
        return found
    for row in iter_tsv(src):
        if not found:
            _need_split_column(src, row)
            resolve_columns(row.keys(), cfg, task, str(src))
        found.add(SPLIT_NAMES.get(row["split"], ""))
        if {"train", "test"} <= found:
            break
    if not found:
        raise _no_rows(src)
    return found - {""}


def _need_split_column(src: Path, row: dict[str, str]) -> None:
    if "split" not in row:
        raise DataSourceError(
            f"CoVoST2 TSV {src} has no 'split' column. Fix: point data.source at the directory "
            f"of per-split TSVs, or at the full covost_v2.en_de.tsv."
        )


def _no_rows(src: Path) -> DataSourceError:
    return DataSourceError(
        f"data.source {str(src)!r}: no CoVoST2 rows found. Fix: point data.source at "
        f"covost_v2.en_de.tsv or at the directory of its per-split TSVs."
    )
