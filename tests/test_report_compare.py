"""`harness.report`'s `compare` and `adjust` on constructed data with a known answer: seed variance alone is
Welch's test, no seed variance is a paired test over examples, and Holm / BH match hand-written ones."""

from __future__ import annotations

import numpy as np
import pytest
from report_reading import benjamini_hochberg, example_only_p, holm
from report_studies import M
from scipy import stats as scipy_stats

from harness.report import adjust, compare

# --------------------------------------------------------------------------------------------------
# The inference on constructed data with a known answer


def test_compare_with_seed_variance_only_is_welch():
    """Seed effects shift every example of a seed alike; the examples are shared and cancel in A - B.
    Only seed variance is left, so se, df and p are Welch's t-test over the per-seed scores."""
    rng = np.random.default_rng(3)
    examples = rng.normal(50, 10, M)
    shift_a, shift_b = np.array([0.0, 4.0, -3.0, 6.0, 1.0]), np.array([-2.0, 1.0, 0.5])
    a, b = examples + 2.0 + shift_a[:, None], examples + shift_b[:, None]
    got = compare(a, b, n_boot=40_000, seed=5)
    per_a, per_b = a.mean(axis=1), b.mean(axis=1)
    v_a, v_b = per_a.var(ddof=1) / len(per_a), per_b.var(ddof=1) / len(per_b)
    welch = scipy_stats.ttest_ind(per_a, per_b, equal_var=False)
    welch_df = (v_a + v_b) ** 2 / (v_a**2 / (len(per_a) - 1) + v_b**2 / (len(per_b) - 1))
    assert got.diff == pytest.approx(per_a.mean() - per_b.mean(), rel=1e-12)
    assert got.se == pytest.approx(np.sqrt(v_a + v_b), rel=0.03)
    assert got.se_examples < 0.2 * got.se
    assert got.df == pytest.approx(welch_df, rel=0.1)
    assert got.p_value == pytest.approx(welch.pvalue, abs=0.03)
    assert got.ci_low < got.diff < got.ci_high


def test_compare_without_seed_variance_is_a_paired_test_over_examples():
    """Seeds that agree exactly (a deterministic model): df = M - 1 and se is the paired bootstrap's,
    sd(d) / sqrt(M) * sqrt((M - 1) / M) (the plug-in variance of a resampled mean)."""
    rng = np.random.default_rng(4)
    x_b = rng.normal(50, 10, M)
    x_a = x_b + 1.0 + rng.normal(0, 3, M)
    a, b = np.repeat(x_a[None], 3, axis=0), np.repeat(x_b[None], 2, axis=0)
    got = compare(a, b, n_boot=40_000, seed=6)
    d = x_a - x_b
    expected_se = d.std(ddof=1) / np.sqrt(M) * np.sqrt((M - 1) / M)
    assert got.df == M - 1 and got.seed_sd_a == 0 and got.seed_sd_b == 0
    assert got.se == pytest.approx(expected_se, rel=0.03)
    paired = scipy_stats.ttest_rel(x_a, x_b)
    assert got.p_value == pytest.approx(paired.pvalue, rel=0.3)
    t = scipy_stats.t.ppf(0.975, M - 1)
    assert (got.ci_low, got.ci_high) == pytest.approx((d.mean() - t * got.se, d.mean() + t * got.se), rel=1e-12)
    assert got.mdd == pytest.approx((t + scipy_stats.t.ppf(0.8, M - 1)) * got.se, rel=1e-12)


def test_a_seed_effect_flips_the_p_value():
    """The same per-example differences, once with seeds that agree and once with a large seed effect:
    the first is significant, the second not; averaging seeds first would call both significant."""
    rng = np.random.default_rng(8)
    base = rng.normal(50, 8, M)
    a_agree = base + 3.0 + rng.normal(0, 0.3, (4, M))
    b = base + rng.normal(0, 0.3, (4, M))
    a_seedy = a_agree + np.array([-12.0, 12.0, -11.0, 11.0])[:, None]  # same seed mean, wild seeds
    agree, seedy = compare(a_agree, b, n_boot=4000), compare(a_seedy, b, n_boot=4000)
    assert agree.diff == pytest.approx(seedy.diff, abs=1e-9)
    assert agree.p_value < 0.001 and seedy.p_value > 0.2
    assert example_only_p(a_seedy, b) < 0.001  # the seed-blind test: "significant"


def test_adjust_matches_hand_written_holm_and_bh():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005, 0.5])
    finite = ~np.isnan(p)
    for method, hand in (("holm", holm), ("fdr_bh", benjamini_hochberg)):
        got = adjust(p, method)
        assert np.isnan(got[2])
        np.testing.assert_allclose(got[finite], hand(p[finite]), rtol=1e-12)
    np.testing.assert_allclose(adjust(p, "holm")[finite], [0.04, 0.09, 0.09, 0.025, 0.5], rtol=1e-12)
    with pytest.raises(ValueError, match="unknown adjustment"):
        adjust(p, "bonferroni")
