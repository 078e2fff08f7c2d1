"""What the trained models answered on the test set, beside the reference and its score.

Export (`test_outputs_frame`): from each finished trial's per-example test artifact
(``EXAMPLES_ARTIFACT``: ids, references, greedy hypotheses), the folder's ``test_outputs.csv.gz``
(``run_id, id, reference, hypothesis``). Section (`test_outputs_section`), from that file and
``per_example.csv.gz`` alone: the first test examples (by id), each with its reference and every
configuration's greedy answer (its lowest seed) with that answer's sentence BLEU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from harness.report.document import ReportWriter, fmt_num
from harness.vocabulary import AUDIO_TOKEN

if TYPE_CHECKING:  # (harness.report.folder imports export, which imports this module)
    from harness.report.folder import ReportData

__all__ = ["EXAMPLES_SHOWN", "TEST_OUTPUTS_FILE", "test_outputs_frame", "test_outputs_section"]

TEST_OUTPUTS_FILE = "test_outputs.csv.gz"
EXAMPLES_SHOWN = 3


def test_outputs_frame(examples: dict[str, dict | None]) -> pd.DataFrame:
    """``run_id, id, reference, hypothesis`` of every run's greedy test outputs."""
    frames = [
        pd.DataFrame(
            {
                "run_id": run_id,
                "id": data["ids"],
                "reference": data.get("references") or [""] * len(data["ids"]),
                "hypothesis": data.get("hypotheses") or [""] * len(data["ids"]),
            }
        )
        for run_id, data in examples.items()
        if data and data.get("ids")
    ]
    columns = ["run_id", "id", "reference", "hypothesis"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


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
