"""`harness report`: tables, significance and plots from a real (sqlite) MLflow store built here.

The store follows the sweep's layout: one experiment per study, a parent run tagged
``harness.role=study`` and one nested run per trial with the trial tags, flattened params, step
metrics, final ``test/*`` metrics and a ``test_examples.json`` artifact. Expected values are computed
here from the fixture data with numpy (std: sample standard deviation, ddof=1).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from harness.report import (PUBLISHED_TITLE, Trial, build_report, factor_groups, fmt_cell, group_configs,
                            paired_bootstrap)

STUDY = "demo-study"
METRICS = ["bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor"]
NAMES = ["BLEU", "BERTScore", "ROUGE-1", "ROUGE-2", "ROUGE-L", "METEOR"]
BASE_PARAMS = {"task": "sqa", "model.name": "tiny", "grpo.reward": "bleu", "grpo.group_size": "8",
               "grpo.beta": "0.02", "grpo.mp_grpo": "False", "train.lr": "0.001", "train.steps": "10"}
# label -> (method, param overrides, test metrics of seed 0 and seed 1 in METRICS order)
CONFIGS = {
    "base": ("base-eval", {}, [[20, 80, 50, 30, 45, 40], [22, 81, 52, 31, 47, 44]]),
    "sft": ("sft", {}, [[30, 85, 58, 38, 54, 50], [34, 86, 60, 40, 55, 52]]),
    "grpo": ("grpo", {}, [[40, 88, 64, 45, 60, 60], [41, 89, 65, 47, 61, 62]]),
    "mp-grpo": ("grpo", {"grpo.mp_grpo": "True"}, [[38, 87, 62, 44, 59, 58], [39, 87, 63, 44, 58, 59]]),
    "grpo-rouge1": ("grpo", {"grpo.reward": "rouge1"}, [[36, 87, 67, 46, 62, 55], [35, 88, 68, 46, 63, 56]]),
    "grpo-meteor": ("grpo", {"grpo.reward": "meteor"}, [[35, 88, 63, 43, 58, 66], [37, 88, 62, 44, 59, 67]]),
    "grpo-g4": ("grpo", {"grpo.group_size": "4"}, [[37, 87, 63, 44, 59, 59], [38, 88, 64, 45, 60, 60]]),
    "grpo-beta0": ("grpo", {"grpo.beta": "0.0"}, [[39, 88, 64, 45, 60, 61], [42, 89, 65, 46, 61, 61]]),
}
N_EXAMPLES = 30
IDS = [f"ex{i:02d}" for i in range(N_EXAMPLES)]


def example_scores(label: str, seed: int) -> dict[str, list[float]]:
    """Per-example scores: GRPO = SFT + 10 (large effect); MP-GRPO identical to GRPO (no effect)."""
    sft_rng = np.random.default_rng(100 + seed)
    sft = {m: sft_rng.uniform(20, 60, N_EXAMPLES) for m in METRICS}
    if label == "sft":
        return {m: v.tolist() for m, v in sft.items()}
    if label in ("grpo", "mp-grpo"):
        noise = np.random.default_rng(200 + seed)
        return {m: (v + 10 + noise.normal(0, 2, N_EXAMPLES)).tolist() for m, v in sft.items()}
    rng = np.random.default_rng(zlib.crc32(f"{label}-{seed}".encode()))
    return {m: rng.uniform(10, 70, N_EXAMPLES).tolist() for m in METRICS}


def log_trial(client, exp_id, parent_id, number, label, method, params, seed, *, state="COMPLETE",
              test=None, error="", scores=None, reverse_ids=False):
    tags = {"mlflow.parentRunId": parent_id, "harness.role": "trial", "harness.trial_number": str(number),
            "harness.state": state, "harness.label": label}
    if error:
        tags["harness.error"] = error
    run_id = client.create_run(exp_id, tags=tags, run_name=f"trial-{number}").info.run_id
    all_params = {**BASE_PARAMS, **params, "method": method, "seed": str(seed)}
    metrics = []
    if method == "grpo" and state != "RUNNING":
        k = list(CONFIGS).index(label)  # curves differ per configuration
        for step in range(1, 11):
            metrics += [Metric("reward", 0.2 + 0.02 * k + 0.03 * step + 0.01 * seed, 0, step),
                        Metric("kl", 0.001 * (1 + k / 4) * step ** 1.5, 0, step),
                        Metric("completion_len_mean", 20 - 0.5 * step + seed, 0, step),
                        Metric("loss", 1.0 / step, 0, step)]
    if method == "sft":
        metrics += [Metric("loss", 2.0 / step, 0, step) for step in range(1, 11)]
    for key, value in (test or {}).items():
        metrics.append(Metric(key, float(value), 0, 10))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in all_params.items()])
    if scores is not None:
        order = list(range(N_EXAMPLES))[::-1] if reverse_ids else list(range(N_EXAMPLES))
        client.log_dict(run_id, {"ids": [IDS[i] for i in order], "references": ["r"] * N_EXAMPLES,
                                 "hypotheses": ["h"] * N_EXAMPLES,
                                 "scores": {m: [v[i] for i in order] for m, v in scores.items()}},
                        "test_examples.json")
    if state != "RUNNING":
        client.set_terminated(run_id, "FAILED" if state == "FAIL" else "FINISHED")
    return run_id


def compute_metrics(number: int) -> dict[str, float]:
    return {"wall_time_s": 10.0 + number, "generated_tokens": 1000 * number, "train_steps": 10,
            "best_step": 5 + number % 2}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(STUDY, artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp_id, tags={"harness.role": "study"}, run_name=STUDY).info.run_id
    client.log_param(parent, "study.task", "sqa")
    runs: dict[str, list[str]] = {}
    number = 0
    for label, (method, params, tests) in CONFIGS.items():
        for seed, values in enumerate(tests):
            test = {f"test/{m}": v for m, v in zip(METRICS, values)} | compute_metrics(number)
            runs.setdefault(label, []).append(
                log_trial(client, exp_id, parent, number, label, method, params, seed, test=test,
                          scores=example_scores(label, seed), reverse_ids=seed == 1))
            number += 1
    # distractors: never averaged in (they would change means and n)
    failed = log_trial(client, exp_id, parent, number, "grpo", "grpo", {}, 2, state="FAIL",
                       error="CUDA out of memory | at step 3", test={"test/bleu": 99.0})
    pruned = log_trial(client, exp_id, parent, number + 1, "grpo-g4", "grpo", {"grpo.group_size": "4"}, 2,
                       state="PRUNED", test={"test/bleu": 1.0})
    running = log_trial(client, exp_id, parent, number + 2, "sft", "sft", {}, 2, state="RUNNING")
    client.set_terminated(parent, "FINISHED")
    out = root / "report"
    path = build_report(STUDY, out, tracking_uri=uri)
    return {"uri": uri, "client": client, "parent": parent, "runs": runs, "out": out, "path": path,
            "md": path.read_text(encoding="utf-8"), "failed": failed, "pruned": pruned, "running": running,
            "n_trials": number + 3}


def section(md: str, title: str) -> str:
    """Text of the level-2 section whose heading starts with ``title``."""
    parts = re.split(r"^## ", md, flags=re.M)
    found = [p for p in parts if p.startswith(title)]
    assert found, f"no section {title!r}"
    return found[0]


def table_row(text: str, *first_cells: str) -> list[str]:
    """Cells of the markdown table row starting with ``first_cells``."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if line.startswith("|") and cells[:len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no row {first_cells} in\n{text}")


