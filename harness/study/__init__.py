"""A study file: which trials to run, how to pick them and what to optimise.

A study is a YAML file (see ``studies/``)::

    description: GRPO reward ablation on spoken QA
    fixed: {task: sqa, method: grpo, eval: {bertscore: true}}     # partial TrialConfig
    space:                                                        # dotted TrialConfig keys
      grpo.reward: {choices: [bleu, rougeL, "bleu+0.5*bertscore"], when: {method: grpo}}
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}            # float (int if low/high are ints)
    seeds: [0, 1]                                                 # every configuration x every seed
    baselines: [{label: base, method: base-eval}, {label: sft, method: sft}]
    sampler: grid                                                 # or random / tpe / nsga2, {type: tpe, options: {...}}
    pruner: none                                                  # or {type: median, options: {...}}
    objective: {metric: test/bleu, direction: maximize}           # or a list of them (multi-objective):
    #   [{metric: test/bleu}, {metric: generated_tokens, direction: minimize}]  -> a Pareto front

:func:`load_study` parses and validates the whole study before anything runs: every grid point,
every choice, both ends of every range and every baseline x seed is resolved through
:class:`~harness.config.TrialConfig`. Any problem raises :class:`StudyError`, whose message names
the file, the line, the field and a fix. :meth:`StudyConfig.resolve` turns one Optuna trial's
parameters (dotted keys plus ``seed``) into the trial's :class:`~harness.config.TrialConfig`.

Modules, in the order a study file meets them:

* `base`: the shared names (`SEED`, `Scalar`, `YamlPath`) and `StudyError`.
* `yaml_lines`: YAML with line numbers (`read_yaml`).
* `keys`: dotted keys <-> nested TrialConfig dicts (`flatten`, `config_keys`) and the defaults.
* `spec`: the study schema (`ParamSpec`, `SamplerSpec`, `PrunerSpec`, `ObjectiveSpec` / `Objectives`,
  `StudyConfig`) and `label_of`.
* `load`: `load_study` and `load_trial_config`, the entry points.
* `checks`: the semantic checks `load` runs after the schema (keys, sampler, pruner, objective,
  every point resolved through TrialConfig, data and model paths).
* `sources`: what a trial config points at (model, data path, a real source's metadata), checked for
  every configuration and for `load_trial_config`'s one.
* `explain`: pydantic errors turned into ``file:line: field: problem. Fix: ...``.
* `samplers`: the Optuna sampler and pruner a study names (`make_sampler`, `make_pruner`).
"""

from harness.study.base import SEED, Scalar, StudyError, YamlPath
from harness.study.checks import VALIDATION_METRICS, objective_metric
from harness.study.keys import config_keys, flatten
from harness.study.load import load_study, load_trial_config
from harness.study.samplers import make_pruner, make_sampler
from harness.study.spec import ObjectiveSpec, ParamSpec, PrunerSpec, SamplerSpec, StudyConfig, label_of
from harness.study.yaml_lines import read_yaml

__all__ = [
    "SEED",
    "VALIDATION_METRICS",
    "ObjectiveSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "Scalar",
    "StudyConfig",
    "StudyError",
    "YamlPath",
    "config_keys",
    "flatten",
    "label_of",
    "load_study",
    "load_trial_config",
    "make_pruner",
    "make_sampler",
    "objective_metric",
    "read_yaml",
]
