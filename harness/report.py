"""Paper-style comparison reports of a study, built from the MLflow store only (issue #4).

`build_report(study)` reads the finished trial runs of one study's experiment through the MLflow
public API (``MlflowClient.search_runs``, ``get_metric_history``, ``mlflow.artifacts.download_artifacts``)
and writes to ``out_dir``: ``report.md``, one CSV per table and PNG plots; it then logs the same
files as artifacts of the study's parent run under ``report/``.

Conventions (also stated in every report):

* A *configuration* is the set of COMPLETE trials sharing the label and every parameter except
  ``seed``; its cells are ``mean ± std (n=k)`` over those trials, std being the sample standard
  deviation (ddof=1; "n/a" when n=1), n the trials that logged that metric.
* FAIL / PRUNED / RUNNING trials are counted and listed, never averaged in.
* Significance: paired bootstrap (`paired_bootstrap`) on per-example test scores, each example's
  score first averaged over the seeds of its configuration.
* Published figures (``harness/published``) are shown in their own section, never beside measured
  numbers in one table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor")
METRIC_NAMES = {"bleu": "BLEU", "bertscore": "BERTScore", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                "rougeL": "ROUGE-L", "meteor": "METEOR"}
STATES: tuple[str, ...] = ("COMPLETE", "FAIL", "PRUNED", "RUNNING")
MLFLOW_STATUS_TO_STATE = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "KILLED": "FAIL",
                          "RUNNING": "RUNNING", "SCHEDULED": "RUNNING"}
SEED_PARAMS = frozenset({"seed"})  # parameters that distinguish repeats, not configurations
CURVE_METRICS: tuple[str, ...] = ("reward", "kl", "completion_len_mean")
COMPUTE_METRICS: tuple[str, ...] = ("wall_time_s", "generated_tokens", "train_steps", "best_step")
SWEEPS = {"grpo.group_size": "group size G", "grpo.beta": "KL beta"}
REWARD_PARAM, MP_PARAM = "grpo.reward", "grpo.mp_grpo"
METHOD_ORDER = {"base-eval": 0, "sft": 1, "grpo": 2}
EXAMPLES_ARTIFACT = "test_examples.json"
N_BOOTSTRAP = 10_000
PUBLISHED_TITLE = "Published (Elmakies et al. 2025) — not measured here"
PUBLISHED_TABLES = {  # file -> (task it belongs to, caption)
    "table1_librisqa.csv": ("sqa", "Table 1: spoken QA, LibriSQA part I test."),
    "table2_covost2_en_de.csv": ("ast", "Table 2: speech translation, CoVoST2 en→de test."),
    "table3_reward_ablation.csv": ("sqa", "Table 3: GRPO on Granite-Speech 2B / LibriSQA trained with "
                                          "each reward (rows); AVG = mean of the six metrics."),
}


# --------------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class Trial:
    run_id: str
    number: int | None
    state: str
    status: str  # MLflow run status
    label: str
    error: str
    params: dict[str, str]
    metrics: dict[str, float]  # latest value of each metric

    @property
    def task(self) -> str:
        return self.params.get("task", "?")

    @property
    def model(self) -> str:
        return self.params.get("model.name", "?")


@dataclass
class Config:
    """The COMPLETE trials of one label + parameter set, differing only by seed."""

    label: str
    params: dict[str, str]  # without seed
    trials: list[Trial]
    name: str = ""  # display name, unique within (task, model)

    @property
    def task(self) -> str:
        return self.params.get("task", "?")

    @property
    def model(self) -> str:
        return self.params.get("model.name", "?")

    @property
    def method(self) -> str:
        return self.params.get("method", "?")

    @property
    def mp(self) -> bool:
        return self.params.get(MP_PARAM, "False").lower() == "true"

    @property
    def is_grpo(self) -> bool:
        return self.method == "grpo"

    @property
    def order(self) -> tuple:
        return (self.task, self.model, METHOD_ORDER.get(self.method, 9), self.mp, self.name)

    @property
    def seeds(self) -> list[str]:
        return [t.params.get("seed", "?") for t in self.trials]


@dataclass
class Study:
    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    trials: list[Trial]
    parent_tags: dict[str, str] = field(default_factory=dict)
    configs: list[Config] = field(default_factory=list)


def _all_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _default_label(params: dict[str, str]) -> str:
    method = params.get("method", "?")
    if method == "base-eval":
        return "base"
    if method == "grpo" and params.get(MP_PARAM, "False").lower() == "true":
        return "mp-grpo"
    return method


def _trial_from_run(run: Run) -> Trial:
    tags, params = run.data.tags, dict(run.data.params)
    number = tags.get("harness.trial_number", "")
    state = tags.get("harness.state") or MLFLOW_STATUS_TO_STATE.get(run.info.status, run.info.status)
    return Trial(run_id=run.info.run_id, number=int(number) if number.lstrip("-").isdigit() else None,
                 state=state, status=run.info.status, label=tags.get("harness.label") or _default_label(params),
                 error=tags.get("harness.error", ""), params=params, metrics=dict(run.data.metrics))


def _is_trial(run: Run) -> bool:
    role = run.data.tags.get("harness.role")
    return role == "trial" or (role is None and "mlflow.parentRunId" in run.data.tags)


def load_study(client: MlflowClient, experiment_name: str) -> Study:
    """All trial runs of a study's experiment and its (latest) parent run, grouped into configurations."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} at {client.tracking_uri}")
    runs = _all_runs(client, experiment.experiment_id)
    parents = [r for r in runs if r.data.tags.get("harness.role") == "study"]
    trials = sorted((_trial_from_run(r) for r in runs if _is_trial(r)),
                    key=lambda t: (t.number is None, t.number if t.number is not None else 0, t.run_id))
    study = Study(experiment_name, client.tracking_uri, experiment.experiment_id,
                  parents[-1].info.run_id if parents else None, trials,
                  dict(parents[-1].data.tags) if parents else {})
    study.configs = group_configs(trials)
    return study


