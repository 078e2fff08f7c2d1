"""`harness report`: the report folder and report.md from a real (sqlite) MLflow store written the way the
sweep writes it (issue 12's "Done when").

The store follows `harness.sweep.tracking.ensure_study_run` and `harness.sweep.objective.TrialRunner`: one
experiment per study, a study run (``harness.role=study``, provenance tags, ``study.yaml`` and
``swept.json``; the main study's also ``hearing.csv``, as `harness.sweep.hearing` logs it) and one nested
run per trial (trial tags, the flattened TrialConfig as params,
``final_metrics``, curves, ``trial_config.yaml`` and ``test_examples.json`` with per-example scores and
BLEU statistics of greedy and sampled decoding).

The per-example data have a known structure. Each configuration's quality on a seed is a word-corruption
rate ``q``: a hypothesis is its reference with every word whose (fixed, shared) uniform draw is below
``q`` replaced, so corpus BLEU is real sacreBLEU on real sentences (``test/bleu`` is
``sacrebleu.corpus_bleu`` of them) and configurations are paired by example; the other metrics are
``level + 60 (0.3 - q) + example effect + noise(0.3)`` with ROUGE-1 = ROUGE-L on every example. Two pairs
are built to have a known answer: GRPO (G = 8) against SFT is a large effect that every seed agrees on,
G = 16 against G = 8 has seeds that disagree wildly (a seed SD of ~25 BLEU) with a mean difference
that an example-only bootstrap of the seed means calls highly significant.

The GRPO reward METEOR configuration is below SFT with evidence (against the paper's Table 1).

Studies in the store: the main one (base, SFT, GRPO, MP-GRPO, rewards, G; greedy and sampled decoding;
``swept.json`` = reward and G), a learning-rate x KL study (GRPO only, greedy, beta = 0 levels), a study
whose trials ran from a dirty tree, and one without any finished trial. ``git_commit`` is patched to a
clean commit so that the results do not depend on the state of this checkout; reports written under
the checkout's ``reports/`` go to a fresh folder that is removed afterwards, and the real
``reports/README.md`` is never touched.

Expected numbers are computed here from the fixture data and the folder's files with numpy / pandas /
scipy (std: sample standard deviation, ddof=1), independently of the report's code, except where a
test states that it recomputes a row with the report's own `compare` (same seed, same replicates).

"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sacrebleu
import yaml
from matplotlib.image import imread
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats as scipy_stats

import harness.report.build as report_build
from harness import provenance
from harness.config import TrialConfig
from harness.data.synthetic import VOICE as PRETRAINING_VOICE
from harness.eval.bleu_stats import bleu_stats
from harness.report import DirtyTree, adjust, build_report, compare, rebuild_report, write_index
from harness.report.export import FILES
from harness.report.findings import identical_configs
from harness.report.folder import load_folder
from harness.report.inference import bleu_passes_score, bleu_score, mean_passes_score, mean_score
from harness.report.plots import plot_training
from harness.report.published import PUBLISHED_TITLE
from harness.study.keys import flatten
from harness.sweep.tracking import param_value
from harness.vocabulary import METRIC_NAMES, METRICS

N_BOOT = 2000  # the report's bootstrap replicates in these tests (the default, 10,000, is for real reports)
M = 40  # test examples
PASSES = 2  # sampled decoding passes
TRIAL_COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPORT_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"  # what git_commit() says while these tests run
CHECKPOINT = "tiny-sha256:5e1f00d"
METEOR_IMPL = "nltk-wordnet (test)"
BERTSCORE_IMPL = "sentence-transformers/all-MiniLM-L6-v2, no baseline rescaling (test)"
LEVEL = {"bertscore": 80.0, "rouge1": 55.0, "rouge2": 35.0, "rougeL": 55.0, "meteor": 50.0}
SAMPLED_PENALTY = 0.05  # sampled decoding corrupts this much more than greedy
VOICE = "en-au"
COMMON = {
    "task": "sqa",
    "data": {"voice": VOICE, "train_size": 96, "validation_size": 24, "test_size": M},
    "train": {"steps": 30, "lr": 0.0002, "eval_every": 10, "batch_size": 4, "warmup_steps": 3},
    "grpo": {"beta": 0.02, "temperature": 1.0, "group_size": 8, "max_new_tokens": 24},  # the paper's GRPO
    "eval": {"sampling_passes": PASSES, "max_new_tokens": 40, "top_p": 0.9, "temperature": 0.9},
}

# --------------------------------------------------------------------------------------------------
# Sentences and per-example scores with a known structure

_rng = np.random.default_rng(20250916)
VOCAB = [f"w{i}" for i in range(60)]
REF_TOKENS = [list(_rng.choice(VOCAB, size=int(_rng.integers(8, 13)))) for _ in range(M)]
REFERENCES = [" ".join(r) for r in REF_TOKENS]
IDS = [f"q{i:03d}" for i in range(M)]
U_GREEDY = [_rng.uniform(size=len(r)) for r in REF_TOKENS]  # shared by every configuration: paired examples
U_SAMPLED = [[_rng.uniform(size=len(r)) for r in REF_TOKENS] for _ in range(PASSES)]
EXAMPLE_EFFECT = {m: _rng.normal(0.0, 5.0, M) for m in ("bertscore", "rouge1", "rouge2", "meteor")}
EXAMPLE_EFFECT["rougeL"] = EXAMPLE_EFFECT["rouge1"]


def hypotheses(q: float, draws: list[np.ndarray]) -> list[str]:
    return [" ".join("zz" if u < q else w for w, u in zip(ref, us)) for ref, us in zip(REF_TOKENS, draws)]


def numeric_scores(q: float, key: str) -> dict[str, np.ndarray]:
    """Per-example scores of the non-BLEU metrics: level + 60 (0.3 - q) + example effect + noise(0.3);
    ROUGE-L = ROUGE-1 on every example (the spoken-QA duplicate of issue 12)."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    out = {
        m: LEVEL[m] + 60.0 * (0.3 - q) + EXAMPLE_EFFECT[m] + rng.normal(0.0, 0.3, M)
        for m in ("bertscore", "rouge1", "rouge2", "meteor")
    }
    out["rougeL"] = out["rouge1"].copy()
    return out


