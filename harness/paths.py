"""Where the harness keeps generated data, cached base models and tracking stores."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of everything the harness generates and reuses (synthetic data, base models, WordNet).

    Defaults to ``./.cache/harness`` so a checkout is self-contained; set ``HARNESS_CACHE`` to share
    one cache between checkouts or workers.
    """
    path = Path(os.environ.get("HARNESS_CACHE", Path.cwd() / ".cache" / "harness"))
    path.mkdir(parents=True, exist_ok=True)
    return path