def group_configs(trials: list[Trial]) -> list[Config]:
    """COMPLETE trials grouped by (label, all params but the seed); display names made unique."""
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    for trial in trials:
        if trial.state == "COMPLETE":
            key = (trial.label, tuple(sorted((k, v) for k, v in trial.params.items() if k not in SEED_PARAMS)))
            groups[key].append(trial)
    configs = [Config(label, dict(items), ts) for (label, items), ts in groups.items()]
    _name_configs(configs)
    return sorted(configs, key=lambda c: c.order)


def varying_params(configs: list[Config]) -> list[str]:
    keys = sorted({k for c in configs for k in c.params})
    return [k for k in keys if len({c.params.get(k) for c in configs}) > 1]


def _name_configs(configs: list[Config]) -> None:
    """Name = label; labels shared within a task/model get the parameters that tell them apart."""
    by_label: dict[tuple, list[Config]] = defaultdict(list)
    for c in configs:
        by_label[(c.task, c.model, c.label)].append(c)
    for same in by_label.values():
        keys = varying_params(same)
        for c in same:
            extra = ", ".join(f"{k}={c.params.get(k)}" for k in keys)
            c.name = f"{c.label} [{extra}]" if len(same) > 1 else c.label


def task_models(configs: list[Config]) -> dict[tuple[str, str], list[Config]]:
    out: dict[tuple[str, str], list[Config]] = defaultdict(list)
    for c in configs:
        out[(c.task, c.model)].append(c)
    return dict(out)


# --------------------------------------------------------------------------------------------------
# Statistics


def summarize(trials: list[Trial], keys: list[str]) -> pd.DataFrame:
    """Rows = metric keys; columns mean, std (ddof=1), n (trials that logged the key)."""
    frame = pd.DataFrame([t.metrics for t in trials], columns=keys, dtype=float)
    return pd.DataFrame({"mean": frame.mean(), "std": frame.std(ddof=1), "n": frame.count()}, index=keys)


