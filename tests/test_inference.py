"""Seed-aware inference (`harness.report.inference`) and corpus BLEU from sufficient statistics
(`harness.eval.bleu_stats`), each checked against an independent computation on constructed data
whose answer is known: sacreBLEU itself, scipy's Welch and paired t-tests, the old example-only
bootstrap, a simulated null, and hand-written Holm / Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from scipy import stats

from harness.eval.bleu_stats import bleu_stats, corpus_bleu_from_stats
from harness.report.inference import (
    adjust,
    bleu_passes_score,
    bleu_score,
    compare,
    projected_mdd,
    seeds_needed,
)

VOCAB = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    ".",
    ",",
    "is",
    "was",
    "red",
    "blue",
    "big",
    "small",
    "ran",
    "to",
    "of",
    "and",
    "it",
]


def _sentences(rng: np.random.Generator, n: int, max_len: int = 14) -> list[str]:
    return [" ".join(rng.choice(VOCAB, rng.integers(1, max_len))) for _ in range(n)]


def _hypotheses(rng: np.random.Generator, refs: list[str], error: float) -> list[str]:
    """Noisy copies of refs: each word replaced with probability ``error``, some words dropped, one
    in ten empty or whitespace-only, one in ten unrelated (short, usually no 3- or 4-gram match)."""
    out = []
    for ref in refs:
        kind = rng.random()
        if kind < 0.1:
            out.append(str(rng.choice(["", "   "])))
        elif kind < 0.2:
            out.append(" ".join(rng.choice(VOCAB, rng.integers(1, 4))))
        else:
            words = [str(rng.choice(VOCAB)) if rng.random() < error else w for w in ref.split() if rng.random() > 0.1]
            out.append(" ".join(words))
    return out


def _sacrebleu(hyps: list[str], refs: list[str]) -> float:
    return sacrebleu.corpus_bleu(hyps, [refs], force=True).score


# --------------------------------------------------------------------------------------------------
# BLEU from sufficient statistics


def test_corpus_bleu_from_stats_equals_sacrebleu_on_corpus_subsets_and_resamples():
    rng = np.random.default_rng(7)
    refs = _sentences(rng, 300)
    hyps = _hypotheses(rng, refs, error=0.3)
    st = bleu_stats(hyps, refs)
    assert st.dtype == np.int64 and st.shape == (300, 10)
    empty = np.array([not h.strip() for h in hyps])
    assert empty.sum() >= 10 and (st[empty, 0] == 0).all() and (st[empty, 2:] == 0).all()
    assert (st[:, 5] == 0).sum() >= 50  # many sentences with no 4-gram match

    full = corpus_bleu_from_stats(st.sum(axis=0))
    assert full == pytest.approx(_sacrebleu(hyps, refs), abs=1e-9) and 5 < full < 90

    # Subsets and bootstrap resamples (repeated indices), from 1 sentence (often BLEU 0, or "exp"
    # smoothing of a zero-match order) to the full size; sacreBLEU recomputed on the lists.
    sizes = [1, 1, 2, 2, 3, 3, 5, 8, 13, 40, 300] * 6
    cases = [rng.choice(300, size=n, replace=bool(i % 2)) for i, n in enumerate(sizes)]
    ours = corpus_bleu_from_stats(np.stack([st[idx].sum(axis=0) for idx in cases]))
    theirs = np.array([_sacrebleu([hyps[i] for i in idx], [refs[i] for i in idx]) for idx in cases])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    sums = np.stack([st[idx].sum(axis=0) for idx in cases])
    smoothed = (sums[:, 2:6] == 0).any(axis=1) & (sums[:, 6:] > 0).all(axis=1) & (sums[:, 2:6] > 0).any(axis=1)
    assert (theirs == 0).sum() >= 3 and (smoothed & (theirs > 0)).sum() >= 3  # both edge paths exercised

    # Broadcasting over leading dims [B, S, 10], as in the bootstrap.
    stacked = np.stack([st[idx].sum(axis=0) for idx in cases[:60]]).reshape(6, 10, 10)
    np.testing.assert_array_equal(corpus_bleu_from_stats(stacked), ours[:60].reshape(6, 10))


# --------------------------------------------------------------------------------------------------
# compare: the two limits (seeds only, examples only) against scipy


def test_seed_variance_only_matches_welch_t_test():
    """No example variance in the paired difference (a large example effect shared by A and B
    cancels): se, df, CI and p are Welch's t-test on the per-seed scores."""
    rng = np.random.default_rng(1)
    shared = rng.normal(50, 20, size=200)  # example difficulty, same for every seed of A and B
    seeds_a, seeds_b = np.array([1.9, 4.1, 2.6, 5.0]), np.array([0.4, 3.3, 1.0, -0.8, 2.1, 1.7])
    a, b = shared + seeds_a[:, None], shared + seeds_b[:, None]
    c = compare(a, b, n_boot=10_000)
    welch = stats.ttest_ind(seeds_a, seeds_b, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    welch_se = np.sqrt(seeds_a.var(ddof=1) / 4 + seeds_b.var(ddof=1) / 6)
    assert c.diff == pytest.approx(seeds_a.mean() - seeds_b.mean(), abs=1e-12)
    assert c.se == pytest.approx(welch_se, rel=0.05)
    assert c.df == pytest.approx(welch.df, rel=0.05)
    assert c.p_value == pytest.approx(welch.pvalue, abs=0.02) and 0.01 < welch.pvalue < 0.2
    assert c.ci_low == pytest.approx(low, abs=0.05 * (high - low))
    assert c.ci_high == pytest.approx(high, abs=0.05 * (high - low))
    assert c.seed_sd_a == pytest.approx(seeds_a.std(ddof=1)) and c.seed_sd_b == pytest.approx(seeds_b.std(ddof=1))
    assert c.se_examples < 0.3 * c.se  # only bootstrap noise left in the example part


def test_example_variance_only_matches_paired_t_test():
    """Identical seeds (A) and a single deterministic run (B): the paired t-test over examples."""
    rng = np.random.default_rng(2)
    m = 400
    y = rng.normal(40, 15, size=m)
    x = y + 1.5 + rng.normal(0, 8, size=m)
    c = compare(np.tile(x, (3, 1)), y[None, :], n_boot=10_000)
    d = x - y
    paired = stats.ttest_rel(x, y)
    assert c.seed_sd_a == 0 and np.isnan(c.seed_sd_b) and c.se_seeds == 0
    assert c.df == pytest.approx(m - 1, rel=1e-12)  # Satterthwaite with only the example part: the paired t-test's df
    assert c.diff == pytest.approx(d.mean(), abs=1e-12)
    assert c.se == pytest.approx(d.std(ddof=1) / np.sqrt(m), rel=0.03)
    assert c.p_value == pytest.approx(paired.pvalue, abs=0.01) and 0.001 < paired.pvalue < 0.1


def test_two_nearly_identical_seeds_keep_the_example_degrees_of_freedom():
    """2 seeds per configuration that differ by a tiny shift: the examples dominate se, so df stays
    near M - 1 and p is the paired t-test's. (Welch's df from the seed scores alone is 1.7 here:
    t(0.975, 1.7) = 5.0 instead of 1.97, and p = 0.05 instead of 1e-6.)"""
    rng = np.random.default_rng(9)
    m = 400
    y = rng.normal(40, 15, size=m)
    x = y + 2.0 + rng.normal(0, 8, size=m)
    a, b = x + np.array([[0.0], [0.02]]), y + np.array([[0.0], [-0.03]])
    c = compare(a, b)
    paired = stats.ttest_rel(a.mean(axis=0), b.mean(axis=0))
    welch_seeds = stats.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)
    assert c.seed_sd_a > 0 and c.seed_sd_b > 0 and welch_seeds.df < 3
    assert c.df > 0.9 * (m - 1)
    assert c.p_value == pytest.approx(paired.pvalue, abs=0.01) and paired.pvalue < 0.01


