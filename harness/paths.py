"""Where the harness keeps generated data, cached base models and tracking stores."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "cache_root"]


def cache_root() -> Path:
    """Root of everything the harness generates and reuses (synthetic data, built base models, features,
    encoder outputs, WordNet), not created. Defaults to ``./.cache/harness`` so a checkout is
    self-contained; set ``HARNESS_CACHE`` to share one cache between checkouts or workers."""
    return Path(os.environ.get("HARNESS_CACHE", Path.cwd() / ".cache" / "harness"))


def cache_dir() -> Path:
    """`cache_root`, created if needed."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path
