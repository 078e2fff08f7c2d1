"""The shipped reports under reports/ (issue 12: "a test does this for a shipped report"): each recomputes
from its own folder, grpo_variants pairs baselines by their resolved configs, and pareto_bleu_tokens'
single-seed configurations are not compared."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from report_reading import folder_features, score_for, section, seeds_of, summary_tables

from harness import provenance
from harness.report import compare
from harness.report.findings import identical_configs
from harness.report.folder import load_folder

# --------------------------------------------------------------------------------------------------
# Shipped reports (issue 12: "a test does this for a shipped report"): every one that has the new folder


SHIPPED = sorted(p.parent for p in (provenance.CHECKOUT / "reports").glob("*/per_seed.csv"))


@pytest.mark.parametrize(
    "folder",
    SHIPPED
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(reason="no shipped report has per_seed.csv yet (reports/ predate issue 12's rerun)"),
        )
    ],
    ids=[p.name for p in SHIPPED] or ["none"],
)
def test_shipped_report_recomputes(folder):
    per_seed = pd.read_csv(folder / "per_seed.csv")
    assert {"study", "label", "task", "method", "seed", "run_id", "best_step", "wall_time_s"} <= set(per_seed.columns)
    assert "-dirty" not in json.dumps(json.loads((folder / "provenance.json").read_text()))
    assert "## Setup" in (folder / "report.md").read_text()
    for path, column, prefix in summary_tables(folder):
        for _, r in pd.read_csv(path).iterrows():
            values = seeds_of(per_seed, path, r[column])[prefix + "bleu"]
            assert r["BLEU mean"] == pytest.approx(values.mean(), rel=1e-9), path.name
            if len(values) > 1:
                assert r["BLEU std"] == pytest.approx(values.std(ddof=1), rel=1e-9), path.name
    if not (folder / "comparisons.csv").is_file():  # an optimiser's study: no pair to compare
        assert "No comparison could be made" in (folder / "report.md").read_text()
        return
    cmp = pd.read_csv(folder / "comparisons.csv")
    first = cmp[cmp["family"] == "primary"].iloc[0]
    fa = folder_features(folder, first["A"], "bleu", first["decoding"], first["task"])
    fb = folder_features(folder, first["B"], "bleu", first["decoding"], first["task"])
    got = compare(fa, fb, score=score_for("bleu", first["decoding"]))
    assert (first["diff"], first["ci_low"], first["ci_high"], first["p_value"]) == pytest.approx(
        (got.diff, got.ci_low, got.ci_high, got.p_value), rel=1e-9
    )


def test_baselines_pair_by_their_resolved_configs():
    """grpo_variants' baselines differ in settings that are not searched parameters: MP-GRPO is compared
    with its twin (plain GRPO, not the first GRPO baseline), LUFFY (MP-GRPO + shaping, its own label)
    counts as MP-GRPO and is compared with plain MP-GRPO; GSPO at mu = 1 equals per-sequence GRPO."""
    from harness.report.comparisons import pairs

    folder = provenance.CHECKOUT / "reports" / "grpo_variants"
    if not (folder / "per_seed.csv").is_file():
        pytest.skip("no shipped grpo_variants report")
    data = load_folder(folder)
    found = {(a.name, b.name, why) for a, b, why in pairs(data)}
    assert ("mp-grpo", "grpo", "MP-GRPO vs GRPO") in found
    assert ("luffy", "mp-grpo", "variant vs MP-GRPO") in found
    assert not {(a, b) for a, b, _ in found if a == "mp-grpo" and b not in ("grpo", "base", "sft")}
    assert not any(a == "luffy" and why == "variant vs GRPO" for a, _, why in found)
    per_seed = pd.read_csv(folder / "per_seed.csv").set_index(["config", "seed"])["test/sampled/bleu"]
    assert (per_seed["gspo"] == per_seed["grpo-seq-mean"]).all()
    # no completion reached the rollout limit (truncated_frac 0), so masking truncated ones changed nothing
    assert sorted(sorted(names) for _, names in identical_configs(data)) == [
        ["grpo", "mask-truncated"],
        ["grpo-seq-mean", "gspo"],
    ]


def test_a_single_seed_configuration_is_not_compared():
    """pareto_bleu_tokens' trials ran one seed each (an optimiser's study): no training-seed variance, so
    no p-value; the report names the pairs it left out instead."""
    from harness.report.comparisons import comparison_table, pairs, seed_aware

    folder = provenance.CHECKOUT / "reports" / "pareto_bleu_tokens"
    if not (folder / "per_seed.csv").is_file():
        pytest.skip("no shipped pareto_bleu_tokens report")
    data = load_folder(folder)
    found = pairs(data)
    assert found and all(min(len(a.seeds), len(b.seeds)) == 1 for a, b, _ in found)
    assert not any(seed_aware(a, b) for a, b, _ in found)
    assert comparison_table(data, n_boot=200).empty
    md = (folder / "report.md").read_text()
    assert f"**Not compared: {len(found)} pair(s)**" in section(md, "Exploratory comparisons")
    assert not (folder / "comparisons.csv").is_file()


def test_an_answer_row_says_when_its_two_sides_gave_identical_scores(tmp_path):
    """grpo_variants declares mask_truncated_vs_grpo; the two gave the same generations seed by seed (nothing
    was truncated), so its Answer row says A = B rather than leaving a bare 'unresolved'; other rows don't."""
    import shutil

    from harness.report.answer import answer_section
    from harness.report.document import ReportWriter
    from harness.report.hypotheses import evaluate

    folder = provenance.CHECKOUT / "reports" / "grpo_variants"
    if not (folder / "hypotheses.csv").is_file():
        pytest.skip("no shipped grpo_variants report with hypotheses")
    shutil.copytree(folder, tmp_path / "grpo_variants")
    data = load_folder(tmp_path / "grpo_variants")
    w = ReportWriter(data.dir)
    answer_section(w, data, evaluate(data, n_boot=500))
    rows: dict[str, str] = {}
    for line in w.write().read_text().splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)  # the Answer's row, before the folded looks
    assert "A = B seed by seed" in rows["mask_truncated_vs_grpo"]
    assert "A = B" not in rows["dr_grpo_vs_grpo"] and "A = B" not in rows["gspo_vs_grpo"]
