"""The paper's published tables (Elmakies et al. 2025), shipped as CSVs in ``harness/published``."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["PUBLISHED_TABLES", "PUBLISHED_TITLE", "published_tables"]

PUBLISHED_TITLE = "Published (Elmakies et al. 2025) — not measured here"
PUBLISHED_TABLES = {  # file -> (task it belongs to, caption)
    "table1_librisqa.csv": ("sqa", "Table 1: spoken QA, LibriSQA part I test."),
    "table2_covost2_en_de.csv": ("ast", "Table 2: speech translation, CoVoST2 en→de test."),
    "table3_reward_ablation.csv": (
        "sqa",
        "Table 3: GRPO on Granite-Speech 2B / LibriSQA trained with each reward (rows); AVG = mean of the six metrics.",
    ),
}


# --------------------------------------------------------------------------------------------------
# Published figures


@lru_cache(maxsize=1)
def published_tables() -> dict[str, pd.DataFrame]:
    """The paper's tables shipped in ``harness/published`` (file name -> table; read once: do not modify)."""
    folder = resources.files("harness").joinpath("published")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            with entry.open("r", encoding="utf-8") as fh:
                out[entry.name] = pd.read_csv(fh)
    return out
