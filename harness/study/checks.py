"""The semantic checks of a loaded study: keys, sampler, pruner, objective(s), and every choice, range
end, grid point and baseline x seed resolved through TrialConfig; data and model paths exist, and each
real data source's metadata is readable as configured."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import ValidationError

from harness.config import TrialConfig
from harness.study.base import SEED, Scalar, StudyError, YamlPath
from harness.study.explain import end_sentence, explain
from harness.study.hypotheses import LABEL_KEY, StudyConfiguration, matches
from harness.study.keys import DEFAULTS, config_keys, leaves
from harness.study.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from harness.study.sources import check_paths, check_source
from harness.study.spec import StudyConfig
from harness.study.yaml_lines import dotted, line_of
from harness.vocabulary import COMPUTE_OBJECTIVES, METRICS, SAMPLED, TEST, TEST_METRICS, VAL, VALIDATION_METRICS

__all__ = ["VALIDATION_METRICS", "check_study", "objective_metric"]

_MAX_CHECKED_POINTS = 20_000  # combinations validated for random/tpe spaces (grids: all points)


def _fail(study: StudyConfig, loc: YamlPath, problem: str, fix: str) -> StudyError:
    line = line_of(study.marks, loc)
    return StudyError(
        f"{study.path}:{line or '?'}: field {dotted(loc)}: {end_sentence(problem)} Fix: {end_sentence(fix)}"
    )


def check_study(study: StudyConfig) -> None:
    keys = config_keys()
    if SEED in study.fixed and study.seeds is not None:
        raise _fail(study, ("fixed", SEED), "both fixed.seed and seeds are set", "keep only 'seeds: [...]'")
    for key, _, where in leaves(study.fixed, ("fixed",)):
        if key not in keys:
            raise _fail(study, where, f"unknown TrialConfig key {key!r}", _suggest_key(key, keys))
    for i, item in enumerate(study.baselines):
        for key, _, where in leaves({k: v for k, v in item.items() if k != "label"}, ("baselines", i)):
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
                raise _fail(
                    study, where + ("when", cond), f"unknown TrialConfig key {cond!r}", _suggest_key(cond, keys)
                )
            if cond in study.space and study.space[cond].when:
                raise _fail(
                    study,
                    where + ("when", cond),
                    f"condition on {cond!r}, itself conditional",
                    "condition only on fixed keys or unconditional space keys",
                )
        if spec.choices is None and _is_categorical(keys[key]):
            raise _fail(study, where, f"{key!r} takes named values, not a numeric range", "use 'choices: [...]'")
    _check_sampler(study)
    _check_objective(study)
    _check_pruner(study)
    _check_points(study)
    _check_hypotheses(study)


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
                        study,
                        ("space", key, "when", cond),
                        f"condition on {cond!r}, which is itself a grid dimension: a grid cannot skip combinations",
                        "put the other settings in 'baselines' (e.g. '- {label: sft, method: sft}') and fix "
                        f"{cond!r} in 'fixed', or use 'sampler: random' / 'tpe'",
                    )
            if spec.holds(fixed) and spec.grid_values() is None:
                raise _fail(
                    study,
                    ("space", key),
                    "a continuous range cannot be a grid dimension",
                    "give 'choices: [...]' or a 'step', or use 'sampler: random' / 'tpe'",
                )
        size = len(study.grid_points())
        if study.n_trials is not None and study.n_trials > size:
            raise _fail(
                study,
                ("n_trials",),
                f"n_trials={study.n_trials} exceeds the grid size {size}",
                "remove n_trials (a grid runs every point once)",
            )
        return
    if study.n_trials is None:
        raise _fail(study, ("sampler",), f"sampler {kind!r} needs a trial budget", "add 'n_trials: <number>'")
    try:
        make_sampler(study)
    except (TypeError, ValueError) as err:
        raise _fail(
            study,
            ("sampler", "options"),
            f"invalid options for the {kind} sampler ({err})",
            f"use keyword arguments of optuna.samplers.{SAMPLERS[kind]}",
        ) from None


def _check_pruner(study: StudyConfig) -> None:
    kind = study.pruner.type
    if kind == "none":
        if study.pruner.options:
            raise _fail(study, ("pruner", "options"), "pruner 'none' takes no options", "remove 'options'")
        return
    try:
        make_pruner(study)
    except (TypeError, ValueError) as err:
        raise _fail(
            study,
            ("pruner", "options"),
            f"invalid options for the {kind} pruner ({err})",
            f"use keyword arguments of optuna.pruners.{PRUNERS[kind]}",
        ) from None
    if study.multi_objective:
        raise _fail(
            study,
            ("pruner",),
            f"pruning needs a single objective, this study lists "
            f"{len(study.objectives)} (Optuna prunes on one intermediate value per step)",
            "use 'pruner: none' with several objectives, or keep one objective",
        )
    metric = objective_metric(study.objective.metric)
    if metric not in VALIDATION_METRICS:
        raise _fail(
            study,
            ("objective", "metric"),
            f"pruning needs a metric that validation computes, {study.objective.metric!r} is not one",
            f"use test/<m> or val/<m> with m in {', '.join(VALIDATION_METRICS)}, or 'pruner: none'",
        )


def objective_metric(name: str) -> str | None:
    """The evaluation metric an objective names (``bleu`` of ``test/bleu``, ``test/sampled/bleu``,
    ``val/bleu``), or None for a compute column (``generated_tokens``)."""
    parts = name.split("/")
    return parts[-1] if parts[0] in (TEST, VAL) else None


def _check_objective(study: StudyConfig) -> None:
    several = isinstance(study.objective, list)
    seen: dict[str, int] = {}
    for i, objective in enumerate(study.objectives):
        where = ("objective", i, "metric") if several else ("objective", "metric")
        if objective.metric in seen:
            raise _fail(
                study,
                where,
                f"{objective.metric!r} is listed twice (also objective {seen[objective.metric]})",
                "list each metric once",
            )
        seen[objective.metric] = i
        _check_objective_metric(study, objective.metric, where)


def _check_objective_metric(study: StudyConfig, name: str, where: YamlPath) -> None:
    known = {TEST: set(TEST_METRICS), SAMPLED: set(METRICS), VAL: set(VALIDATION_METRICS)}  # what each logs
    fix = (
        f"use test/<m> with m in {', '.join(TEST_METRICS)}, test/sampled/<m> with m in {', '.join(METRICS)}, "
        f"val/<m> with m in {', '.join(VALIDATION_METRICS)}, or a compute column: {', '.join(COMPUTE_OBJECTIVES)}"
    )
    if name in COMPUTE_OBJECTIVES:
        return
    parts = name.split("/")
    shape = (len(parts) == 2 and parts[0] in (TEST, VAL)) or (len(parts) == 3 and parts[:2] == [TEST, SAMPLED])
    if not shape:
        raise _fail(study, where, f"unknown objective metric {name!r}", fix)
    base = parts[-1]
    if base not in known[TEST]:
        raise _fail(study, where, f"unknown metric {base!r} in {name!r}", fix)
    if len(parts) == 3 and base not in known[SAMPLED]:
        raise _fail(study, where, f"sampled decoding does not score {base!r}", f"use test/{base} or {fix}")
    if parts[0] == VAL and base not in VALIDATION_METRICS:
        raise _fail(
            study,
            where,
            f"validation does not compute {base!r}",
            f"use test/{base} or val/<m> with m in {', '.join(VALIDATION_METRICS)}",
        )
    fixed = study.fixed_flat()
    if base == "bertscore" and fixed.get("eval.bertscore", DEFAULTS["eval.bertscore"]) is False:
        raise _fail(
            study,
            where,
            f"the objective {name!r} is BERTScore but fixed eval.bertscore is false",
            "set eval.bertscore: true or choose another metric",
        )
    passes = fixed.get("eval.sampling_passes", DEFAULTS["eval.sampling_passes"])
    if parts[1] == SAMPLED and passes == 0 and "eval.sampling_passes" not in study.space:
        raise _fail(
            study,
            where,
            f"the objective {name!r} is a sampled-decoding metric but eval.sampling_passes is 0",
            f"set fixed eval.sampling_passes (e.g. 4) or use {TEST}/{base}",
        )


def _check_points(study: StudyConfig) -> None:
    """Resolve every choice, range end, grid point and baseline x seed through TrialConfig, then read
    each distinct data source (data settings x task) once."""
    seed = study.seed_list[0]
    sources: dict[tuple[str, str], tuple[TrialConfig, dict[str, YamlPath]]] = {}  # what reading depends on

    def validate(
        params: Mapping[str, Any],
        baseline: int | None,
        context: YamlPath,
        origin_override: Mapping[str, YamlPath] | None = None,
    ) -> None:
        cfg, origin = _validate(study, params, baseline, context, origin_override)
        read_as = cfg.data.model_dump_json(include={"source", "format", "splits", "columns"})
        sources.setdefault((read_as, cfg.task), (cfg, origin))

    validate({SEED: seed}, None, context=("fixed",))
    for key, spec in study.space.items():
        for i, value in enumerate(spec.probe_values()):
            where = ("space", key, "choices", i) if spec.choices is not None else ("space", key)
            validate({key: value, SEED: seed}, None, context=where, origin_override={key: where})
    for b in range(len(study.baselines)):
        for s in study.seed_list:
            validate({SEED: s}, b, context=("baselines", b))
    if study.sampler.type == "grid":
        points = study.grid_points()
    else:
        points = list(itertools.islice(_probe_points(study), _MAX_CHECKED_POINTS))
    for point in points:
        validate(point, None, context=("space",))
    if study.sampler.type == "grid" and not points:
        raise _fail(study, ("space",), "the grid is empty", "give every dimension at least one value")
    for cfg, origin in sources.values():
        check_source(study.path, study.marks, cfg, origin)


def _probe_points(study: StudyConfig) -> Iterator[dict[str, Scalar]]:
    fixed = study.fixed_flat()
    unconditional = [(k, s) for k, s in study.ordered_space() if not s.when]
    conditional = [(k, s) for k, s in study.ordered_space() if s.when]
    for values in itertools.product(*(s.probe_values() for _, s in unconditional)):
        point = dict(zip((k for k, _ in unconditional), values))
        active = [(k, s) for k, s in conditional if s.holds({**fixed, **point})]
        for more in itertools.product(*(s.probe_values() for _, s in active)):
            yield {**point, **dict(zip((k for k, _ in active), more)), SEED: study.seed_list[0]}


def _validate(
    study: StudyConfig,
    params: Mapping[str, Any],
    baseline: int | None,
    context: YamlPath,
    origin_override: Mapping[str, YamlPath] | None = None,
) -> tuple[TrialConfig, dict[str, YamlPath]]:
    """The point's TrialConfig and where each of its keys is set, once it validates and its paths exist."""
    tree, origin = study.tree(params, baseline)
    origin.update(origin_override or {})
    try:
        cfg = TrialConfig.model_validate(tree)
    except ValidationError as err:
        point = {k: v for k, v in params.items() if k != SEED or len(study.seed_list) > 1}
        where = f" (trial parameters {point})" if context == ("space",) else ""
        raise StudyError(explain(study.path, study.marks, err, TrialConfig, origin, context, where)) from None
    check_paths(study.path, study.marks, cfg, origin)
    return cfg, origin


