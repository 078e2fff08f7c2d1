"""`harness report`: every mean ± std of a report folder recomputes from its per_seed.csv, every bootstrap
comparison from its per-example scores, and the folder's evidence files alone rebuild the same report."""

from __future__ import annotations

import pandas as pd
import pytest
from report_reading import folder_features, md_tables, row, score_for, section, seeds_of, summary_tables
from report_studies import MAIN_CONFIGS, MAIN_NAMES, N_BOOT, M

from harness.report import compare
from harness.report.export import FILES
from harness.vocabulary import METRIC_NAMES, METRICS

# --------------------------------------------------------------------------------------------------
# 2. Every mean ± std recomputes from per_seed.csv


@pytest.mark.parametrize("study", ["main", "lr"])
def test_every_mean_and_std_recomputes_from_per_seed(study, request):
    folder = request.getfixturevalue(study)["out"]
    per_seed = pd.read_csv(folder / "per_seed.csv")
    tables = summary_tables(folder)
    kinds = {p.stem.split("_")[0] for p, _, _ in tables}
    assert kinds == ({"methods", "reward", "sweep"} if study == "main" else {"methods", "sweep"})
    checked = 0
    for path, column, prefix in tables:
        table = pd.read_csv(path)
        for _, r in table.iterrows():
            seeds = seeds_of(per_seed, path, r[column])
            assert len(seeds) >= 2, (path.name, r[column])
            for m in METRICS:
                values = seeds[prefix + m]
                assert r[f"{METRIC_NAMES[m]} mean"] == pytest.approx(values.mean(), rel=1e-12), (path.name, m)
                assert r[f"{METRIC_NAMES[m]} std"] == pytest.approx(values.std(ddof=1), rel=1e-12), (path.name, m)
                assert r[f"{METRIC_NAMES[m]} n"] == len(values)
                checked += 1
    assert checked >= (7 * 2 + 3 * 2 + 2 * 2) * 6 if study == "main" else checked >= 6 * 6


def test_method_table_cells_in_the_report(main):
    per_seed = main["per_seed"]
    text = section(main["md"], "Method comparison")
    sampled, greedy = md_tables(text)[:2]  # the paper's protocol (sampled) first
    for shown, prefix in ((greedy, "test/"), (sampled, "test/sampled/")):
        assert list(shown["Method"]) == [
            MAIN_NAMES[k] for k in ("base", "sft", "grpo", "meteor", "rouge1", "g16", "mp")
        ]
        # ROUGE-1 = ROUGE-L here: one column for both, and the paper's two values beside it
        assert "ROUGE-1 = ROUGE-L" in shown and "ROUGE-1 = ROUGE-L (paper)" in shown and "ROUGE-1" not in shown
        for _, r in shown.iterrows():
            seeds = per_seed[per_seed["config"] == r["Method"]]
            for m in METRICS:
                column = next(c for c in shown.columns if METRIC_NAMES[m] in c.split(" = ") and "paper" not in c)
                v = seeds[prefix + m]
                assert r[column].replace("**", "").startswith(f"{v.mean():.2f} ± {v.std(ddof=1):.2f}")
    assert row(sampled, Method="sft")["BLEU (paper)"] == "40.88"  # Table 1, 2B
    assert row(sampled, Method=MAIN_NAMES["meteor"])["BLEU (paper)"] == "37.69"  # Table 3, METEOR reward
    assert row(sampled, Method=MAIN_NAMES["g16"])["BLEU (paper)"] == "—"  # the paper ran no G = 16
    # the distractors of unfinished trials (test values 99 and 1) never enter a mean or an n
    assert row(greedy, Method="sft")["seeds"] == "3" and row(greedy, Method=MAIN_NAMES["grpo"])["seeds"] == "3"


# --------------------------------------------------------------------------------------------------
# 3. Every bootstrap recomputes from the folder


def test_rebuilt_from_the_evidence_files_alone_gives_the_same_report(main):
    copy, out = main["copy"], main["out"]
    evidence = {p.name for p in copy.iterdir() if p.name in FILES.values()}
    assert evidence == set(FILES.values())
    for name in ("comparisons.csv", "findings.csv", "report.md"):
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name
    written = sorted(p.name for p in out.glob("*.csv"))
    assert written == sorted(p.name for p in copy.glob("*.csv"))
    for name in written:
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize(
    "a, b, metric, decoding",
    [
        ("g16", "grpo", "bleu", "sampled"),
        ("grpo", "sft", "meteor", "greedy"),
        ("meteor", "sft", "bleu", "greedy"),
        ("mp", "grpo", "rougeL", "sampled"),
    ],
)
def test_comparison_row_recomputes_from_per_example_scores(main, a, b, metric, decoding):
    folder = main["copy"]
    fa = folder_features(folder, MAIN_NAMES[a], metric, decoding)
    fb = folder_features(folder, MAIN_NAMES[b], metric, decoding)
    assert fa.shape[:2] == (len(MAIN_CONFIGS[a][3]), M) and fb.shape[:2] == (len(MAIN_CONFIGS[b][3]), M)
    got = compare(fa, fb, score=score_for(metric, decoding), n_boot=N_BOOT)
    r = row(main["comparisons"], A=MAIN_NAMES[a], B=MAIN_NAMES[b], metric=metric, decoding=decoding)
    for key, value in (
        ("diff", got.diff),
        ("ci_low", got.ci_low),
        ("ci_high", got.ci_high),
        ("p_value", got.p_value),
        ("mdd", got.mdd),
        ("se", got.se),
        ("df", got.df),
    ):
        assert r[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert (r["seeds_a"], r["seeds_b"], r["examples"]) == (len(fa), len(fb), M)
    # the point estimate is the difference of the per-seed test scores that the trials logged (for BLEU:
    # sacreBLEU on the sentences, independent of the sufficient statistics the bootstrap re-scores)
    per_seed = main["per_seed"]
    key = f"test/sampled/{metric}" if decoding == "sampled" else f"test/{metric}"
    expected = (
        per_seed.loc[per_seed["config"] == MAIN_NAMES[a], key].mean()
        - per_seed.loc[per_seed["config"] == MAIN_NAMES[b], key].mean()
    )
    assert r["diff"] == pytest.approx(expected, abs=1e-4)
