"""Study files: parsing, validation of every point before training, and errors that say file:line, field, fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.config import TrialConfig
from harness.study import SEED, StudyError, label_of, load_study, load_trial_config

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# ---------------------------------------------------------------------------------------------
# Shipped studies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_studies_load(path: Path) -> None:
    study = load_study(path)
    assert study.name == path.stem
    assert study.description
    assert study.total_trials >= 1


def test_shipped_study_sizes() -> None:
    assert load_study(STUDIES / "lr_selection.yaml").total_trials == 2 * 2 * 4 * 2
    assert load_study(STUDIES / "paper_tables.yaml").total_trials == (2 * 3 + 2) * 5
    assert load_study(STUDIES / "reward_ablation.yaml").total_trials == (7 + 2) * 5
    assert load_study(STUDIES / "group_size.yaml").total_trials == 3 * 5
    assert load_study(STUDIES / "kl_sweep.yaml").total_trials == 4 * 5
    assert load_study(STUDIES / "grpo_variants.yaml").total_trials == (1 + 8) * 5
    assert load_study(STUDIES / "gspo_off_policy.yaml").total_trials == (1 + 1) * 5
    tpe = load_study(STUDIES / "tune_tpe.yaml")
    assert (tpe.sampler.type, tpe.pruner.type, tpe.objective.metric, tpe.total_trials) == (
        "tpe",
        "median",
        "val/bleu",
        12,
    )
    pareto = load_study(STUDIES / "pareto_bleu_tokens.yaml")
    assert (pareto.sampler.type, pareto.total_trials) == ("nsga2", 8)


def test_shared_configurations_are_the_same_trials() -> None:
    """The configurations the studies share resolve to identical TrialConfigs (so a trial run by one study
    is reused by the others at one commit): paper_tables' spoken-QA base, SFT, GRPO and MP-GRPO."""
    tables = load_study(STUDIES / "paper_tables.yaml")
    ablation = load_study(STUDIES / "reward_ablation.yaml")
    for seed in tables.seed_list:
        base = tables.resolve({"task": "sqa", "method": "base-eval", SEED: seed})
        sft = tables.resolve({"task": "sqa", "method": "sft", SEED: seed})
        grpo = tables.resolve({"task": "sqa", "method": "grpo", SEED: seed})
        mp = tables.resolve({SEED: seed}, baseline=0)
        assert (label_of(base), label_of(sft), label_of(grpo), label_of(mp)) == ("base", "sft", "grpo", "mp-grpo")
        assert ablation.resolve({SEED: seed}, baseline=0) == base and ablation.resolve({SEED: seed}, baseline=1) == sft
        assert ablation.resolve({"grpo.reward": "bleu", SEED: seed}) == grpo
        assert load_study(STUDIES / "group_size.yaml").resolve({"grpo.group_size": 8, SEED: seed}) == grpo
        assert load_study(STUDIES / "kl_sweep.yaml").resolve({"grpo.beta": 0.02, SEED: seed}) == grpo
        variants = load_study(STUDIES / "grpo_variants.yaml")
        assert variants.resolve({SEED: seed}) == grpo
        labels = [variants.baseline_label(i) for i in range(len(variants.baselines))]
        assert variants.resolve({SEED: seed}, baseline=labels.index("mp-grpo")) == mp


def test_reward_ablation_grid_and_baselines() -> None:
    study = load_study(STUDIES / "reward_ablation.yaml")
    grid = study.grid()
    assert grid[SEED] == [20, 21, 22, 23, 24]  # the first round of fresh seeds (0-4 were the pilot)
    assert "bleu+0.5*bertscore" in grid["grpo.reward"]
    assert [study.baseline_label(i) for i in range(2)] == ["base", "sft"]
    base = study.resolve({SEED: 1}, baseline=0)
    assert (base.method, base.seed, base.task, label_of(base)) == ("base-eval", 1, "sqa", "base")
    point = study.resolve({"grpo.reward": "meteor", SEED: 0})
    assert (point.method, point.grpo.reward, label_of(point)) == ("grpo", "meteor", "grpo")


