"""The hypotheses a study declares before it runs, and the rounds of seeds that answer them.

A study file may carry::

    seeds: [0, 1, ..., 19]            # the budget: at most this many seeds per configuration
    hypotheses:
      alpha: 0.05                     # family-wise error over every hypothesis and every look
      power: 0.8                      # for the minimum detectable difference of an unresolved one
      spending: obrien-fleming        # or pocock: how alpha is spent over the looks
      rounds: [5, 10, 15, 20]         # seeds per configuration at each look (default: one look, all seeds)
      tests:
        - name: grpo_vs_sft_sqa
          a: {task: sqa, label: grpo}   # selects exactly one configuration of the study
          b: {task: sqa, label: sft}
          metric: bleu                  # one of harness.vocabulary.METRICS
          decoding: sampled             # or greedy
          margin: 2.0                   # equivalence margin, in the metric's points (x100)

Only these hypotheses get verdict words in the report (`harness.report.hypotheses`); everything
else there is exploratory. A *selector* (``a``, ``b``) is a mapping of dotted TrialConfig keys (and
optionally ``label``, the method label or the baseline's label) that must match exactly one
configuration of the study: a grid point or a baseline, seeds aside. The first round runs every
configuration with the first ``rounds[0]`` seeds; each later round adds seeds only to the
configurations of hypotheses still undecided (`harness.cli`'s sweep drives the rounds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.study.base import Scalar
from harness.study.keys import flatten
from harness.vocabulary import METRICS

__all__ = [
    "DECODINGS",
    "LABEL_KEY",
    "HypothesesSpec",
    "HypothesisSpec",
    "StudyConfiguration",
    "matches",
]

DECODINGS = ("greedy", "sampled")
LABEL_KEY = "label"  # a selector key that is not a TrialConfig key: the configuration's label


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HypothesisSpec(_Strict):
    """One declared comparison, A - B."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    a: dict[str, Scalar] = Field(min_length=1)
    b: dict[str, Scalar] = Field(min_length=1)
    metric: Literal[METRICS] = "bleu"  # type: ignore[valid-type]  # one of the paper's metrics
    decoding: Literal["greedy", "sampled"] = "sampled"
    margin: float = Field(gt=0)  # required: no hypothesis without an equivalence margin


class HypothesesSpec(_Strict):
    """The study's confirmatory family and its stopping rule."""

    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0, lt=1)
    spending: Literal["obrien-fleming", "pocock"] = "obrien-fleming"
    rounds: list[int] | None = Field(None, min_length=1)
    tests: list[HypothesisSpec] = Field(min_length=1)

    @field_validator("rounds")
    @classmethod
    def _increasing(cls, rounds: list[int] | None) -> list[int] | None:
        if rounds is not None:
            if rounds[0] < 2:
                raise ValueError(f"the first round needs at least 2 seeds (got {rounds[0]}): one has no seed variance")
            if any(b <= a for a, b in zip(rounds, rounds[1:])):
                raise ValueError(f"rounds {rounds} must increase (seeds per configuration at each look)")
        return rounds

    @model_validator(mode="after")
    def _unique_names(self) -> HypothesesSpec:
        names = [t.name for t in self.tests]
        repeated = [n for i, n in enumerate(names) if n in names[:i]]
        if repeated:
            raise ValueError(f"hypothesis name {repeated[0]!r} is used twice; name each hypothesis once")
        return self

    def looks(self, budget: int) -> list[int]:
        """Seeds per configuration at each look (the last is the budget)."""
        return list(self.rounds) if self.rounds else [budget]

    @property
    def per_hypothesis_alpha(self) -> float:
        """Bonferroni over the family: each hypothesis's RCIs are at this level (all looks together)."""
        return self.alpha / len(self.tests)


@dataclass(frozen=True)
class StudyConfiguration:
    """One configuration a study runs (seeds aside): a grid point's parameters or a baseline."""

    label: str
    params: dict[str, Any]  # the grid point's searched parameters (empty for a baseline)
    baseline: int | None
    flat: dict[str, Any]  # its resolved TrialConfig, flattened to dotted keys (seed removed)


def matches(selector: Mapping[str, Any], label: str, resolved: Mapping[str, Any]) -> bool:
    """Whether a configuration (its label and resolved TrialConfig, nested or flat) is the one
    ``selector`` names: every key equal (numbers by value, text case-sensitively)."""
    flat = flatten(resolved) if any(isinstance(v, Mapping) for v in resolved.values()) else dict(resolved)
    for key, wanted in selector.items():
        have = label if key == LABEL_KEY else flat.get(key, _MISSING)
        if have is _MISSING or not _equal(have, wanted):
            return False
    return True


_MISSING = object()


def _equal(have: Any, wanted: Any) -> bool:
    if isinstance(have, bool) or isinstance(wanted, bool):
        return str(have).lower() == str(wanted).lower()
    try:
        return float(have) == float(wanted)
    except (TypeError, ValueError):
        return str(have) == str(wanted)
