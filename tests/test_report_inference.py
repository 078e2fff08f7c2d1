"""`harness report`'s seed-aware inference on the fake studies: seeds that disagree give no evidence where an
example-only bootstrap would, a consistent large effect beats, and p_adjusted is Holm over each family."""

from __future__ import annotations

import numpy as np
import pytest
from report_reading import example_only_p, folder_features, holm, md_tables, row, section
from report_studies import MAIN_NAMES
from scipy import stats as scipy_stats

from harness.vocabulary import METRICS

# --------------------------------------------------------------------------------------------------
# 4. Seed-aware inference in the report


def test_seeds_that_disagree_give_no_evidence(main):
    """G = 16 against G = 8: the seeds of G = 16 disagree by ~20 BLEU. Averaging seeds first (the old
    test) calls the difference certain; the seed-aware comparison, like a Welch test over the seeds,
    does not, and the report says so in its fixed wording."""
    cmp, per_seed = main["comparisons"], main["per_seed"]
    g16, g8 = MAIN_NAMES["g16"], MAIN_NAMES["grpo"]
    meteor_a = folder_features(main["out"], g16, "meteor", "greedy")
    meteor_b = folder_features(main["out"], g8, "meteor", "greedy")
    assert example_only_p(meteor_a, meteor_b) < 0.001
    seeded = row(cmp, A=g16, B=g8, metric="meteor", decoding="greedy")
    assert seeded["diff"] > 2 and seeded["p_value"] > 0.2 and seeded["ci_low"] < 0 < seeded["ci_high"]
    for metric, decoding in (("bleu", "sampled"), ("meteor", "greedy")):
        key = f"test/sampled/{metric}" if decoding == "sampled" else f"test/{metric}"
        welch = scipy_stats.ttest_ind(
            per_seed.loc[per_seed["config"] == g16, key], per_seed.loc[per_seed["config"] == g8, key], equal_var=False
        )
        r = row(cmp, A=g16, B=g8, metric=metric, decoding=decoding)
        assert welch.pvalue > 0.2 and r["p_value"] > 0.2, (metric, welch.pvalue, r["p_value"])
        assert r["p_value"] == pytest.approx(welch.pvalue, abs=0.15)  # the seeds dominate: close to Welch
        assert r["mdd"] > abs(r["diff"])  # these seeds could not have detected it
    primary = row(main["findings"], A=g16, B=g8, metric="bleu", decoding="sampled")
    assert primary["verdict"] == "interval includes 0" and primary["family"] == "primary"
    shown = row(
        md_tables(section(main["md"], "Corpus BLEU, sampled decoding", level=3))[0], **{"A vs B": f"{g16} vs {g8}"}
    )
    assert shown["interval"] == "includes 0" and shown["Δ [95 % CI]"].startswith(f"{primary['diff']:+.2f} [")
    assert shown["detects (family)"] == f"{primary['mdd_adjusted']:.2f}"
    assert primary["mdd_adjusted"] > primary["mdd"]  # at the family's level, not the unadjusted alpha


def test_a_consistent_large_effect_beats(main):
    grpo, sft = MAIN_NAMES["grpo"], "sft"
    r = row(main["findings"], A=grpo, B=sft, metric="bleu", decoding="sampled")
    assert r["verdict"] == "A higher" and r["p_adjusted"] < 0.001 and r["ci_low"] > 10
    shown = row(
        md_tables(section(main["md"], "Corpus BLEU, sampled decoding", level=3))[0], **{"A vs B": f"{grpo} vs {sft}"}
    )
    assert shown["interval"] == "A higher" and shown["p_adj"] == "< 0.001" and shown["seeds"] == "3 vs 3"
    assert shown["Δ [95 % CI]"] == f"{r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def test_holm_over_the_primary_family(main, lr):
    """Primary family = corpus BLEU under sampled decoding when the trials sampled (main), greedy when
    they did not (lr); p_adjusted = Holm over exactly that family's rows."""
    for study, decoding in ((main, "sampled"), (lr, "greedy")):
        cmp = study["comparisons"]
        primary = cmp[cmp["family"] == "primary"]
        assert set(zip(primary["metric"], primary["decoding"])) == {("bleu", decoding)}
        assert ((cmp["family"] == "primary") == ((cmp["metric"] == "bleu") & (cmp["decoding"] == decoding))).all()
        np.testing.assert_allclose(primary["p_adjusted"], holm(primary["p_value"]), rtol=1e-12)
        assert f"primary = corpus BLEU under {decoding} decoding" in section(study["md"], "Setup")
        assert f"### Corpus BLEU, {decoding} decoding (Holm over these comparisons)" in study["md"]
    assert len(main["comparisons"].query("family == 'primary'")) == 14  # every pair once


def test_holm_over_the_secondary_family_without_folded_metrics(lr):
    cmp = lr["comparisons"]
    secondary = cmp[cmp["family"] == "secondary"]
    assert set(secondary["metric"]) == set(METRICS) - {"bleu"}  # greedy only: BLEU is primary; nothing folded
    np.testing.assert_allclose(secondary["p_adjusted"], holm(secondary["p_value"]), rtol=1e-12)


def test_holm_over_the_secondary_family_as_shown(main):
    cmp = main["comparisons"]
    secondary = cmp[cmp["family"] == "secondary"]
    assert "rouge1" not in set(secondary["metric"])
    np.testing.assert_allclose(secondary["p_adjusted"], holm(secondary["p_value"]), rtol=1e-12)
