"""YAML with line numbers: :func:`read_yaml` returns the document and, for every key or list item,
the 1-based line it starts on, so that errors can name ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.study.base import StudyError, YamlPath

__all__ = ["dotted", "line_of", "read_yaml"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-4`` (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"),
    list("-+0123456789."),
)


def read_yaml(path: Path, what: str = "study") -> tuple[Any, dict[YamlPath, int]]:
    """Parse ``path``; return (data, {path in the document: 1-based line of its key or item}). An empty
    document (nothing but whitespace or comments) is ``None``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: {what} file not found. Fix: check the path (cwd is {Path.cwd()}).") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(f"{path}: cannot read the {what} file ({err}).") from None
    if not text.strip():  # (a lone tab would be a YAML syntax error)
        return None, {}
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
        return None, {}
    marks: dict[YamlPath, int] = {}
    _collect_marks(path, node, (), marks)
    loader = _Loader("")
    try:
        return loader.construct_document(node), marks
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        raise StudyError(
            f"{path}:{mark.line + 1 if mark else '?'}: {err.problem}. Fix: use plain YAML values."
        ) from None


def _collect_marks(path: Path, node: yaml.Node, at: YamlPath, marks: dict[YamlPath, int]) -> None:
    marks.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise StudyError(
                    f"{path}:{line}: field {dotted(at + (key,))}: duplicate key {key!r} (first on line "
                    f"{seen[key]}). Fix: keep only one of them."
                )
            seen[key] = line
            marks[at + (key,)] = line
            _collect_marks(path, value_node, at + (key,), marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[at + (i,)] = item.start_mark.line + 1
            _collect_marks(path, item, at + (i,), marks)


def dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def line_of(marks: Mapping[YamlPath, int], loc: Sequence[str | int]) -> int | None:
    loc = tuple(loc)
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return None
