"""What the trained models answered on the test set, beside the reference and its score.

From the folder's ``test_outputs.csv.gz`` (`harness.report.artifacts.test_outputs_frame` wrote it from
each finished trial's per-example test artifact: ``run_id, id, reference, hypothesis``) and
``per_example.csv.gz`` alone: the first test examples (by id), each with its reference and every
configuration's greedy answer (its lowest seed) with that answer's sentence BLEU.
"""

from __future__ import annotations

import pandas as pd

from harness.report.artifacts import TEST_OUTPUTS_FILE
from harness.report.document import ReportWriter, fmt_num
from harness.report.folder import ReportData
from harness.vocabulary import AUDIO_TOKEN

__all__ = ["EXAMPLES_SHOWN", "test_outputs_section"]

EXAMPLES_SHOWN = 3


def test_outputs_section(w: ReportWriter, data: ReportData) -> None:
    path = data.dir / TEST_OUTPUTS_FILE
    if not path.is_file() or not data.configs:
        return
    outputs = pd.read_csv(path, dtype=str, keep_default_na=False)
    greedy = data.per_example[data.per_example["decoding"] == "greedy"] if not data.per_example.empty else None
    ids = sorted(outputs["id"].unique())[:EXAMPLES_SHOWN]
    rows = []
    for example in ids:
        for c in data.configs:
            run = c.rows.sort_values("seed").iloc[0]
            found = outputs[(outputs["run_id"] == run["run_id"]) & (outputs["id"] == example)]
            if found.empty:
                continue
            score = None
            if greedy is not None:
                hit = greedy[(greedy["run_id"] == run["run_id"]) & (greedy["id"] == example)]
                score = float(hit["bleu"].iloc[0]) if len(hit) else None
            rows.append(
                {
                    "example": example,
                    "reference": found["reference"].iloc[0],
                    "configuration": f"{c.task} {c.name} (seed {int(run['seed'])})",
                    "greedy answer": found["hypothesis"].iloc[0].replace(AUDIO_TOKEN, "[audio]"),
                    "sentence BLEU": fmt_num(score) if score is not None else "—",
                }
            )
    if not rows:
        return
    w.text(
        "## Test outputs",
        "",
        f"The first {len(ids)} test examples: the reference and each configuration's greedy answer (its lowest "
        f"seed, best validation checkpoint) with its sentence BLEU (x100); every answer is in `{TEST_OUTPUTS_FILE}`.",
    )
    w.text_table(pd.DataFrame(rows))
