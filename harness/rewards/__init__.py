"""Text-similarity rewards for GRPO (Elmakies et al. 2025 use e.g. sentence BLEU as the reward).

A reward is specified as one metric name or a weighted sum of them::

    parse_reward("bleu")
    parse_reward("bleu+0.5*bertscore")
    parse_reward("0.3*rouge1 + 0.7*meteor")

Metrics (each per sentence, in [0, 1]; see :mod:`harness.rewards.metrics`): ``bleu``,
``rouge1``, ``rouge2``, ``rougeL``, ``meteor``, ``bertscore``. Names are case-insensitive.

A weighted sum is **normalised by the sum of its weights**: ``bleu+0.5*bertscore`` gives
``(1.0*bleu + 0.5*bertscore) / 1.5``, so the total stays in [0, 1] and only the weight ratios
matter. Weights must be positive; a metric may appear once.

The METEOR variant depends on whether offline WordNet could be set up; record
``meteor_backend()`` with any result that uses METEOR.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from harness.rewards.metrics import REWARD_NAMES, meteor_backend, score_many

__all__ = ["REWARD_NAMES", "Reward", "RewardSpecError", "meteor_backend", "parse_reward"]

_CANONICAL = {name.lower(): name for name in REWARD_NAMES}
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"^\s*(?:(?P<weight>{_NUMBER})\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$")


class RewardSpecError(ValueError):
    """A reward spec that names an unknown metric or is malformed."""


def _error(problem: str, spec: str) -> RewardSpecError:
    return RewardSpecError(
        f"{problem} in {spec!r}; valid metrics: {', '.join(REWARD_NAMES)}; combine as 'bleu+0.5*bertscore'"
    )


class Reward:
    """A (weighted) text-similarity reward; build it with :func:`parse_reward`."""

    def __init__(self, spec: str, components: dict[str, float]):
        self.spec = spec
        self.components = dict(components)

    def __call__(self, hyps: Sequence[str], refs: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return (total reward per sample, float64 in [0, 1]; per-component scores in [0, 1])."""
        parts = score_many(list(self.components), hyps, refs)
        total = sum(w * parts[name] for name, w in self.components.items())
        total = np.asarray(total, dtype=np.float64) / sum(self.components.values())
        return np.clip(total, 0.0, 1.0), parts

    def __repr__(self) -> str:
        return f"Reward({self.spec!r}, components={self.components})"


def parse_reward(spec: str) -> Reward:
    """Parse ``"bleu"``, ``"bleu+0.5*bertscore"``, ``"0.3*rouge1 + 0.7*meteor"`` into a Reward."""
    if not isinstance(spec, str) or not spec.strip():
        raise _error("empty reward spec", str(spec))
    if "-" in re.sub(rf"{_NUMBER}", "", spec):
        raise _error("negative weights (or '-') are not allowed", spec)
    components: dict[str, float] = {}
    for term in re.split(r"(?<!\d[eE])\+", spec):
        m = _TERM.match(term)
        if not m:
            expected = "(expected 'name' or 'weight*name')"
            raise _error(f"malformed term {term.strip()!r} {expected}", spec)
        name = _CANONICAL.get(m["name"].lower())
        if name is None:
            raise _error(f"unknown reward {m['name']!r}", spec)
        weight = float(m["weight"]) if m["weight"] is not None else 1.0
        if not weight > 0 or not np.isfinite(weight):
            raise _error(f"weight of {name!r} must be positive, got {m['weight']}", spec)
        if name in components:
            raise _error(f"reward {name!r} appears twice", spec)
        components[name] = weight
    return Reward(spec, components)
