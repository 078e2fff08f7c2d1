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
from pathlib import Path

from harness.config import DataConfig
from harness.data.real import Candidate, DataSourceError, candidate, find_split_files, resolve_audio, resolve_columns

SPLIT_NAMES = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}


def read_tsv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataSourceError(f"cannot read CoVoST2 TSV {path}: {exc}") from None


def read_covost2(cfg: DataConfig, task: str) -> dict[str, list[Candidate]]:
    src = Path(cfg.source).expanduser()
    if src.is_dir():
        tables = {split: read_tsv(path) for split, path in find_split_files(src, (".tsv",), cfg.splits.model_dump()).items()}
        where = {split: str(src) for split in tables}
    else:
        rows = read_tsv(src)
        if rows and "split" not in rows[0]:
            raise DataSourceError(f"CoVoST2 TSV {src} has no 'split' column. Fix: point data.source at the directory "
                                  f"of per-split TSVs, or at the full covost_v2.en_de.tsv.")
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
        out[split] = [candidate(row, cols, resolve_audio(row[cols["audio"]] or "", roots),
                                f"covost2-{split}-{i:06d}-{Path(row[cols['audio']] or '').stem}")
                      for i, row in enumerate(rows)]
    if not out:
        raise DataSourceError(f"data.source {str(src)!r}: no CoVoST2 rows found.")
    return out
