"""Cache: build atomically, load from manifest (the layout is described in `harness.data.synthetic`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

from harness.data import audio as _audio
from harness.data.synthetic.lexicon import normalize_text
from harness.data.synthetic.spec import (
    DEFAULT_PRETRAIN_SIZES,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    SPEED_PASSAGE,
    SPEED_SENTENCE,
    VOICE,
    Example,
)
from harness.data.synthetic.texts import (
    GENERATORS,
    TextItem,
    check_sizes,
    generate_pretraining_texts,
    generate_texts,
    ordered_splits,
)

__all__ = ["load_pretraining", "load_synthetic", "read_manifest", "task_transcripts", "transcripts", "write_manifest"]


def _digest(obj: object, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def _data_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from harness import paths

    return paths.cache_dir() / "data"


def _read_dataset(directory: Path, splits: Iterable[str]) -> dict[str, list[Example]] | None:
    """Examples from a finished cache directory, or None when it is incomplete or damaged."""
    if not (directory / "meta.json").is_file():
        return None
    out: dict[str, list[Example]] = {}
    try:
        for split in splits:
            rows = []
            with open(directory / split / "manifest.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        row["audio"] = str((directory / row["audio"]).resolve())
                        rows.append(Example(**row))
            out[split] = rows
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not all(Path(ex.audio).is_file() for rows in out.values() for ex in rows):
        return None
    return out


def _build_dataset(
    final: Path,
    texts: Mapping[str, list[TextItem]],
    id_prefix: str,
    meta: dict,
    workers: int | None,
) -> None:
    """Synthesise ``texts`` into a private temp dir, write manifests, rename it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        rows: dict[str, list[dict]] = {}
        jobs: dict[int, list[tuple[str, Path]]] = {}
        for split, items in texts.items():
            rows[split] = []
            for i, item in enumerate(items):
                ex_id = f"{id_prefix}-{split}-{i:05d}"
                rel = f"audio/{ex_id}.wav"
                jobs.setdefault(item.speed, []).append((item.transcript, tmp / rel))
                rows[split].append(asdict(Example(ex_id, item.task, rel, item.prompt, item.answer, item.transcript)))
        (tmp / "audio").mkdir()
        for speed, batch in sorted(jobs.items()):
            _audio.synthesize_many(batch, voice=meta.get("voice", VOICE), speed=speed, workers=workers)
        synth_s = time.perf_counter() - t0
        for split, split_rows in rows.items():
            (tmp / split).mkdir()
            with open(tmp / split / "manifest.jsonl", "w", encoding="utf-8") as fh:
                for row in split_rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        meta = dict(meta, n_clips=sum(len(b) for b in jobs.values()), synth_seconds=synth_s)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # Another process finished the same dataset first: keep theirs.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_or_build(
    name: str,
    root: Path,
    splits: list[str],
    make_texts: Callable[[], Mapping[str, list[TextItem]]],
    id_prefix: str,
    meta: dict,
    workers: int | None,
) -> dict[str, list[Example]]:
    final = root / name
    cached = _read_dataset(final, splits)
    if cached is not None:
        return cached
    if final.exists():  # damaged (e.g. audio deleted by hand): move aside and rebuild
        stale = final.parent / f".{final.name}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    _build_dataset(final, make_texts(), id_prefix, meta, workers)
    built = _read_dataset(final, splits)
    if built is None:
        raise RuntimeError(f"synthetic dataset at {final} is incomplete after building it")
    return built