# --------------------------------------------------------------------------------------------------
# compare: the seed effect that the old example-only bootstrap misses


def _seed_and_example_data(seed_spread: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """3 seeds each, 500 examples, true difference 2: seed effects ``spread * (-1, 0, 1)`` (plus a
    little), example difficulty shared by A and B, per-example noise of the difference SD 6."""
    m = 500
    shared = rng.normal(30, 15, size=m)
    spread = seed_spread * np.array([-1.0, 0.1, 1.0])
    a = shared + 2 + spread[:, None] + rng.normal(0, 6, size=(3, m))
    b = shared + spread[::-1, None] + rng.normal(0, 6, size=(3, m))
    return a, b


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> dict[str, float]:
    """The reports' earlier test (replaced by `compare`): each example's score averaged over seeds first,
    then a paired bootstrap over examples only; two-sided p with the null-shifted distribution."""
    d = np.asarray(a, float) - np.asarray(b, float)
    means = d[np.random.default_rng(seed).integers(0, d.size, size=(n, d.size))].mean(axis=1)
    diff = float(d.mean())
    return {"diff": diff, "p_value": (1 + int(np.count_nonzero(np.abs(means - diff) >= abs(diff)))) / (1 + n)}


def test_large_seed_effect_flips_the_example_only_p_value():
    rng = np.random.default_rng(3)
    a, b = _seed_and_example_data(seed_spread=6.0, rng=rng)
    old = paired_bootstrap(a.mean(axis=0), b.mean(axis=0), n=10_000)
    new = compare(a, b)
    welch = stats.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)
    assert new.diff == pytest.approx(old["diff"], abs=1e-12) and 1.5 < new.diff < 2.5
    assert old["p_value"] < 0.001  # examples only: "significant"
    assert new.p_value > 0.2 and welch.pvalue > 0.2  # seeds included: no evidence of a difference
    assert new.ci_low < 0 < new.ci_high and new.mdd > 3 * new.diff

    # Same true difference, seeds that agree: both tests find it.
    a, b = _seed_and_example_data(seed_spread=0.1, rng=rng)
    old = paired_bootstrap(a.mean(axis=0), b.mean(axis=0), n=10_000)
    new = compare(a, b)
    assert old["p_value"] < 0.001 and new.p_value < 0.001 and new.ci_low > 0 and new.mdd < new.diff


