"""Names every module of :mod:`harness.study` shares: the type aliases of a parameter value and of a
place in the YAML document, the ``seed`` parameter, and :class:`StudyError`."""

from __future__ import annotations

from harness.vocabulary import SEED  # the Optuna parameter that carries the trial seed

__all__ = ["OBJECTIVE_LIST", "ONE_OBJECTIVE", "SEED", "Scalar", "StudyError", "UNION_TAGS", "YamlPath"]

Scalar = str | bool | int | float | None
YamlPath = tuple[str | int, ...]

# pydantic names the branch of a tagged union in an error's location; these are not YAML keys, so
# `harness.study.explain` drops them (the study's `objective` is one {metric, direction} or a list).
ONE_OBJECTIVE, OBJECTIVE_LIST = "one objective", "objective list"
UNION_TAGS = frozenset({ONE_OBJECTIVE, OBJECTIVE_LIST})


class StudyError(ValueError):
    """A study (or trial config) file that cannot run; the message says where and how to fix it."""
