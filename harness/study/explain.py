"""Explaining pydantic errors with file:line: each problem of a :class:`~pydantic.ValidationError`
becomes ``file:line: field a.b: problem. Fix: ...``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from harness.study.base import UNION_TAGS, YamlPath
from harness.study.yaml_lines import dotted, line_of

__all__ = ["end_sentence", "explain"]


def explain(
    path: Path | None,
    marks: Mapping[YamlPath, int],
    err: ValidationError,
    model: type[BaseModel],
    origin: Mapping[str, YamlPath] | None = None,
    context: YamlPath = (),
    suffix: str = "",
) -> str:
    lines = []
    for item in err.errors()[:5]:
        loc = tuple(part for part in item["loc"] if part not in UNION_TAGS)
        where = _origin_of(loc, origin, context) if origin is not None else loc
        line = line_of(marks, where)
        problem = str(item["msg"]).removeprefix("Value error, ")
        fix = _fix(item, model, loc)
        lines.append(
            f"{path}:{line or '?'}: field {dotted(where)}: {end_sentence(problem + suffix)}"
            + (f" Fix: {end_sentence(fix)}" if fix else "")
        )
    more = len(err.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more problem(s)")
    return "\n".join(lines)


def end_sentence(sentence: str) -> str:
    return sentence if sentence.endswith((".", "?", "!")) else sentence + "."


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
        wanted = {
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "string": "a string",
            "dict": "a mapping (key: value)",
            "list": "a list ([a, b])",
            "model": "a mapping (key: value)",
        }
        return f"give {wanted.get(kind.split('_')[0], 'a value of the right type')}"
    if "reward" in str(item.get("msg", "")):
        return "use a metric name or weighted sum such as 'bleu' or 'bleu+0.5*bertscore'"
    if "mp_grpo needs group_size" in str(item.get("msg", "")):
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
    if get_origin(annotation) is Annotated:
        return _child(get_args(annotation)[0], part)
    members = [get_args(arg)[0] if get_origin(arg) is Annotated else arg for arg in get_args(annotation)]
    if isinstance(part, int):  # a list item: the union's list member (e.g. one of several objectives)
        lists = [arg for arg in members if get_origin(arg) is list]
        return get_args(lists[0])[0] if lists else None
    models = [arg for arg in members if _is_model(arg)]
    return _child(models[0], part) if models else None