def trial_data(q: float, key: str, duplicate_rouge: bool = True, sampled_decoding: bool = True) -> dict:
    """Everything a trial with corruption rate ``q`` logs at its end: test metrics and test_examples.json."""
    greedy_h = hypotheses(q, U_GREEDY)
    sampled_h = [hypotheses(q + SAMPLED_PENALTY, U_SAMPLED[k]) for k in range(PASSES)]
    greedy = numeric_scores(q, key)
    sampled = [numeric_scores(q + SAMPLED_PENALTY, f"{key}/pass{k}") for k in range(PASSES)]
    if not duplicate_rouge:  # ROUGE-L a little below ROUGE-1, differently per example
        for scores in (greedy, *sampled):
            scores["rougeL"] = scores["rouge1"] - np.random.default_rng(zlib.crc32(key.encode()) + 1).uniform(0, 2, M)
    test = {f"test/{m}": float(v.mean()) for m, v in greedy.items()}
    test["test/bleu"] = sacrebleu.corpus_bleu(greedy_h, [REFERENCES], force=True).score
    for m in greedy:
        test[f"test/sampled/{m}"] = float(np.mean([s[m].mean() for s in sampled]))
    test["test/sampled/bleu"] = float(
        np.mean([sacrebleu.corpus_bleu(h, [REFERENCES], force=True).score for h in sampled_h])
    )
    examples = {
        "ids": IDS,
        "references": REFERENCES,
        "hypotheses": greedy_h,
        "scores": {m: v.tolist() for m, v in greedy.items()},
        "bleu_stats": bleu_stats(greedy_h, REFERENCES).tolist(),
        "sampled": {
            "scores": {m: [s[m].tolist() for s in sampled] for m in greedy},
            "bleu_stats": [bleu_stats(h, REFERENCES).tolist() for h in sampled_h],
            "hypotheses": sampled_h,
        },
    }
    if not sampled_decoding:  # eval.sampling_passes = 0: greedy only (examples_artifact has no "sampled")
        del examples["sampled"]
        test = {k: v for k, v in test.items() if not k.startswith("test/sampled/")}
    return {"test": test, "examples": examples}


def reversed_examples(examples: dict) -> dict:
    """The same examples listed in reverse order (the report must pair by id, not by position)."""
    out = json.loads(json.dumps(examples))
    for key in ("ids", "references", "hypotheses", "bleu_stats"):
        out[key] = out[key][::-1]
    out["scores"] = {m: v[::-1] for m, v in out["scores"].items()}
    if "sampled" not in out:
        return out
    sampled = out["sampled"]
    sampled["scores"] = {m: [p[::-1] for p in v] for m, v in sampled["scores"].items()}
    sampled["bleu_stats"] = [p[::-1] for p in sampled["bleu_stats"]]
    sampled["hypotheses"] = [p[::-1] for p in sampled["hypotheses"]]
    return out


# --------------------------------------------------------------------------------------------------
# Writing a study the way the sweep does


def trial_config(method: str, seed: int, overrides: dict) -> TrialConfig:
    data = json.loads(json.dumps(COMMON))
    data.update(method=method, seed=seed)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return TrialConfig.model_validate(data)


def val_curve(q: float, seed: int, method: str, steps: int, every: int) -> list[tuple[int, float]]:
    """Validation BLEU: SFT still improving at its last step; GRPO peaks mid-run on even seeds."""
    if method == "base-eval":
        return [(0, 20.0)]
    grid = list(range(0, steps + 1, every))
    end = 100 * (0.55 - q)
    shape = np.linspace(0.0, 1.0, len(grid))
    if method == "grpo" and seed % 2 == 0:
        shape[-1] = shape[-2] - 0.1
    curve = [(s, 20.0 + v * (end - 20.0) + 0.1 * seed) for s, v in zip(grid, shape)]
    if end < 20.0:  # a configuration that ends below its start still selects a trained step (step 0 is not compared)
        curve[1] = (curve[1][0], 20.5 + 0.1 * seed)
    return curve


