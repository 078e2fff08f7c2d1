"""The checks of what a trial config points at, run by the study checks (`harness.study.checks`) for every
configuration and by `harness trial` for its one config: the model (``tiny``, a directory, or a hub name
in the local Hugging Face cache) and the data path exist, and a real data source's metadata reads as
configured (`harness.data.real.check_source`). Each failure is a `StudyError` naming file, line, field
and fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from harness.config import TrialConfig
from harness.study.base import StudyError, YamlPath
from harness.study.yaml_lines import dotted, line_of

__all__ = ["check_paths", "check_source"]


def check_paths(
    path: Path | None, marks: Mapping[YamlPath, int], cfg: TrialConfig, origin: Mapping[str, YamlPath]
) -> None:
    _check_model(path, marks, cfg, origin)
    source = cfg.data.source
    if source != "synthetic" and not Path(source).expanduser().exists():
        where = origin.get("data.source", ("fixed", "data", "source"))
        raise StudyError(
            f"{path}:{line_of(marks, where) or '?'}: field {dotted(where)}: data path {source!r} does not exist "
            f"(relative paths start at {Path.cwd()}). Fix: give an existing directory or 'synthetic'."
        )


def check_source(
    path: Path | None, marks: Mapping[YamlPath, int], cfg: TrialConfig, origin: Mapping[str, YamlPath]
) -> None:
    """A real data source as a trial would read it (format, split files, columns), from its metadata."""
    if cfg.data.source == "synthetic":
        return
    from harness.data.real import DataSourceError, check_source

    try:
        check_source(cfg.data, cfg.task)
    except DataSourceError as err:
        where = origin.get("data.source", ("fixed", "data", "source"))
        raise StudyError(f"{path}:{line_of(marks, where) or '?'}: field {dotted(where)}: {err}") from None


def _check_model(
    path: Path | None, marks: Mapping[YamlPath, int], cfg: TrialConfig, origin: Mapping[str, YamlPath]
) -> None:
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
        f"{path}:{line_of(marks, where) or '?'}: field {dotted(where)}: model {name!r} is not 'tiny', not an "
        f"existing directory (relative paths start at {Path.cwd()})"
        + (" and not in the local Hugging Face cache" if hub_like else "")
        + ". Fix: give the directory of a downloaded checkpoint, or 'tiny'."
    )