# --------------------------------------------------------------------------------------------------
# compare: calibration under the null, and the documented bias of the crossed bootstrap


def test_null_rejection_rate_is_near_alpha():
    """400 null datasets (equal true means; seed SD 1, example SD 4 in the paired difference, small
    seed x example noise), S = 5, M = 100: the 5 % test rejects 5 % of the time. The binomial SD of
    the rate is 1.1 %, so [0.025, 0.08] is about -2.3 to +2.7 SD around 0.05 (this seed: 0.06)."""
    rng = np.random.default_rng(4)
    s, m, rejected = 5, 100, 0
    for i in range(400):
        shared = rng.normal(30, 10, size=m)
        a = shared + rng.normal(0, 1, size=(s, 1)) + rng.normal(0, 2.8, size=m) + rng.normal(0, 1, size=(s, m))
        b = shared + rng.normal(0, 1, size=(s, 1)) + rng.normal(0, 2.8, size=m) + rng.normal(0, 1, size=(s, m))
        rejected += compare(a, b, n_boot=1000, seed=i).p_value < 0.05
    assert 0.025 <= rejected / 400 <= 0.08


def test_seed_by_example_interaction_makes_se_conservative_at_most_sqrt3():
    """Pure seed x example noise (no seed or example main effect): the true se is
    sqrt(sigma^2 (1/S_a + 1/S_b) / M); the pigeonhole bootstrap counts it ~3 times (docstring)."""
    rng = np.random.default_rng(5)
    s, m = 5, 400
    true_se = np.sqrt(2 / s / m)
    ratios = [
        compare(rng.normal(size=(s, m)), rng.normal(size=(s, m)), n_boot=2000, seed=i).se / true_se for i in range(10)
    ]
    assert np.sqrt(3) + 0.05 > np.mean(ratios) > 1.2


# --------------------------------------------------------------------------------------------------
# compare with corpus BLEU