def log_trial(
    client: MlflowClient,
    study: str,
    exp_id: str,
    parent: str,
    number: int,
    label: str,
    method: str,
    seed: int,
    overrides: dict,
    q: float | None,
    *,
    state: str = "COMPLETE",
    commit: str = TRIAL_COMMIT,
    error: str = "",
    reverse: bool = False,
    duplicate_rouge: bool = True,
    distractor: float | None = None,
    val_steps: int | None = None,
) -> dict:
    """One trial run as `TrialRunner` writes it: tags, flattened TrialConfig params, trial_config.yaml,
    validation and training curves, and (COMPLETE) final_metrics and test_examples.json; a FAIL / PRUNED /
    RUNNING trial stops after ``val_steps`` steps, with ``distractor`` test values."""
    cfg = trial_config(method, seed, overrides)
    tags = {
        "mlflow.parentRunId": parent,
        "harness.role": "trial",
        "harness.study": study,
        "harness.trial_number": str(number),
        "harness.label": label,
        "harness.state": state,
        "harness.git_commit": commit,
        "harness.machine": "test-machine, 2 CPUs, no GPU",
        "harness.checkpoint_revision": CHECKPOINT,
        "harness.metric.meteor": METEOR_IMPL,
        "harness.metric.bertscore": BERTSCORE_IMPL,
    }
    if error:
        tags["harness.error"] = error
    run_id = client.create_run(exp_id, tags=tags, run_name=f"{number:03d}-{label}").info.run_id
    params = [Param(k, param_value(v)) for k, v in flatten(cfg.model_dump(mode="json")).items()]
    if seed % 2 == 0:  # mlflow's log_model writes the logged model's model_config into the run's params;
        params.append(Param("harness.checkpoint_revision", CHECKPOINT))  # a reused trial logs no model
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i : i + 100])
    client.log_text(run_id, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "trial_config.yaml")
    steps = 0 if method == "base-eval" else cfg.train.steps
    metrics = [Metric("model/params", 2.5e6, 0, 0), Metric("model/trainable_params", 1.9e6, 0, 0)]
    q_curve = q if q is not None else 0.3
    curve = val_curve(q_curve, seed, method, steps if val_steps is None else val_steps, cfg.train.eval_every)
    for step, value in curve:
        metrics += [
            Metric("val/bleu", value, 0, step),
            Metric("val/rouge1", value + 20, 0, step),
            Metric("val/rougeL", value + 18, 0, step),
            Metric("val/nll", 3.0 - value / 50, 0, step),
        ]
    if method == "grpo":
        for step in range(1, (steps if val_steps is None else val_steps) + 1):
            metrics += [
                Metric("reward", 0.2 + 0.01 * step + 0.02 * seed, 0, step),
                Metric("completion_len_mean", 12.0 - 0.1 * step, 0, step),
            ]
            if cfg.grpo.beta > 0:
                metrics.append(Metric("kl", 0.001 * step, 0, step))
    if method == "sft":
        metrics += [Metric("loss", 2.0 / step, 0, step) for step in range(1, steps + 1)]
    out = {"run_id": run_id, "number": number, "label": label, "seed": seed, "cfg": cfg}
    if state == "COMPLETE":
        data = trial_data(
            q,
            f"{label}/{json.dumps(overrides, sort_keys=True)}/{seed}",
            duplicate_rouge,
            sampled_decoding=cfg.eval.sampling_passes > 0,
        )
        best = max(curve, key=lambda sv: sv[1])[0] if steps else 0
        final = {
            **data["test"],
            "best_step": best,
            "train_steps": steps,
            "wall_time_s": 100.0 + number,
            "generated_tokens": (0 if method == "sft" else 1000 * (number + 1)),
            "trained_tokens": (0 if method == "base-eval" else 500 * (number + 1)),
            "time/train": 50.0,
        }
        metrics += [Metric(k, float(v), 0, steps) for k, v in final.items()]
        client.log_dict(
            run_id, reversed_examples(data["examples"]) if reverse else data["examples"], "test_examples.json"
        )
        out.update(test=data["test"], final=final)
    elif distractor is not None:  # a value that would show up in a mean or an n if it were counted
        metrics += [Metric(f"test/{m}", distractor, 0, 1) for m in METRICS]
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i : i + 900])
    if state != "RUNNING":
        client.set_terminated(run_id, "FAILED" if state == "FAIL" else "FINISHED")
    return out


def log_hearing(client: MlflowClient, parent: str) -> pd.DataFrame:
    """The base model's hearing as the sweep logs it on the study run when the study ends
    (`harness.sweep.hearing`): each of the first test clips in the study's voice and in the pretraining
    voice, with its word / character errors. Returns the table."""
    rows = []
    for voice, dropped in ((VOICE, 2), (PRETRAINING_VOICE, 0)):  # the study's voice loses two words a clip
        for i in range(6):
            heard = " ".join(REF_TOKENS[i][dropped:])
            rows.append(
                {
                    "task": "sqa",
                    "voice": voice,
                    "id": IDS[i],
                    "reference": REFERENCES[i],
                    "transcript": heard,
                    "word_errors": dropped,
                    "words": len(REF_TOKENS[i]),
                    "char_errors": len(REFERENCES[i]) - len(heard),
                    "chars": len(REFERENCES[i]),
                    "checkpoint": "tiny-test",
                }
            )
    table = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as scratch:
        table.to_csv(Path(scratch) / "hearing.csv", index=False)
        client.log_artifact(parent, str(Path(scratch) / "hearing.csv"))
    return table