def stats(label: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.array(CONFIGS[label][2], dtype=float)
    return values.mean(axis=0), values.std(axis=0, ddof=1)


def cell(mean: float, std: float, n: int = 2, bold: bool = False) -> str:
    value = f"**{mean:.2f}**" if bold else f"{mean:.2f}"
    return f"{value} ± {std:.2f} (n={n})"


def pooled(label: str) -> pd.DataFrame:
    frames = [pd.DataFrame(example_scores(label, seed), index=IDS) for seed in (0, 1)]
    return (frames[0] + frames[1]) / 2


# ---------------------------------------------------------------------------------------------------


def test_header_counts_states_and_traces_runs(store):
    md = store["md"]
    assert md.startswith(f"# Study report: {STUDY}")
    assert f"Tracking URI: `{store['uri']}`" in md
    assert f"Trials: {store['n_trials']} (COMPLETE 16, FAIL 1, PRUNED 1, RUNNING 1)" in md
    assert re.search(r"Generated: \d{4}-\d\d-\d\dT", md)
    appendix = section(md, "Appendix")
    assert "<details>" in appendix
    for label, run_ids in store["runs"].items():
        row = table_row(appendix, "sqa", "tiny", label)
        assert all(r in " ".join(row) for r in run_ids)
    runs = pd.read_csv(store["out"] / "runs.csv")
    assert len(runs) == len(CONFIGS)


def test_method_comparison_cells(store):
    text = section(store["md"], "Method comparison")
    csv = pd.read_csv(store["out"] / "method_comparison_sqa.csv").set_index("Method")
    for label in CONFIGS:
        mean, std = stats(label)
        row = table_row(text, "tiny", label)
        assert row[2:8] == [cell(m, s) for m, s in zip(mean, std)], label
        for name, m, s in zip(NAMES, mean, std):
            assert csv.at[label, f"{name} mean"] == pytest.approx(m)
            assert csv.at[label, f"{name} std"] == pytest.approx(s)
            assert csv.at[label, f"{name} n"] == 2
    # rows in paper order: base, SFT, GRPO ..., MP-GRPO last
    order = list(csv.index)
    assert order[:2] == ["base", "sft"] and order[-1] == "mp-grpo"


def test_relative_improvements(store):
    rel = pd.read_csv(store["out"] / "relative_improvement_sqa.csv")
    text = section(store["md"], "Method comparison")
    base, _ = stats("base")
    sft, _ = stats("sft")
    for label in ("grpo", "mp-grpo", "grpo-meteor"):
        ours, _ = stats(label)
        for ref, over in ((base, "base (base)"), (sft, "SFT (sft)")):
            expected = 100 * (ours - ref) / ref
            row = rel[(rel["Method"] == label) & (rel["over"] == over)].iloc[0]
            np.testing.assert_allclose(row[NAMES].to_numpy(float), expected)
            assert table_row(text, "tiny", label, over)[3:9] == [f"{v:+.2f}%" for v in expected]
    sft_rows = rel[rel["Method"] == "sft"]
    assert list(sft_rows["over"]) == ["base (base)"]  # SFT only against base, base against nothing
    assert (rel["Method"] != "base").all()


def test_reward_ablation_avg_and_best(store):
    text = section(store["md"], "Reward ablation")
    csv = pd.read_csv(store["out"] / "reward_ablation_sqa_tiny.csv")
    rewards = {"bleu": "grpo", "meteor": "grpo-meteor", "rouge1": "grpo-rouge1"}
    assert list(csv["train_reward"]) == ["bleu", "rouge1", "meteor"]  # the paper's row order
    means = {r: stats(label)[0] for r, label in rewards.items()}
    best = {name: max(m[i] for m in means.values()) for i, name in enumerate(NAMES)}
    avg = {r: m.mean() for r, m in means.items()}
    for reward, label in rewards.items():
        mean, std = stats(label)
        row = table_row(text, reward)
        expected = [cell(m, s, bold=m == best[name]) for name, m, s in zip(NAMES, mean, std)]
        assert row[1:7] == expected
        is_best = avg[reward] == max(avg.values())
        assert row[7] == (f"**{avg[reward]:.2f}**" if is_best else f"{avg[reward]:.2f}")
        assert csv.set_index("train_reward").at[reward, "AVG"] == pytest.approx(avg[reward])
    # the ROUGE-2 tie (46.00 for bleu and rouge1) is bold in both rows
    assert table_row(text, "bleu")[4].startswith("**46.00**")
    assert table_row(text, "rouge1")[4].startswith("**46.00**")


def test_sweeps_and_mp_tables(store):
    md = store["md"]
    g = pd.read_csv(store["out"] / "sweep_group_size_sqa_tiny.csv")
    assert list(g["grpo.group_size"]) == [4, 8]
    assert list(g["config"]) == ["grpo-g4", "grpo"]
    beta = pd.read_csv(store["out"] / "sweep_beta_sqa_tiny.csv")
    assert list(beta["grpo.beta"]) == [0.0, 0.02]
    assert beta["BLEU mean"].tolist() == pytest.approx([stats("grpo-beta0")[0][0], stats("grpo")[0][0]])
    mp = pd.read_csv(store["out"] / "mp_grpo_sqa_tiny.csv")
    assert list(mp["config"]) == ["grpo", "mp-grpo"]
    assert "## Sweep: group size G" in md and "## Sweep: KL beta" in md and "## MP-GRPO on / off" in md


def test_failed_pruned_running_listed_not_averaged(store):
    text = section(store["md"], "Failed, pruned")
    assert "FAIL 1, PRUNED 1, RUNNING (incomplete) 1" in text
    row = table_row(text, "16", "grpo", "FAIL")
    assert row[5] == "CUDA out of memory \\| at step 3" and row[6] == store["failed"]
    assert table_row(text, "17", "grpo-g4", "PRUNED")[-1] == store["pruned"]
    assert table_row(text, "18", "sft", "RUNNING")[-1] == store["running"]
    # the distractor values 99 / 1 would show up in means and n=3 if averaged in
    csv = pd.read_csv(store["out"] / "method_comparison_sqa.csv").set_index("Method")
    assert csv.at["grpo", "BLEU n"] == 2 and csv.at["grpo-g4", "BLEU n"] == 2
    assert csv.at["sft", "BLEU n"] == 2
    for tab in ("Method comparison", "Appendix"):
        assert store["failed"] not in section(store["md"], tab)


def independent_bootstrap(a, b, n=10_000, seed=0):
    d = np.asarray(a) - np.asarray(b)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n, len(d)))
    boot = d[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = (1 + np.sum(np.abs(boot - d.mean()) >= abs(d.mean()))) / (n + 1)
    return d.mean(), lo, hi, p


def test_paired_bootstrap_api():
    rng = np.random.default_rng(5)
    a = rng.normal(50, 10, 200)
    same = paired_bootstrap(a, a.copy())
    assert same == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    big = paired_bootstrap(a + 5 + rng.normal(0, 1, 200), a)
    assert big["p_value"] < 0.01 and big["ci_low"] > 4 and big["ci_high"] < 6
    b = a + rng.normal(0.3, 3, 200)
    result = paired_bootstrap(b, a)
    diff, lo, hi, p = independent_bootstrap(b, a)
    assert result["diff"] == pytest.approx(diff)
    assert (result["ci_low"], result["ci_high"], result["p_value"]) == pytest.approx((lo, hi, p))
    # against the normal approximation of the mean difference
    d = b - a
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert result["ci_low"] == pytest.approx(d.mean() - 1.96 * se, abs=0.15 * se * 1.96)
    assert result["ci_high"] == pytest.approx(d.mean() + 1.96 * se, abs=0.15 * se * 1.96)
    with pytest.raises(ValueError):
        paired_bootstrap(a, a[:-1])


def test_significance_table(store):
    sig = pd.read_csv(store["out"] / "significance_sqa_tiny.csv")
    grpo, sft, mp = pooled("grpo"), pooled("sft"), pooled("mp-grpo")
    for metric, name in zip(METRICS, NAMES):
        row = sig[(sig["A"] == "grpo") & (sig["B"] == "sft") & (sig["metric"] == name)].iloc[0]
        diff, lo, hi, p = independent_bootstrap(grpo[metric].to_numpy(), sft[metric].to_numpy())
        assert row["diff"] == pytest.approx(diff) and diff == pytest.approx(10, abs=1.5)
        assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx((lo, hi, p))
        assert row["p_value"] < 0.01 and row["examples"] == N_EXAMPLES
        same = sig[(sig["A"] == "mp-grpo") & (sig["B"] == "grpo") & (sig["metric"] == name)].iloc[0]
        assert (same["diff"], same["p_value"]) == (0.0, 1.0)
        assert np.array_equal(mp[metric], grpo[metric])
    base = pooled("base")
    for metric, name in zip(METRICS, NAMES):  # every fine-tuned config is also tested against the base
        row = sig[(sig["A"] == "sft") & (sig["B"] == "base") & (sig["metric"] == name)].iloc[0]
        diff, lo, hi, p = independent_bootstrap(sft[metric].to_numpy(), base[metric].to_numpy())
        assert (row["diff"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx((diff, lo, hi, p))
    pairs = set(zip(sig["A"], sig["B"]))
    tuned = ("sft", "grpo", "grpo-rouge1", "grpo-meteor", "grpo-g4", "grpo-beta0", "mp-grpo")
    assert pairs == {("grpo", "sft"), ("grpo-rouge1", "sft"), ("grpo-meteor", "sft"), ("grpo-g4", "sft"),
                     ("grpo-beta0", "sft"), ("mp-grpo", "grpo"),
                     ("grpo-g4", "grpo"), ("grpo-beta0", "grpo"),  # sweep levels vs the default (G 8, beta 0.02)
                     } | {(c, "base") for c in tuned}
    g4, grpo = pooled("grpo-g4"), pooled("grpo")
    row = sig[(sig["A"] == "grpo-g4") & (sig["B"] == "grpo") & (sig["metric"] == "BLEU")].iloc[0]
    diff, lo, hi, p = independent_bootstrap(g4["bleu"].to_numpy(), grpo["bleu"].to_numpy())
    assert (row["diff"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx((diff, lo, hi, p))
    text = section(store["md"], "Significance")
    row = sig[(sig["A"] == "grpo") & (sig["B"] == "sft") & (sig["metric"] == "BLEU")].iloc[0]
    assert table_row(text, "grpo vs sft", "BLEU") == [
        "grpo vs sft", "BLEU", f"{row['diff']:+.2f}", f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]",
        f"{row['p_value']:.4f}", str(N_EXAMPLES)]


def test_compute_table(store):
    compute = pd.read_csv(store["out"] / "compute.csv").set_index("Config")
    numbers = {label: [2 * i, 2 * i + 1] for i, label in enumerate(CONFIGS)}
    for label, (n0, n1) in numbers.items():
        expected = {k: (compute_metrics(n0)[k] + compute_metrics(n1)[k]) / 2 for k in compute_metrics(0)}
        for key, value in expected.items():
            assert compute.at[label, f"{key} mean"] == pytest.approx(value)
        assert compute.at[label, "n"] == 2


def test_published_section_is_separate(store):
    md = store["md"]
    published = section(md, PUBLISHED_TITLE)
    assert "arXiv:2509.16990v1" in published and "44.9" in published and "granite-speech-2b" in published
    assert "Table 1" in published and "Table 3" in published
    assert "Table 2" not in published  # no AST trials: the CoVoST2 table is left out
    measured = md.split(f"## {PUBLISHED_TITLE}")[0]
    assert "granite" not in measured and "44.90" not in measured
    for csv in store["out"].glob("*.csv"):
        if not csv.name.startswith("published_"):
            assert "granite" not in csv.read_text()


def test_no_published_section_when_disabled(store, tmp_path):
    path = build_report(STUDY, tmp_path, tracking_uri=store["uri"], published=False, log_to_parent=False)
    assert PUBLISHED_TITLE not in path.read_text()


def test_plots_are_real_images(store):
    pngs = sorted(p.name for p in store["out"].glob("*.png"))
    assert pngs == ["curves_sqa_tiny.png", "mp_grpo.png", "sweep_beta_sqa_tiny.png",
                    "sweep_group_size_sqa_tiny.png"]
    for name in pngs:
        path = store["out"] / name
        assert path.stat().st_size > 5_000, name
        assert imread(path)[..., :3].var() > 1e-3, name
        assert f"]({name})" in store["md"]
    curves = pd.read_csv(store["out"] / "curves_sqa_tiny.csv")
    reward = curves[(curves["config"] == "grpo") & (curves["metric"] == "reward") & (curves["step"] == 4)].iloc[0]
    assert reward["mean"] == pytest.approx(0.2 + 0.04 + 0.12 + 0.005) and reward["n"] == 2
    assert reward["std"] == pytest.approx(np.std([0.0, 0.01], ddof=1))


def test_files_logged_to_parent_run(store):
    client: MlflowClient = store["client"]
    logged = {Path(f.path).name for f in client.list_artifacts(store["parent"], "report")}
    written = {p.name for p in store["out"].iterdir()}
    assert "report.md" in logged and logged == written


def test_unknown_study_raises(store, tmp_path):
    with pytest.raises(ValueError, match="no MLflow experiment"):
        build_report("nope", tmp_path, tracking_uri=store["uri"])


def test_cell_format_and_config_grouping_without_store():
    assert fmt_cell(41.234, float("nan"), 1) == "41.23 ± n/a (n=1)"
    assert fmt_cell(float("nan"), float("nan"), 0) == "—"
    assert fmt_cell(41.234, 0.5, 3, bold=True) == "**41.23** ± 0.50 (n=3)"

    def trial(number, label, reward, seed, state="COMPLETE"):
        params = {**BASE_PARAMS, "method": "grpo", "grpo.reward": reward, "seed": str(seed)}
        return Trial(f"r{number}", number, state, "FINISHED", label, "", params, {"test/bleu": float(number)})

    trials = [trial(0, "grpo", "bleu", 0), trial(1, "grpo", "bleu", 1), trial(2, "grpo", "rouge1", 0),
              trial(3, "grpo", "rouge1", 1, state="PRUNED")]
    configs = group_configs(trials)
    # same label, different reward: names say what tells them apart; the pruned trial is left out
    assert [(c.name, len(c.trials)) for c in configs] == [("grpo [grpo.reward=bleu]", 2),
                                                          ("grpo [grpo.reward=rouge1]", 1)]
    assert [[c.name for c in g] for g in factor_groups(configs, "grpo.reward")] == [[c.name for c in configs]]
    assert factor_groups(configs, "grpo.beta") == []

    def sized(number, group_size):  # configurations named by a number sort by its value, not as text
        params = {**BASE_PARAMS, "method": "grpo", "grpo.group_size": str(group_size), "seed": "0"}
        return Trial(f"r{number}", number, "COMPLETE", "FINISHED", "grpo", "", params, {"test/bleu": 1.0})

    names = [c.name for c in group_configs([sized(0, 16), sized(1, 4), sized(2, 8)])]
    assert names == ["grpo [grpo.group_size=4]", "grpo [grpo.group_size=8]", "grpo [grpo.group_size=16]"]


def test_study_without_complete_trials(store, tmp_path):
    client: MlflowClient = store["client"]
    exp_id = client.create_experiment("empty-study", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp_id, tags={"harness.role": "study"}, run_name="empty-study").info.run_id
    failed = log_trial(client, exp_id, parent, 0, "sft", "sft", {}, 0, state="FAIL", error="boom")
    md = build_report("empty-study", tmp_path / "out", tracking_uri=store["uri"]).read_text()
    assert "Trials: 1 (COMPLETE 0, FAIL 1, PRUNED 0, RUNNING 0)" in md and "No COMPLETE trials yet" in md
    assert table_row(section(md, "Failed, pruned"), "0", "sft", "FAIL")[-1] == failed
    assert {Path(f.path).name for f in client.list_artifacts(parent, "report")} >= {"report.md"}
