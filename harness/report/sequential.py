"""Decisions over rounds of seeds: repeated confidence intervals with alpha spending, equivalence
within a margin, and what an undecided comparison could still detect.

A study declares its hypotheses (A vs B on one metric and decoding, with an equivalence margin) and
looks at them after each round of seeds (``rounds: [5, 10, 15, 20]`` seeds per configuration). A
look that adds seeds because the last look was undecided is a data-dependent stopping rule: tested
naively at level alpha at every look, the chance of a false verdict grows with the number of looks.
Here every look uses *repeated confidence intervals* (Jennison & Turnbull 1989, "Interim analyses:
the repeated confidence interval approach", JRSS B 51(3):305-361; 2000, "Group Sequential Methods
with Applications to Clinical Trials", ch. 9), which cover the true difference at *every* look at
once, whatever the stopping rule:

1. Boundaries. With K looks at information fractions ``t_k`` (here seeds so far / the budget,
   ``t_K = 1``), the standardised statistics ``Z_k = diff_k / se_k`` of a comparison have, under the
   canonical joint distribution, ``corr(Z_j, Z_k) = sqrt(t_j / t_k)`` (j < k). An alpha-spending
   function ``a(t)`` (Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials",
   Biometrika 70(3):659-663) gives the boundary ``c_k`` of each look by
   ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = a(t_k) - a(t_{k-1})`` at diff = 0, solved by recursive
   numerical integration over the continuation region (Armitage, McPherson & Rowe 1969, JRSS A
   132(2):235-244) in `boundaries`. Spending functions: O'Brien-Fleming type
   ``a(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` (spends little early: the last look keeps nearly
   the fixed design's power) and Pocock type ``a(t) = alpha ln(1 + (e - 1) t)``.
2. Correlation. Seeds added in rounds shrink the seed part of se as 1/n while the test examples,
   shared by every look, do not shrink: the true correlation of two looks is ``se_k / se_j``, at
   least ``sqrt(n_j / n_k)``. Computing the boundaries with ``sqrt(t_j / t_k)`` (t = seeds) takes the
   smaller correlation, which makes them conservative (the repeated looks are treated as more
   independent than they are); `tests/test_sequential.py` simulates null studies through this code
   to show the error rate stays at or below alpha.
3. Per-look intervals. The nominal level of look k, ``p_k = 2 (1 - Phi(c_k))``, is applied to the
   comparison's t statistic (`harness.report.inference.compare`: seed x example bootstrap se,
   Satterthwaite df): ``RCI_k = diff_k -/+ t(1 - p_k / 2, df_k) se_k`` (Jennison & Turnbull 2000,
   section 11.3: nominal levels carried over to t statistics).
4. Verdict of one hypothesis at look k, at the family's per-hypothesis level ``alpha_h``
   (Bonferroni: ``alpha / H`` over the H declared hypotheses, so the family-wise error over all
   hypotheses and all looks is at most alpha):
   - the two-sided ``1 - alpha_h`` RCI excludes 0: **A better** / **A worse**;
   - else the ``1 - 2 alpha_h`` RCI lies inside ``(-margin, +margin)``: **equivalent** (two one-sided
     tests at ``alpha_h`` each; Schuirmann 1987, J. Pharmacokinet. Biopharm. 15(6):657-680, at
     the sequential boundary);
   - else, at the last look (the budget): **unresolved**, with the minimum detectable difference at
     that look's level and the requested power; before it: **continue** (more seeds).
   A hypothesis keeps the first verdict it reaches; later rounds (its configurations may get seeds
   for another hypothesis) do not change it.
5. Replication chance of a superiority verdict: the probability that a fresh study of the same size
   reaches the same verdict at the same level if the observed difference were the truth,
   ``1 - T_df(t_crit - |diff| / se)`` (the observed effect is selected for being large, so this is
   optimistic: a reader's upper bound, not a promise).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from harness.report.inference import Score, compare

__all__ = [
    "BETTER",
    "CONTINUE",
    "EQUIVALENT",
    "SPENDING",
    "UNRESOLVED",
    "VERDICTS",
    "WORSE",
    "Features",
    "Look",
    "boundaries",
    "decide",
    "first_verdict",
    "run_looks",
    "nominal_levels",
    "spent",
]

BETTER, WORSE, EQUIVALENT, UNRESOLVED, CONTINUE = "A better", "A worse", "equivalent", "unresolved", "continue"
VERDICTS = (BETTER, WORSE, EQUIVALENT, UNRESOLVED)  # final ones; CONTINUE only before the last look
SPENDING = ("obrien-fleming", "pocock")
GRID_POINTS = 801  # Simpson nodes over each continuation interval (odd); boundaries to ~1e-6


def spent(t: float, alpha: float, spending: str) -> float:
    """Step 1: alpha spent by information fraction ``t`` (0 < t <= 1) for a two-sided level-``alpha`` design."""
    if spending == "obrien-fleming":
        return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"unknown spending function {spending!r}; valid: {', '.join(SPENDING)}")


def boundaries(fractions: list[float], alpha: float, spending: str = "obrien-fleming") -> list[float]:
    """Step 1: two-sided boundaries ``c_k`` (on the Z scale) of looks at increasing information
    ``fractions`` (the last is 1; a study stopped early just uses the first ones)."""
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or not len(t) or (np.diff(t) <= 0).any() or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1], got {list(fractions)}")
    out: list[float] = []
    # The continuation density of S_k = Z_k sqrt(t_k) (a Brownian motion at time t_k), on nodes.
    nodes = weights = density = None
    previous = 0.0
    for k, tk in enumerate(t):
        target = spent(float(tk), alpha, spending) - previous
        if k == 0:
            c = float(stats.norm.isf(target / 2))
        else:
            step = math.sqrt(tk - t[k - 1])
            mass = weights * density
            c = float(optimize.brentq(_crossing, 0.0, 40.0, args=(tk, step, nodes, mass, target), xtol=1e-10))
        out.append(c)
        previous += target
        # Density of S_k on its continuation interval (-c sqrt(t_k), c sqrt(t_k)).
        edge = c * math.sqrt(tk)
        new_nodes = np.linspace(-edge, edge, GRID_POINTS)
        new_weights = _simpson(new_nodes)
        if k == 0:
            new_density = stats.norm.pdf(new_nodes, scale=math.sqrt(tk))
        else:
            kernel = stats.norm.pdf((new_nodes[:, None] - nodes[None, :]) / step) / step
            new_density = kernel @ (weights * density)
        nodes, weights, density = new_nodes, new_weights, new_density
    return out


def _crossing(c: float, tk: float, step: float, nodes: np.ndarray, mass: np.ndarray, target: float) -> float:
    """Probability of first crossing +-c at time tk from the continuation density (``mass`` on ``nodes``
    at the previous look, ``step`` = sqrt of the time between them), minus the alpha to spend there."""
    edge = c * math.sqrt(tk)
    cross = stats.norm.cdf((-edge - nodes) / step) + stats.norm.sf((edge - nodes) / step)
    return float(np.sum(mass * cross)) - target


def _simpson(nodes: np.ndarray) -> np.ndarray:
    h = (nodes[-1] - nodes[0]) / (len(nodes) - 1)
    w = np.full(len(nodes), 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return w * h / 3


def nominal_levels(looks: list[int], budget: int, alpha: float, spending: str) -> list[float]:
    """Step 3: the two-sided nominal level of each look at ``looks`` seeds (increasing) of ``budget``."""
    return list(_levels(tuple(looks), budget, alpha, spending))


@functools.lru_cache(maxsize=256)
def _levels(looks: tuple[int, ...], budget: int, alpha: float, spending: str) -> tuple[float, ...]:
    return tuple(float(2 * stats.norm.sf(c)) for c in boundaries([n / budget for n in looks], alpha, spending))


@dataclass(frozen=True)
class Look:
    """One hypothesis at one look: the RCIs, the verdict and what it could detect."""

    seeds: int
    diff: float
    se: float
    df: float
    level: float  # nominal two-sided level of the superiority RCI at this look
    low: float  # superiority RCI
    high: float
    eq_low: float  # equivalence RCI (two one-sided tests)
    eq_high: float
    verdict: str
    mdd: float  # the smallest difference this look's test detects with the requested power
    replication: float  # superiority verdicts: chance a same-size study repeats it (step 5); else NaN


def decide(
    diff: float,
    se: float,
    df: float,
    seeds: int,
    level: float,
    eq_level: float,
    margin: float,
    last: bool,
    power: float = 0.8,
) -> Look:
    """Step 4 at one look: ``level`` is this look's nominal two-sided level at alpha_h, ``eq_level`` at
    2 alpha_h (`nominal_levels`); ``last``: the budget is spent after this look."""
    if se > 0:
        t_sup = float(stats.t.isf(level / 2, df))
        t_eq = float(stats.t.isf(eq_level / 2, df))
    else:  # no variance at all: the difference is known exactly
        t_sup = t_eq = 0.0
    low, high = diff - t_sup * se, diff + t_sup * se
    eq_low, eq_high = diff - t_eq * se, diff + t_eq * se
    replication = float("nan")
    if low > 0 or high < 0:
        verdict = BETTER if low > 0 else WORSE
        replication = float(stats.t.sf(t_sup - abs(diff) / se, df)) if se > 0 else 1.0
    elif -margin < eq_low and eq_high < margin:
        verdict = EQUIVALENT
    else:
        verdict = UNRESOLVED if last else CONTINUE
    mdd = (t_sup + float(stats.t.ppf(power, df))) * se if se > 0 else 0.0
    return Look(seeds, diff, se, df, level, low, high, eq_low, eq_high, verdict, mdd, replication)


def run_looks(
    features: Iterable[tuple[np.ndarray, np.ndarray] | None],
    score: Score,
    looks: list[int],
    alpha: float,
    margin: float,
    spending: str = "obrien-fleming",
    power: float = 0.8,
    n_boot: int = 10_000,
) -> list[Look]:
    """One hypothesis at every look whose features exist: ``features`` yields, look by look, the
    ``(a[S_a, M, *F], b[S_b, M, *F])`` of the seeds so far (None: that look has not run), ``looks`` the
    seeds per configuration at each look (the last is the budget), ``alpha`` the hypothesis's share of
    the family's alpha. The same code decides the report's hypotheses and the simulated null studies of
    ``tests/test_sequential.py``."""
    levels = nominal_levels(looks, looks[-1], alpha, spending)
    eq_levels = nominal_levels(looks, looks[-1], min(2 * alpha, 0.999), spending)
    out: list[Look] = []
    for k, pair in enumerate(features):
        if pair is None or k >= len(looks):
            break
        c = compare(pair[0], pair[1], score=score, n_boot=n_boot)
        out.append(decide(c.diff, c.se, c.df, looks[k], levels[k], eq_levels[k], margin, k == len(looks) - 1, power))
    return out


def first_verdict(looks: list[Look]) -> tuple[int, Look] | None:
    """(index, look) of the first look that decided, else of the latest (None for no look): the verdict
    a hypothesis keeps (step 4)."""
    for k, look in enumerate(looks):
        if look.verdict != CONTINUE:
            return k, look
    return (len(looks) - 1, looks[-1]) if looks else None


Features = Callable[[int], tuple[np.ndarray, np.ndarray] | None]