def log_study(
    client: MlflowClient,
    name: str,
    swept: dict,
    configs: dict,
    *,
    commit: str = TRIAL_COMMIT,
    duplicate_rouge: bool = True,
) -> tuple[str, list[dict]]:
    """A study run (tags, study.yaml, swept.json) and its trials: ``configs`` = name -> (label, method,
    overrides, [q per seed]). Returns (study run id, trials)."""
    exp_id = client.create_experiment(name)
    tags = {
        "harness.role": "study",
        "harness.study": name,
        "harness.git_commit": commit,
        "harness.machine": "test-machine, 2 CPUs, no GPU",
        "harness.command": f"harness sweep studies/{name}.yaml",
        "harness.version.numpy": np.__version__,
        "harness.version.sacrebleu": sacrebleu.__version__,
        "harness.n_trials": "99",
    }
    parent = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    space = {k: "[levels]" for k in swept}
    client.log_text(parent, yaml.safe_dump({"name": name, "space": space}, sort_keys=False), "study.yaml")
    client.log_dict(parent, swept, "swept.json")
    trials, number = [], 0
    for key, (label, method, overrides, qs) in configs.items():
        for seed, q in enumerate(qs):
            trials.append(
                log_trial(
                    client,
                    name,
                    exp_id,
                    parent,
                    number,
                    label,
                    method,
                    seed,
                    overrides,
                    q,
                    commit=commit,
                    reverse=seed == 1,
                    duplicate_rouge=duplicate_rouge,
                )
            )
            trials[-1]["config_key"] = key
            number += 1
    return parent, trials


# The main study: paper tables + reward ablation + group size, sampled decoding, ROUGE-1 = ROUGE-L.
MAIN = "demo-study"
MAIN_SWEPT = {"grpo.reward": "bleu", "grpo.group_size": 8}
MAIN_CONFIGS = {
    "base": ("base", "base-eval", {}, [0.45, 0.45]),  # the base model evaluated greedily: seeds agree
    "sft": ("sft", "sft", {}, [0.30, 0.31, 0.29]),
    "grpo": ("grpo", "grpo", {}, [0.20, 0.21, 0.19]),  # a consistent, large effect over SFT
    "mp": ("mp-grpo", "grpo", {"grpo.mp_grpo": True}, [0.21, 0.20]),
    "rouge1": ("grpo", "grpo", {"grpo.reward": "rouge1"}, [0.22, 0.23]),
    "meteor": ("grpo", "grpo", {"grpo.reward": "meteor"}, [0.40, 0.41, 0.39]),  # below SFT: against the paper
    "g16": ("grpo", "grpo", {"grpo.group_size": 16}, [0.02, 0.28, 0.03, 0.27]),  # seeds disagree wildly
}
MAIN_NAMES = {  # configuration names the report gives them (label + what tells same-label ones apart)
    "base": "base",
    "sft": "sft",
    "mp": "mp-grpo",
    "grpo": "grpo [grpo.group_size=8, grpo.reward=bleu]",
    "rouge1": "grpo [grpo.group_size=8, grpo.reward=rouge1]",
    "meteor": "grpo [grpo.group_size=8, grpo.reward=meteor]",
    "g16": "grpo [grpo.group_size=16, grpo.reward=bleu]",
}
REUSED_SOURCE = "f" * 32  # the run a reused trial copied (in another study)

# A study searching the learning rate and the KL coefficient: GRPO only, greedy decoding only, ROUGE-1 !=
# ROUGE-L, and two groups per factor (lr at beta 0 and at beta 0.02; beta at lr 1e-4 and at lr 1e-3).
LR = "lr-study"
LR_SWEPT = {"train.lr": 0.0001, "grpo.beta": 0.0}
GREEDY = {"eval.sampling_passes": 0}
LR_CONFIGS = {
    "lr1": ("grpo", "grpo", {**GREEDY, "train.lr": 0.0001, "grpo.beta": 0.0}, [0.25, 0.26, 0.24]),
    "lr3": ("grpo", "grpo", {**GREEDY, "train.lr": 0.0003, "grpo.beta": 0.0}, [0.20, 0.21]),
    "lr10": ("grpo", "grpo", {**GREEDY, "train.lr": 0.001, "grpo.beta": 0.0}, [0.35, 0.36]),
    "lr1-kl": ("grpo", "grpo", {**GREEDY, "train.lr": 0.0001, "grpo.beta": 0.02}, [0.24, 0.25]),
    "lr10-kl": ("grpo", "grpo", {**GREEDY, "train.lr": 0.001, "grpo.beta": 0.02}, [0.30, 0.31]),
}
LR_NAMES = {
    "lr1": "grpo [grpo.beta=0.0, train.lr=0.0001]",
    "lr3": "grpo [grpo.beta=0.0, train.lr=0.0003]",
    "lr10": "grpo [grpo.beta=0.0, train.lr=0.001]",
    "lr1-kl": "grpo [grpo.beta=0.02, train.lr=0.0001]",
    "lr10-kl": "grpo [grpo.beta=0.02, train.lr=0.001]",
}

# A study whose trials ran from a dirty tree, and one without any finished trial.
DIRTY = "dirty-study"
DIRTY_COMMIT = TRIAL_COMMIT + "-dirty"
DIRTY_CONFIGS = {"sft": ("sft", "sft", {**GREEDY}, [0.30, 0.31])}
EMPTY = "empty-study"


def evidence_copy(src: Path, dst: Path) -> Path:
    """Only the exported evidence files of a report folder (no report.md, no tables, no figures)."""
    dst.mkdir(parents=True)
    for name in FILES.values():
        path = src / name
        if path.is_dir():
            shutil.copytree(path, dst / name)
        elif path.is_file():
            shutil.copy2(path, dst / name)
    return dst


