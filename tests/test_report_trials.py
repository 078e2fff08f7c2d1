"""`harness report` on the fake studies (tests/report_studies.py): per_seed.csv has one row per finished
trial with every column, trials that did not finish are listed in trials.csv and their own section only,
and a study without any finished trial still gets a report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_reading import BLEU_COLUMNS, artifact_paths, complete_trials, row, section
from report_studies import (
    COMMON,
    EMPTY,
    IDS,
    MAIN,
    MAIN_CONFIGS,
    MAIN_NAMES,
    MAIN_SWEPT,
    N_BOOT,
    PASSES,
    REFERENCES,
    TRIAL_COMMIT,
    U_GREEDY,
    hypotheses,
    log_study,
    log_trial,
    val_curve,
)

from harness.eval.bleu_stats import bleu_stats
from harness.report import build_report
from harness.vocabulary import METRICS

pytestmark = pytest.mark.usefixtures("clean_checkout")  # a test here builds a report


# --------------------------------------------------------------------------------------------------
# 1. per_seed.csv and trials.csv


def test_per_seed_has_one_row_per_finished_trial_with_every_column(main):
    per_seed = main["per_seed"]
    required = ["study", "label", "task", "method", "seed", "run_id", "best_step", "wall_time_s"]
    required += [f"test/{m}" for m in METRICS] + [f"test/sampled/{m}" for m in METRICS] + list(MAIN_SWEPT)
    assert set(required) <= set(per_seed.columns)
    trials = complete_trials(main)
    assert sorted(per_seed["run_id"]) == sorted(t["run_id"] for t in trials)
    assert len(per_seed) == len(trials) == sum(len(c[3]) for c in MAIN_CONFIGS.values())
    for t in trials:
        r = row(per_seed, run_id=t["run_id"])
        key = t["config_key"]
        assert (r["study"], r["config"], r["label"], r["task"], r["seed"]) == (
            MAIN,
            MAIN_NAMES[key],
            t["label"],
            "sqa",
            t["seed"],
        )
        assert r["method"] == MAIN_CONFIGS[key][1]
        assert r["grpo.reward"] == t["cfg"].grpo.reward and r["grpo.group_size"] == t["cfg"].grpo.group_size
        for k in ("best_step", "train_steps", "wall_time_s", "generated_tokens", "trained_tokens"):
            assert r[k] == t["final"][k], k
        for k, v in t["test"].items():  # test/bleu is sacreBLEU's corpus BLEU of the trial's sentences
            assert r[k] == pytest.approx(v, rel=1e-12), k
        assert r["commit"] == TRIAL_COMMIT
    # the report pairs examples by id: a run listed in reverse has the statistics of its own sentences
    reversed_run = next(t for t in trials if t["seed"] == 1 and t["config_key"] == "g16")
    pe = pd.read_csv(main["out"] / "per_example.csv.gz", dtype={"run_id": str, "id": str})
    greedy = pe[(pe["run_id"] == reversed_run["run_id"]) & (pe["decoding"] == "greedy")].set_index("id")
    hyps = hypotheses(MAIN_CONFIGS["g16"][3][1], U_GREEDY)
    np.testing.assert_array_equal(greedy.loc[IDS, BLEU_COLUMNS].to_numpy(), bleu_stats(hyps, REFERENCES))
    assert set(pe["pass"][pe["decoding"] == "sampled"]) == set(range(PASSES))


def test_unfinished_trials_are_listed_in_trials_csv_only(main):
    trials = pd.read_csv(main["out"] / "trials.csv", dtype={"run_id": str})
    assert len(trials) == len(main["trials"]) + 3
    assert (trials["state"] == "COMPLETE").sum() == len(main["trials"])
    failed = row(trials, run_id=main["failed"]["run_id"])
    assert (failed["state"], failed["mlflow_status"]) == ("FAIL", "FAILED")
    assert failed["error"] == "RuntimeError: CUDA out of memory | at step 3"
    pruned = row(trials, run_id=main["pruned"]["run_id"])
    last_step, last_value = val_curve(0.5, 7, "sft", 10, COMMON["train"]["eval_every"])[-1]
    assert (pruned["state"], pruned["last_val_step"]) == ("PRUNED", last_step)
    assert pruned["last_val_bleu"] == pytest.approx(last_value)
    running = row(trials, run_id=main["running"]["run_id"])
    assert (running["state"], running["mlflow_status"]) == ("RUNNING", "RUNNING")
    unfinished = {main[k]["run_id"] for k in ("failed", "pruned", "running")}
    assert not unfinished & set(main["per_seed"]["run_id"])
    pe = pd.read_csv(main["out"] / "per_example.csv.gz", dtype={"run_id": str})
    assert not unfinished & set(pe["run_id"])
    # listed in their own section, nowhere else in the report
    listed = section(main["md"], "Trials that did not finish")
    for run_id in unfinished:
        assert run_id in listed and main["md"].count(run_id) == 1
    n = len(main["trials"])
    assert f"Trials: {n + 3} (COMPLETE {n}, FAIL 1, PRUNED 1, RUNNING 1); configurations: 7" in main["md"]


# --------------------------------------------------------------------------------------------------
# 11. No finished trial


def test_study_without_finished_trials(mlflow_store, tmp_path):
    client = mlflow_store["client"]
    parent, _ = log_study(client, EMPTY, {}, {})
    exp_id = client.get_experiment_by_name(EMPTY).experiment_id
    failed = log_trial(
        client, EMPTY, exp_id, parent, 0, "sft", "sft", 0, {}, None, state="FAIL", error="ValueError: boom", val_steps=0
    )
    path = build_report(EMPTY, tmp_path / "out", tracking_uri=mlflow_store["uri"], n_boot=N_BOOT)
    md = path.read_text()
    assert "Trials: 1 (COMPLETE 0, FAIL 1, PRUNED 0, RUNNING 0); configurations: 0" in md
    assert "No comparison could be made" in section(md, "Exploratory comparisons") and "No comparisons." in md
    assert failed["run_id"] in section(md, "Trials that did not finish")
    per_seed = pd.read_csv(tmp_path / "out" / "per_seed.csv")
    assert per_seed.empty and {"study", "run_id", "test/bleu"} <= set(per_seed.columns)
    assert "report/report.md" in artifact_paths(client, parent, "report")
