"""Bad input is one clear message (field or file, and the fix), exit code 2 and no traceback.

(Malformed YAML, unknown keys, unknown rewards, group size < 2, missing data paths, a missing study
file and an unusable storage URL are covered in test_cli.py; docs/reliability.md lists them all.)
A study in which every trial failed exits 1 (the end of this file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakes import TINY, invoke


@pytest.mark.parametrize(
    "fixed, expected",
    [
        (
            "grpo: {beta: -0.01}",
            "field fixed.grpo.beta: Input should be greater than or equal to 0. Fix: use a value >= 0",
        ),
        ("grpo: {top_p: 0}", "field fixed.grpo.top_p: Input should be greater than 0. Fix: use a value > 0"),
        (
            "grpo: {top_p: 1.5}",
            "field fixed.grpo.top_p: Input should be less than or equal to 1. Fix: use a value <= 1",
        ),
        ("eval: {top_p: 0.0}", "field fixed.eval.top_p: Input should be greater than 0"),
        ("grpo: {group_size: 2, mp_grpo: true}", ":1: field fixed: grpo.mp_grpo needs group_size >= 3"),
        ("train: {lr: 0}", "field fixed.train.lr: Input should be greater than 0"),
        (
            "train: {checkpoint_every: -1}",
            "field fixed.train.checkpoint_every: Input should be greater than or equal to 0",
        ),
        (
            "model: {name: /no/such/checkpoint}",
            "field fixed.model.name: model '/no/such/checkpoint' is not 'tiny', not an existing directory",
        ),
        (
            "model: {name: ibm-granite/granite-speech-3.3-2b}",
            "and not in the local Hugging Face cache. Fix: give the directory of a downloaded checkpoint, or 'tiny'",
        ),
    ],
)
def test_out_of_range_and_missing_paths(tmp_path: Path, fixed: str, expected: str) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(f"fixed:\n  task: sqa\n  {fixed}\n")
    result = invoke("sweep", str(study))
    assert result.exit_code == 2, result.output
    where = "" if expected.startswith(":") else ":3: "  # (a cross-field check names the mapping)
    assert f"{study}{where}" in result.stderr and expected in result.stderr, result.stderr
    assert not (tmp_path / "mlruns").exists()


def test_missing_model_in_a_trial_config(tmp_path: Path) -> None:
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("task: sqa\nmodel:\n  name: ./checkpoints/granite\n")
    result = invoke("trial", str(cfg))
    assert result.exit_code == 2 and f"{cfg}:3: field model.name: model './checkpoints/granite'" in result.stderr


def test_unreachable_tracking_server(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("fixed: {task: sqa}\n")
    result = invoke("sweep", str(study), "--tracking-uri", "http://bob:pw123@127.0.0.1:1")
    assert result.exit_code == 2
    assert "MLflow tracking server 'http://bob:***@127.0.0.1:1' is not reachable" in result.stderr
    assert "pw123" not in result.output


def test_bad_heartbeat_setting(tmp_path: Path, stores, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, uri = stores
    study = tmp_path / "s.yaml"
    study.write_text("fixed: {task: sqa}\n")
    result = invoke(
        "sweep",
        str(study),
        "--storage",
        f"sqlite:///{tmp_path / 'o.db'}",
        "--tracking-uri",
        uri,
        env={"HARNESS_HEARTBEAT_S": "soon"},
    )
    assert result.exit_code == 2 and "HARNESS_HEARTBEAT_S='soon'" in result.stderr and "Fix:" in result.stderr


def test_missing_espeak_ng_stops_the_sweep(tmp_path: Path, stores, monkeypatch) -> None:
    """No espeak-ng on PATH and no cached data: the first trial fails with the reason and the sweep stops
    with exit code 2 and the install command, instead of failing every trial."""
    from harness.train.trial import clear_process_caches

    clear_process_caches()  # data an earlier test loaded in this process would hide the missing tool
    monkeypatch.chdir(tmp_path)
    storage, uri = stores
    study = tmp_path / "s.yaml"
    study.write_text(TINY + "space:\n  grpo.reward: {choices: [bleu, rouge1]}\n")
    result = invoke(
        "sweep",
        str(study),
        "--storage",
        storage,
        "--tracking-uri",
        uri,
        "--no-report",
        env={"PATH": str(tmp_path / "empty-bin"), "HARNESS_CACHE": str(tmp_path / "cache")},
    )
    assert result.exit_code == 2, result.output
    assert "error: espeak-ng not found: install it with `apt-get install espeak-ng sox`" in result.stderr
    import optuna

    from harness.sweep import open_storage

    trials = optuna.load_study(study_name="s", storage=open_storage(storage)).trials
    assert len(trials) == 1 and "espeak-ng not found" in trials[0].user_attrs["error"]


def test_missing_espeak_ng_in_a_single_trial(tmp_path: Path) -> None:
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("task: sqa\ndata: {train_size: 4, validation_size: 2, test_size: 2}\n")
    result = invoke(
        "trial",
        str(cfg),
        env={
            "PATH": str(tmp_path),
            "HARNESS_CACHE": str(tmp_path / "cache"),
            "HARNESS_TORCH_THREADS": os.environ.get("HARNESS_TORCH_THREADS", "1"),
        },
    )
    assert result.exit_code == 2 and "espeak-ng not found" in result.stderr and "make setup" in result.stderr


# ------------------------------------------------------------------------- empty and non-mapping files
def write_input(tmp_path: Path, command: str, text: str) -> Path:
    path = tmp_path / ("trial.yaml" if command == "trial" else "s.yaml")
    path.write_text(text)
    return path


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("command", ["sweep", "worker", "trial"])
@pytest.mark.parametrize("text", ["", "  \n\t\n", "# nothing yet\n"])
def test_empty_file_exits_2(tmp_path: Path, monkeypatch, command: str, text: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_input(tmp_path, command, text)
    line = one_error_line(invoke(command, str(path)))
    if command == "trial":
        assert line == (
            f"error: {path}:1: the trial config file is empty (only whitespace or comments). "
            f"Fix: write TrialConfig keys (harness/config.py), at least 'task: sqa'."
        )
    else:
        assert line == (
            f"error: {path}:1: the study file is empty (only whitespace or comments). "
            f"Fix: write a study as in studies/*.yaml, at least 'fixed: {{task: sqa}}'."
        )
    assert not (tmp_path / "mlruns").exists()  # no default trial was started


@pytest.mark.parametrize("command", ["sweep", "worker", "trial"])
@pytest.mark.parametrize("text, kind", [("- task: sqa\n- task: ast\n", "list"), ("sqa\n", "str"), ("3\n", "int")])
def test_yaml_that_is_not_a_mapping_exits_2(tmp_path: Path, monkeypatch, command: str, text: str, kind: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_input(tmp_path, command, text)
    line = one_error_line(invoke(command, str(path)))
    what, keys = (
        ("trial config", "task, method, train, grpo, ...")
        if command == "trial"
        else ("study", "name, fixed, space, ...")
    )
    assert line.startswith(f"error: {path}:1: a {what} file must be a mapping of keys ({keys}), not a {kind}. Fix: ")
    assert not (tmp_path / "mlruns").exists()


# ------------------------------------------------------------------------- unreadable data sources
def empty_dir(root: Path) -> Path:
    (root / "data").mkdir()
    return root / "data"


def tsv(root: Path, text: str, name: str = "covost.tsv") -> Path:
    (root / name).write_text(text)
    return root / name


def librisqa_dir(root: Path, row: dict) -> Path:
    d = root / "librisqa"
    d.mkdir()
    for split in ("train", "test"):
        (d / f"LibriSQA-PartI-{split}.json").write_text(json.dumps([row]))
    return d


def hf_disk_dir(root: Path, splits: dict[str, list[str]]) -> Path:
    """The JSON that `save_to_disk` writes (dataset_dict.json, <split>/dataset_info.json), no tables."""
    d = root / "hf"
    d.mkdir()
    (d / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for split, columns in splits.items():
        (d / split).mkdir()
        (d / split / "dataset_info.json").write_text(json.dumps({"features": {c: {"_type": "Value"} for c in columns}}))
    return d


ROW = {"speech_path": "103-1240-0000.flac", "question": "who", "answer": "anna"}
# (task, extra data settings, make the source in tmp_path, expected message after "field ...data.source: ")
SOURCES = {
    "empty directory": (
        "sqa",
        "",
        empty_dir,
        "data.source '{src}': cannot tell its format (no dataset_dict.json, "
        "*.tsv, *.json, *.jsonl or *.parquet there). Fix: set data.format to librisqa, covost2 or "
        "hf-disk.",
    ),
    "covost2 tsv without split column": (
        "ast",
        "",
        lambda root: tsv(root, "path\tsentence\ttranslation\na.mp3\thi\thallo\n"),
        "CoVoST2 TSV {src} has no 'split' column. Fix: point data.source at the directory of per-split TSVs, or "
        "at the full covost_v2.en_de.tsv.",
    ),
    "covost2 tsv with a header only": (
        "ast",
        "",
        lambda root: tsv(root, "path\tsentence\ttranslation\tsplit\n"),
        "data.source '{src}': no CoVoST2 rows found. Fix: point data.source at covost_v2.en_de.tsv or at the "
        "directory of its per-split TSVs.",
    ),
    "covost2 tsv without a test row": (
        "ast",
        "",
        lambda root: tsv(root, "path\tsentence\ttranslation\tsplit\na.mp3\thi\thallo\ttrain\n"),
        "data.source '{src}' (covost2): found splits ['train']; train and test are needed. Fix: set "
        "data.splits.train / data.splits.test.",
    ),
    "covost2 directory without split files": (
        "ast",
        "",
        lambda root: tsv(root, "path\tsentence\ttranslation\na.mp3\thi\thallo\n", "all.tsv").parent,
        "data.source '{src}' (covost2): found splits []; train and test are needed. Fix: set data.splits.train / "
        "data.splits.test.",
    ),
    "covost2 tsv as sqa data": (
        "sqa",
        "",
        lambda root: tsv(root, "path\tsentence\ttranslation\tsplit\n"),
        "data.source '{src}' is covost2 data (task 'ast') but the trial's task is 'sqa'. Fix: set task: ast or "
        "point data.source elsewhere.",
    ),
    "librisqa json without question and answer": (
        "sqa",
        "",
        lambda root: librisqa_dir(root, {"speech_path": "103-1240-0000.flac", "text": "t"}),
        "{src}/LibriSQA-PartI-train.json: no column for 'question' (looked for ['question', 'query', 'instruction']);"
        " it has ['speech_path', 'text']. Fix: set data.columns.question to the column that holds it.",
    ),
    "librisqa data.columns naming no column": (
        "sqa",
        ", columns: {answer: reply}",
        lambda root: librisqa_dir(root, ROW),
        "{src}/LibriSQA-PartI-train.json: data.columns.answer = 'reply' is not a column; it has ['speech_path', "
        "'question', 'answer']. Fix: set data.columns.answer to one of them.",
    ),
    "librisqa single file without data.splits.test": (
        "sqa",
        "",
        lambda root: librisqa_dir(root, ROW) / "LibriSQA-PartI-train.json",
        "data.source '{src}' (librisqa): found splits ['train']; train and test are needed. Fix: set "
        "data.splits.train / data.splits.test.",
    ),
    "librisqa jsonl that is not rows": (
        "sqa",
        "",
        lambda root: tsv(root, "[1, 2]\n", "test.jsonl").parent,
        "LibriSQA metadata {src}/test.jsonl: expected a list of objects (or JSON lines). Fix: point data.source "
        "at the released part I files.",
    ),
    "hf-disk without the audio column": (
        "sqa",
        "",
        lambda root: hf_disk_dir(
            root, {"train": ["speech", "question", "answer"], "test": ["speech", "question", "answer"]}
        ),
        "{src} [train]: no column for 'audio' (looked for ['audio', 'speech_path', 'audio_path', 'path', 'file', "
        "'filename', 'wav']); it has ['speech', 'question', 'answer']. Fix: set data.columns.audio to the column "
        "that holds it.",
    ),
    "hf-disk data.splits naming no split": (
        "sqa",
        ", splits: {test: eval}",
        lambda root: hf_disk_dir(root, {"train": ["audio", "question", "answer"]}),
        "data.splits.test = 'eval' is not a split of {src}; it has ['train']. Fix: set data.splits.test to one of "
        "them.",
    ),
}


@pytest.mark.parametrize("command", ["sweep", "worker", "trial"])
@pytest.mark.parametrize("case", sorted(SOURCES))
def test_unreadable_data_source_exits_2_before_any_trial(tmp_path: Path, monkeypatch, command: str, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    task, extra, make, expected = SOURCES[case]
    src = make(tmp_path)
    if command == "trial":
        path = write_input(tmp_path, command, f"task: {task}\ndata: {{source: {src}{extra}}}\n")
        where = f"{path}:2: field data.source: "
    else:
        path = write_input(tmp_path, command, f"fixed:\n  task: {task}\n  data: {{source: {src}{extra}}}\n")
        where = f"{path}:3: field fixed.data.source: "
    assert one_error_line(invoke(command, str(path))) == "error: " + where + expected.format(src=src)
    assert not (tmp_path / "mlruns").exists()


def test_the_source_check_reads_no_audio(tmp_path: Path) -> None:
    """Clips are vetted by the trial (skipped or failed, data.on_bad_audio): the check reads metadata only."""
    from harness.study import load_trial_config

    src = tsv(tmp_path, "path\tsentence\ttranslation\tsplit\nno.mp3\thi\thallo\ttrain\nnone.mp3\tyo\tja\ttest\n")
    cfg = tmp_path / "trial.yaml"
    cfg.write_text(f"task: ast\ndata: {{source: {src}}}\n")
    assert load_trial_config(cfg).data.source == str(src)


def test_unusable_clips_in_a_single_trial_exit_2(tmp_path: Path) -> None:
    """What only a trial finds (every clip missing) is still one message and exit 2, no traceback."""
    src = tsv(
        tmp_path,
        "path\tsentence\ttranslation\tsplit\n"
        + "".join(f"{split}.mp3\thi\thallo\t{split}\n" for split in ("train", "dev", "test")),
    )
    cfg = tmp_path / "trial.yaml"
    cfg.write_text(f"task: ast\ndata: {{source: {src}}}\n")
    line = one_error_line(invoke("trial", str(cfg)))
    assert line.startswith(f"error: train split of {src} (covost2): 1 of 1 clips are missing or unreadable")
    assert "Fix: check data.audio_root" in line


# ------------------------------------------------------------------------- a study in which every trial fails
def test_study_whose_every_trial_failed_exits_1(tmp_path: Path, monkeypatch, stores, fake) -> None:
    monkeypatch.chdir(tmp_path)
    fake(fail=lambda cfg: True)
    storage, uri = stores
    study = tmp_path / "s.yaml"
    study.write_text(TINY + "space:\n  grpo.reward: {choices: [bleu, rouge1]}\n")
    result = invoke("sweep", str(study), "--storage", storage, "--tracking-uri", uri)
    assert result.exit_code == 1, result.output
    assert "study s: 0 complete, 0 pruned, 2 fail\n" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: study s: no trial completed (2 failed; the last, trial 1: FloatingPointError: loss is NaN at step "
        "2). Fix: read each trial's error in its MLflow run (tag harness.error, artifact error.txt; `harness ui`), "
        "or with --workers in mlruns/logs/s-worker*.log; fix the cause, then run the same command again (failed "
        "trials are re-run). No report was built."
    )
    assert not (tmp_path / "reports").exists()


def test_study_whose_trials_were_all_pruned_exits_0(tmp_path: Path, monkeypatch, stores, fake) -> None:
    """Pruning is the pruner doing its job: a study with pruned (or completed) trials exits 0."""
    import optuna

    import harness.train.trial as trial_lib

    def pruned(cfg, **kwargs):
        raise optuna.TrialPruned("pruned at step 1")

    monkeypatch.chdir(tmp_path)
    fake()
    monkeypatch.setattr(trial_lib, "run_trial", pruned)
    storage, uri = stores
    study = tmp_path / "s.yaml"
    study.write_text(TINY)
    result = invoke("sweep", str(study), "--storage", storage, "--tracking-uri", uri, "--no-report")
    assert result.exit_code == 0, result.output
    assert "study s: 0 complete, 1 pruned, 0 fail" in result.stderr and "error:" not in result.stderr