@pytest.fixture(scope="module", autouse=True)
def clean_checkout():
    """The code writing the reports is a clean commit (whatever state this checkout is in while the tests
    run); tests about a dirty checkout patch it again."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_build, "git_commit", lambda: REPORT_COMMIT)
        yield


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory, empty_mlflow_db):
    root = tmp_path_factory.mktemp("report-store")
    shutil.copy(empty_mlflow_db, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return {"uri": uri, "client": MlflowClient(tracking_uri=uri), "root": root}


@pytest.fixture(scope="module")
def main(mlflow_store):
    """The main study, its report (built from the store, logged to the study run) and the same report
    rebuilt from a copy of the folder's evidence files alone."""
    client, root = mlflow_store["client"], mlflow_store["root"]
    parent, trials = log_study(client, MAIN, MAIN_SWEPT, MAIN_CONFIGS)
    hearing = log_hearing(client, parent)
    sft0 = next(t for t in trials if t["config_key"] == "sft" and t["seed"] == 0)
    client.set_tag(sft0["run_id"], "harness.reused_from", REUSED_SOURCE)  # a reused trial (from another study)
    exp_id = client.get_experiment_by_name(MAIN).experiment_id
    n, grpo = len(trials), MAIN_CONFIGS["grpo"][2]
    # trials that did not finish, with test values that would change a mean or an n if they were counted
    failed = log_trial(
        client,
        MAIN,
        exp_id,
        parent,
        n,
        "grpo",
        "grpo",
        7,
        grpo,
        None,
        state="FAIL",
        error="RuntimeError: CUDA out of memory | at step 3",
        distractor=99.0,
        val_steps=0,
    )
    pruned = log_trial(
        client, MAIN, exp_id, parent, n + 1, "sft", "sft", 7, {}, 0.5, state="PRUNED", distractor=1.0, val_steps=10
    )
    running = log_trial(
        client, MAIN, exp_id, parent, n + 2, "sft", "sft", 8, {}, None, state="RUNNING", distractor=1.0, val_steps=0
    )
    client.set_terminated(parent, "FINISHED")
    out = root / "main"
    path = build_report(MAIN, out, tracking_uri=mlflow_store["uri"], n_boot=N_BOOT)
    copy = evidence_copy(out, root / "main-copy")
    rebuild_report(copy, n_boot=N_BOOT)
    per_seed = pd.read_csv(out / "per_seed.csv", dtype={"run_id": str})
    return {
        **mlflow_store,
        "parent": parent,
        "trials": trials,
        "out": out,
        "copy": copy,
        "md": path.read_text(encoding="utf-8"),
        "failed": failed,
        "pruned": pruned,
        "running": running,
        "per_seed": per_seed,
        "comparisons": pd.read_csv(out / "comparisons.csv"),
        "findings": pd.read_csv(out / "findings.csv"),
        "hearing": hearing,
    }


@pytest.fixture(scope="module")
def lr(mlflow_store):
    """The lr x beta study's report, and the same folder rebuilt after changing the recorded lr default."""
    client, root = mlflow_store["client"], mlflow_store["root"]
    _, trials = log_study(client, LR, LR_SWEPT, LR_CONFIGS, duplicate_rouge=False)
    out = root / "lr"
    path = build_report(LR, out, tracking_uri=mlflow_store["uri"], n_boot=N_BOOT, log_to_parent=False)
    changed = evidence_copy(out, root / "lr-default-changed")
    (changed / "swept.json").write_text(json.dumps({**LR_SWEPT, "train.lr": 0.001}))
    rebuild_report(changed, n_boot=N_BOOT)
    return {
        "out": out,
        "md": path.read_text(encoding="utf-8"),
        "trials": trials,
        "changed": changed,
        "changed_md": (changed / "report.md").read_text(encoding="utf-8"),
        "comparisons": pd.read_csv(out / "comparisons.csv"),
        "changed_comparisons": pd.read_csv(changed / "comparisons.csv"),
    }


@pytest.fixture(scope="module")
def dirty_study(mlflow_store):
    log_study(mlflow_store["client"], DIRTY, {}, DIRTY_CONFIGS, commit=DIRTY_COMMIT)
    return mlflow_store


@pytest.fixture
def in_repo(monkeypatch):
    """A fresh folder under the checkout's reports/ (removed afterwards); write_index of the real
    reports/ is recorded, not run (its own test runs it on a temporary folder)."""
    folder = provenance.CHECKOUT / "reports" / f"test-report-{uuid.uuid4().hex[:12]}"
    indexed: list[Path] = []
    monkeypatch.setattr(report_build, "write_index", lambda reports: indexed.append(Path(reports)))
    try:
        yield folder, indexed
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        assert not folder.exists()


# --------------------------------------------------------------------------------------------------
# Reading reports and folders


def section(md: str, title: str, level: int = 2) -> str:
    """Text of the section whose heading (at ``level``) starts with ``title``, up to the next heading of
    that level or above."""
    hashes = "#" * level
    found = re.search(rf"^{hashes} {re.escape(title)}.*?(?=^#{{1,{level}}} |\Z)", md, flags=re.MULTILINE | re.DOTALL)
    assert found, f"no section {title!r}"
    return found.group(0)


def sections(md: str, title: str) -> list[str]:
    return re.findall(rf"^## {re.escape(title)}.*?(?=^## |\Z)", md, flags=re.MULTILINE | re.DOTALL)


