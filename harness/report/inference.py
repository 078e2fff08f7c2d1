"""Seed-aware comparison of two configurations: effect, CI, p-value and power over seeds x examples.

Design. Configuration A has ``S_a`` training seeds, B has ``S_b``; every seed of both is evaluated
on the same M test examples, so examples are *paired* across A and B and *crossed* with seeds.
``a[s, m, *F]`` holds per-example features (``F = ()`` for a per-example score such as ROUGE x100,
``(10,)`` for BLEU statistics, ``(P, 10)`` for P sampled passes); ``score(sums, M)`` turns the
features of one seed summed over the examples into its corpus score. The estimand is the
difference of the configurations' expected corpus scores, over training seeds *and* test examples:
a new seed or a new test set each move it, so both must enter the uncertainty. The previous test
(the paired bootstrap of earlier reports) averaged seeds first and resampled examples
only, so run-to-run variance never reached a p-value.

Steps (numbers match the code of `compare` and `seeds_needed`):

1. Point estimate: ``diff = mean_s score_A(s) - mean_s score_B(s)``, per-seed scores on all M
   examples; ``seed_sd`` is their sample SD (ddof=1).
2. Two-level ("pigeonhole") bootstrap of a crossed design (Owen 2007, "The pigeonhole bootstrap",
   Ann. Appl. Stat. 1(2):386-411). Each replicate draws M examples with replacement, *shared* by A
   and B (the pairing), and, independently, S_a seeds of A and S_b seeds of B with replacement.
   The examples enter as a count matrix ``C[B, M]`` (multinomial rows): per-seed resampled sums are
   ``einsum('bm,sm...->bs...', C, x)`` (one matrix product, in chunks of replicates to bound
   memory), scored for every seed; the seed draw then weights those scores.
3. Small-sample correction of the seed level: resampling n values with replacement gives the mean a
   variance (n-1)/n times the usual s^2/n (the plug-in variance; Efron & Tibshirani 1993, "An
   Introduction to the Bootstrap"; 0.8 at n = 5, 0.5 at n = 2). Each replicate's seed deviation
   is inflated by sqrt(n/(n-1)) around that replicate's all-seed mean:
   ``T(I) + sqrt(n/(n-1)) * (mean_j T_{s_j}(I) - T(I))`` per configuration (n > 1).
4. ``se`` = SD of the replicate differences. It splits as ``se^2 = v_a + v_b + v_e``: seed parts
   ``v = seed_sd^2 / n`` (the step-3 variance of a seed mean) and the example part ``v_e`` = the
   rest (example sampling, which more seeds do not shrink; clipped at 0).
5. Degrees of freedom: Satterthwaite (1946) over the three variance parts,
   ``df = (v_a + v_b + v_e)^2 / (v_a^2/(S_a-1) + v_b^2/(S_b-1) + v_e^2/(M-1))``. When the examples
   add nothing (``v_e = 0``) this *is* the Welch-Satterthwaite df of a t-test on the per-seed
   scores (Welch 1947); when neither configuration varies over seeds (a deterministic model, or
   seeds that happen to agree) it is M - 1, the paired t-test over examples; in between it moves
   continuously. (Welch's df from the seed variances alone would jump from ~1 to infinity as a
   seed variance goes from tiny to 0, and with 2 seeds would use t(0.975, ~1) = 12.7 even when the
   examples dominate se.) A configuration with one seed contributes no seed part and no df term:
   its seed variance cannot be estimated, so it is treated as deterministic, which is right for the
   base model evaluated greedily and too optimistic for a trained model (report n = 1 as such).
6. ``ci = diff ± t(1 - alpha/2, df) * se`` and two-sided ``p = 2 * (1 - T_df(|diff| / se))``
   (p = 1 when diff = 0 = se, 0 when only se = 0). The bootstrap gives se only: with 2-5 seeds its
   distribution is too coarse and too narrow for percentile intervals.
7. Power: ``mdd = (t(1 - alpha/2, df) + t(power, df)) * se``, the smallest true difference that a
   two-sided level-alpha test detects with probability ``power`` (normal-theory approximation,
   e.g. Cohen 1988; 2.80 * se at alpha = 0.05, power = 0.8, df = inf).
8. `seeds_needed`: the smallest n seeds per configuration with ``mdd(n) <= target``, projecting
   ``se^2(n) = (seed_sd_a^2 + seed_sd_b^2) / n + v_e`` and df(n) by step 5: the seed parts shrink
   as 1/n, the example part stays (the seed x example interaction, which also shrinks with n, is
   kept whole: the projection errs towards more seeds). None when the example part alone misses.
9. `adjust`: Holm (1979) step-down FWER or Benjamini-Hochberg (1995) FDR adjusted p-values over one
   family, by ``statsmodels.stats.multitest.multipletests``; NaN entries stay NaN, outside it.

Known bias: with a seed x example interaction (a seed better on some examples, worse on others)
the pigeonhole bootstrap counts its variance about three times instead of once, in the seed part,
the example part and their product (Owen 2007; McCullagh 2000, "Resampling and exchangeable
arrays", Bernoulli 6(2), shows that no bootstrap is exact for crossed designs). So se is
conservative, by at most a factor sqrt(3), and by little when seed or example effects dominate.
Simulated (400 null datasets, S = 5, M = 300): with interaction SD 4 against seed SD 0.2 and
example SD 0.5, se is 1.39x the true SD and the 5 % test rejects 0.5 %; with seed SD 1, example
SD 2.8 and interaction SD 1 (S = 5, M = 100), 1.07x and 3.7 %.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.eval.bleu_stats import corpus_bleu_from_stats

__all__ = [
    "ADJUST_METHODS",
    "CHUNK_ELEMENTS",
    "Comparison",
    "Score",
    "adjust",
    "bleu_score",
    "compare",
    "mean_score",
    "per_pass",
    "projected_mdd",
    "seeds_needed",
]

Score = Callable[[np.ndarray, int], np.ndarray]
ADJUST_METHODS = ("holm", "fdr_bh")
CHUNK_ELEMENTS = 2_000_000  # replicates per chunk x (examples or seeds x features): ~16 MB float64 each


# --------------------------------------------------------------------------------------------------
# Scores: per-seed summed features [..., *F] and the number of examples M -> corpus score [...]


def mean_score(sums: np.ndarray, m: int) -> np.ndarray:
    """Mean of a per-example score (F = ()): ROUGE, METEOR, BERTScore, sentence BLEU."""
    return sums / m


def bleu_score(sums: np.ndarray, m: int) -> np.ndarray:
    """Corpus BLEU from summed `harness.eval.bleu_stats.bleu_stats` (F = (10,))."""
    return corpus_bleu_from_stats(sums)


def per_pass(score: Score) -> Score:
    """``score`` for features with a leading pass axis (F = (P, *F')): the mean over the P decoding
    passes of each pass's corpus score (e.g. sampled decoding averaged over k passes)."""

    def passes(sums: np.ndarray, m: int) -> np.ndarray:
        return score(sums, m).mean(axis=-1)

    passes.__name__ = f"per_pass({getattr(score, '__name__', 'score')})"
    return passes


mean_passes_score = per_pass(mean_score)  # F = (P,)
bleu_passes_score = per_pass(bleu_score)  # F = (P, 10)


# --------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class Comparison:
    """A - B. ``se_seeds`` / ``se_examples``: the seed and example parts of se (step 4)."""

    diff: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    mdd: float
    seeds_a: int
    seeds_b: int
    examples: int
    seed_sd_a: float
    seed_sd_b: float
    se_seeds: float
    se_examples: float
    alpha: float
    power: float
    n_boot: int


def compare(
    a: np.ndarray,
    b: np.ndarray,
    score: Score = mean_score,
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Comparison:
    """Seed-aware comparison of configurations A (``a[S_a, M, *F]``) and B (``b[S_b, M, *F]``),
    paired by example: see the module docstring for the method."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim < 2 or a.shape[1:] != b.shape[1:] or 0 in a.shape[:2] or 0 in b.shape[:2]:
        raise ValueError(
            f"compare needs a[S_a, M, *F] and b[S_b, M, *F] with the same M and F, got {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("compare needs finite features (drop examples with a missing score first)")
    s_a, s_b, m = a.shape[0], b.shape[0], a.shape[1]

    # Step 1: per-seed scores on all examples.
    full_a, full_b = score(a.sum(axis=1), m), score(b.sum(axis=1), m)
    if full_a.shape != (s_a,) or full_b.shape != (s_b,):
        raise ValueError(f"score maps [S, *F] sums to {full_a.shape}, not [S]: does it match F = {a.shape[2:]}?")
    diff = float(full_a.mean() - full_b.mean())
    sd_a, sd_b = _sd(full_a), _sd(full_b)

    # Steps 2-3: replicate differences, se.
    reps = _pigeonhole(a, b, score, n_boot, np.random.default_rng(seed))
    se = float(reps.std(ddof=1))

    # Step 4: seed and example parts of se^2; step 5: df.
    v_a, v_b = _seed_part(sd_a, s_a), _seed_part(sd_b, s_b)
    v_e = max(se**2 - v_a - v_b, 0.0)
    df = _satterthwaite(v_a, s_a, v_b, s_b, v_e, m)

    # Step 6: CI and p; step 7: minimum detectable difference.
    t_crit = float(stats.t.ppf(1 - alpha / 2, df))
    if se > 0:
        p = float(2 * stats.t.sf(abs(diff) / se, df))
    else:
        p = 1.0 if diff == 0 else 0.0
    mdd = (t_crit + float(stats.t.ppf(power, df))) * se
    return Comparison(
        diff=diff,
        se=se,
        ci_low=diff - t_crit * se,
        ci_high=diff + t_crit * se,
        p_value=p,
        df=df,
        mdd=mdd,
        seeds_a=s_a,
        seeds_b=s_b,
        examples=m,
        seed_sd_a=sd_a,
        seed_sd_b=sd_b,
        se_seeds=float(np.sqrt(v_a + v_b)),
        se_examples=float(np.sqrt(v_e)),
        alpha=alpha,
        power=power,
        n_boot=n_boot,
    )


def _pigeonhole(a: np.ndarray, b: np.ndarray, score: Score, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Steps 2-3: ``n_boot`` replicate differences of the seed-corrected means, A - B."""
    s_a, s_b, m = a.shape[0], b.shape[0], a.shape[1]
    feat = a.shape[2:]
    # Both configurations' seeds side by side, examples first: x[M, (S_a + S_b) * prod(F)].
    x = np.concatenate([a, b]).reshape(s_a + s_b, m, -1).transpose(1, 0, 2).reshape(m, -1)
    chunk = max(1, CHUNK_ELEMENTS // max(m, x.shape[1]))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        # Step 2: shared example draw (counts), scored per seed: einsum('bm,sm...->bs...').
        counts = _example_counts(rng, rows, m)
        per_seed = score((counts @ x).reshape(rows, s_a + s_b, *feat), m)
        # Step 2: independent seed draws per configuration; step 3: inflated seed deviations.
        stat_a = _seed_mean(per_seed[:, :s_a], rng)
        stat_b = _seed_mean(per_seed[:, s_a:], rng)
        out[start : start + rows] = stat_a - stat_b
    return out


def _example_counts(rng: np.random.Generator, rows: int, m: int) -> np.ndarray:
    """Step 2: ``[rows, m]`` times each example is drawn in m draws with replacement (multinomial
    rows; indices + bincount is ~3x faster than ``rng.multinomial``)."""
    draws = rng.integers(0, m, size=(rows, m), dtype=np.int32) + m * np.arange(rows, dtype=np.int32)[:, None]
    return np.bincount(draws.ravel(), minlength=rows * m).reshape(rows, m).astype(float)


def _seed_mean(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Steps 2-3 for one configuration: mean over n seeds drawn with replacement, its deviation from
    the replicate's all-seed mean inflated by sqrt(n / (n - 1)); ``per_seed[rows, n]``."""
    rows, n = per_seed.shape
    everyone = per_seed.mean(axis=1)
    if n == 1:
        return everyone
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=rows)
    drawn = (draws * per_seed).sum(axis=1) / n
    return everyone + np.sqrt(n / (n - 1)) * (drawn - everyone)


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def _seed_part(sd: float, n: int) -> float:
    """Step 4: variance of a mean of n seeds; 0 for one seed (treated as deterministic, step 5)."""
    return sd**2 / n if n > 1 else 0.0


def _satterthwaite(v_a: float, n_a: int, v_b: float, n_b: int, v_e: float, m: int) -> float:
    """Step 5: Satterthwaite df of v_a + v_b + v_e with n_a - 1, n_b - 1 and m - 1 df; inf if all 0."""
    terms = [(v_a, n_a - 1), (v_b, n_b - 1), (v_e, m - 1)]
    denominator = sum(v**2 / k for v, k in terms if v > 0 and k > 0)
    return float((v_a + v_b + v_e) ** 2 / denominator) if denominator > 0 else float("inf")


# --------------------------------------------------------------------------------------------------
# Power and multiplicity


def projected_mdd(comparison: Comparison, seeds: int, alpha: float | None = None, power: float | None = None) -> float:
    """Step 8: the minimum detectable difference with ``seeds`` seeds per configuration (>= 2), the
    example part of se unchanged; ``alpha``/``power`` default to the comparison's."""
    if seeds < 2:
        raise ValueError("projected_mdd needs at least 2 seeds per configuration (1 has no seed variance)")
    alpha = comparison.alpha if alpha is None else alpha
    power = comparison.power if power is None else power
    var_a, var_b = (0.0 if np.isnan(sd) else sd**2 for sd in (comparison.seed_sd_a, comparison.seed_sd_b))
    v_a, v_b, v_e = var_a / seeds, var_b / seeds, comparison.se_examples**2
    df = _satterthwaite(v_a, seeds, v_b, seeds, v_e, comparison.examples)
    se = np.sqrt(v_a + v_b + v_e)
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def seeds_needed(
    comparison: Comparison,
    target: float,
    alpha: float | None = None,
    power: float | None = None,
    max_seeds: int = 1_000_000,
) -> int | None:
    """Step 8: the fewest seeds per configuration (>= 2) with ``projected_mdd <= target``; None when
    no count does (the example part alone, or more than ``max_seeds``). When neither configuration
    varies over seeds, more seeds change nothing: 1 if the comparison's mdd already meets ``target``."""
    seed_var = sum(0.0 if np.isnan(sd) else sd**2 for sd in (comparison.seed_sd_a, comparison.seed_sd_b))
    if seed_var == 0:
        return 1 if projected_mdd(comparison, 2, alpha, power) <= target else None
    if projected_mdd(comparison, max_seeds, alpha, power) > target:
        return None
    low, high = 1, 2  # invariant: mdd(low) > target (or low = 1), mdd(high) <= target once found
    while projected_mdd(comparison, high, alpha, power) > target:
        low, high = high, min(2 * high, max_seeds)
    while high - low > 1:  # mdd(n) decreases in n: bisect
        mid = (low + high) // 2
        low, high = (low, mid) if projected_mdd(comparison, mid, alpha, power) <= target else (mid, high)
    return high


def adjust(p_values, method: str = "holm") -> np.ndarray:
    """Step 9: multiplicity-adjusted p-values over the family of the finite entries (``"holm"`` or
    ``"fdr_bh"``); NaN entries stay NaN and are not counted in the family."""
    from statsmodels.stats.multitest import multipletests

    if method not in ADJUST_METHODS:
        raise ValueError(f"unknown adjustment {method!r}; valid: {', '.join(ADJUST_METHODS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = ~np.isnan(p)
    if keep.any():
        out[keep] = multipletests(p[keep], method=method)[1]
    return out
