"""A study file: which trials to run, how to pick them and what to optimise.

A study is a YAML file (see ``studies/``)::

    description: GRPO reward ablation on spoken QA
    fixed: {task: sqa, method: grpo, eval: {bertscore: true}}     # partial TrialConfig
    space:                                                        # dotted TrialConfig keys
      grpo.reward: {choices: [bleu, rougeL, "bleu+0.5*bertscore"], when: {method: grpo}}
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}            # float (int if low/high are ints)
    seeds: [0, 1]                                                 # every configuration x every seed
    baselines: [{label: base, method: base-eval}, {label: sft, method: sft}]
    sampler: grid                                                 # or {type: tpe, seed: 0, options: {...}}
    pruner: none                                                  # or {type: median, options: {...}}
    objective: {metric: test/bleu, direction: maximize}

:func:`load_study` parses and validates the whole study before anything runs: every grid point,
every choice, both ends of every range and every baseline x seed is resolved through
:class:`~harness.config.TrialConfig`. Any problem raises :class:`StudyError`, whose message names
the file, the line, the field and a fix. :meth:`StudyConfig.resolve` turns one Optuna trial's
parameters (dotted keys plus ``seed``) into the trial's :class:`~harness.config.TrialConfig`.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from harness.config import TrialConfig

Scalar = str | bool | int | float | None
YamlPath = tuple[str | int, ...]

SEED = "seed"  # the Optuna parameter that carries the trial seed
VALIDATION_METRICS = ("bleu", "rouge1", "rouge2", "rougeL", "meteor", "nll")  # what validation computes
_MAX_CHECKED_POINTS = 20_000  # combinations validated for random/tpe spaces (grids: all points)


class StudyError(ValueError):
    """A study (or trial config) file that cannot run; the message says where and how to fix it."""


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-4`` (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"),
    list("-+0123456789."),
)


def read_yaml(path: Path, what: str = "study") -> tuple[Any, dict[YamlPath, int]]:
    """Parse ``path``; return (data, {path in the document: 1-based line of its key or item})."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: {what} file not found. Fix: check the path (cwd is {Path.cwd()}).") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(f"{path}: cannot read the {what} file ({err}).") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark, start = err.problem_mark or err.context_mark, err.context_mark
        line = f":{mark.line + 1}" if mark else ""
        context = f" ({err.context} that starts on line {start.line + 1})" if err.context and start else ""
        raise StudyError(
            f"{path}{line}: YAML syntax error: {err.problem or err}{context}. Fix: check indentation, "
            "colons, brackets and quoting there (quote strings containing ':', '#', '*' or '+')."
        ) from None
    if node is None:
        return {}, {}
    marks: dict[YamlPath, int] = {}
    _collect_marks(path, node, (), marks)
    loader = _Loader("")
    try:
        return loader.construct_document(node), marks
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        raise StudyError(f"{path}:{mark.line + 1 if mark else '?'}: {err.problem}. Fix: use plain YAML values.") from None


def _collect_marks(path: Path, node: yaml.Node, at: YamlPath, marks: dict[YamlPath, int]) -> None:
    marks.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise StudyError(
                    f"{path}:{line}: field {_dotted(at + (key,))}: duplicate key {key!r} (first on line "
                    f"{seen[key]}). Fix: keep only one of them."
                )
            seen[key] = line
            marks[at + (key,)] = line
            _collect_marks(path, value_node, at + (key,), marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[at + (i,)] = item.start_mark.line + 1
            _collect_marks(path, item, at + (i,), marks)


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _line(marks: Mapping[YamlPath, int], loc: Sequence[str | int]) -> int | None:
    loc = tuple(loc)
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return None


# --------------------------------------------------------------------------------------------
# Dotted keys <-> nested TrialConfig dicts
# --------------------------------------------------------------------------------------------


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"grpo": {"beta": 0.02}}`` -> ``{"grpo.beta": 0.02}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[leaf] = value


def _leaves(data: Mapping[str, Any], at: YamlPath, prefix: str = "") -> Iterator[tuple[str, Any, YamlPath]]:
    """(dotted key, value, where in the YAML) of a partial config written nested and/or dotted."""
    for key, value in data.items():
        name, where = f"{prefix}{key}", at + (key,)
        if isinstance(value, Mapping):
            yield from _leaves(value, where, f"{name}.")
        else:
            yield name, value, where


