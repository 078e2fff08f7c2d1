"""Metrics reach the tracking server, or the study stops with a clear reason.

A trial logs its per-step metrics asynchronously (MLflow batches them every few seconds). When the
tracking server is away for a while the batches fail, and MLflow only logs that (a batch merged
into another does not even fail its future), so `MetricSender` counts those log records and, at the
trial's end, sends every metric again synchronously with its original timestamp (the store keeps one
copy of a metric with the same key, step, timestamp and value). If the server does not come back
within MLflow's retries, the error becomes `TrackingLost`: the trial fails and the worker stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from harness.sweep.stores import mask_url

__all__ = ["MetricSender", "TrackingLost", "as_lost", "numeric", "tracking_down"]

ASYNC_LOGGER = "mlflow.utils.async_logging.async_logging_queue"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch


class TrackingLost(RuntimeError):
    """The MLflow tracking server stopped answering during a trial and did not come back in time."""


def tracking_down(err: BaseException) -> bool:
    """An error saying the tracking server cannot be reached (after MLflow's own HTTP retries)."""
    import requests

    if isinstance(err, (TrackingLost, requests.exceptions.ConnectionError)):
        return True
    text = str(err)
    return isinstance(err, mlflow.exceptions.MlflowException) and any(
        mark in text
        for mark in (
            "Max retries exceeded",
            "Connection refused",
            "ConnectionError",
            "Failed to establish",
            "timed out",
        )
    )


def as_lost(err: BaseException) -> TrackingLost:
    """`err` (a `tracking_down` error) as the one message a user sees."""
    if isinstance(err, TrackingLost):
        return err
    reason = mask_url(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)[:300]
    return TrackingLost(
        f"MLflow tracking server {mask_url(mlflow.get_tracking_uri())!r} stopped answering and "
        f"did not come back within MLflow's retries ({reason}). Fix: restart the server, then run "
        "the same command again: the interrupted trial is marked failed and runs again."
    )


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are numbers (bools, strings, lists are not metrics)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, str)):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class _FailedBatches(logging.Handler):
    """Counts the ERROR records of MLflow's async logging queue: each is a batch that was not sent."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


_failed: _FailedBatches | None = None


def _failed_batches() -> _FailedBatches:
    global _failed
    if _failed is None:
        _failed = _FailedBatches()
        logging.getLogger(ASYNC_LOGGER).addHandler(_failed)
    return _failed


class MetricSender:
    """One run's metrics: sent asynchronously as they come, confirmed (or re-sent) by `deliver`."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.pending: list[tuple[Any, dict[str, float], int, int]] = []  # (future, values, step, timestamp)
        self.failures_before = _failed_batches().count

    def log(self, values: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.pending.append(
            (mlflow.log_metrics(values, step=step, synchronous=False, timestamp=stamp), values, step, stamp)
        )

    def deliver(self) -> None:
        """Make sure every batch reached the store; when any failed, send them all again synchronously."""
        mlflow.flush_async_logging()
        failed = _failed_batches().count > self.failures_before
        for future, *_ in self.pending:
            try:
                future.wait()
            except Exception:
                failed = True
        if failed:
            from mlflow.entities import Metric

            metrics = [Metric(k, v, stamp, step) for _, values, step, stamp in self.pending for k, v in values.items()]
            for start in range(0, len(metrics), MAX_BATCH):
                MlflowClient().log_batch(self.run_id, metrics=metrics[start : start + MAX_BATCH], synchronous=True)
        self.pending.clear()