def _check_hypotheses(study: StudyConfig) -> None:
    """Declared hypotheses: a grid study, rounds that end at the seed budget, and selectors that each
    name exactly one configuration of the same task, which ran the hypothesis's metric and decoding."""
    spec = study.hypotheses
    if spec is None:
        return
    if study.sampler.type != "grid":
        raise _fail(
            study,
            ("hypotheses",),
            f"hypotheses need configurations known before the run, but the sampler is {study.sampler.type!r}",
            "use 'sampler: grid' or remove 'hypotheses' (a search study selects; it does not test)",
        )
    if spec.rounds and spec.rounds[-1] != len(study.seed_list):
        raise _fail(
            study,
            ("hypotheses", "rounds"),
            f"the rounds end at {spec.rounds[-1]} seeds but 'seeds' lists {len(study.seed_list)}",
            f"make the last round {len(study.seed_list)} (the budget) or list {spec.rounds[-1]} seeds",
        )
    configurations = study.configurations()
    keys = config_keys()
    for i, test in enumerate(spec.tests):
        chosen = []
        for side in ("a", "b"):
            where = ("hypotheses", "tests", i, side)
            selector = getattr(test, side)
            for key in selector:
                if key != LABEL_KEY and key not in keys:
                    raise _fail(study, where + (key,), f"unknown TrialConfig key {key!r}", _suggest_key(key, keys))
            found = [c for c in configurations if matches(selector, c.label, c.flat)]
            if len(found) != 1:
                names = "; ".join(_describe(c) for c in (found or configurations))
                problem = f"{selector} matches {len(found)} configurations" + (
                    f" ({names})" if found else f"; the study's are: {names}"
                )
                raise _fail(study, where, problem, "name exactly one configuration (add keys such as task or label)")
            chosen.append(found[0])
        a, b = chosen
        where = ("hypotheses", "tests", i)
        if a is b:
            raise _fail(study, where, "a and b select the same configuration", "compare two different configurations")
        if a.flat.get("task") != b.flat.get("task"):
            tasks = f"a is task {a.flat.get('task')!r}, b task {b.flat.get('task')!r}"
            raise _fail(study, where, tasks, "compare within one task")
        needs = []  # (field, the TrialConfig key the hypothesis needs set, the problem without it, the fix)
        if test.decoding == "sampled":
            needs.append(
                (
                    "decoding",
                    "eval.sampling_passes",
                    "does not run sampled decoding (eval.sampling_passes is 0)",
                    "set eval.sampling_passes (e.g. 2) or use 'decoding: greedy'",
                )
            )
        if test.metric == "bertscore":
            needs.append(
                (
                    "metric",
                    "eval.bertscore",
                    "does not compute BERTScore",
                    "set eval.bertscore: true or choose another metric",
                )
            )
        for c in (a, b):
            for field, key, problem, fix in needs:
                if not c.flat.get(key):
                    raise _fail(study, where + (field,), f"{_describe(c)} {problem}", fix)


def _describe(c: StudyConfiguration) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in c.params.items())
    return f"{c.label} [task={c.flat.get('task')}{', ' + settings if settings else ''}]"