def md_tables(text: str) -> list[pd.DataFrame]:
    """Every markdown table in ``text`` as a frame of cell strings."""
    tables, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            tables.append(pd.DataFrame(rows[2:], columns=rows[0]))
            rows = []
    return tables


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, written out."""
    p = np.asarray(p_values, dtype=float)
    out, running = np.empty_like(p), 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    n, out, running = len(p), np.empty_like(p), 1.0
    for rank, i in reversed(list(enumerate(np.argsort(p, kind="stable")))):
        running = min(running, n * p[i] / (rank + 1))
        out[i] = running
    return out


BLEU_COLUMNS = [
    "bleu_sys_len",
    "bleu_ref_len",
    "bleu_correct_1",
    "bleu_correct_2",
    "bleu_correct_3",
    "bleu_correct_4",
    "bleu_total_1",
    "bleu_total_2",
    "bleu_total_3",
    "bleu_total_4",
]


def folder_features(folder: Path, config: str, metric: str, decoding: str, task: str | None = None) -> np.ndarray:
    """``[seeds, examples, (passes,) (10,)]`` of a configuration (on ``task`` where the name recurs on
    several), built here from per_seed.csv and per_example.csv.gz: seeds in per_seed.csv order,
    examples by id, passes by number."""
    per_seed = pd.read_csv(folder / "per_seed.csv", dtype={"run_id": str})
    pe = pd.read_csv(folder / "per_example.csv.gz", dtype={"run_id": str, "id": str})
    columns = BLEU_COLUMNS if metric == "bleu" else [metric]
    seeds = []
    mine = (per_seed["config"] == config) & ((per_seed["task"] == task) if task else True)
    for run_id in per_seed.loc[mine, "run_id"]:
        rows = pe[(pe["run_id"] == run_id) & (pe["decoding"] == decoding)].sort_values(["pass", "id"])
        passes = [part[columns].to_numpy(float) for _, part in rows.groupby("pass")]
        x = np.stack(passes, axis=1) if decoding == "sampled" else passes[0]
        seeds.append(x if metric == "bleu" else x[..., 0])
    return np.stack(seeds)


def score_for(metric: str, decoding: str):
    if metric == "bleu":
        return bleu_passes_score if decoding == "sampled" else bleu_score
    return mean_passes_score if decoding == "sampled" else mean_score


def row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= frame[key].to_numpy() == value
    found = frame[mask]
    assert len(found) == 1, f"{len(found)} rows with {where}"
    return found.iloc[0]


def complete_trials(main, key: str | None = None) -> list[dict]:
    return [t for t in main["trials"] if key is None or t["config_key"] == key]


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
# 2. Every mean ± std recomputes from per_seed.csv


def seeds_of(per_seed: pd.DataFrame, table: Path, config: str) -> pd.DataFrame:
    """The per-seed rows behind one row of a mean ± std table: its configuration on the table's task
    (named in the file name; one configuration name can recur on several tasks)."""
    tasks = [t for t in per_seed["task"].unique() if t in table.stem.split("_")]
    assert len(tasks) == 1, table.name
    return per_seed[(per_seed["config"] == config) & (per_seed["task"] == tasks[0])]


def summary_tables(folder: Path) -> list[tuple[Path, str, str]]:
    """(CSV, its configuration column, the test/ prefix of its decoding) of every mean ± std table."""
    out = []
    for path in sorted(folder.glob("*.csv")):
        kind = path.stem.split("_")[0]
        if kind in ("methods", "reward", "sweep"):
            prefix = "test/sampled/" if path.stem.endswith("_sampled") else "test/"
            out.append((path, "Method" if kind == "methods" else "config", prefix))
    return out


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


# --------------------------------------------------------------------------------------------------
# 4. Seed-aware inference in the report


def example_only_p(a: np.ndarray, b: np.ndarray, n: int = 4000, seed: int = 1) -> float:
    """The test issue 12 replaced: average each example over seeds, then a paired bootstrap over
    examples only (two-sided, centred)."""
    d = a.mean(axis=0) - b.mean(axis=0)
    boot = d[np.random.default_rng(seed).integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    return (1 + np.sum(np.abs(boot - d.mean()) >= abs(d.mean()))) / (n + 1)


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


# --------------------------------------------------------------------------------------------------
# 8. Provenance


def test_clean_store_writes_no_dirty_note(main):
    title = main["md"].splitlines()[0]
    assert title == f"# Study report: {MAIN}"
    assert "dirty" not in main["md"].lower() and "Not reproducible" not in main["md"]
    prov = json.loads((main["out"] / "provenance.json").read_text())
    assert prov["report_commit"] == REPORT_COMMIT and prov["trial_commits"] == [TRIAL_COMMIT]
    assert prov["commit"] == TRIAL_COMMIT and prov["study_run"] == main["parent"]
    assert prov["versions"] == {"numpy": np.__version__, "sacrebleu": sacrebleu.__version__}
    assert prov["reused_trials"] == 1
    assert yaml.safe_load((main["out"] / "study.yaml").read_text())["name"] == MAIN
    assert json.loads((main["out"] / "swept.json").read_text()) == MAIN_SWEPT
    configs = sorted(p.name for p in (main["out"] / "configs").glob("*.yaml"))
    assert len(configs) == len(MAIN_CONFIGS)
    g16 = yaml.safe_load((main["out"] / "configs" / "sqa__grpo_grpo.group_size=16_grpo.reward=bleu.yaml").read_text())
    expected = trial_config("grpo", 0, MAIN_CONFIGS["g16"][2]).model_dump(mode="json")
    assert g16 == {**expected, "seed": [0, 1, 2, 3]}  # the resolved config, the seeds it ran with


def test_dirty_trials_refused_in_reports(dirty_study, in_repo):
    folder, indexed = in_repo
    with pytest.raises(DirtyTree, match=re.escape(DIRTY_COMMIT)):
        build_report(DIRTY, folder, tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert not (folder / "report.md").exists() and indexed == []


def test_dirty_trials_allowed_say_so_in_the_title(dirty_study, in_repo):
    folder, indexed = in_repo
    path = build_report(
        DIRTY, folder, tracking_uri=dirty_study["uri"], allow_dirty=True, log_to_parent=False, n_boot=N_BOOT
    )
    md = path.read_text()
    assert md.splitlines()[0] == f"# Study report: {DIRTY} (from a dirty tree: not reproducible from a commit)"
    assert f"- **Not reproducible from a commit:** trials ran at `{DIRTY_COMMIT}`." in md
    assert indexed == [provenance.CHECKOUT / "reports"]  # the index of reports/ is rewritten


def test_dirty_report_code_refused_in_reports(main, in_repo, monkeypatch):
    folder, _ = in_repo
    monkeypatch.setattr(report_build, "git_commit", lambda: REPORT_COMMIT + "-dirty")
    with pytest.raises(DirtyTree, match="the report was written at"):
        build_report(MAIN, folder, tracking_uri=main["uri"], log_to_parent=False, n_boot=N_BOOT)


def test_dirty_trials_outside_reports_are_written_with_the_note(dirty_study, tmp_path):
    path = build_report(DIRTY, tmp_path / "out", tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert "(from a dirty tree" in path.read_text().splitlines()[0]


def test_refused_report_leaves_reports_untouched(dirty_study, in_repo):
    folder, _ = in_repo
    folder.mkdir(parents=True)
    (folder / "per_seed.csv").write_text("the committed evidence\n")
    with pytest.raises(DirtyTree):
        build_report(DIRTY, folder, tracking_uri=dirty_study["uri"], log_to_parent=False, n_boot=N_BOOT)
    assert (folder / "per_seed.csv").read_text() == "the committed evidence\n"
    assert sorted(p.name for p in folder.iterdir()) == ["per_seed.csv"]


INDEX_HYPOTHESES = """
seeds: [0, 1, 2]
hypotheses:
  tests:
    - {name: grpo_vs_sft, a: {grpo.reward: bleu, grpo.group_size: 8, label: grpo}, b: {label: sft}, margin: 2.0}
    - {name: meteor_vs_sft, a: {grpo.reward: meteor, label: grpo}, b: {label: sft}, margin: 2.0}
