"""The study schema: the pydantic models of a study file (:class:`StudyConfig` and its parts) and
:func:`label_of`, how reports name a trial's method."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from harness.config import TrialConfig
from harness.study.base import OBJECTIVE_LIST, ONE_OBJECTIVE, SEED, Scalar, YamlPath
from harness.study.hypotheses import HypothesesSpec, StudyConfiguration
from harness.study.keys import DEFAULTS, flatten, leaves, set_dotted
from harness.vocabulary import method_label

__all__ = ["Objectives", "ObjectiveSpec", "ParamSpec", "PrunerSpec", "SamplerSpec", "StudyConfig", "label_of"]


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
    def _shape(self) -> ParamSpec:
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
            value = config.get(key, DEFAULTS.get(key))
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        return True


class SamplerSpec(_Strict):
    type: Literal["grid", "random", "tpe", "nsga2"] = "grid"
    seed: int = 0
    options: dict[str, Any] = {}  # extra keyword arguments of optuna's RandomSampler / TPESampler / NSGAIISampler

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
    """One metric to optimise: ``test/<m>``, ``test/sampled/<m>``, ``val/<m>`` (at the selected step) or a
    compute column such as ``generated_tokens`` (`harness.vocabulary.COMPUTE_OBJECTIVES`); which names are
    known is checked by `harness.study.checks`."""

    metric: str = Field("test/bleu", pattern=r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+){0,2}$")
    direction: Literal["maximize", "minimize"] = "maximize"


# ``objective: {metric, direction}`` or a list of them (a multi-objective study: Optuna keeps a Pareto front).
# The tags name the two forms in pydantic's error locations; `harness.study.explain` drops them.
Objectives = Annotated[
    Annotated[ObjectiveSpec, Tag(ONE_OBJECTIVE)] | Annotated[list[ObjectiveSpec], Tag(OBJECTIVE_LIST)],
    Discriminator(lambda value: OBJECTIVE_LIST if isinstance(value, list) else ONE_OBJECTIVE),
]


class StudyConfig(_Strict):
    name: str = Field("", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # default: the file's stem
    description: str = ""
    fixed: dict[str, Any] = {}
    space: dict[str, ParamSpec] = {}
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    objective: Objectives = ObjectiveSpec()  # one objective, or a list (multi-objective)
    n_trials: int | None = Field(None, ge=1)  # sampled trials (baselines come on top); grid: its size
    seeds: list[int] | None = Field(None, min_length=1)
    baselines: list[dict[str, Any]] = []  # partial configs (+ optional 'label'), each run for each seed
    hypotheses: HypothesesSpec | None = None  # declared comparisons and their rounds of seeds (hypotheses.py)

    _path: Path | None = PrivateAttr(None)
    _text: str = PrivateAttr("")
    _marks: dict[YamlPath, int] = PrivateAttr(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds} repeat a value; list each seed once")
        return seeds

    @field_validator("objective")
    @classmethod
    def _some_objective(cls, objective: ObjectiveSpec | list[ObjectiveSpec]) -> ObjectiveSpec | list[ObjectiveSpec]:
        if isinstance(objective, list) and not objective:
            raise ValueError("no objective is listed; give at least one {metric, direction}")
        return objective

    @field_validator("baselines")
    @classmethod
    def _baseline_labels(cls, baselines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in baselines:
            if "label" in item and not isinstance(item["label"], str):
                raise ValueError(f"baseline label {item['label']!r} must be a string")
        return baselines

    # -- what the study file says, resolved ----------------------------------------------------

    def attach_source(self, path: Path, marks: Mapping[YamlPath, int], text: str) -> None:
        """Record the file this study was read from: its path, the line of each YAML node (``marks``, for
        messages that name file and line) and its text as written (logged as the study run's
        ``study.yaml``). A study built in code has none (`path` None, `marks` empty, `text` dumped)."""
        self._path, self._marks, self._text = path, dict(marks), text

    @property
    def path(self) -> Path | None:
        """The study file it was read from (None: built in code)."""
        return self._path

    @property
    def marks(self) -> dict[YamlPath, int]:
        """Line of each node of the study file (`harness.study.yaml_lines`), for file:line messages."""
        return self._marks

    @property
    def text(self) -> str:
        """The study file as written (logged as the parent run's ``study.yaml``)."""
        return self._text or yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @property
    def objectives(self) -> list[ObjectiveSpec]:
        """The study's objectives in order (one for a single-objective study)."""
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def seed_list(self) -> list[int]:
        """Every seed the study may run (with rounds: the budget)."""
        return self.seeds if self.seeds is not None else [int(self.fixed.get(SEED, 0))]

    @property
    def looks(self) -> list[int]:
        """Seeds per configuration at each look at the hypotheses (one look, all seeds, without rounds)."""
        return self.hypotheses.looks(len(self.seed_list)) if self.hypotheses else [len(self.seed_list)]

    def round_seeds(self, look: int) -> list[int]:
        """The seeds every configuration in play has after look ``look`` (0-based)."""
        return self.seed_list[: self.looks[look]]

    @property
    def first_seeds(self) -> list[int]:
        """The seeds of the first round: every configuration runs them (the grid and the baselines)."""
        return self.round_seeds(0)

    def configurations(self) -> list[StudyConfiguration]:
        """Every configuration of a grid study, seeds aside: the grid points, then the baselines."""
        out = []
        for point in self.grid_points():
            if point.get(SEED) != self.first_seeds[0]:
                continue
            params = {k: v for k, v in point.items() if k != SEED}
            cfg = self.resolve(point)
            out.append(StudyConfiguration(label_of(cfg), params, None, _flat_config(cfg)))
        for index in range(len(self.baselines)):
            cfg = self.resolve({SEED: self.first_seeds[0]}, baseline=index)
            out.append(StudyConfiguration(self.baseline_label(index), {}, index, _flat_config(cfg)))
        return out

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
        return {**space, SEED: list(self.first_seeds)}

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
        """Trials of the first round (later rounds' trials are added to the Optuna study as they are planned)."""
        return self.n_sampled + len(self.baselines) * len(self.first_seeds)

    def resolve(self, trial_params: Mapping[str, Any], baseline: int | None = None) -> TrialConfig:
        """One trial's TrialConfig: fixed, then the baseline's overrides, then the trial's parameters."""
        tree, _ = self.tree(trial_params, baseline)
        return TrialConfig.model_validate(tree)

    def fixed_flat(self) -> dict[str, Any]:
        return {key: value for key, value, _ in leaves(self.fixed, ())}

    def tree(self, params: Mapping[str, Any], baseline: int | None) -> tuple[dict, dict[str, YamlPath]]:
        """One trial's config as a nested dict, before validation (fixed, then baseline ``baseline``'s
        overrides, then the trial's ``params``), and for each dotted key where in the study file it came
        from (the checks validate it and name that place when it fails)."""
        tree: dict[str, Any] = {}
        origin: dict[str, YamlPath] = {}
        layers = [leaves(self.fixed, ("fixed",))]
        if baseline is not None:
            item = {k: v for k, v in self.baselines[baseline].items() if k != "label"}
            layers.append(leaves(item, ("baselines", baseline)))
        for layer in layers:
            for key, value, where in layer:
                set_dotted(tree, key, copy.deepcopy(value))
                origin[key] = where
        for key, value in params.items():
            set_dotted(tree, key, value)
            origin[key] = ("seeds",) if key == SEED else ("space", key)
        return tree, origin


def _flat_config(cfg: TrialConfig) -> dict[str, Any]:
    flat = flatten(cfg.model_dump(mode="json"))
    flat.pop(SEED, None)
    return flat


def label_of(cfg: TrialConfig) -> str:
    """``base`` / ``sft`` / ``grpo`` / ``mp-grpo``: how reports name a method (`harness.vocabulary`)."""
    return method_label(cfg.method, cfg.grpo.mp_grpo)
