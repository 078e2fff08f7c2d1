"""Process-wide runtime settings for training on CPU."""

from __future__ import annotations

import os

import torch

__all__ = ["configure_threads"]


def configure_threads() -> int:
    """Use one intra-op thread per process on CPU unless HARNESS_TORCH_THREADS says otherwise.

    Measured on the 2-core machine: with any other busy process (a second worker, a test runner),
    torch's default of one thread per core oversubscribes the cores and a tiny-model SFT step went
    from 0.3 s to 8 s. Parallelism comes from `--workers` processes instead.
    """
    threads = int(os.environ.get("HARNESS_TORCH_THREADS", "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
