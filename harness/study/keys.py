"""Dotted keys <-> nested TrialConfig dicts: ``grpo.beta`` in a study means ``{"grpo": {"beta": ...}}``
of :class:`~harness.config.TrialConfig`; also every valid dotted key and the defaults."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from harness.config import TrialConfig
from harness.study.base import YamlPath

__all__ = ["DEFAULTS", "config_keys", "flatten", "leaves", "set_dotted"]


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


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[leaf] = value


def leaves(data: Mapping[str, Any], at: YamlPath, prefix: str = "") -> Iterator[tuple[str, Any, YamlPath]]:
    """(dotted key, value, where in the YAML) of a partial config written nested and/or dotted."""
    for key, value in data.items():
        name, where = f"{prefix}{key}", at + (key,)
        if isinstance(value, Mapping):
            yield from leaves(value, where, f"{name}.")
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


DEFAULTS = flatten(TrialConfig().model_dump())  # every TrialConfig field by dotted key -> its default
