"""Real-data loaders on tiny fixtures written here in each released on-disk format:
LibriSQA part I (JSON / JSON lines / parquet + LibriSpeech-layout FLAC), CoVoST2 en->de (TSV +
Common Voice MP3 at 48 kHz), and a `datasets.save_to_disk` dataset with an audio column (WAV bytes).
Audio is made with numpy + soundfile; nothing is downloaded."""

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.config import DataConfig, TrialConfig
from harness.data.clips import read_clip
from harness.data.real import DataSourceError, detect_format, load_real
from harness.data.synthetic import PROMPTS

RNG = np.random.RandomState(0)


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * RNG.randn(len(t))
    return np.stack([x] * channels, 1).astype(np.float32) if channels > 1 else x.astype(np.float32)


QA = [
    ("what colour is the ball", "the ball is red", "the ball is red and round"),
    ("who lives in berlin", "anna lives there", "anna lives in berlin"),
    ("how many cats are there", "there are three cats", "three cats sleep in the barn"),
    ("where does tom work", "tom works in a bank", "tom works in a bank in rome"),
    ("what does mia like", "mia likes tea", "mia likes tea with milk"),
    ("when did ben arrive", "on monday", "ben arrived on monday"),
]


def make_librisqa(root: Path, bad: bool = True) -> Path:
    """LibriSQA-PartI-{train.json,test.jsonl} + LibriSpeech/train-clean-100/<spk>/<chap>/*.flac;
    two train rows point at a missing and a corrupt clip."""
    meta = root / "LibriSQA"
    meta.mkdir(parents=True)
    rows = {"train": [], "test": []}
    for split, spk in (("train", 103), ("test", 1089)):
        subset = "train-clean-100" if split == "train" else "test-clean"
        for i, (q, a, t) in enumerate(QA if split == "train" else QA[:3]):
            name = f"{spk}-1240-{i:04d}.flac"
            path = root / "LibriSpeech" / subset / str(spk) / "1240" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.0 + 0.2 * i, 16000, freq=300 + 50 * i), 16000)
            # train rows use the corpus-relative path, test rows the bare LibriSpeech name
            speech = f"LibriSpeech/{subset}/{spk}/1240/{name}" if split == "train" else name
            rows[split].append(
                {"speech_path": speech, "question": q, "answer": a, "text": t, "duration": 1.0 + 0.2 * i}
            )
    if bad:
        rows["train"].append(
            {
                "speech_path": "LibriSpeech/train-clean-100/103/1240/missing.flac",
                "question": "q",
                "answer": "a",
                "text": "t",
                "duration": 1.0,
            }
        )
        corrupt = root / "LibriSpeech" / "train-clean-100" / "103" / "1240" / "corrupt.flac"
        corrupt.write_bytes(b"not a flac file")
        rows["train"].append(
            {
                "speech_path": str(corrupt.relative_to(root)),
                "question": "q",
                "answer": "a",
                "text": "t",
                "duration": 1.0,
            }
        )
    (meta / "LibriSQA-PartI-train.json").write_text(json.dumps(rows["train"]))
    (meta / "LibriSQA-PartI-test.jsonl").write_text("\n".join(json.dumps(r) for r in rows["test"]))
    return meta


PAIRS = [
    ("the cat sleeps", "die Katze schläft"),
    ('i like "green" tea', 'ich mag "grünen" Tee'),
    ("we go home", "wir gehen nach Hause"),
    ("he reads a book", "er liest ein Buch"),
    ("she sings", "sie singt"),
    ("they run", "sie laufen"),
    ("it rains", "es regnet"),
]