def config_keys(model: type[BaseModel] = TrialConfig, prefix: str = "") -> dict[str, Any]:
    """Every leaf field of TrialConfig as dotted key -> annotation."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(config_keys(ann, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = ann
    return out


_DEFAULTS = flatten(TrialConfig().model_dump())


# --------------------------------------------------------------------------------------------
# The study schema
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(_Strict):
    """One searched TrialConfig key: ``{choices: [...]}`` or ``{low, high, log?, step?}``."""

    choices: list[Scalar] | None = Field(None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = Field(None, gt=0)
    log: bool = False
    when: dict[str, Scalar | list[Scalar]] = {}  # suggest only if e.g. {method: grpo} holds

    @model_validator(mode="after")
    def _shape(self) -> "ParamSpec":
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either 'choices' or 'low'/'high' (with optional 'log', 'step'), not both")
            repeated = [c for i, c in enumerate(self.choices) if c in self.choices[:i]]
            if repeated:
                raise ValueError(f"choice {repeated[0]!r} is listed twice; list each value once")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs 'choices: [...]' or both 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high}); swap them")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined; drop one")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step) if v is not None
        )

    def grid_values(self) -> list[Scalar] | None:
        """Every value for a grid, or None when the range is continuous."""
        if self.choices is not None:
            return list(self.choices)
        if self.is_int:
            return list(range(self.low, self.high + 1, self.step or 1))
        if self.step is None:
            return None
        n = int(round((self.high - self.low) / self.step))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def probe_values(self) -> list[Scalar]:
        """Values that must all be valid: every choice / both ends of a range (the grid if discrete)."""
        values = self.grid_values()
        if values is not None and len(values) <= 64:
            return values
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def holds(self, config: Mapping[str, Any]) -> bool:
        """Whether this parameter is active for a flattened (partial) TrialConfig."""
        for key, wanted in self.when.items():
            value = config.get(key, _DEFAULTS.get(key))
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        return True


class SamplerSpec(_Strict):
    type: Literal["grid", "random", "tpe"] = "grid"
    seed: int = 0
    options: dict[str, Any] = {}  # extra keyword arguments of optuna's RandomSampler / TPESampler

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class PrunerSpec(_Strict):
    type: Literal["none", "median", "hyperband"] = "none"
    options: dict[str, Any] = {}  # keyword arguments of optuna's MedianPruner / HyperbandPruner

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is None:
            return {"type": "none"}
        return {"type": value} if isinstance(value, str) else value


class ObjectiveSpec(_Strict):
    metric: str = Field("test/bleu", pattern=r"^(test|val)/[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?$")
    direction: Literal["maximize", "minimize"] = "maximize"


class StudyConfig(_Strict):
    name: str = Field("", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # default: the file's stem
    description: str = ""
    fixed: dict[str, Any] = {}
    space: dict[str, ParamSpec] = {}
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    n_trials: int | None = Field(None, ge=1)  # sampled trials (baselines come on top); grid: its size
    seeds: list[int] | None = Field(None, min_length=1)
    baselines: list[dict[str, Any]] = []  # partial configs (+ optional 'label'), each run for each seed

    _path: Path | None = PrivateAttr(None)
    _text: str = PrivateAttr("")
    _marks: dict[YamlPath, int] = PrivateAttr(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds} repeat a value; list each seed once")
        return seeds

    @field_validator("baselines")
    @classmethod
    def _baseline_labels(cls, baselines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in baselines:
            if "label" in item and not isinstance(item["label"], str):
                raise ValueError(f"baseline label {item['label']!r} must be a string")
        return baselines

    # -- what the study file says, resolved ----------------------------------------------------

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def text(self) -> str:
        """The study file as written (logged as the parent run's ``study.yaml``)."""
        return self._text or yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @property
    def seed_list(self) -> list[int]:
        return self.seeds if self.seeds is not None else [int(self.fixed.get(SEED, 0))]

    def baseline_label(self, index: int) -> str:
        item = self.baselines[index]
        return item.get("label") or label_of(self.resolve({SEED: self.seed_list[0]}, baseline=index))

    def ordered_space(self) -> list[tuple[str, ParamSpec]]:
        """Unconditional parameters first, then conditional ones (their conditions can use the former)."""
        return sorted(self.space.items(), key=lambda item: bool(item[1].when))

    def grid(self) -> dict[str, list[Scalar]]:
        """The GridSampler search space: every active parameter's values plus ``seed``."""
        fixed = self.fixed_flat()
        space = {key: spec.grid_values() for key, spec in self.space.items() if spec.holds(fixed)}
        return {**space, SEED: list(self.seed_list)}

    def grid_points(self) -> list[dict[str, Scalar]]:
        grid = self.grid()
        return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]

    @property
    def n_sampled(self) -> int:
        """Trials drawn by the sampler (baseline trials come on top)."""
        if self.sampler.type == "grid":
            return min(self.n_trials or len(self.grid_points()), len(self.grid_points()))
        assert self.n_trials is not None
        return self.n_trials

    @property
    def total_trials(self) -> int:
        return self.n_sampled + len(self.baselines) * len(self.seed_list)

    def resolve(self, trial_params: Mapping[str, Any], baseline: int | None = None) -> TrialConfig:
        """One trial's TrialConfig: fixed, then the baseline's overrides, then the trial's parameters."""
        tree, _ = self._tree(trial_params, baseline)
        return TrialConfig.model_validate(tree)

    def fixed_flat(self) -> dict[str, Any]:
        return {key: value for key, value, _ in _leaves(self.fixed, ())}

    def _tree(self, params: Mapping[str, Any], baseline: int | None) -> tuple[dict, dict[str, YamlPath]]:
        """The nested config dict plus, for each dotted key, where in the study file it came from."""
        tree: dict[str, Any] = {}
        origin: dict[str, YamlPath] = {}
        layers = [_leaves(self.fixed, ("fixed",))]
        if baseline is not None:
            item = {k: v for k, v in self.baselines[baseline].items() if k != "label"}
            layers.append(_leaves(item, ("baselines", baseline)))
        for layer in layers:
            for key, value, where in layer:
                _set(tree, key, copy.deepcopy(value))
                origin[key] = where
        for key, value in params.items():
            _set(tree, key, value)
            origin[key] = ("seeds",) if key == SEED else ("space", key)
        return tree, origin