def test_mp_grpo_label() -> None:
    study = load_study(STUDIES / "paper_tables.yaml")
    cfg = study.resolve({SEED: 0}, baseline=1)
    assert label_of(cfg) == "mp-grpo" and cfg.task == "ast"


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def test_defaults_resolution_and_float_syntax(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        fixed:
          grpo.beta: 0.0              # dotted keys work in 'fixed' too
          train: {lr: 1e-4}           # YAML 1.2 float
        space:
          train.warmup_steps: {low: 0, high: 4, step: 2}
        """,
        "my-study.yaml",
    )
    study = load_study(path)
    assert study.name == "my-study"
    assert study.sampler.type == "grid" and study.seed_list == [0]
    assert study.grid() == {"train.warmup_steps": [0, 2, 4], SEED: [0]}
    cfg = study.resolve({"train.warmup_steps": 2, SEED: 0})
    assert isinstance(cfg, TrialConfig)
    assert (cfg.train.lr, cfg.grpo.beta, cfg.train.warmup_steps) == (1e-4, 0.0, 2)
    assert study.text == path.read_text()


def test_conditional_parameters_with_random_sampler(tmp_path: Path) -> None:
    study = load_study(
        write(
            tmp_path,
            """
        sampler: {type: random, seed: 3}
        n_trials: 5
        space:
          method: {choices: [sft, grpo]}
          grpo.group_size: {choices: [4, 8], when: {method: grpo}}
          train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        """,
        )
    )
    assert study.total_trials == 5
    keys = [key for key, _ in study.ordered_space()]
    assert keys[-1] == "grpo.group_size"  # conditional after what it depends on
    spec = study.space["grpo.group_size"]
    assert spec.holds({"method": "grpo"}) and not spec.holds({"method": "sft"})
    assert study.space["train.lr"].is_int is False


def test_every_grid_point_is_validated(tmp_path: Path) -> None:
    """Each value is valid alone; one combination (mp_grpo with G=2) is not, and is caught before training."""
    path = write(
        tmp_path,
        """
        fixed: {method: grpo}
        space:
          grpo.mp_grpo: {choices: [false, true]}
          grpo.group_size: {choices: [2, 4]}
        """,
    )
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert "study.yaml:2" in message  # the 'space' line
    assert "'grpo.mp_grpo': True" in message and "'grpo.group_size': 2" in message
    assert "group_size >= 3" in message


def test_every_baseline_and_seed_is_validated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        seeds: [0, 1]
        baselines:
          - {label: base, method: base-eval}
          - {label: sft, method: sft, train: {steps: -1}}
        """,
    )
    with pytest.raises(StudyError, match=r"study\.yaml:4: field baselines\.1\.train\.steps: .*>= 0"):
        load_study(path)


# ---------------------------------------------------------------------------------------------
# Malformed studies: file, line, field and fix in one message
# ---------------------------------------------------------------------------------------------