def make_covost2(root: Path) -> Path:
    """covost_v2.en_de.tsv (path, sentence, translation, client_id, split) + clips/*.mp3 at 48 kHz."""
    (root / "clips").mkdir(parents=True)
    lines = ["path\tsentence\ttranslation\tclient_id\tsplit"]
    splits = ["train", "train", "train", "dev", "dev", "test", "test"]
    for i, ((en, de), split) in enumerate(zip(PAIRS, splits)):
        name = f"common_voice_en_{1000 + i}.mp3"
        sf.write(root / "clips" / name, tone(1.2, 48000, freq=500 + 30 * i), 48000, format="MP3")
        lines.append(f"{name}\t{en}\t{de}\tclient{i}\t{split}")
    lines.append("common_voice_en_9999.mp3\tx\ty\tclient9\ttrain_covost")  # other splits are ignored
    tsv = root / "covost_v2.en_de.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tsv


def make_hf_disk(root: Path) -> Path:
    """A DatasetDict (train / validation / test) saved to disk, audio stored as WAV bytes (44.1 kHz
    stereo), columns named differently from ours (`speech`, `query`, `reply`)."""
    import pyarrow as pa
    from datasets import Audio, Dataset, DatasetDict

    def split(items):
        audio = []
        for i, _ in enumerate(items):
            buf = io.BytesIO()
            sf.write(buf, tone(1.0, 44100, channels=2, freq=400 + 40 * i), 44100, format="WAV")
            audio.append({"bytes": buf.getvalue(), "path": f"clip{i}.wav"})
        table = pa.table(
            {
                "speech": pa.array(audio, pa.struct({"bytes": pa.binary(), "path": pa.string()})),
                "query": [q for q, _, _ in items],
                "reply": [a for _, a, _ in items],
                "transcript": [t for _, _, t in items],
            }
        )
        return Dataset(table).cast_column("speech", Audio(sampling_rate=44100))

    path = root / "hf"
    DatasetDict(train=split(QA[:4]), validation=split(QA[4:]), test=split(QA[:2])).save_to_disk(str(path))
    return path


HF_COLUMNS = {"audio": "speech", "question": "query", "answer": "reply"}