"""


def test_write_index(main, tmp_path):
    """Per study: its declared hypotheses as a table (verdict, Δ [RCI], seeds, a link to the row), or a
    line saying it has none; then one line counting its exploratory comparisons."""
    reports = tmp_path / "reports"
    for name in ("alpha", "beta"):
        shutil.copytree(main["out"], reports / name)
    study = reports / "alpha" / "study.yaml"
    study.write_text(study.read_text() + INDEX_HYPOTHESES)
    rebuild_report(reports / "alpha", n_boot=N_BOOT)
    (reports / "beta" / "findings.csv").unlink()
    (reports / "no-report").mkdir()  # a folder without report.md is not a study report
    (reports / "no-report" / "per_seed.csv").write_text("x\n")
    path = write_index(reports)
    assert path == reports / "README.md"
    index = path.read_text()
    assert index.startswith("# Reports\n")
    assert "## [alpha](alpha/report.md)" in index and "## [beta](beta/report.md)" in index
    assert "no-report" not in index
    alpha, beta = index.split("## [alpha]")[1].split("## [beta]")
    assert f"Study report: {MAIN}." in alpha
    assert "No declared hypotheses: every comparison of this report is exploratory." in beta
    table = pd.read_csv(reports / "alpha" / "hypotheses.csv")
    assert list(table["hypothesis"]) == ["grpo_vs_sft", "meteor_vs_sft"] and set(table["seeds"]) == {3}
    shown = md_tables(alpha)[0]
    assert list(shown["verdict"]) == [
        "**grpo [grpo.group_size=8, grpo.reward=bleu] better than sft**",
        "**grpo [grpo.group_size=8, grpo.reward=meteor] worse than sft**",
    ]
    assert list(shown["row"]) == [
        "[hypotheses.csv](alpha/hypotheses.csv#L2)",
        "[hypotheses.csv](alpha/hypotheses.csv#L3)",
    ]
    findings = main["findings"]
    against = int((findings["relation"] == "against the paper").sum())
    agreeing = int((findings["relation"] == "agrees with the paper").sum())
    assert f"({against} against the paper's published direction, {agreeing} agreeing)" in alpha
    answer = section((reports / "alpha" / "report.md").read_text(), "Answer")
    assert "2 hypotheses declared in the study file before the run" in answer
    assert "| grpo_vs_sft | **grpo [grpo.group_size=8, grpo.reward=bleu] better than sft**" in answer


def test_write_index_links_to_the_row(main, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(main["out"], reports / "alpha")
    study = reports / "alpha" / "study.yaml"
    study.write_text(study.read_text() + INDEX_HYPOTHESES)
    rebuild_report(reports / "alpha", n_boot=N_BOOT)
    index = write_index(reports).read_text()
    links = re.findall(r"\]\((alpha/hypotheses.csv#L\d+)\)", index)
    assert links and len(set(links)) == len(links)


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


# --------------------------------------------------------------------------------------------------
# 10. Figures, published tables, files logged to the study run


def test_figures_are_real_images(main, lr):
    pngs = sorted(p.name for p in main["out"].glob("*.png"))
    assert pngs == [
        "mp_grpo.png",
        "reward_training_sqa_tiny.png",
        "sweep_group_size_sqa_tiny.png",
        "training_sqa_tiny.png",
        "validation_sqa_tiny.png",
    ]  # training: MP-GRPO and G=16
    assert {"training_sqa_tiny.png", "validation_sqa_tiny.png"} <= {p.name for p in lr["out"].glob("*.png")}
    for folder, md in ((main["out"], main["md"]), (lr["out"], lr["md"])):
        for path in folder.glob("*.png"):
            image = imread(path)
            assert image.ndim == 3 and min(image.shape[:2]) > 150, path.name
            assert image[..., :3].var() > 1e-3, path.name
            assert f"]({path.name})" in md, path.name


def test_training_plot_marks_no_reference_for_beta_zero(main, lr):
    def notes(folder: Path, name: str) -> list[str]:
        data = load_folder(folder)
        config = next(c for c in data.configs if c.name == name)
        fig = plot_training(data, [config], name)
        return [t.get_text() for ax in fig.axes for t in ax.texts]

    assert "no reference (β = 0)" in notes(lr["out"], LR_NAMES["lr1"])
    assert notes(lr["out"], LR_NAMES["lr1-kl"]) == []  # beta 0.02: the KL is drawn
    assert notes(main["out"], MAIN_NAMES["grpo"]) == []


def test_published_tables_sit_in_their_own_section(main):
    md = main["md"]
    published = section(md, PUBLISHED_TITLE)
    assert "arXiv:2509.16990v1" in published and "granite-speech-2b" in published
    assert "Table 1" in published and "Table 3" in published and "Table 2" not in published  # no AST trials
    measured = md.split(f"## {PUBLISHED_TITLE}")[0]
    assert "| granite" not in measured
    # published figures sit beside the measured ones only in columns labelled as the paper's
    beside = 0
    for table in md_tables(measured):
        for column in table.columns:
            if (table[column] == "44.90").any():
                assert "paper" in column, column
                beside += 1
    assert beside >= 2  # sampled and greedy method tables (and the reward ablation's) show Table 1's GRPO row
    assert md.index(f"## {PUBLISHED_TITLE}") > md.index("## Comparisons")
    for path in main["out"].glob("*.csv"):
        if not path.name.startswith("published_"):
            assert "granite" not in path.read_text(), path.name


def artifact_paths(client: MlflowClient, run_id: str, path: str) -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_hearing_comes_from_the_study_run(main):
    """The report copies the base model's hearing that the sweep logged on the study run (it loads no
    model) and shows each voice's error rates."""
    copied = pd.read_csv(main["out"] / "hearing.csv", dtype={"id": str})
    pd.testing.assert_frame_equal(copied, main["hearing"])
    shown = md_tables(section(main["md"], "The base model's hearing"))[0]
    wer = {v.split()[0]: float(w) for v, w in zip(shown["voice"], shown["WER %"])}
    part = main["hearing"][main["hearing"]["voice"] == VOICE]
    expected = {VOICE: 100 * part["word_errors"].sum() / part["words"].sum(), PRETRAINING_VOICE: 0.0}
    assert wer == pytest.approx(expected, abs=0.01)  # (shown to two decimals)