def metric_stats(config: Config, prefix: str = "test/") -> pd.DataFrame:
    """Rows = the six paper metrics (short names); mean/std/n of ``{prefix}{metric}`` over seeds."""
    stats = summarize(config.trials, [f"{prefix}{m}" for m in METRICS])
    stats.index = list(METRICS)
    return stats


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


def relative_change(value: float, reference: float) -> float:
    """Relative improvement in percent of ``value`` over ``reference`` (NaN when undefined)."""
    if not np.isfinite(value) or not np.isfinite(reference) or reference == 0:
        return float("nan")
    return 100.0 * (value - reference) / reference


# --------------------------------------------------------------------------------------------------
# Formatting


def fmt_cell(mean: float, std: float, n: int, bold: bool = False) -> str:
    """``mean ± std (n=k)``, two decimals; "—" when no trial logged the metric."""
    if not n:
        return "—"
    value = f"**{mean:.2f}**" if bold else f"{mean:.2f}"
    spread = f"{std:.2f}" if n > 1 and np.isfinite(std) else "n/a"
    return f"{value} ± {spread} (n={int(n)})"


def fmt_num(value: float, digits: int = 2, sign: bool = False, suffix: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}{suffix}" if sign else f"{value:.{digits}f}{suffix}"


def md_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    cols = [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9._+-]+", "-", str(p)).strip("-") for p in parts if p != "")


def stats_columns(stats: pd.DataFrame) -> dict[str, float]:
    """Flat numeric CSV columns ``BLEU mean``, ``BLEU std``, ``BLEU n``, ... from `metric_stats`."""
    out = {}
    for metric in METRICS:
        name = METRIC_NAMES[metric]
        out.update({f"{name} mean": stats.at[metric, "mean"], f"{name} std": stats.at[metric, "std"],
                    f"{name} n": int(stats.at[metric, "n"])})
    return out


def display_cells(numeric: pd.DataFrame, bold: dict[str, set[int]] | None = None) -> dict[str, list[str]]:
    """Metric columns of a numeric table formatted as ``mean ± std (n=k)``; rows in ``bold[name]`` bolded."""
    bold = bold or {}
    out = {}
    for metric in METRICS:
        name = METRIC_NAMES[metric]
        out[name] = [fmt_cell(r[f"{name} mean"], r[f"{name} std"], r[f"{name} n"], i in bold.get(name, ()))
                     for i, r in enumerate(numeric.to_dict("records"))]
    return out


# --------------------------------------------------------------------------------------------------
# Report document


class ReportWriter:
    """Collects markdown and writes every CSV / PNG it is given into ``out_dir``."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.lines: list[str] = []
        self.files: list[Path] = []

    def text(self, *lines: str) -> None:
        self.lines += [*lines, ""]

    def table(self, name: str, numeric: pd.DataFrame, shown: pd.DataFrame | None = None, caption: str = "") -> None:
        path = self.out_dir / f"{name}.csv"
        numeric.to_csv(path, index=False)
        self.files.append(path)
        if caption:
            self.text(caption)
        self.text(md_table(numeric if shown is None else shown))
        self.text(f"<sub>CSV: `{path.name}`</sub>")

    def figure(self, name: str, fig: Figure, alt: str) -> None:
        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        self.files.append(path)
        self.text(f"![{alt}]({path.name})")

    def write(self) -> Path:
        path = self.out_dir / "report.md"
        path.write_text("\n".join(self.lines).rstrip() + "\n", encoding="utf-8")
        self.files.append(path)
        return path


# --------------------------------------------------------------------------------------------------
# Tables


def reference_config(configs: list[Config], method: str, label: str, mp: bool = False) -> Config | None:
    """The baseline a comparison is made against: the config labelled ``label`` if there is one,
    else the one of ``method`` with the highest mean test BLEU (the most conservative baseline)."""
    candidates = [c for c in configs if c.method == method and (method != "grpo" or c.mp == mp)]
    exact = [c for c in candidates if c.label == label]
    pool = exact or candidates
    if not pool:
        return None
    return max(pool, key=lambda c: np.nan_to_num(metric_stats(c).at["bleu", "mean"], nan=-np.inf))


def method_comparison(configs: list[Config], prefix: str = "test/") -> pd.DataFrame:
    rows = [{"Model": c.model, "Method": c.name, **stats_columns(metric_stats(c, prefix))} for c in configs]
    return pd.DataFrame(rows)


def relative_improvements(configs: list[Config]) -> pd.DataFrame:
    """Relative change (%) of each method's mean over the base and the SFT reference of its model."""
    rows = []
    for (_, model), group in task_models(configs).items():
        base, sft = reference_config(group, "base-eval", "base"), reference_config(group, "sft", "sft")
        for c in group:
            for ref, kind in ((base, "base"), (sft, "SFT")):
                if ref is None or c is ref or c.method == "base-eval" or (kind == "SFT" and c.method == "sft"):
                    continue
                ours, theirs = metric_stats(c), metric_stats(ref)
                rows.append({"Model": model, "Method": c.name, "over": f"{kind} ({ref.name})",
                             **{METRIC_NAMES[m]: relative_change(ours.at[m, "mean"], theirs.at[m, "mean"])
                                for m in METRICS}})
    return pd.DataFrame(rows)


