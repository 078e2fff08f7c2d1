"""Names every module of :mod:`harness.study` shares: the type aliases of a parameter value and of a
place in the YAML document, the ``seed`` parameter, and :class:`StudyError`."""

from __future__ import annotations

from harness.vocabulary import SEED  # the Optuna parameter that carries the trial seed

__all__ = ["SEED", "Scalar", "StudyError", "YamlPath"]

Scalar = str | bool | int | float | None
YamlPath = tuple[str | int, ...]


class StudyError(ValueError):
    """A study (or trial config) file that cannot run; the message says where and how to fix it."""