def test_bleu_score_point_estimate_equals_sacrebleu_seed_means():
    rng = np.random.default_rng(6)
    m = 80
    refs = _sentences(rng, m)
    hyps_a = [_hypotheses(rng, refs, error=0.2) for _ in range(3)]
    hyps_b = [_hypotheses(rng, refs, error=0.4) for _ in range(2)]
    a = np.stack([bleu_stats(h, refs) for h in hyps_a])
    b = np.stack([bleu_stats(h, refs) for h in hyps_b])
    c = compare(a, b, score=bleu_score, n_boot=2000)
    expected = np.mean([_sacrebleu(h, refs) for h in hyps_a]) - np.mean([_sacrebleu(h, refs) for h in hyps_b])
    assert c.diff == pytest.approx(expected, abs=1e-9) and expected > 5
    assert 0 < c.se < 10 and c.seed_sd_a > 0 and c.ci_low < c.diff < c.ci_high

    # P = 2 sampled passes per seed: the mean over passes of each pass's corpus BLEU.
    passes_a = np.stack([np.stack([a[0], a[1]], axis=1), np.stack([a[2], a[0]], axis=1)])  # [2, M, 2, 10]
    passes_b = np.stack([np.stack([b[0], b[1]], axis=1)])  # [1, M, 2, 10]
    c = compare(passes_a, passes_b, score=bleu_passes_score, n_boot=500)
    bleu_a, bleu_b = [_sacrebleu(h, refs) for h in hyps_a], [_sacrebleu(h, refs) for h in hyps_b]
    expected = ((bleu_a[0] + bleu_a[1]) / 2 + (bleu_a[2] + bleu_a[0]) / 2) / 2 - (bleu_b[0] + bleu_b[1]) / 2
    assert c.diff == pytest.approx(expected, abs=1e-9)

    with pytest.raises(ValueError, match="does it match F"):
        compare(a, b)  # mean_score on BLEU statistics: [S, 10] scores, not [S]


# --------------------------------------------------------------------------------------------------
# Multiplicity and power


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    k = len(p)
    out, running = np.empty(k), 0.0
    for rank, i in enumerate(order):  # step-down: (k - rank) * p_(rank), kept monotone
        running = max(running, min(1.0, (k - rank) * p[i]))
        out[i] = running
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    k = len(p)
    out, running = np.empty(k), 1.0
    for rank in range(k - 1, -1, -1):  # step-up: k / (rank + 1) * p_(rank), kept monotone
        i = order[rank]
        running = min(running, k / (rank + 1) * p[i])
        out[i] = running
    return out


def test_adjust_equals_hand_written_holm_and_bh_with_nan_outside_the_family():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.005, 0.2, np.nan, 0.04, 0.9])
    finite = ~np.isnan(p)
    holm, bh = adjust(p, "holm"), adjust(p, "fdr_bh")
    assert np.isnan(holm[~finite]).all() and np.isnan(bh[~finite]).all()
    np.testing.assert_allclose(holm[finite], _holm(p[finite]), rtol=1e-12)
    np.testing.assert_allclose(bh[finite], _bh(p[finite]), rtol=1e-12)
    # The numbers themselves (7 tests): Holm 0.005 * 7, then max(0.035, 0.01 * 6) = 0.06, ...
    np.testing.assert_allclose(holm[finite], [0.06, 0.16, 0.15, 0.035, 0.4, 0.16, 0.9])
    np.testing.assert_allclose(bh[finite], [0.035, 0.056, 0.056, 0.035, 0.23333333333333, 0.056, 0.9])
    assert np.isnan(adjust([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust(p, "bonferroni")


def test_seeds_needed_is_the_smallest_count_meeting_the_target():
    rng = np.random.default_rng(8)
    a, b = _seed_and_example_data(seed_spread=3.0, rng=rng)
    c = compare(a, b)
    assert c.se_seeds > c.se_examples  # seed-dominated
    assert projected_mdd(c, 3) == pytest.approx(c.mdd, rel=1e-12)  # S_a = S_b = 3: the comparison itself

    target = 2.0
    n = seeds_needed(c, target)
    assert n is not None and n > 3
    assert projected_mdd(c, n) <= target < projected_mdd(c, n - 1)

    # Independent recomputation at n seeds: se^2 = (s_a^2 + s_b^2) / n + v_e, Satterthwaite df.
    v_a, v_b, v_e = c.seed_sd_a**2 / n, c.seed_sd_b**2 / n, c.se**2 - (c.seed_sd_a**2 + c.seed_sd_b**2) / 3
    df = (v_a + v_b + v_e) ** 2 / (v_a**2 / (n - 1) + v_b**2 / (n - 1) + v_e**2 / (c.examples - 1))
    mdd = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * np.sqrt(v_a + v_b + v_e)
    assert projected_mdd(c, n) == pytest.approx(mdd, rel=1e-9)

    floor = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * c.se_examples
    assert seeds_needed(c, 0.95 * floor) is None  # more seeds cannot beat the example variance
