"""`harness report`'s findings: each comparison beside the paper's row of that configuration, ROUGE-1 =
ROUGE-L reported once, and the sweeps and their reference level taken from swept.json."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_reading import md_tables, row, section, sections
from report_studies import LR_NAMES, MAIN_NAMES

from harness import provenance
from harness.config import TrialConfig
from harness.vocabulary import METRICS

# --------------------------------------------------------------------------------------------------
# 5. Findings beside the paper


def test_findings_beside_the_paper_row_of_that_configuration(main):
    """Each comparison is set beside the published rows of its two configurations: a GRPO configuration
    trained with another reward is Table 3's row for that reward, not Table 1's BLEU-reward GRPO."""
    findings, md = main["findings"], main["md"]
    published = Path(provenance.CHECKOUT) / "harness" / "published"
    table1 = pd.read_csv(published / "table1_librisqa.csv")
    table3 = pd.read_csv(published / "table3_reward_ablation.csv").set_index("train_reward")
    paper = table1[table1["model"] == "granite-speech-2b"].set_index("method")
    assert table3.at["meteor", "BLEU"] < paper.at["sft", "BLEU"] < paper.at["grpo", "BLEU"]
    block = md_tables(section(md, "Corpus BLEU, sampled decoding", level=3))[0]
    below = row(findings, A=MAIN_NAMES["meteor"], B="sft", metric="bleu", decoding="sampled")
    assert (below["comparison"], below["verdict"], below["paper_direction"], below["relation"]) == (
        "GRPO vs SFT",
        "A lower",
        -1,
        "agrees with the paper",
    )
    shown = row(block, **{"A vs B": f"{MAIN_NAMES['meteor']} vs sft"})
    assert shown["interval"] == "A lower"
    assert shown["paper"] == (
        f"agrees with the paper (Table 3 (meteor reward), 2B vs Table 1, 2B: {table3.at['meteor', 'BLEU']:.2f} vs "
        f"{paper.at['sft', 'BLEU']:.2f})"
    )
    above = row(findings, A=MAIN_NAMES["grpo"], B="sft", metric="bleu", decoding="sampled")
    assert (above["verdict"], above["paper_direction"], above["relation"]) == ("A higher", 1, "agrees with the paper")
    # every comparison whose interval excludes 0 and has a published counterpart agrees or goes against it
    evidence = findings[findings["verdict"] != "interval includes 0"]
    signs = np.sign(evidence["diff"]) * evidence["paper_direction"]
    assert (evidence["relation"] == "against the paper").sum() == (signs < 0).sum()
    assert (evidence["relation"] == "agrees with the paper").sum() == (signs > 0).sum()
    against, agrees = (signs < 0).sum(), (signs > 0).sum()
    assert f"{against} go against the paper's published direction and {agrees} agree with it" in md
    # each comparison is printed once: no separate lists restating them
    assert "Agreeing with the paper" not in md and "### Against the paper" not in md
    # MP-GRPO against its GRPO twin: the paper's qualitative claim (hurts spoken QA); G = 16: no counterpart
    mp = row(findings, A="mp-grpo", B=MAIN_NAMES["grpo"], metric="bleu", decoding="sampled")
    assert mp["paper_direction"] == -1 and "qualitative" in mp["paper_source"]
    assert mp["verdict"] == "interval includes 0" and mp["relation"].startswith("not resolved")
    mp_base = row(findings, A="mp-grpo", B="base", metric="bleu", decoding="sampled")
    assert mp_base["relation"] == "no published counterpart"
    g16 = row(findings, A=MAIN_NAMES["g16"], B=MAIN_NAMES["grpo"], metric="bleu", decoding="sampled")
    assert g16["relation"] == "no published counterpart"
    # reward ablation rows: Table 3 for both rewards (the paper: the BLEU reward gives the best BLEU)
    reward = row(findings, A=MAIN_NAMES["meteor"], B=MAIN_NAMES["grpo"], metric="bleu", decoding="sampled")
    assert (reward["comparison"], reward["paper_direction"], reward["relation"]) == (
        "grpo.reward vs default",
        -1,
        "agrees with the paper",
    )


# --------------------------------------------------------------------------------------------------
# 6. ROUGE-1 = ROUGE-L folded


def test_duplicate_metric_is_reported_once(main, lr):
    md = main["md"]
    assert (
        "ROUGE-1 equals ROUGE-L on every example of every run of task `sqa`, so it is shown and compared once "
        "there (one column, one comparison); AVG counts both, as the paper's does."
    ) in section(md, "Method comparison")
    for frame in (main["comparisons"], main["findings"]):
        assert "rouge1" not in set(frame["metric"]) and "rougeL" in set(frame["metric"])
    assert "| ROUGE-1 |" not in section(md, "Comparisons") and "| ROUGE-L |" in section(md, "Comparisons")
    per_seed = main["per_seed"]
    for decoding, prefix in (("greedy", "test/"), ("sampled", "test/sampled/")):
        table = pd.read_csv(main["out"] / f"reward_ablation_sqa_tiny_{decoding}.csv")
        assert list(table["train_reward"]) == ["bleu", "rouge1", "meteor"]  # Table 3's row order
        for _, r in table.iterrows():
            means = per_seed[per_seed["config"] == r["config"]][[prefix + m for m in METRICS]].mean()
            assert r["AVG"] == pytest.approx(means.mean(), rel=1e-12)  # the paper's AVG: all six metrics
        paper = pd.read_csv(Path(provenance.CHECKOUT) / "harness" / "published" / "table3_reward_ablation.csv")
        for _, r in table.iterrows():  # the published AVG beside it is Table 3's own
            assert r["AVG paper"] == pytest.approx(
                paper.set_index("train_reward").at[r["train_reward"], "AVG"], abs=0.01
            )
        assert list(table["rank paper"]) == [1, 3, 2] and sorted(table["rank"]) == [1, 2, 3]
    caption = "AVG = mean of the six metrics (means over seeds), the paper's definition"
    assert caption in section(md, "Reward ablation")
    # where the two differ, nothing is folded
    assert "equals" not in section(lr["md"], "Method comparison")
    assert "rouge1" in set(lr["comparisons"]["metric"])


# --------------------------------------------------------------------------------------------------
# 7. Sweeps come from swept.json


def sweep_pairs(cmp: pd.DataFrame, factor: str) -> set[tuple[str, str]]:
    rows = cmp[(cmp["comparison"] == f"{factor} vs default") & (cmp["metric"] == "bleu")]
    return set(zip(rows["A"], rows["B"]))


def test_sweeps_and_their_reference_level_come_from_swept_json(main, lr):
    n = LR_NAMES
    assert len(sections(lr["md"], "Sweep: `train.lr` (default level 0.0001)")) == 2  # at beta 0 and at beta 0.02
    assert len(sections(lr["md"], "Sweep: `grpo.beta` (default level 0.0)")) == 2  # at lr 1e-4 and at lr 1e-3
    assert sweep_pairs(lr["comparisons"], "train.lr") == {
        (n["lr3"], n["lr1"]),
        (n["lr10"], n["lr1"]),
        (n["lr10-kl"], n["lr1-kl"]),
    }
    assert sweep_pairs(lr["comparisons"], "grpo.beta") == {(n["lr1-kl"], n["lr1"]), (n["lr10-kl"], n["lr10"])}
    assert "## Reward ablation" not in lr["md"] and "grpo.group_size" not in lr["md"]  # not searched here
    # the recorded default, not today's TrialConfig default (1e-4), is the reference level
    assert TrialConfig().train.lr == 0.0001
    assert len(sections(lr["changed_md"], "Sweep: `train.lr` (default level 0.001)")) == 2
    assert sweep_pairs(lr["changed_comparisons"], "train.lr") == {
        (n["lr1"], n["lr10"]),
        (n["lr3"], n["lr10"]),
        (n["lr1-kl"], n["lr10-kl"]),
    }
    assert sweep_pairs(lr["changed_comparisons"], "grpo.beta") == sweep_pairs(lr["comparisons"], "grpo.beta")
    # main: G searched (default 8), the reward ablation against the BLEU reward; beta not searched
    assert sweep_pairs(main["comparisons"], "grpo.group_size") == {(MAIN_NAMES["g16"], MAIN_NAMES["grpo"])}
    assert sweep_pairs(main["comparisons"], "grpo.reward") == {
        (MAIN_NAMES["rouge1"], MAIN_NAMES["grpo"]),
        (MAIN_NAMES["meteor"], MAIN_NAMES["grpo"]),
    }
    assert "## Sweep: `grpo.group_size` (default level 8)" in main["md"] and "## Sweep: `grpo.beta`" not in main["md"]
    sweep = pd.read_csv(main["out"] / "sweep_group_size_sqa_tiny_greedy.csv")
    assert list(sweep["grpo.group_size"]) == [8, 16]


def test_each_sweep_section_links_its_own_csv(lr):
    for block in sections(lr["md"], "Sweep: `train.lr`") + sections(lr["md"], "Sweep: `grpo.beta`"):
        shown = md_tables(block)[0]
        factor = shown.columns[0]
        linked = re.search(r"CSV: `([^`]+)`", block).group(1)
        csv = pd.read_csv(lr["out"] / linked)
        assert [float(v) for v in shown[factor]] == list(csv[factor].astype(float)), linked
