"""Fake studies for the report tests (tests/test_report_*.py), written to a real (sqlite) MLflow store the
way the sweep writes them (issue 12's "Done when"); the fixtures that write them once per session (`main`,
`lr`, `dirty_study`, `mlflow_store`) are in conftest.py.

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
clean commit (REPORT_COMMIT) so that the results do not depend on the state of this checkout; reports
written under the checkout's ``reports/`` go to a fresh folder that is removed afterwards, and the real
``reports/README.md`` is never touched.

"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import sacrebleu
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from harness.config import TrialConfig
from harness.data.synthetic import VOICE as PRETRAINING_VOICE
from harness.eval.bleu_stats import bleu_stats
from harness.report.export import FILES
from harness.study.keys import flatten
from harness.sweep.tracking import param_value
from harness.vocabulary import METRICS

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
