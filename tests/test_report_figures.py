"""What `harness report` shows beside its tables: real images, the published tables in their own section,
the base model's hearing, test outputs beside their reference, and the files logged to the study run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from report_reading import artifact_paths, md_tables, section
from report_studies import IDS, LR_NAMES, MAIN_NAMES, REFERENCES, VOICE

from harness.data.synthetic import VOICE as PRETRAINING_VOICE
from harness.report.folder import load_folder
from harness.report.plots import plot_training
from harness.report.published import PUBLISHED_TITLE

# --------------------------------------------------------------------------------------------------
# 10. Figures, published tables, files logged to the study run


def test_figures_are_real_images(main, lr):
    pngs = sorted(p.name for p in main["out"].glob("*.png"))
    assert pngs == [
        "mp_grpo.png",
        "reward_training_sqa_tiny.png",
        "sweep_group_size_sqa_tiny.png",
        "training_sqa_tiny.png",
        "validation_sqa_tiny.png",
    ]  # training: MP-GRPO and G=16
    assert {"training_sqa_tiny.png", "validation_sqa_tiny.png"} <= {p.name for p in lr["out"].glob("*.png")}
    for folder, md in ((main["out"], main["md"]), (lr["out"], lr["md"])):
        for path in folder.glob("*.png"):
            image = imread(path)
            assert image.ndim == 3 and min(image.shape[:2]) > 150, path.name
            assert image[..., :3].var() > 1e-3, path.name
            assert f"]({path.name})" in md, path.name


def test_training_plot_marks_no_reference_for_beta_zero(main, lr):
    def notes(folder: Path, name: str) -> list[str]:
        data = load_folder(folder)
        config = next(c for c in data.configs if c.name == name)
        fig = plot_training(data, [config], name)
        return [t.get_text() for ax in fig.axes for t in ax.texts]

    assert "no reference (β = 0)" in notes(lr["out"], LR_NAMES["lr1"])
    assert notes(lr["out"], LR_NAMES["lr1-kl"]) == []  # beta 0.02: the KL is drawn
    assert notes(main["out"], MAIN_NAMES["grpo"]) == []


def test_published_tables_sit_in_their_own_section(main):
    md = main["md"]
    published = section(md, PUBLISHED_TITLE)
    assert "arXiv:2509.16990v1" in published and "granite-speech-2b" in published
    assert "Table 1" in published and "Table 3" in published and "Table 2" not in published  # no AST trials
    measured = md.split(f"## {PUBLISHED_TITLE}")[0]
    assert "| granite" not in measured
    # published figures sit beside the measured ones only in columns labelled as the paper's
    beside = 0
    for table in md_tables(measured):
        for column in table.columns:
            if (table[column] == "44.90").any():
                assert "paper" in column, column
                beside += 1
    assert beside >= 2  # sampled and greedy method tables (and the reward ablation's) show Table 1's GRPO row
    assert md.index(f"## {PUBLISHED_TITLE}") > md.index("## Comparisons")
    for path in main["out"].glob("*.csv"):
        if not path.name.startswith("published_"):
            assert "granite" not in path.read_text(), path.name


def test_hearing_comes_from_the_study_run(main):
    """The report copies the base model's hearing that the sweep logged on the study run (it loads no
    model) and shows each voice's error rates."""
    copied = pd.read_csv(main["out"] / "hearing.csv", dtype={"id": str})
    pd.testing.assert_frame_equal(copied, main["hearing"])
    shown = md_tables(section(main["md"], "The base model's hearing"))[0]
    wer = {v.split()[0]: float(w) for v, w in zip(shown["voice"], shown["WER %"])}
    part = main["hearing"][main["hearing"]["voice"] == VOICE]
    expected = {VOICE: 100 * part["word_errors"].sum() / part["words"].sum(), PRETRAINING_VOICE: 0.0}
    assert wer == pytest.approx(expected, abs=0.01)  # (shown to two decimals)


def test_files_logged_to_the_study_run(main):
    logged = artifact_paths(main["client"], main["parent"], "report")
    written = {"report/" + p.relative_to(main["out"]).as_posix() for p in main["out"].rglob("*") if p.is_file()}
    assert "report/report.md" in logged and "report/per_seed.csv" in logged
    assert any(p.startswith("report/configs/") for p in logged)
    assert logged == written


def test_test_outputs_beside_their_reference(main):
    """The report shows what the models answered on the test set (not training rollouts): the first
    examples, the reference and each configuration's greedy answer with its sentence BLEU, from the folder."""
    outputs = pd.read_csv(main["out"] / "test_outputs.csv.gz", dtype=str, keep_default_na=False)
    assert set(outputs["id"]) == set(IDS) and (outputs["reference"] != "").all()
    shown = md_tables(section(main["md"], "Test outputs"))[0]
    assert list(dict.fromkeys(shown["example"])) == sorted(IDS)[:3]
    first = shown.iloc[0]
    assert first["reference"] == REFERENCES[IDS.index(first["example"])]
    per_example = pd.read_csv(main["out"] / "per_example.csv.gz", dtype={"id": str})
    sft = next(c for c in load_folder(main["out"]).configs if c.name == "sft")
    run = sft.rows.sort_values("seed").iloc[0]["run_id"]
    hit = shown[shown["configuration"] == f"sqa sft (seed {int(sft.rows['seed'].min())})"].iloc[0]
    answer = outputs[(outputs["run_id"] == run) & (outputs["id"] == hit["example"])]["hypothesis"].iloc[0]
    bleu = per_example[
        (per_example["run_id"] == run) & (per_example["id"] == hit["example"]) & (per_example["decoding"] == "greedy")
    ]["bleu"].iloc[0]
    assert hit["greedy answer"] == answer and hit["sentence BLEU"] == (f"{bleu:.2f}" if np.isfinite(bleu) else "—")