def label_of(cfg: TrialConfig) -> str:
    """``base`` / ``sft`` / ``grpo`` / ``mp-grpo``: how reports name a method."""
    if cfg.method == "base-eval":
        return "base"
    if cfg.method == "grpo" and cfg.grpo.mp_grpo:
        return "mp-grpo"
    return cfg.method


# --------------------------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------------------------


def load_study(path: str | Path) -> StudyConfig:
    """Read, validate and check a study file; raises :class:`StudyError` naming file, line, field, fix."""
    path = Path(path)
    data, marks = read_yaml(path, "study")
    if not isinstance(data, dict):
        raise StudyError(f"{path}:1: a study file must be a mapping of keys (name, fixed, space, ...), "
                         f"not a {type(data).__name__}. Fix: see studies/*.yaml for examples.")
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as err:
        raise StudyError(_explain(path, marks, err, StudyConfig)) from None
    study._path, study._marks = path, marks
    study._text = path.read_text(encoding="utf-8")
    if not study.name:
        study.name = path.stem
    _check(study)
    return study


def load_trial_config(path: str | Path) -> TrialConfig:
    """A single TrialConfig YAML (``harness trial``), with the same file/line/field/fix errors."""
    path = Path(path)
    data, marks = read_yaml(path, "trial config")
    if not isinstance(data, dict):
        raise StudyError(f"{path}:1: a trial config must be a mapping (task, method, train, grpo, ...).")
    try:
        cfg = TrialConfig.model_validate(data)
    except ValidationError as err:
        raise StudyError(_explain(path, marks, err, TrialConfig)) from None
    _check_paths(path, marks, cfg, {"data.source": ("data", "source"), "model.name": ("model", "name")})
    return cfg


def _fail(study: StudyConfig, loc: YamlPath, problem: str, fix: str) -> StudyError:
    line = _line(study._marks, loc)
    return StudyError(f"{study.path}:{line or '?'}: field {_dotted(loc)}: {_end(problem)} Fix: {_end(fix)}")


def _end(sentence: str) -> str:
    return sentence if sentence.endswith((".", "?", "!")) else sentence + "."


