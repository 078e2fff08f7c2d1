"""The commit a trial records: clean only where checking it out gives the code that ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import provenance


def test_a_rewritten_report_leaves_the_commit_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sweep rewrites its report under reports/: that must not mark the next study's trials dirty,
    while a change to any other tracked file does."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "reports" / "s").mkdir(parents=True)
    (tmp_path / "reports" / "s" / "report.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(provenance, "CHECKOUT", tmp_path)
    (tmp_path / "reports" / "s" / "report.md").write_text("new\n")
    provenance.git_commit.cache_clear()  # one answer per process otherwise
    assert provenance.is_clean(provenance.git_commit())
    (tmp_path / "code.py").write_text("x = 2\n")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit().endswith(provenance.DIRTY)
    provenance.git_commit.cache_clear()
