"""Markdown formatting of cells and tables, and the report document (report.md + the CSV / PNG files
it links)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.vocabulary import METRIC_NAMES, METRICS

__all__ = ["ReportWriter", "display_cells", "fmt_cell", "fmt_num", "fmt_p", "md_table", "slug", "stats_columns"]


# --------------------------------------------------------------------------------------------------
# Formatting


def fmt_cell(mean: float, std: float, n: int, bold: bool = False) -> str:
    """``mean ± std``, two decimals (the seeds are the table's own column); "—" when no trial logged the
    metric, ``± n/a`` for one seed."""
    if not n:
        return "—"
    value = f"**{mean:.2f}**" if bold else f"{mean:.2f}"
    spread = f"{std:.2f}" if n > 1 and np.isfinite(std) else "n/a"
    return f"{value} ± {spread}"


def fmt_p(p: float) -> str:
    """A p-value as reports print it: ``< 0.001``, else three decimals."""
    if p is None or not np.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_num(value: float, digits: int = 2, sign: bool = False, suffix: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}{suffix}" if sign else f"{value:.{digits}f}{suffix}"


def md_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    cols = [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._+-]+", "-", str(p)).strip("-") for p in parts if p != "")


def stats_columns(stats: dict[str, tuple[float, float, int]]) -> dict[str, float]:
    """Flat numeric CSV columns ``BLEU mean``, ``BLEU std``, ``BLEU n``, ... from {metric: (mean, std, n)}."""
    out = {}
    for metric in METRICS:
        name = METRIC_NAMES[metric]
        mean, std, n = stats[metric]
        out.update({f"{name} mean": mean, f"{name} std": std, f"{name} n": int(n)})
    return out


def display_cells(numeric: pd.DataFrame, bold: dict[str, set[int]] | None = None) -> dict[str, list[str]]:
    """Metric columns of a numeric table formatted as ``mean ± std``; rows in ``bold[name]`` bolded."""
    bold = bold or {}
    out = {}
    for metric in METRICS:
        name = METRIC_NAMES[metric]
        out[name] = [
            fmt_cell(r[f"{name} mean"], r[f"{name} std"], r[f"{name} n"], i in bold.get(name, ()))
            for i, r in enumerate(numeric.to_dict("records"))
        ]
    return out


# --------------------------------------------------------------------------------------------------
# Report document


class ReportWriter:
    """Collects markdown and writes every CSV / PNG it is given into ``out_dir``."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.lines: list[str] = []
        self.files: list[Path] = []

    def text(self, *lines: str) -> None:
        self.lines += [*lines, ""]

    def table(self, name: str, numeric: pd.DataFrame, shown: pd.DataFrame | None = None, caption: str = "") -> None:
        path = self.out_dir / f"{name}.csv"
        numeric.to_csv(path, index=False)
        self.files.append(path)
        if caption:
            self.text(caption)
        self.text(md_table(numeric if shown is None else shown))
        self.text(f"<sub>CSV: `{path.name}`</sub>")

    def text_table(self, frame: pd.DataFrame) -> None:
        """A table shown in the report only (its numbers are in another file of the folder)."""
        self.text(md_table(frame))

    def figure(self, name: str, fig: Figure | None, alt: str) -> None:
        if fig is None:
            return
        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        self.files.append(path)
        self.text(f"![{alt}]({path.name})")

    def write(self) -> Path:
        path = self.out_dir / "report.md"
        path.write_text("\n".join(self.lines).rstrip() + "\n", encoding="utf-8")
        self.files.append(path)
        return path