def _check(study: StudyConfig) -> None:
    keys = config_keys()
    if SEED in study.fixed and study.seeds is not None:
        raise _fail(study, ("fixed", SEED), "both fixed.seed and seeds are set", "keep only 'seeds: [...]'")
    for key, value, where in _leaves(study.fixed, ("fixed",)):
        if key not in keys:
            raise _fail(study, where, f"unknown TrialConfig key {key!r}", _suggest_key(key, keys))
    for i, item in enumerate(study.baselines):
        for key, value, where in _leaves({k: v for k, v in item.items() if k != "label"}, ("baselines", i)):
            if key not in keys:
                raise _fail(study, where, f"unknown TrialConfig key {key!r}", _suggest_key(key, keys))
    for key, spec in study.space.items():
        where = ("space", key)
        if key == SEED:
            raise _fail(study, where, "'seed' is not searched", "list the seeds under 'seeds: [0, 1]'")
        if key not in keys:
            raise _fail(study, where, f"unknown TrialConfig key {key!r}", _suggest_key(key, keys))
        if key in study.fixed_flat():
            raise _fail(study, where, f"{key!r} is both fixed and searched", "remove it from 'fixed'")
        for cond in spec.when:
            if cond not in keys:
                raise _fail(study, where + ("when", cond), f"unknown TrialConfig key {cond!r}",
                            _suggest_key(cond, keys))
            if cond in study.space and study.space[cond].when:
                raise _fail(study, where + ("when", cond), f"condition on {cond!r}, itself conditional",
                            "condition only on fixed keys or unconditional space keys")
        if spec.choices is None and _is_categorical(keys[key]):
            raise _fail(study, where, f"{key!r} takes named values, not a numeric range",
                        "use 'choices: [...]'")
    _check_sampler(study)
    _check_pruner(study)
    _check_objective(study)
    _check_points(study)


def _is_categorical(annotation: Any) -> bool:
    return annotation in (str, bool) or getattr(annotation, "__origin__", None) is Literal


