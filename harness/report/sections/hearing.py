"""The base model's hearing: its transcription errors per task and voice, from the folder's ``hearing.csv``
(measured by the sweep when the study ended: `harness.sweep.hearing`)."""

from __future__ import annotations

import pandas as pd

from harness.report.document import ReportWriter, fmt_num, fmt_p
from harness.report.export import FILES
from harness.report.folder import ReportData
from harness.report.inference import compare

__all__ = ["hearing_section"]


def hearing_section(w: ReportWriter, data: ReportData) -> None:
    """The base model's transcription errors per task and voice, and the difference between the voices
    (the same texts, paired by example; the base is deterministic, so examples are the only variance)."""
    path = data.dir / FILES["hearing"]
    if not path.is_file():
        return
    from harness.data.synthetic import VOICE  # (the data package loads only for a folder with hearing.csv)

    table = pd.read_csv(path, dtype={"id": str})
    rows = []
    for (task, voice), part in table.groupby(["task", "voice"], sort=True):
        rows.append(
            {
                "task": task,
                "voice": voice + (" (pretraining voice)" if voice == VOICE else " (study voice)"),
                "clips": len(part),
                "WER %": 100 * part["word_errors"].sum() / part["words"].sum(),
                "CER %": 100 * part["char_errors"].sum() / part["chars"].sum(),
            }
        )
    shown = pd.DataFrame(rows)
    diffs = []
    for task, part in table.groupby("task", sort=True):
        voices = sorted(part["voice"].unique())
        if len(voices) != 2:
            continue
        study = next(v for v in voices if v != VOICE)
        by_voice = {v: part[part["voice"] == v].sort_values("id", kind="stable") for v in voices}
        for unit in ("word", "char"):
            feats = {v: by_voice[v][[f"{unit}_errors", f"{unit}s"]].to_numpy(float)[None] for v in voices}
            rate = lambda sums, m: 100 * sums[..., 0] / sums[..., 1]  # noqa: E731  (corpus error rate)
            result = compare(feats[study], feats[VOICE], score=rate)
            diffs.append(
                {
                    "task": task,
                    "rate": "WER" if unit == "word" else "CER",
                    f"{study} − {VOICE}": fmt_num(result.diff, sign=True),
                    "95% CI": f"[{fmt_num(result.ci_low, sign=True)}, {fmt_num(result.ci_high, sign=True)}]",
                    "p": fmt_p(result.p_value),
                }
            )
    w.text(
        "## The base model's hearing",
        "",
        "The starting checkpoint asked to transcribe (its pretraining ASR prompt) each task's test clips, "
        "spoken in the study's voice and in the voice it was pretrained on; corpus word / character error "
        f"rates (%) against what was said (`{FILES['hearing']}`, `harness/eval/hearing.py`).",
    )
    w.text_table(
        shown.assign(**{"WER %": [fmt_num(v) for v in shown["WER %"]], "CER %": [fmt_num(v) for v in shown["CER %"]]})
    )
    if diffs:
        w.text("Difference between the voices (same texts, paired by example; bootstrap over examples):")
        w.text_table(pd.DataFrame(diffs))
