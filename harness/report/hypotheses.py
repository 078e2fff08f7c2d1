"""The study's declared hypotheses, evaluated look by look from a report folder (`harness.report.sequential`).

The hypotheses are read from the study file recorded in the folder (``study.yaml``: what was declared
when the study ran, not today's file). Look k uses, for each configuration, exactly the first
``rounds[k]`` seeds of the study's seed list, whatever later rounds added: a resumed or finished study
gives every look the same numbers. A look is evaluated only when both configurations of a hypothesis
have all its seeds. A hypothesis keeps the verdict of the first look that decides it; `next_round`
names the configurations whose hypotheses are still open after the last look run (the seeds a sweep
adds next).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import yaml
from mlflow import MlflowClient

from harness.report.comparisons import N_BOOTSTRAP, score_for
from harness.report.export import export_study
from harness.report.folder import Config, ReportData, load_folder
from harness.report.sequential import CONTINUE, first_verdict, run_looks
from harness.study.hypotheses import HypothesesSpec, HypothesisSpec, matches
from harness.sweep.stores import STORE_DIR
from harness.vocabulary import SEED

__all__ = [
    "HYPOTHESES_FILE",
    "Declared",
    "declared",
    "evaluate",
    "next_round",
    "restricted",
    "round_evidence",
    "select",
    "verdicts",
]

HYPOTHESES_FILE = "hypotheses.csv"  # every hypothesis x look


@dataclasses.dataclass(frozen=True)
class Declared:
    """What the study file in the folder declared: the hypotheses and the seed budget they draw on."""

    spec: HypothesesSpec
    seeds: list[int]

    @property
    def looks(self) -> list[int]:
        return self.spec.looks(len(self.seeds))


def declared(study_text: str) -> Declared | None:
    """The hypotheses of a recorded study file, or None when it declares none."""
    doc = yaml.safe_load(study_text) if study_text else None
    if not isinstance(doc, dict) or not doc.get("hypotheses"):
        return None
    seeds = doc.get("seeds") or [int((doc.get("fixed") or {}).get(SEED, 0))]
    return Declared(HypothesesSpec.model_validate(doc["hypotheses"]), [int(s) for s in seeds])


def select(data: ReportData, selector: dict) -> Config | None:
    """The one configuration of the folder a selector names (None if none or several)."""
    found = [c for c in data.configs if matches(selector, c.label, {**c.resolved, "task": c.task})]
    return found[0] if len(found) == 1 else None


def restricted(config: Config, seeds: list[int]) -> Config | None:
    """``config`` restricted to ``seeds`` (None unless it has every one of them)."""
    rows = config.rows[config.rows["seed"].isin(seeds)].sort_values("seed").reset_index(drop=True)
    return dataclasses.replace(config, rows=rows) if sorted(rows["seed"]) == sorted(seeds) else None


def _features(data: ReportData, test: HypothesisSpec, a_all: Config | None, b_all: Config | None, found: Declared):
    """Look by look, the two configurations' features over the look's seeds (stops at a look not run)."""
    if a_all is None or b_all is None or data.example_ids(a_all, "greedy") != data.example_ids(b_all, "greedy"):
        return
    for n in found.looks:
        a, b = restricted(a_all, found.seeds[:n]), restricted(b_all, found.seeds[:n])
        if a is None or b is None:
            return
        fa, fb = data.features(a, test.metric, test.decoding), data.features(b, test.metric, test.decoding)
        if fa is None or fb is None:
            return
        yield fa, fb


def evaluate(data: ReportData, n_boot: int) -> pd.DataFrame:
    """Every declared hypothesis at every look the folder's seeds allow: one row each (empty when the
    study declared none)."""
    found = declared(data.study_text)
    if found is None:
        return pd.DataFrame()
    spec = found.spec
    rows = []
    for test in spec.tests:
        a, b = select(data, test.a), select(data, test.b)
        looks = run_looks(
            _features(data, test, a, b, found),
            score_for(test.metric, test.decoding),
            found.looks,
            spec.per_hypothesis_alpha,
            test.margin,
            spec.spending,
            spec.power,
            n_boot,
        )
        kept = first_verdict(looks)
        for k, look in enumerate(looks):
            rows.append(
                {
                    "hypothesis": test.name,
                    "A": a.name,
                    "B": b.name,
                    "task": a.task,
                    "metric": test.metric,
                    "decoding": test.decoding,
                    "margin": test.margin,
                    "look": k + 1,
                    "looks": len(found.looks),
                    "alpha_family": spec.alpha,
                    "alpha_hypothesis": spec.per_hypothesis_alpha,
                    **dataclasses.asdict(look),
                    "counts": kept is not None and kept[0] == k and look.verdict != CONTINUE,
                }
            )
    return pd.DataFrame(rows)


def round_evidence(study_name: str, tracking_uri: str) -> tuple[ReportData, pd.DataFrame]:
    """A running study's evidence exported from the store (into ``<store>/rounds/<study>``, kept between
    rounds so that the base model's hearing is measured once) and its hypotheses at every look so far."""
    folder = Path(STORE_DIR) / "rounds" / study_name
    export_study(MlflowClient(tracking_uri=tracking_uri), study_name, folder, previous=folder)
    data = load_folder(folder)
    return data, evaluate(data, N_BOOTSTRAP)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per hypothesis: the look that decided it, else its latest look (still open or unresolved)."""
    if table.empty:
        return table
    out = []
    for _, rows in table.groupby("hypothesis", sort=False):
        kept = rows[rows["counts"]]
        out.append(kept.iloc[0] if len(kept) else rows.iloc[-1])
    return pd.DataFrame(out).reset_index(drop=True)


def next_round(data: ReportData, table: pd.DataFrame) -> tuple[int, list[dict]] | None:
    """(the next look's seeds per configuration, the selectors of the configurations that need them: both
    sides of every hypothesis still open), or None when every hypothesis is decided, the budget is spent
    or nothing is declared; ``table``: `evaluate`'s (with the report's resamples, so that a sweep plans
    on the verdicts its report shows)."""
    found = declared(data.study_text)
    if found is None or table.empty:
        return None
    done = verdicts(table)
    open_ = done[done["verdict"] == CONTINUE]
    if open_.empty:
        return None
    look = int(open_["look"].min())  # 1-based: the index of the next look
    if look >= len(found.looks):
        return None
    tests = {t.name: t for t in found.spec.tests}
    selectors = [getattr(tests[name], side) for name in open_["hypothesis"] for side in ("a", "b")]
    return found.looks[look], selectors