def _suggest_key(key: str, keys: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    return "use a dotted TrialConfig key such as 'grpo.reward', 'train.lr' or 'task' (see harness/config.py)"


def _check_sampler(study: StudyConfig) -> None:
    kind = study.sampler.type
    if kind == "grid":
        if study.sampler.options:
            raise _fail(study, ("sampler", "options"), "the grid sampler takes no options", "remove 'options'")
        fixed = study.fixed_flat()
        for key, spec in study.space.items():
            for cond in spec.when:
                if cond in study.space:
                    raise _fail(
                        study, ("space", key, "when", cond),
                        f"condition on {cond!r}, which is itself a grid dimension: a grid cannot skip "
                        "combinations",
                        "put the other settings in 'baselines' (e.g. '- {label: sft, method: sft}') and fix "
                        f"{cond!r} in 'fixed', or use 'sampler: random' / 'tpe'")
            if spec.holds(fixed) and spec.grid_values() is None:
                raise _fail(study, ("space", key), "a continuous range cannot be a grid dimension",
                            "give 'choices: [...]' or a 'step', or use 'sampler: random' / 'tpe'")
        size = len(study.grid_points())
        if study.n_trials is not None and study.n_trials > size:
            raise _fail(study, ("n_trials",), f"n_trials={study.n_trials} exceeds the grid size {size}",
                        "remove n_trials (a grid runs every point once)")
        return
    if study.n_trials is None:
        raise _fail(study, ("sampler",), f"sampler {kind!r} needs a trial budget", "add 'n_trials: <number>'")
    try:
        make_sampler(study)
    except (TypeError, ValueError) as err:
        raise _fail(study, ("sampler", "options"), f"invalid options for the {kind} sampler ({err})",
                    f"use keyword arguments of optuna.samplers.{_SAMPLERS[kind]}") from None


def _check_pruner(study: StudyConfig) -> None:
    kind = study.pruner.type
    if kind == "none":
        if study.pruner.options:
            raise _fail(study, ("pruner", "options"), "pruner 'none' takes no options", "remove 'options'")
        return
    try:
        make_pruner(study)
    except (TypeError, ValueError) as err:
        raise _fail(study, ("pruner", "options"), f"invalid options for the {kind} pruner ({err})",
                    f"use keyword arguments of optuna.pruners.{_PRUNERS[kind]}") from None
    metric = study.objective.metric.split("/", 1)[1]
    if metric not in VALIDATION_METRICS:
        raise _fail(study, ("objective", "metric"),
                    f"pruning needs a metric that validation computes, {metric!r} is not one",
                    f"use one of {', '.join(VALIDATION_METRICS)} or 'pruner: none'")


def _check_objective(study: StudyConfig) -> None:
    metric = study.objective.metric.split("/", 1)[1]
    known = set(VALIDATION_METRICS) | {"bertscore"}
    base = metric.split("/")[-1]
    if base not in known:
        raise _fail(study, ("objective", "metric"), f"unknown metric {metric!r}",
                    f"use test/<m> or val/<m> with m in {', '.join(sorted(known))}")
    if study.objective.metric.startswith("val/") and base not in VALIDATION_METRICS:
        raise _fail(study, ("objective", "metric"), f"validation does not compute {base!r}",
                    f"use test/{base} or val/<m> with m in {', '.join(VALIDATION_METRICS)}")
    if base == "bertscore" and study.fixed_flat().get("eval.bertscore") is False:
        raise _fail(study, ("objective", "metric"), "the objective is BERTScore but fixed eval.bertscore is false",
                    "set eval.bertscore: true or choose another metric")


def _check_points(study: StudyConfig) -> None:
    """Resolve every choice, range end, grid point and baseline x seed through TrialConfig."""
    seed = study.seed_list[0]
    _validate(study, {SEED: seed}, None, context=("fixed",))
    for key, spec in study.space.items():
        for i, value in enumerate(spec.probe_values()):
            where = ("space", key, "choices", i) if spec.choices is not None else ("space", key)
            _validate(study, {key: value, SEED: seed}, None, context=where, origin_override={key: where})
    for b in range(len(study.baselines)):
        for s in study.seed_list:
            _validate(study, {SEED: s}, b, context=("baselines", b))
    if study.sampler.type == "grid":
        points = study.grid_points()
    else:
        points = list(itertools.islice(_probe_points(study), _MAX_CHECKED_POINTS))
    for point in points:
        _validate(study, point, None, context=("space",))
    if study.sampler.type == "grid" and not points:
        raise _fail(study, ("space",), "the grid is empty", "give every dimension at least one value")


def _probe_points(study: StudyConfig) -> Iterator[dict[str, Scalar]]:
    fixed = study.fixed_flat()
    unconditional = [(k, s) for k, s in study.ordered_space() if not s.when]
    conditional = [(k, s) for k, s in study.ordered_space() if s.when]
    for values in itertools.product(*(s.probe_values() for _, s in unconditional)):
        point = dict(zip((k for k, _ in unconditional), values))
        active = [(k, s) for k, s in conditional if s.holds({**fixed, **point})]
        for more in itertools.product(*(s.probe_values() for _, s in active)):
            yield {**point, **dict(zip((k for k, _ in active), more)), SEED: study.seed_list[0]}


def _validate(study: StudyConfig, params: Mapping[str, Any], baseline: int | None, context: YamlPath,
              origin_override: Mapping[str, YamlPath] | None = None) -> None:
    tree, origin = study._tree(params, baseline)
    origin.update(origin_override or {})
    try:
        cfg = TrialConfig.model_validate(tree)
    except ValidationError as err:
        point = {k: v for k, v in params.items() if k != SEED or len(study.seed_list) > 1}
        where = f" (trial parameters {point})" if context == ("space",) else ""
        raise StudyError(_explain(study.path, study._marks, err, TrialConfig, origin, context, where)) from None
    _check_paths(study.path, study._marks, cfg, origin)


def _check_paths(path: Path | None, marks: Mapping[YamlPath, int], cfg: TrialConfig,
                 origin: Mapping[str, YamlPath]) -> None:
    _check_model(path, marks, cfg, origin)
    source = cfg.data.source
    if source != "synthetic" and not Path(source).expanduser().exists():
        where = origin.get("data.source", ("fixed", "data", "source"))
        raise StudyError(
            f"{path}:{_line(marks, where) or '?'}: field {_dotted(where)}: data path {source!r} does not exist "
            f"(relative paths start at {Path.cwd()}). Fix: give an existing directory or 'synthetic'."
        )


def _check_model(path: Path | None, marks: Mapping[YamlPath, int], cfg: TrialConfig,
                 origin: Mapping[str, YamlPath]) -> None:
    """model.name: 'tiny', an existing directory, or a hub name already in the local Hugging Face cache."""
    name = cfg.model.name
    if name == "tiny" or Path(name).expanduser().is_dir():
        return
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "~"))
    if hub_like:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    where = origin.get("model.name", ("fixed", "model", "name"))
    raise StudyError(
        f"{path}:{_line(marks, where) or '?'}: field {_dotted(where)}: model {name!r} is not 'tiny', not an "
        f"existing directory (relative paths start at {Path.cwd()})"
        + (" and not in the local Hugging Face cache" if hub_like else "")
        + ". Fix: give the directory of a downloaded checkpoint, or 'tiny'.")


# --------------------------------------------------------------------------------------------
# Explaining pydantic errors with file:line
# --------------------------------------------------------------------------------------------


