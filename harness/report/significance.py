"""Significance of the differences between configurations: paired bootstrap on per-example test
scores (the ``test_examples.json`` artifact of each run), each example averaged over seeds first."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd

from harness.report.document import fmt_num
from harness.report.runs import METRIC_NAMES, METRICS, MP_PARAM, Config
from harness.report.tables import SWEEPS, as_number, factor_groups, reference_config
from harness.study.keys import DEFAULTS

log = logging.getLogger("harness.report")

EXAMPLES_ARTIFACT = "test_examples.json"
N_BOOTSTRAP = 10_000


# --------------------------------------------------------------------------------------------------
# Statistics


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of mean(a - b) over examples.

    Resamples example indices ``rng.integers(0, m, size=(n, m))`` with ``rng = default_rng(seed)``
    (drawn in row chunks, the same stream). Returns ``diff`` = mean(a - b), the 95% percentile
    interval ``ci_low``/``ci_high`` of the resampled means, and a two-sided ``p_value`` for
    "no difference": the share of resampled means at least as far from ``diff`` as ``diff`` is from
    0 (bootstrap distribution shifted to the null), with the +1 correction ``(1 + k) / (1 + n)``,
    so identical inputs give p = 1 and p is never 0.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equal-length non-empty 1-D arrays, got {a.shape} and {b.shape}")
    d = a - b
    m = d.size
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    chunk = max(1, 4_000_000 // m)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        means[start:start + rows] = d[rng.integers(0, m, size=(rows, m))].mean(axis=1)
    diff = float(d.mean())
    low, high = np.percentile(means, [2.5, 97.5])
    extreme = int(np.count_nonzero(np.abs(means - diff) >= abs(diff)))
    return {"diff": diff, "ci_low": float(low), "ci_high": float(high), "p_value": (1 + extreme) / (1 + n)}


# --------------------------------------------------------------------------------------------------
# Per-example scores and significance


class ExampleScores:
    """Per-example test scores of each run, fetched once via ``mlflow.artifacts.download_artifacts``."""

    def __init__(self, tracking_uri: str, scratch: Path):
        self.tracking_uri, self.scratch = tracking_uri, scratch
        self._cache: dict[str, pd.DataFrame | None] = {}

    def run(self, run_id: str) -> pd.DataFrame | None:
        if run_id not in self._cache:
            self._cache[run_id] = self._fetch(run_id)
        return self._cache[run_id]

    def _fetch(self, run_id: str) -> pd.DataFrame | None:
        try:
            with _quiet_downloads():
                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EXAMPLES_ARTIFACT,
                                                           dst_path=str(self.scratch / run_id),
                                                           tracking_uri=self.tracking_uri)
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            frame = pd.DataFrame({m: data["scores"][m] for m in METRICS if m in data.get("scores", {})},
                                 index=pd.Index(data["ids"], name="id"), dtype=float)
        except Exception as err:  # missing or malformed artifact: that run is left out of the tests
            log.warning("run %s: no usable %s (%s)", run_id, EXAMPLES_ARTIFACT, err)
            return None
        return frame

    def pooled(self, config: Config) -> pd.DataFrame | None:
        """Each example's score averaged over the seeds (runs) of the configuration."""
        frames = [f for f in (self.run(t.run_id) for t in config.trials) if f is not None]
        if not frames:
            return None
        return pd.concat(frames).groupby(level="id", sort=False).mean()


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No per-file progress bar from MLflow (unless the user asked for one)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def comparisons(group: list[Config]) -> list[tuple[Config, Config]]:
    """SFT and each GRPO config vs the base model; GRPO (each non-MP config) vs the SFT reference;
    MP-GRPO vs its GRPO twin (same params but ``grpo.mp_grpo``), or the GRPO reference when it has no twin;
    in a sweep of a factor (``SWEEPS``), each level vs the level at TrialConfig's default."""
    pairs = []
    for factor in SWEEPS:
        for levels in factor_groups(group, factor):
            ref = next((c for c in levels if as_number(c.params[factor]) == DEFAULTS[factor]), None)
            pairs += [(c, ref) for c in levels if ref is not None and c is not ref]
    base = reference_config(group, "base-eval", "base")
    sft = reference_config(group, "sft", "sft")
    grpo = reference_config(group, "grpo", "grpo")
    twins = {c.name: g for g in factor_groups(group, MP_PARAM) for c in g}
    if base is not None:
        pairs += [(c, base) for c in group if c.method != "base-eval"]
    for c in group:
        if c.is_grpo and not c.mp and sft is not None:
            pairs.append((c, sft))
        if c.is_grpo and c.mp:
            twin = next((o for o in twins.get(c.name, []) if not o.mp), grpo)
            if twin is not None:
                pairs.append((c, twin))
    return pairs


def significance_table(group: list[Config], scores: ExampleScores, n: int = N_BOOTSTRAP) -> pd.DataFrame:
    rows = []
    for a, b in comparisons(group):
        pa, pb = scores.pooled(a), scores.pooled(b)
        if pa is None or pb is None:
            continue
        ids = pa.index.intersection(pb.index, sort=False)
        for metric in METRICS:
            if metric not in pa or metric not in pb or ids.empty:
                continue
            x, y = pa.loc[ids, metric].to_numpy(), pb.loc[ids, metric].to_numpy()
            keep = np.isfinite(x) & np.isfinite(y)
            if not keep.any():
                continue
            result = paired_bootstrap(x[keep], y[keep], n=n)
            rows.append({"A": a.name, "B": b.name, "metric": METRIC_NAMES[metric], **result,
                         "examples": int(keep.sum()), "seeds A": len(a.trials), "seeds B": len(b.trials)})
    return pd.DataFrame(rows)


def significance_shown(numeric: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Comparison": [f"{a} vs {b}" for a, b in zip(numeric["A"], numeric["B"])],
        "Metric": numeric["metric"],
        "Δ (A − B)": [fmt_num(v, sign=True) for v in numeric["diff"]],
        "95% CI": [f"[{fmt_num(lo, sign=True)}, {fmt_num(hi, sign=True)}]"
                   for lo, hi in zip(numeric["ci_low"], numeric["ci_high"])],
        "p": [f"{p:.4f}" for p in numeric["p_value"]],
        "examples": numeric["examples"],
    })