def test_files_logged_to_the_study_run(main):
    logged = artifact_paths(main["client"], main["parent"], "report")
    written = {"report/" + p.relative_to(main["out"]).as_posix() for p in main["out"].rglob("*") if p.is_file()}
    assert "report/report.md" in logged and "report/per_seed.csv" in logged
    assert any(p.startswith("report/configs/") for p in logged)
    assert logged == written


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


def test_test_outputs_beside_their_reference(main):
    """The report shows what the models answered on the test set (not training rollouts): the first
    examples, the reference and each configuration's greedy answer with its sentence BLEU, from the folder."""
    outputs = pd.read_csv(main["out"] / "test_outputs.csv.gz", dtype=str, keep_default_na=False)
    assert set(outputs["id"]) == set(IDS) and (outputs["reference"] != "").all()
    shown = md_tables(section(main["md"], "Test outputs"))[0]
    assert list(dict.fromkeys(shown["example"])) == sorted(IDS)[:3]
    first = shown.iloc[0]
    assert first["reference"] == REFERENCES[IDS.index(first["example"])]
    per_example = pd.read_csv(main["out"] / "per_example.csv.gz", dtype={"id": str})
    sft = next(c for c in load_folder(main["out"]).configs if c.name == "sft")
    run = sft.rows.sort_values("seed").iloc[0]["run_id"]
    hit = shown[shown["configuration"] == f"sqa sft (seed {int(sft.rows['seed'].min())})"].iloc[0]
    answer = outputs[(outputs["run_id"] == run) & (outputs["id"] == hit["example"])]["hypothesis"].iloc[0]
    bleu = per_example[
        (per_example["run_id"] == run) & (per_example["id"] == hit["example"]) & (per_example["decoding"] == "greedy")
    ]["bleu"].iloc[0]
    assert hit["greedy answer"] == answer and hit["sentence BLEU"] == (f"{bleu:.2f}" if np.isfinite(bleu) else "—")


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
