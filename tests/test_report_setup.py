"""The Setup and Compute sections of `harness report`: the settings of every configuration, the replicates
used, and the compute table with reused trials and where the best checkpoint was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_reading import complete_trials, md_tables, section
from report_studies import (
    BERTSCORE_IMPL,
    CHECKPOINT,
    LR_CONFIGS,
    MAIN_CONFIGS,
    MAIN_NAMES,
    METEOR_IMPL,
    N_BOOT,
    PASSES,
    REUSED_SOURCE,
    VOICE,
    M,
)

from harness.report.folder import load_folder

# --------------------------------------------------------------------------------------------------
# 9. Setup and compute


def test_setup_section(main):
    setup = section(main["md"], "Setup")
    for text in (
        "**Model**: `tiny`",
        f"starting checkpoint `{CHECKPOINT}`",
        "2.50 M parameters",
        f"speech in the `{VOICE}` voice",
        f"train 96, validation 24, test {M} examples",
        "the checkpoint with the highest validation corpus BLEU is tested",
        f"and the paper's sampling, top-p 0.9, temperature 0.9, {PASSES} passes",
        "up to 40 new tokens",
        "sacreBLEU corpus BLEU",
        f"METEOR = nltk ({METEOR_IMPL})",
        f"BERTScore = {BERTSCORE_IMPL}",
        "Holm-adjusted",
        "minimum detectable difference",
        f"study run `{main['parent']}`",
        f"numpy {np.__version__}",
    ):
        assert text in setup, text
    table = md_tables(setup)[0].set_index("configuration")
    assert len(table) == len(MAIN_CONFIGS)
    g16 = table.loc["sqa__grpo_grpo.group_size=16_grpo.reward=bleu"]
    expected = {
        "method": "grpo",
        "seeds": "0, 1, 2, 3",
        "steps": "30",
        "prompts/step": "4",
        "lr": "0.0002",
        "warmup": "3",
        "eval every": "10",
        "reward": "bleu",
        "G": "16",
        "beta": "0.02",
        "T (rollout)": "1.0",
        "new tokens": "24",
        "MP-GRPO": "False",
    }
    assert {k: g16[k] for k in expected} == expected
    assert table.loc["sqa__mp-grpo", "MP-GRPO"] == "True" and table.loc["sqa__mp-grpo", "G"] == "8"
    sft = table.loc["sqa__sft"]
    assert (sft["steps"], sft["lr"], sft["G"], sft["beta"]) == ("30", "0.0002", "—", "—")
    assert table.loc["sqa__base", "steps"] == "0"


def test_setup_states_the_replicates_used(main):
    assert f"two-level bootstrap ({N_BOOT:,} replicates)" in section(main["md"], "Setup")


def test_compute_table(main):
    compute = pd.read_csv(main["out"] / "compute.csv").set_index("Config")
    for key, name in MAIN_NAMES.items():
        trials = complete_trials(main, key)
        finals = pd.DataFrame([t["final"] for t in trials])
        for column in ("generated_tokens", "trained_tokens", "wall_time_s", "train_steps", "best_step"):
            assert compute.at[name, f"{column} mean"] == pytest.approx(finals[column].mean()), (name, column)
        at_end = int(((finals["train_steps"] > 0) & (finals["best_step"] == finals["train_steps"])).sum())
        expected = "—" if key == "base" else f"{at_end}/{len(trials)}"
        assert compute.at[name, "best = last step"] == expected, name
        assert compute.at[name, "reused"] == (1 if key == "sft" else 0)
    assert compute.at["sft", "best = last step"] == "3/3"  # SFT still improving: the report shows it
    assert compute.at[MAIN_NAMES["grpo"], "best = last step"] == "1/3"
    assert compute.at[MAIN_NAMES["grpo"], "generated_tokens mean"] > 0 == compute.at["sft", "generated_tokens mean"]
    assert "finished trials reused from identical earlier trials: 1." in main["md"]
    shown = md_tables(section(main["md"], "Compute"))[0].set_index("Config")
    assert list(shown.columns[-2:]) == ["best = last step", "reused"]
    assert shown.at["sft", "reused"] == "1" and shown.at["sft", "best = last step"] == "3/3"
    runs = md_tables(section(main["md"], "Appendix"))[0].set_index("Config")
    assert runs.at["sft", "reused from"] == REUSED_SOURCE


def test_compute_table_without_reused_trials_is_pandas4_safe(lr):
    import warnings

    from harness.report.tables import compute_table, runs_table

    configs = load_folder(lr["out"]).configs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_table(configs)["reused"].tolist() == [0] * len(LR_CONFIGS)
        assert runs_table(configs)["reused from"].tolist() == ["—"] * len(LR_CONFIGS)


def test_setup_shows_every_setting_a_configuration_changes():
    """A GRPOConfig / TrainConfig field appears in the Setup as soon as one configuration sets it away
    from its default (GSPO's importance level, CHORD's SFT weight), and not otherwise."""
    from harness.config import TrialConfig
    from harness.report.sections.setup import settings_table

    def resolved(method: str, **grpo) -> dict:
        cfg = TrialConfig.model_validate({"task": "sqa", "method": method, "seed": 0, "grpo": grpo})
        return {**cfg.model_dump(mode="json"), "seed": [0, 1]}

    table = settings_table(
        {
            "sqa__grpo": resolved("grpo"),
            "sqa__gspo": resolved("grpo", importance_level="sequence", loss_type="grpo"),
            "sqa__sft": resolved("sft"),
        }
    ).set_index("configuration")
    assert table.loc["sqa__gspo", "grpo.importance_level"] == "sequence"
    assert (
        table.loc["sqa__grpo", "grpo.importance_level"] == "token"
        and table.loc["sqa__sft", "grpo.importance_level"] == "—"
    )
    assert "grpo.sft_weight" not in table and "grpo.epsilon" not in table  # at their defaults everywhere: elided
    assert table.loc["sqa__gspo", "loss"] == "grpo" and table.loc["sqa__sft", "G"] == "—"