MALFORMED = {
    "yaml-syntax": ("fixed:\n  task: [sqa\n", ["study.yaml:3", "YAML syntax error", "line 2", "Fix:"]),
    "not-a-mapping": ("- a\n- b\n", ["study.yaml:1", "mapping", "Fix:"]),
    "unknown-top-key": ("fixed: {task: sqa}\nspcae: {}\n", ["study.yaml:2", "field spcae", "did you mean 'space'"]),
    "unknown-config-key": (
        "fixed:\n  task: sqa\n  train: {stesp: 3}\n",
        ["study.yaml:3", "field fixed.train.stesp", "did you mean 'train.steps'"],
    ),
    "unknown-space-key": (
        "space:\n  grpo.rewrd: {choices: [bleu]}\n",
        ["study.yaml:2", "field space.grpo.rewrd", "did you mean 'grpo.reward'"],
    ),
    "wrong-type": ("n_trials: many\nsampler: random\n", ["study.yaml:1", "field n_trials", "integer", "Fix:"]),
    "empty-choices": (
        "space:\n  grpo.reward: {choices: []}\n",
        ["study.yaml:2", "field space.grpo.reward.choices", "at least 1", "Fix:"],
    ),
    "bad-reward": (
        "space:\n  grpo.reward:\n    choices:\n      - bleu\n      - rouge1\n      - blue\n",
        ["study.yaml:6", "field space.grpo.reward.choices.2", "unknown reward 'blue'", "Fix:"],
    ),
    "bad-fixed-reward": (
        "fixed:\n  grpo:\n    reward: bleu+0.5*bertscor\n",
        ["study.yaml:3", "field fixed.grpo.reward", "bertscor"],
    ),
    "group-size-too-small": (
        "fixed:\n  task: sqa\n  grpo: {group_size: 1}\n",
        ["study.yaml:3", "field fixed.grpo.group_size", "greater than or equal to 2", "Fix: use a value >= 2"],
    ),
    "choice-out-of-range": (
        "space:\n  grpo.group_size: {choices: [4, 1]}\n",
        ["study.yaml:2", "field space.grpo.group_size.choices.1", ">= 2"],
    ),
    "missing-data-path": (
        "fixed:\n  data: {source: ./no/such/dir}\n",
        ["study.yaml:2", "field fixed.data.source", "does not exist", "Fix:"],
    ),
    "bad-literal": ("fixed:\n  task: asr\n", ["study.yaml:2", "field fixed.task", "'sqa' or 'ast'"]),
    "range-backwards": (
        "space:\n  train.lr: {low: 0.1, high: 0.01}\n",
        ["study.yaml:2", "field space.train.lr", "swap"],
    ),
    "continuous-grid": (
        "space:\n  train.lr: {low: 0.001, high: 0.01}\n",
        ["study.yaml:2", "field space.train.lr", "continuous", "Fix:"],
    ),
    "condition-on-grid-dim": (
        "space:\n  method: {choices: [sft, grpo]}\n  grpo.beta: {choices: [0.0, 0.02], when: {method: grpo}}\n",
        ["study.yaml:3", "field space.grpo.beta.when.method", "baselines"],
    ),
    "tpe-without-budget": (
        "sampler: tpe\nspace:\n  train.lr: {low: 0.001, high: 0.01}\n",
        ["study.yaml:1", "field sampler", "n_trials"],
    ),
    "bad-sampler-option": (
        "sampler: {type: tpe, options: {n_startup: 2}}\nn_trials: 2\n",
        ["study.yaml:1", "field sampler.options", "n_startup", "TPESampler"],
    ),
    "prune-on-test-only-metric": (
        "pruner: median\nobjective: {metric: test/bertscore}\n",
        ["study.yaml:2", "field objective.metric", "pruner: none"],
    ),
    "bertscore-objective-without-bertscore": (
        "fixed:\n  eval: {bertscore: false}\nobjective: {metric: test/bertscore}\n",
        ["study.yaml:3", "field objective.metric", "eval.bertscore: true"],
    ),
    "duplicate-key": ("fixed: {task: sqa}\nfixed: {task: ast}\n", ["study.yaml:2", "duplicate key", "line 1"]),
    "seed-in-space": ("space:\n  seed: {choices: [0, 1]}\n", ["study.yaml:2", "field space.seed", "seeds:"]),
    "grid-n-trials-too-big": (
        "n_trials: 5\nspace:\n  grpo.reward: {choices: [bleu, rouge1]}\n",
        ["study.yaml:1", "field n_trials", "grid size 2"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_study_message(tmp_path: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    for piece in expected:
        assert piece in message, f"{piece!r} not in: {message}"


def test_missing_study_file(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not found"):
        load_study(tmp_path / "nope.yaml")


def test_trial_config_errors_name_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        task: sqa
        grpo:
          group_size: 8
          reward: rouge3
        """,
        "trial.yaml",
    )
    with pytest.raises(StudyError, match=r"trial\.yaml:4: field grpo\.reward: unknown reward 'rouge3'"):
        load_trial_config(path)
    ok = write(tmp_path, "task: ast\ntrain: {steps: 3}\n", "ok.yaml")
    assert load_trial_config(ok).train.steps == 3