# ------------------------------------------------------------------------------------------ decoding
def test_read_clip_resamples_to_16k_mono(tmp_path):
    for fmt, rate in (("FLAC", 22050), ("MP3", 44100), ("WAV", 48000)):
        path = tmp_path / f"a.{fmt.lower()}"
        sf.write(path, tone(1.0, rate, channels=2, freq=440), rate, format=fmt)
        x = read_clip(path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert abs(len(x) - 16000) <= 1200  # MP3 adds encoder delay/padding
        spectrum = np.abs(np.fft.rfft(x[:16000] if len(x) >= 16000 else np.pad(x, (0, 16000 - len(x)))))
        assert abs(np.argmax(spectrum) - 440) <= 2  # the tone keeps its pitch (1 Hz bins)
    same = tone(0.5, 16000)
    sf.write(tmp_path / "b.wav", same, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_clip(tmp_path / "b.wav"), same)  # 16 kHz is not touched


# ------------------------------------------------------------------------------------------ loaders
def test_librisqa_holds_out_validation_and_reports_bad_clips(tmp_path, caplog):
    src = make_librisqa(tmp_path)
    cfg = DataConfig(source=str(src), audio_root=str(tmp_path), max_bad_fraction=0.5)
    assert detect_format(cfg) == "librisqa"
    with caplog.at_level(logging.WARNING, logger="harness.data"):
        splits, report = load_real(cfg, "sqa")
    # 8 train rows, 20% (2) held out as validation; the 2 bad clips are skipped, each logged by path
    assert len(splits["train"]) + len(splits["validation"]) == 6 and len(splits["validation"]) >= 1
    assert {e.id for e in splits["train"]}.isdisjoint({e.id for e in splits["validation"]})
    skipped = [p for split in ("train", "validation") for p, _ in report.skipped[split]]
    assert sorted(Path(p).name for p in skipped) == ["corrupt.flac", "missing.flac"]
    assert "missing.flac" in caplog.text and "corrupt.flac" in caplog.text
    test = splits["test"]  # bare LibriSpeech names found in the corpus layout, file order kept
    assert [e.answer for e in test] == [a for _, a, _ in QA[:3]]
    assert test[0].prompt == PROMPTS["sqa"].format(question=QA[0][0])
    assert test[0].task == "sqa" and test[0].transcript == QA[0][2] and Path(test[0].audio).is_file()

    with pytest.raises(DataSourceError, match="corrupt.flac|missing.flac"):
        load_real(cfg.model_copy(update={"on_bad_audio": "error"}), "sqa")
    with pytest.raises(DataSourceError, match="max_bad_fraction"):  # default 1%: 2 bad of 8 is too many
        load_real(cfg.model_copy(update={"max_bad_fraction": 0.01}), "sqa")
    with pytest.raises(DataSourceError, match="task"):
        load_real(cfg, "ast")
    short, report = load_real(cfg.model_copy(update={"max_audio_s": 1.3}), "sqa")
    assert all(sf.info(e.audio).duration <= 1.3 for s in short.values() for e in s)
    assert sum(report.too_long.values()) > 0


def test_librisqa_parquet_and_sizes(tmp_path):
    import pandas as pd

    src = make_librisqa(tmp_path, bad=False)
    rows = json.loads((src / "LibriSQA-PartI-train.json").read_text())
    (src / "LibriSQA-PartI-train.json").unlink()
    pd.DataFrame(rows).to_parquet(src / "LibriSQA-PartI-train.parquet")
    cfg = DataConfig(source=str(src), audio_root=str(tmp_path), train_size=2, test_size=1, seed=3)
    splits, _ = load_real(cfg, "sqa")
    assert (len(splits["train"]), len(splits["test"])) == (2, 1)
    again, _ = load_real(cfg, "sqa")
    assert [e.id for e in again["train"]] == [e.id for e in splits["train"]]  # seeded


def test_covost2_tsv_splits_and_mp3(tmp_path):
    tsv = make_covost2(tmp_path)
    splits, report = load_real(DataConfig(source=str(tsv)), "ast")
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "validation": 2, "test": 2}
    assert not any(report.skipped.values())
    by_text = {e.transcript: e for s in splits.values() for e in s}
    ex = by_text['i like "green" tea']  # quotes kept verbatim (the release is read without quoting)
    assert ex.answer == 'ich mag "grünen" Tee' and ex.prompt == PROMPTS["ast"] and ex.task == "ast"
    assert abs(len(read_clip(ex.audio)) - 1.2 * 16000) < 1500
    # per-split files, as get_covost_splits.py writes them, in a directory
    d = tmp_path / "per_split"
    d.mkdir()
    lines = tsv.read_text().splitlines()
    for split in ("train", "dev", "test"):
        keep = [lines[0]] + [ln for ln in lines[1:] if ln.endswith("\t" + split)]
        (d / f"covost_v2.en_de.{split}.tsv").write_text("\n".join(keep) + "\n")
    splits2, _ = load_real(DataConfig(source=str(d), audio_root=str(tmp_path)), "ast")
    assert {k: len(v) for k, v in splits2.items()} == {"train": 3, "validation": 2, "test": 2}


def test_hf_disk_audio_bytes_and_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    src = make_hf_disk(tmp_path)
    cfg = DataConfig(source=str(src), columns=HF_COLUMNS)
    assert detect_format(cfg) == "hf-disk"
    splits, _ = load_real(cfg, "sqa")
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "validation": 2, "test": 2}
    ex = splits["test"][0]
    assert str(tmp_path / "cache") in ex.audio and ex.answer == QA[0][1] and ex.transcript == QA[0][2]
    assert len(read_clip(ex.audio)) == 16000  # 44.1 kHz stereo WAV bytes -> 1 s at 16 kHz mono
    with pytest.raises(DataSourceError, match="data.columns.question"):
        load_real(DataConfig(source=str(src), columns={"audio": "speech", "question": "ask", "answer": "reply"}), "sqa")