def _explain(path: Path | None, marks: Mapping[YamlPath, int], err: ValidationError, model: type[BaseModel],
             origin: Mapping[str, YamlPath] | None = None, context: YamlPath = (), suffix: str = "") -> str:
    lines = []
    for item in err.errors()[:5]:
        loc = tuple(item["loc"])
        where = _origin_of(loc, origin, context) if origin is not None else loc
        line = _line(marks, where)
        problem = str(item["msg"]).removeprefix("Value error, ")
        fix = _fix(item, model, loc)
        lines.append(f"{path}:{line or '?'}: field {_dotted(where)}: {_end(problem + suffix)}"
                     + (f" Fix: {_end(fix)}" if fix else ""))
    more = len(err.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more problem(s)")
    return "\n".join(lines)


def _origin_of(loc: YamlPath, origin: Mapping[str, YamlPath], context: YamlPath) -> YamlPath:
    parts = [str(p) for p in loc]
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in origin:
            return origin[key] + tuple(loc[end:])
    if context and context[0] in ("fixed", "baselines"):
        return context + tuple(loc)
    return context or tuple(loc)


def _fix(item: Mapping[str, Any], model: type[BaseModel], loc: YamlPath) -> str | None:
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}remove or rename the key; valid keys here: {', '.join(valid) or '(see harness/config.py)'}"
    if kind == "missing":
        return f"add the key {loc[-1]!r}"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', 'the listed values')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        limit = next(iter(ctx.values()), "?")
        return f"use a value {bound} {limit}"
    if kind == "too_short":
        return "give at least one value"
    if kind == "string_pattern_mismatch":
        return f"write it to match {ctx.get('pattern')!r}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        wanted = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "a string",
                  "dict": "a mapping (key: value)", "list": "a list ([a, b])", "model": "a mapping (key: value)"}
        return f"give {wanted.get(kind.split('_')[0], 'a value of the right type')}"
    if "reward" in str(item.get("msg", "")):
        return "use a metric name or weighted sum such as 'bleu' or 'bleu+0.5*bertscore'"
    if "mp_grpo" in str(item.get("msg", "")):
        return "use grpo.group_size >= 3 with grpo.mp_grpo: true"
    return None  # the problem text (a validator's message) already says what to change


def _fields_at(model: type[BaseModel], loc: YamlPath) -> list[str]:
    """Valid keys of the mapping at ``loc`` (for 'did you mean')."""
    current: Any = model
    for part in loc:
        current = _child(current, part)
        if current is None:
            return []
    return list(current.model_fields) if _is_model(current) else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _child(annotation: Any, part: str | int) -> Any:
    if _is_model(annotation):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    if get_origin(annotation) in (dict, list):
        return get_args(annotation)[-1]
    models = [arg for arg in get_args(annotation) if _is_model(arg)]
    return _child(models[0], part) if models else None


# --------------------------------------------------------------------------------------------
# Optuna objects named by the study (public optuna classes, built directly)
# --------------------------------------------------------------------------------------------

_SAMPLERS = {"grid": "GridSampler", "random": "RandomSampler", "tpe": "TPESampler"}
_PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "hyperband": "HyperbandPruner"}


def make_sampler(study: StudyConfig, worker: int = 0):
    """The study's Optuna sampler; random/TPE seeds differ per worker so workers do not draw alike."""
    import optuna

    spec = study.sampler
    if spec.type == "grid":  # the same shuffled order in every worker: GridSampler hands out distinct points
        return _grid_sampler_class()(study.grid(), seed=spec.seed)
    cls = getattr(optuna.samplers, _SAMPLERS[spec.type])
    return cls(seed=spec.seed + worker, **spec.options)


def make_pruner(study: StudyConfig):
    import optuna

    return getattr(optuna.pruners, _PRUNERS[study.pruner.type])(**study.pruner.options)


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """optuna's GridSampler, except for one bug: when an enqueued trial (a baseline or a retry, which
        carries no grid id) finishes while exactly one grid point is left, optuna 5.0's ``after_trial``
        raises ``KeyError('grid_id')`` and aborts the study (optuna PR #6844, open). Such a trial
        here only stops the study if the grid is exhausted."""

        def after_trial(self, study, trial, state, values) -> None:
            if "grid_id" in trial.system_attrs:
                super().after_trial(study, trial, state, values)
            elif self.is_exhausted(study):
                study.stop()

    return GridSampler
