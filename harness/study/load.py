"""Loading: read a study (or a single trial config) file, validate it and run the checks; every
problem raises :class:`~harness.study.base.StudyError` naming file, line, field and fix."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from harness.config import TrialConfig
from harness.study.base import StudyError
from harness.study.checks import check_study
from harness.study.explain import explain
from harness.study.sources import check_paths, check_source
from harness.study.spec import StudyConfig
from harness.study.yaml_lines import read_yaml

__all__ = ["load_study", "load_trial_config"]


_STUDY_FIX = "write a study as in studies/*.yaml, at least 'fixed: {task: sqa}'"
_TRIAL_FIX = "write TrialConfig keys (harness/config.py), at least 'task: sqa'"


def _read_mapping(path: Path, what: str, keys: str, fix: str) -> tuple[dict, dict]:
    """The YAML mapping in ``path``; an empty file or a list or single value raises naming the fix."""
    data, marks = read_yaml(path, what)
    if data is None:
        raise StudyError(f"{path}:1: the {what} file is empty (only whitespace or comments). Fix: {fix}.")
    if not isinstance(data, dict):
        raise StudyError(
            f"{path}:1: a {what} file must be a mapping of keys ({keys}), not a {type(data).__name__}. Fix: {fix}."
        )
    return data, marks


def load_study(path: str | Path) -> StudyConfig:
    """Read, validate and check a study file; raises :class:`StudyError` naming file, line, field, fix."""
    path = Path(path)
    data, marks = _read_mapping(path, "study", "name, fixed, space, ...", _STUDY_FIX)
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as err:
        raise StudyError(explain(path, marks, err, StudyConfig)) from None
    study.attach_source(path, marks, path.read_text(encoding="utf-8"))
    if not study.name:
        study.name = path.stem
    check_study(study)
    return study


def load_trial_config(path: str | Path) -> TrialConfig:
    """A single TrialConfig YAML (``harness trial``), with the same file/line/field/fix errors."""
    path = Path(path)
    data, marks = _read_mapping(path, "trial config", "task, method, train, grpo, ...", _TRIAL_FIX)
    try:
        cfg = TrialConfig.model_validate(data)
    except ValidationError as err:
        raise StudyError(explain(path, marks, err, TrialConfig)) from None
    origin = {"data.source": ("data", "source"), "model.name": ("model", "name")}
    check_paths(path, marks, cfg, origin)
    check_source(path, marks, cfg, origin)
    return cfg
