"""Where a comparison's uncertainty comes from, and what the next CPU-second buys best.

For a comparison A - B on a sampled-decoding metric (P passes per seed, M shared test examples), the
variance of the difference of the seed means splits as

    se^2 = sum over A, B of (s2_train / S + s2_decode / (S P))  +  v_examples

- ``s2_decode``: the variance between the P passes of one trained model (the sampling noise of one
  pass), pooled over seeds: ``mean_s var_p(score[s, p])``;
- ``s2_train``: the training-seed variance, the between-seed variance of the per-seed score less the
  part its P passes explain: ``var_s(mean_p score[s, p]) - s2_decode / P`` (clipped at 0; method of
  moments, as in a one-way random-effects ANOVA);
- ``v_examples``: the test-example part of the comparison's bootstrap se (`inference.compare`'s
  ``se_examples``: the examples are shared, so what is common to A and B cancels).

What one more unit of each costs, in CPU-seconds of the trials that ran (``wall_time_s`` per trial; the
test phase's ``time/test_s`` split into 1 + P equal decoding passes where the trials logged it), and
how much it shrinks se^2: one more seed on both sides, one more sampled pass for every seed, or twice
the test examples (the example part halves, every test pass costs twice). The best buy is the largest
se^2 reduction per CPU-second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.eval.bleu_stats import corpus_bleu_from_stats
from harness.report.comparisons import score_for
from harness.report.document import ReportWriter, fmt_num
from harness.report.folder import Config, ReportData
from harness.report.hypotheses import declared, select
from harness.report.inference import compare
from harness.vocabulary import WALL_TIME, time_key

__all__ = ["BUYS", "decompose", "pass_scores", "variance_pairs", "variance_section"]

BUYS = ("one more seed", "one more sampled pass", "twice the test examples")
TEST_TIME = time_key("test")


def pass_scores(features: np.ndarray, metric: str) -> np.ndarray:
    """``[S, P]`` corpus score of each seed's each sampled pass, from ``[S, M, P, *F]`` features."""
    sums = features.sum(axis=1)  # [S, P, *F]
    return corpus_bleu_from_stats(sums) if metric == "bleu" else sums / features.shape[1]


def _parts(scores: np.ndarray) -> tuple[float, float]:
    """(s2_train, s2_decode) of one configuration's ``[S, P]`` pass scores."""
    s, p = scores.shape
    decode = float(scores.var(axis=1, ddof=1).mean()) if p > 1 else np.nan
    between = float(scores.mean(axis=1).var(ddof=1)) if s > 1 else np.nan
    return max(between - (0.0 if np.isnan(decode) else decode / p), 0.0), decode


def _cost(config: Config, passes: int) -> tuple[float, float]:
    """(CPU-seconds of one more trial, of one more sampled pass of one trial; NaN if not recorded)."""
    trial = float(np.nanmean(config.values(WALL_TIME))) if len(config.rows) else np.nan
    test = config.values(TEST_TIME)
    per_pass = float(np.nanmean(test)) / (1 + passes) if np.isfinite(test).any() else np.nan
    return trial, per_pass