def factor_groups(configs: list[Config], factor: str) -> list[list[Config]]:
    """Sets of GRPO configs identical in every parameter but ``factor`` (seed aside), >= 2 values."""
    groups: dict[tuple, list[Config]] = defaultdict(list)
    for c in configs:
        if c.is_grpo and factor in c.params:
            groups[tuple(sorted((k, v) for k, v in c.params.items() if k != factor))].append(c)
    found = [g for g in groups.values() if len({c.params[factor] for c in g}) > 1]
    return [sorted(g, key=lambda c: (*_setting_key(c.params[factor]), c.name)) for g in found]


def _as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")


def _setting_key(value: str) -> tuple:
    """Numbers ascending, then metric names in the paper's order (bleu, ..., meteor), then text."""
    return _as_number(value), METRICS.index(value) if value in METRICS else len(METRICS), value


def best_rows(values: pd.Series) -> set[int]:
    finite = values.dropna()
    return set() if finite.empty else {i for i, v in enumerate(values) if v == finite.max()}


def reward_ablation(group: list[Config]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Table 3 style: rows = training reward, six metrics + AVG, best per column in bold.

    AVG is the mean of the per-configuration metric means over the metrics every row has (all six
    when all were logged); the metrics used are returned."""
    numeric = pd.DataFrame([{"train_reward": c.params[REWARD_PARAM], "config": c.name,
                             **stats_columns(metric_stats(c))} for c in group])
    means = numeric[[f"{METRIC_NAMES[m]} mean" for m in METRICS]]
    used = [m for m in METRICS if means[f"{METRIC_NAMES[m]} mean"].notna().all()]
    numeric["AVG"] = numeric[[f"{METRIC_NAMES[m]} mean" for m in used]].mean(axis=1) if used else np.nan
    bold = {METRIC_NAMES[m]: best_rows(numeric[f"{METRIC_NAMES[m]} mean"]) for m in METRICS}
    best_avg = best_rows(numeric["AVG"])
    shown = pd.DataFrame({"Training reward": numeric["train_reward"], **display_cells(numeric, bold),
                          "AVG": [f"**{fmt_num(v)}**" if i in best_avg else fmt_num(v)
                                  for i, v in enumerate(numeric["AVG"])],
                          "Config": numeric["config"]})
    return numeric, shown, used


def sweep_table(group: list[Config], factor: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    numeric = pd.DataFrame([{factor: c.params[factor], "config": c.name, **stats_columns(metric_stats(c))}
                            for c in group])
    shown = pd.DataFrame({factor: numeric[factor], **display_cells(numeric), "Config": numeric["config"]})
    return numeric, shown


def compute_table(configs: list[Config]) -> pd.DataFrame:
    rows = []
    for c in configs:
        stats = summarize(c.trials, list(COMPUTE_METRICS))
        rows.append({"Task": c.task, "Model": c.model, "Config": c.name, "n": len(c.trials),
                     **{f"{k} mean": stats.at[k, "mean"] for k in COMPUTE_METRICS}})
    return pd.DataFrame(rows)


def incomplete_table(trials: list[Trial]) -> pd.DataFrame:
    rows = [{"trial": t.number, "label": t.label, "state": t.state, "MLflow status": t.status,
             "task": t.task, "error": t.error, "run id": t.run_id}
            for t in trials if t.state != "COMPLETE"]
    return pd.DataFrame(rows, columns=["trial", "label", "state", "MLflow status", "task", "error", "run id"])


def runs_table(configs: list[Config]) -> pd.DataFrame:
    keys = [k for k in varying_params(configs) if k not in ("task", "model.name")]
    return pd.DataFrame([{"Task": c.task, "Model": c.model, "Config": c.name, "label": c.label,
                          "seeds": ", ".join(c.seeds),
                          "trials": ", ".join(str(t.number) for t in c.trials),
                          "run ids": ", ".join(t.run_id for t in c.trials),
                          "distinguishing params": ", ".join(f"{k}={c.params.get(k, '—')}" for k in keys)}
                         for c in configs])


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
    MP-GRPO vs its GRPO twin (same params but ``grpo.mp_grpo``), or the GRPO reference when it has no twin."""
    pairs = []
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


# --------------------------------------------------------------------------------------------------
# Plots


def _metrics_present(group: list[Config]) -> list[str]:
    return [m for m in METRICS if any(metric_stats(c).at[m, "n"] > 0 for c in group)]


def _grid(n: int, width: float = 3.6, height: float = 2.9) -> tuple[Figure, list]:
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def plot_sweep(group: list[Config], factor: str, title: str) -> Figure:
    """Each metric (mean ± std error bars over seeds) against the swept setting."""
    metrics = _metrics_present(group)
    fig, axes = _grid(len(metrics))
    x = [_as_number(c.params[factor]) for c in group]
    for ax, metric in zip(axes, metrics):
        stats = [metric_stats(c).loc[metric] for c in group]
        ax.errorbar(x, [s["mean"] for s in stats], yerr=[np.nan_to_num(s["std"]) for s in stats],
                    marker="o", capsize=4)
        ax.set_xlabel(SWEEPS.get(factor, factor))
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_mp_bars(groups: list[list[Config]]) -> Figure:
    """Figure 1 style: per task/model, each metric with GRPO and MP-GRPO bars (mean ± std)."""
    fig, axes = _grid(len(groups), width=6.0, height=3.4)
    for ax, group in zip(axes, groups):
        metrics = _metrics_present(group)
        pos = np.arange(len(metrics))
        width = 0.8 / len(group)
        for i, c in enumerate(group):
            stats = metric_stats(c).loc[metrics]
            ax.bar(pos + (i - (len(group) - 1) / 2) * width, stats["mean"], width,
                   yerr=np.nan_to_num(stats["std"].to_numpy()), capsize=3,
                   label=f"{c.name} (mp_grpo={c.params[MP_PARAM]})")
        ax.set_xticks(pos, [METRIC_NAMES[m] for m in metrics], rotation=30)
        ax.set_title(f"{group[0].task} / {group[0].model}")
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    return fig


def training_curves(client: MlflowClient, configs: list[Config]) -> pd.DataFrame:
    """Long table config / metric / step -> mean, std, n over seeds, from each run's metric history."""
    rows = []
    for c in configs:
        for metric in CURVE_METRICS:
            points = [(p.step, p.value) for t in c.trials for p in client.get_metric_history(t.run_id, metric)]
            if not points:
                continue
            agg = pd.DataFrame(points, columns=["step", "value"]).groupby("step")["value"].agg(
                ["mean", lambda v: v.std(ddof=1), "count"])
            agg.columns = ["mean", "std", "n"]
            rows += [{"config": c.name, "metric": metric, "step": int(s), **r} for s, r in agg.iterrows()]
    return pd.DataFrame(rows, columns=["config", "metric", "step", "mean", "std", "n"])


def plot_curves(curves: pd.DataFrame, title: str) -> Figure:
    metrics = [m for m in CURVE_METRICS if m in set(curves["metric"])]
    fig, axes = _grid(len(metrics), width=4.2, height=3.2)
    for ax, metric in zip(axes, metrics):
        for name, part in curves[curves["metric"] == metric].groupby("config", sort=False):
            ax.plot(part["step"], part["mean"], label=name)
            std = part["std"].fillna(0.0)
            ax.fill_between(part["step"], part["mean"] - std, part["mean"] + std, alpha=0.15)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{metric} (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------------
# Published figures


def published_tables() -> dict[str, pd.DataFrame]:
    """The paper's tables shipped in ``harness/published`` (file name -> table)."""
    folder = resources.files("harness").joinpath("published")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            with entry.open("r", encoding="utf-8") as fh:
                out[entry.name] = pd.read_csv(fh)
    return out


# --------------------------------------------------------------------------------------------------
# Sections


def _header(w: ReportWriter, study: Study) -> None:
    counts = {s: sum(t.state == s for t in study.trials) for s in STATES}
    other = len(study.trials) - sum(counts.values())
    states = ", ".join(f"{s} {k}" for s, k in counts.items()) + (f", other {other}" if other else "")
    w.text(f"# Study report: {study.name}",
           f"- Generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
           f"- Tracking URI: `{study.tracking_uri}` (experiment `{study.name}`, id {study.experiment_id})",
           f"- Parent (study) run: `{study.parent_run_id or 'none found'}`",
           f"- Produced by: `{study.parent_tags.get('harness.command', 'unknown')}` at commit "
           f"`{study.parent_tags.get('harness.git_commit', 'unknown')}` on "
           f"{study.parent_tags.get('harness.machine', 'an unrecorded machine')}",
           f"- Trials: {len(study.trials)} ({states}); configurations: {len(study.configs)}",
           "- Tracing: every number below is computed from the COMPLETE trial runs listed per configuration "
           "in [Appendix: runs per configuration](#appendix-runs-per-configuration) (MLflow run ids).",
           "- Cells are `mean ± std (n=k)` over seeds; std is the sample standard deviation (ddof=1), "
           "n the trials that logged the metric. Metrics are x100. FAIL / PRUNED / RUNNING trials are "
           "never averaged in.")


def _method_section(w: ReportWriter, study: Study) -> None:
    w.text("## Method comparison (test set)")
    if not study.configs:
        w.text("No COMPLETE trials yet: nothing to compare.")
    for task in sorted({c.task for c in study.configs}):
        configs = [c for c in study.configs if c.task == task]
        numeric = method_comparison(configs)
        shown = pd.DataFrame({"Model": numeric["Model"], "Method": numeric["Method"], **display_cells(numeric)})
        w.text(f"### Task `{task}`")
        w.table(slug("method_comparison", task), numeric, shown, "Greedy decoding, best validation checkpoint.")
        sampled = method_comparison(configs, prefix="test/sampled/")
        if sampled[[f"{METRIC_NAMES[m]} n" for m in METRICS]].to_numpy().sum() > 0:
            shown = pd.DataFrame({"Model": sampled["Model"], "Method": sampled["Method"], **display_cells(sampled)})
            w.table(slug("method_comparison_sampled", task), sampled, shown,
                    "Sampled decoding (`test/sampled/*`, averaged over sampling passes).")
        rel = relative_improvements(configs)
        if not rel.empty:
            shown = rel.copy()
            for m in METRICS:
                shown[METRIC_NAMES[m]] = [fmt_num(v, sign=True, suffix="%") for v in rel[METRIC_NAMES[m]]]
            w.table(slug("relative_improvement", task), rel, shown,
                    "Relative improvement (%) of the mean over the base / SFT mean of the same model "
                    "(reference in parentheses: the config labelled base / sft, else the best-BLEU one).")


def _group_labels(prefix: str, groups: list[list[Config]], factor: str) -> list[tuple[str, str]]:
    """(file name, caption) per factor group: ``prefix_task_model``, plus ``_k`` and the settings the
    group holds fixed when a task/model has several groups."""
    per_tm: dict[tuple[str, str], list[list[Config]]] = defaultdict(list)
    for group in groups:
        per_tm[(group[0].task, group[0].model)].append(group)
    out = []
    for group in groups:
        task, model = group[0].task, group[0].model
        siblings = per_tm[(task, model)]
        caption = f"Task `{task}`, model `{model}`."
        if len(siblings) == 1:
            out.append((slug(prefix, task, model), caption))
            continue
        keys = [k for k in varying_params([c for g in siblings for c in g]) if k != factor]
        held = ", ".join(f"{k}={group[0].params.get(k)}" for k in keys)
        out.append((slug(prefix, task, model, str(siblings.index(group))), f"{caption} Held fixed: {held}."))
    return out


def _ablation_section(w: ReportWriter, study: Study) -> None:
    groups = factor_groups(study.configs, REWARD_PARAM)
    if not groups:
        return
    w.text("## Reward ablation (GRPO trained with each reward)")
    for group, (name, caption) in zip(groups, _group_labels("reward_ablation", groups, REWARD_PARAM)):
        numeric, shown, used = reward_ablation(group)
        avg = "the six metrics" if len(used) == len(METRICS) else ", ".join(METRIC_NAMES[m] for m in used)
        w.table(name, numeric, shown,
                f"{caption} Rows: training reward; AVG = mean of {avg} (of the means); best per column in bold.")


def _sweep_section(w: ReportWriter, study: Study) -> None:
    for factor, title in SWEEPS.items():
        groups = factor_groups(study.configs, factor)
        if not groups:
            continue
        w.text(f"## Sweep: {title} (`{factor}`)")
        labels = _group_labels(slug("sweep", factor.split(".")[-1]), groups, factor)
        for group, (name, caption) in zip(groups, labels):
            numeric, shown = sweep_table(group, factor)
            w.table(name, numeric, shown, caption)
            w.figure(name, plot_sweep(group, factor, f"{group[0].task} / {group[0].model}: {title}"),
                     f"{title} sweep")


def _mp_section(w: ReportWriter, study: Study) -> None:
    groups = factor_groups(study.configs, MP_PARAM)
    if not groups:
        return
    w.text("## MP-GRPO on / off")
    for group, (name, caption) in zip(groups, _group_labels("mp_grpo", groups, MP_PARAM)):
        numeric = pd.DataFrame([{MP_PARAM: c.params[MP_PARAM], "config": c.name, **stats_columns(metric_stats(c))}
                                for c in group])
        shown = pd.DataFrame({MP_PARAM: numeric[MP_PARAM], **display_cells(numeric), "Config": numeric["config"]})
        w.table(name, numeric, shown, caption)
    w.figure("mp_grpo", plot_mp_bars(groups), "MP-GRPO on/off")


def _curves_section(w: ReportWriter, study: Study, client: MlflowClient) -> None:
    first = True
    for (task, model), configs in task_models(study.configs).items():
        curves = training_curves(client, configs)
        if curves.empty:
            continue
        if first:
            w.text("## Training curves (mean over seeds, band = ± std)")
            first = False
        name = slug("curves", task, model)
        _curves_csv(w, name, curves)
        w.figure(name, plot_curves(curves, f"{task} / {model}"), f"training curves {task} {model}")


def _curves_csv(w: ReportWriter, name: str, curves: pd.DataFrame) -> None:
    path = w.out_dir / f"{name}.csv"
    curves.to_csv(path, index=False)
    w.files.append(path)
    w.text(f"<sub>Data: `{path.name}`</sub>")


def _significance_section(w: ReportWriter, study: Study, scores: ExampleScores) -> None:
    first = True
    for (task, model), group in task_models(study.configs).items():
        numeric = significance_table(group, scores)
        if numeric.empty:
            continue
        if first:
            w.text("## Significance (paired bootstrap)", "",
                   f"{N_BOOTSTRAP:,} resamples of test examples (seed 0); each example's score averaged over "
                   "the seeds of its configuration first. Δ = mean(A − B), 95% percentile CI, two-sided p.")
            first = False
        w.table(slug("significance", task, model), numeric, significance_shown(numeric),
                f"Task `{task}`, model `{model}`.")


def _compute_section(w: ReportWriter, study: Study) -> None:
    numeric = compute_table(study.configs)
    if numeric.empty:
        return
    shown = numeric.copy()
    for k, digits in zip(COMPUTE_METRICS, (1, 0, 1, 1)):
        shown[f"{k} mean"] = [fmt_num(v, digits) for v in numeric[f"{k} mean"]]
    w.text("## Compute (mean per configuration)")
    w.table("compute", numeric, shown)


def _incomplete_section(w: ReportWriter, study: Study) -> None:
    table = incomplete_table(study.trials)
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    w.text("## Failed, pruned and incomplete trials", "",
           f"FAIL {counts.get('FAIL', 0)}, PRUNED {counts.get('PRUNED', 0)}, RUNNING (incomplete) "
           f"{counts.get('RUNNING', 0)}. Listed only; excluded from every table above.")
    if not table.empty:
        w.table("trials_not_complete", table)


def _published_section(w: ReportWriter, study: Study) -> None:
    tasks = {c.task for c in study.configs} | {t.task for t in study.trials}
    tables = {name: t for name, t in published_tables().items()
              if name not in PUBLISHED_TABLES or PUBLISHED_TABLES[name][0] in tasks or not tasks}
    if not tables:
        return
    w.text(f"## {PUBLISHED_TITLE}", "",
           "Copied from Elmakies et al., *Advancing Speech Understanding in Speech-Aware Language Models "
           "with GRPO*, arXiv:2509.16990v1 (Granite-Speech 2B/8B, LibriSQA / CoVoST2). Shown for orientation "
           "only: different models, data and scale; not comparable cell by cell with the measured tables.")
    for name, table in tables.items():
        caption = PUBLISHED_TABLES.get(name, ("", name))[1]
        shown = table.apply(lambda col: [fmt_num(v) if isinstance(v, float) else v for v in col])
        w.table(slug("published", name.removesuffix(".csv")), table, shown, f"*Published* {caption}")


def _appendix(w: ReportWriter, study: Study) -> None:
    w.text("## Appendix: runs per configuration", "",
           "<details><summary>MLflow run ids of every configuration</summary>")
    if study.configs:
        w.table("runs", runs_table(study.configs))
    w.text("</details>")


# --------------------------------------------------------------------------------------------------


def build_report(experiment_name: str, out_dir: Path, tracking_uri: str | None = None, published: bool = True,
                 log_to_parent: bool = True) -> Path:
    """Write ``report.md`` + CSVs + PNGs for one study into ``out_dir``; returns the report.md path.

    Everything is read from the MLflow store at ``tracking_uri`` (default: MLflow's current one).
    With ``log_to_parent`` the written files are logged to the study's parent run under ``report/``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    study = load_study(client, experiment_name)
    study.tracking_uri = uri
    w = ReportWriter(out_dir)
    _header(w, study)
    _method_section(w, study)
    _ablation_section(w, study)
    _sweep_section(w, study)
    _mp_section(w, study)
    _curves_section(w, study, client)
    with tempfile.TemporaryDirectory(prefix="harness-report-") as scratch:
        _significance_section(w, study, ExampleScores(uri, Path(scratch)))
    _compute_section(w, study)
    _incomplete_section(w, study)
    if published:
        _published_section(w, study)
    _appendix(w, study)
    path = w.write()
    if log_to_parent:
        _log_files(client, study, w.files)
    return path


def _log_files(client: MlflowClient, study: Study, files: list[Path]) -> None:
    if study.parent_run_id is None:
        log.warning("study %s has no parent run (tag harness.role=study): report not logged", study.name)
        return
    for path in files:
        client.log_artifact(study.parent_run_id, str(path), artifact_path="report")