def test_study_file_validates_real_source(tmp_path):
    from harness.study import StudyError, load_trial_config

    src = make_covost2(tmp_path)
    good = tmp_path / "t.yaml"
    good.write_text(f"task: ast\ndata: {{source: {src}, format: covost2, on_bad_audio: error}}\n")
    assert load_trial_config(good).data.format == "covost2"
    bad = tmp_path / "b.yaml"
    bad.write_text("task: ast\ndata: {source: synthetic, on_bad_audio: ignore}\n")
    with pytest.raises(StudyError, match="on_bad_audio"):
        load_trial_config(bad)


# ------------------------------------------------------------------------------------------ trials
SOURCES = {
    "librisqa": (
        "sqa",
        lambda root: {"source": str(make_librisqa(root)), "audio_root": str(root), "max_bad_fraction": 0.5},
    ),
    "covost2": ("ast", lambda root: {"source": str(make_covost2(root))}),
    "hf-disk": ("sqa", lambda root: {"source": str(make_hf_disk(root)), "columns": HF_COLUMNS}),
}


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_two_step_grpo_and_sft_through_each_loader(source, tmp_path):
    from harness.train.trial import run_trial

    task, make = SOURCES[source]
    data = dict(make(tmp_path), train_size=4, validation_size=2, test_size=2)
    for method in ("grpo", "sft"):
        cfg = TrialConfig.model_validate(
            {
                "task": task,
                "method": method,
                "data": data,
                "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "warmup_steps": 0},
                "grpo": {"group_size": 3, "max_new_tokens": 6},
                "eval": {"bertscore": False, "max_new_tokens": 6, "batch_size": 2},
            }
        )
        logged = []
        result = run_trial(cfg, log=lambda m, s, logged=logged: logged.append((s, m)))
        assert result.steps == 2 and len(result.test.hypotheses) == 2
        data_metrics = next(m for s, m in logged if "data/train_examples" in m)
        assert data_metrics["data/train_examples"] == (3 if source == "covost2" else 4)  # covost2 has 3
        assert data_metrics["data/test_examples"] == 2
        skipped = data_metrics["data/train_skipped_clips"] + data_metrics["data/validation_skipped_clips"]
        assert skipped <= (2 if source == "librisqa" else 0)  # the fixture's bad clips, if vetting reached them
        assert [s for s, m in logged if "loss" in m] == [1, 2]
        assert np.isfinite([m["loss"] for _, m in logged if "loss" in m]).all()
        if method == "grpo":
            assert result.generated_tokens > 0 and all("reward" in m for s, m in logged if "loss" in m)


def test_paper_real_studies_validate_and_load_their_data(tmp_path, monkeypatch):
    """studies/paper_real/*.yaml against fixture data laid out at the paths they name."""
    from harness.study import load_study

    studies = sorted((Path(__file__).parents[1] / "studies" / "paper_real").glob("*.yaml"))
    assert [p.stem for p in studies] == ["covost2_2b", "covost2_8b", "librisqa_2b", "librisqa_8b"]
    make_librisqa(tmp_path / "data")
    make_covost2(tmp_path / "data" / "covost2")
    (tmp_path / "data" / "cv-corpus-en").mkdir()
    (tmp_path / "data" / "covost2" / "clips").rename(tmp_path / "data" / "cv-corpus-en" / "clips")
    for size in ("2b", "8b"):  # the checkpoints' directories must exist for the study to validate
        (tmp_path / "checkpoints" / f"granite-speech-3.3-{size}").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for path in studies:
        study = load_study(path)
        fixed = study.fixed
        assert fixed["grpo"]["group_size"] == 8 and fixed["grpo"]["beta"] == 0.02
        assert fixed["grpo"]["temperature"] == 1.0 and fixed["grpo"]["max_new_tokens"] == 200
        assert (fixed["eval"]["top_p"], fixed["eval"]["temperature"]) == (0.9, 0.9)
        assert fixed["model"]["trainable"] == "projector+lora"
        cfg = TrialConfig.model_validate({k: v for k, v in fixed.items() if k != "model"})
        splits, report = load_real(cfg.data.model_copy(update={"max_bad_fraction": 0.5}), cfg.task)
        assert all(splits[s] for s in ("train", "validation", "test"))