def load_synthetic(
    task: str,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    workers: int | None = None,
    voice: str = VOICE,
) -> dict[str, list[Example]]:
    """Synthetic spoken dataset for ``task`` ("sqa", "ast" or "asr"), split as ``sizes``, spoken by
    the espeak-ng ``voice`` (the base model is pretrained on ``VOICE``; another voice makes the task
    an acoustic adaptation, as new speakers are for a real checkpoint).

    Texts are a deterministic function of (task, seed); splits are drawn in the order test,
    validation, train from one stream of distinct transcripts, so no spoken text repeats across
    splits and the test set does not depend on the train size. Audio is synthesised once and cached
    under ``(cache_dir or harness.paths.cache_dir()/"data") / f"{task}-{hash}"``; later calls read
    the manifests and never run espeak-ng.
    """
    sizes = check_sizes(DEFAULT_SIZES if sizes is None else sizes)
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(GENERATORS)}")
    key = {
        "kind": "synthetic",
        "version": GENERATOR_VERSION,
        "task": task,
        "seed": seed,
        "sizes": sizes,
        "voice": voice,
        "speeds": [SPEED_PASSAGE, SPEED_SENTENCE],
        "audio": _audio.PIPELINE_VERSION,
    }
    return _load_or_build(
        f"{task}-{_digest(key)}",
        _data_root(cache_dir),
        ordered_splits(sizes),
        lambda: generate_texts(task, sizes, seed),
        task,
        key,
        workers,
    )


def load_pretraining(
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    exclude: Iterable[str] = (),
    cache_dir: Path | None = None,
    ast_fraction: float = 0.5,
    sqa_fraction: float = 0.0,
    workers: int | None = None,
) -> dict[str, list[Example]]:
    """Pretraining data for the tiny base model: ASR (task "asr", answer = transcript) and AST
    (task "ast") examples, shuffled together per split, from a seed stream separate from
    :func:`load_synthetic`'s. No spoken text equals (after :func:`normalize_text`) any text in
    ``exclude``: pass :func:`transcripts` of every SQA/AST split the model is later tuned or
    evaluated on. ``sizes`` counts all examples of a split; ``ast_fraction`` of them are AST.
    """
    sizes = check_sizes(DEFAULT_PRETRAIN_SIZES if sizes is None else sizes)
    excluded = sorted({normalize_text(t) for t in exclude})
    key = {
        "kind": "pretraining",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes,
        "ast_fraction": ast_fraction,
        "sqa_fraction": sqa_fraction,
        "exclude": _digest(excluded, 64),
        "n_excluded": len(excluded),
        "voice": VOICE,
        "speeds": [SPEED_PASSAGE, SPEED_SENTENCE],
        "audio": _audio.PIPELINE_VERSION,
    }
    return _load_or_build(
        f"pretrain-{_digest(key)}",
        _data_root(cache_dir),
        ordered_splits(sizes),
        lambda: generate_pretraining_texts(sizes, seed, excluded, ast_fraction, sqa_fraction),
        "pre",
        key,
        workers,
    )


def transcripts(*datasets: Mapping[str, list[Example]] | Iterable[Example]) -> set[str]:
    """All spoken texts of the given datasets (dicts of splits or plain example lists)."""
    out: set[str] = set()
    for ds in datasets:
        groups = ds.values() if isinstance(ds, Mapping) else [ds]
        for group in groups:
            out.update(ex.transcript for ex in group)
    return out


def task_transcripts(
    sizes: Mapping[str, int] | None = None,
    seeds: Iterable[int] = (0,),
    tasks: Iterable[str] = ("sqa", "ast"),
) -> set[str]:
    """Spoken texts of ``load_synthetic(task, sizes, seed)`` for every task and seed, computed from
    text alone (no audio): the ``exclude`` set for :func:`load_pretraining`."""
    sizes = DEFAULT_SIZES if sizes is None else sizes
    return {
        it.transcript
        for task in tasks
        for seed in seeds
        for items in generate_texts(task, sizes, seed).values()
        for it in items
    }


def write_manifest(examples: Iterable[Example], path: Path) -> None:
    """Write examples as JSON lines (absolute audio paths), e.g. for inspection or export."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")


def read_manifest(path: Path) -> list[Example]:
    """Read examples written by :func:`write_manifest` (audio paths relative to the file's dir)."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                row["audio"] = str((path.parent / row["audio"]).resolve())
                out.append(Example(**row))
    return out