def decompose(data: ReportData, a: Config, b: Config, metric: str, n_boot: int = 2000) -> dict | None:
    """One comparison's variance parts (x100 points squared), what each buy costs and gains, and the
    best buy; None when the trials did not run sampled decoding."""
    fa, fb = data.features(a, metric, "sampled"), data.features(b, metric, "sampled")
    if fa is None or fb is None:
        return None
    sa, sb = pass_scores(fa, metric), pass_scores(fb, metric)
    c = compare(fa, fb, score=score_for(metric, "sampled"), n_boot=n_boot)
    out: dict = {"task": a.task, "A": a.name, "B": b.name, "metric": metric, "se": c.se}
    gain_seed = gain_pass = 0.0
    cost_seed = cost_pass = cost_examples = 0.0
    for side, scores, config in (("A", sa, a), ("B", sb, b)):
        s, p = scores.shape
        train, decode = _parts(scores)
        trial, per_pass = _cost(config, p)
        out[f"train_sd_{side}"], out[f"decode_sd_{side}"] = np.sqrt(train), np.sqrt(decode)
        out[f"seeds_{side}"], out[f"passes_{side}"] = s, p
        gain_seed += (train + decode / p) * (1 / s - 1 / (s + 1))
        gain_pass += decode / s * (1 / p - 1 / (p + 1))
        cost_seed += trial
        cost_pass += s * per_pass
        cost_examples += s * per_pass * (1 + p)
    out["example_se"] = c.se_examples
    parts = {
        "train": sum(out[f"train_sd_{x}"] ** 2 / out[f"seeds_{x}"] for x in "AB"),
        "decode": sum(out[f"decode_sd_{x}"] ** 2 / (out[f"seeds_{x}"] * out[f"passes_{x}"]) for x in "AB"),
        "examples": c.se_examples**2,
    }
    # Estimated separately (moments over seeds and passes; the bootstrap's example part), the three parts
    # need not add up to the bootstrap's se^2: the shares are of their sum, which is kept beside se^2.
    total = sum(parts.values())
    for name, part in parts.items():
        out[f"share_{name}"] = part / total if total > 0 else np.nan
    out["parts_over_se2"] = total / c.se**2 if c.se > 0 else np.nan
    gains = {
        BUYS[0]: (gain_seed, cost_seed),
        BUYS[1]: (gain_pass, cost_pass),
        BUYS[2]: (c.se_examples**2 / 2, cost_examples),
    }
    for name, (gain, cost) in gains.items():
        out[f"gain/{name}"], out[f"cost_s/{name}"] = gain, cost
        out[f"per_cpu_s/{name}"] = gain / cost if cost > 0 else np.nan
    rates = {k: out[f"per_cpu_s/{k}"] for k in BUYS if np.isfinite(out[f"per_cpu_s/{k}"])}
    out["best_buy"] = max(rates, key=rates.get) if rates else "unknown (no timing recorded)"
    return out


def variance_pairs(data: ReportData, comparisons: pd.DataFrame) -> list[tuple[Config, Config, str]]:
    """The comparisons whose variance the report splits: the declared hypotheses', else the primary family's."""
    found = declared(data.study_text)
    if found is not None:
        chosen = [(select(data, t.a), select(data, t.b), t.metric) for t in found.spec.tests]
        return [(a, b, m) for a, b, m in chosen if a is not None and b is not None]
    if comparisons.empty:
        return []
    configs = {(c.task, c.model, c.name): c for c in data.configs}
    primary = comparisons[comparisons["family"] == "primary"]
    return [
        (configs[(r["task"], r["model"], r["A"])], configs[(r["task"], r["model"], r["B"])], r["metric"])
        for _, r in primary.iterrows()
    ]


def variance_section(w: ReportWriter, data: ReportData, pairs: list[tuple[Config, Config, str]], n_boot: int) -> None:
    """## Where the uncertainty comes from: one row per comparison (``pairs``: A, B, metric), and
    ``variance.csv``."""
    rows = [r for a, b, metric in pairs if (r := decompose(data, a, b, metric, n_boot)) is not None]
    if not rows:
        return
    table = pd.DataFrame(rows)
    w.text(
        "## Where the uncertainty comes from",
        "",
        "Each comparison's se² split into training seeds, decoding (the sampled passes of one model) and test "
        "examples (`harness/report/variance.py`; the three parts are estimated separately and shown as shares of "
        "their sum), and what shrinks it most per CPU-second of these trials: one "
        "more seed on both sides, one more sampled pass for every seed, or twice the test examples ("
        + (
            "costs from each trial's wall time and test time"
            if TEST_TIME in data.per_seed
            else "the trials logged no test time: only a seed's cost is known"
        )
        + ").",
        "",
    )

    def pct(v: float) -> str:
        return f"{100 * v:.0f} %"

    shown = pd.DataFrame(
        {
            "task": [r["task"] for r in rows],
            "A vs B": [f"{r['A']} vs {r['B']}" for r in rows],
            "se": [fmt_num(r["se"]) for r in rows],
            "seeds": [pct(r["share_train"]) for r in rows],
            "decoding": [pct(r["share_decode"]) for r in rows],
            "examples": [pct(r["share_examples"]) for r in rows],
            "train SD A / B": [f"{fmt_num(r['train_sd_A'])} / {fmt_num(r['train_sd_B'])}" for r in rows],
            "pass SD A / B": [f"{fmt_num(r['decode_sd_A'])} / {fmt_num(r['decode_sd_B'])}" for r in rows],
            "se² cut by a seed / a pass / 2x examples": [
                " / ".join(fmt_num(r[f"gain/{k}"], 3) for k in BUYS) for r in rows
            ],
            "best buy per CPU-s": [r["best_buy"] for r in rows],
        }
    )
    w.table("variance", table, shown)
