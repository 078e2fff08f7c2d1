"""`harness.report.variance`: the se^2 split of a comparison into training seeds, sampled passes and test
examples, checked on synthetic per-example scores whose variance parts are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.folder import Config
from harness.report.variance import BUYS, decompose
from harness.vocabulary import WALL_TIME, time_key

S, M, P = 40, 400, 4  # seeds per side, test examples, sampled passes
TRAIN_SD, PASS_SD_EXAMPLE, EXAMPLE_SD = 1.5, 8.0, 10.0  # score points (x100)


class Folder:
    """What `decompose` reads of a report folder: per-example features of each configuration."""

    def __init__(self, features: dict[str, np.ndarray]):
        self._features = features

    def features(self, config: Config, metric: str, decoding: str) -> np.ndarray:
        assert (metric, decoding) == ("rouge1", "sampled")
        return self._features[config.name]


def config(name: str) -> Config:
    rows = pd.DataFrame({"seed": range(S), "run_id": [f"{name}-{s}" for s in range(S)]})
    rows[WALL_TIME], rows[time_key("test")] = 40.0, 5.0
    return Config(name=name, task="sqa", model="tiny", label=name, method="grpo", rows=rows)


def scores(rng: np.random.Generator, level: float, shared: np.ndarray) -> tuple[np.ndarray, float]:
    """[S, M, P] per-example scores: a level, what every config shares per example (cancels in A - B),
    this config's own example effects, a training-seed shift per seed and sampling noise per pass; and
    the SD of the seed shifts drawn (the training-seed SD the split should find)."""
    own = rng.normal(0, EXAMPLE_SD, M)
    seed_shift = rng.normal(0, TRAIN_SD, (S, 1, 1))
    noise = rng.normal(0, PASS_SD_EXAMPLE, (S, M, P))
    return level + shared[None, :, None] + own[None, :, None] + seed_shift + noise, float(seed_shift.std(ddof=1))


def test_the_parts_recover_the_variances_that_made_the_scores() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 20, M)
    a, b = config("a"), config("b")
    (fa, sd_a), (fb, sd_b) = scores(rng, 50, shared), scores(rng, 48, shared)
    out = decompose(Folder({"a": fa, "b": fb}), a, b, "rouge1", n_boot=400)
    # the mean of M examples of one pass carries PASS_SD_EXAMPLE / sqrt(M) of sampling noise
    for side, drawn in (("A", sd_a), ("B", sd_b)):
        assert out[f"train_sd_{side}"] == pytest.approx(drawn, abs=0.15)
        assert out[f"decode_sd_{side}"] == pytest.approx(PASS_SD_EXAMPLE / np.sqrt(M), rel=0.1)
    # own example effects of A and B do not cancel: sd of their difference over sqrt(M)
    assert out["example_se"] == pytest.approx(np.sqrt(2) * EXAMPLE_SD / np.sqrt(M), rel=0.2)
    shares = [out[f"share_{k}"] for k in ("train", "decode", "examples")]
    assert sum(shares) == pytest.approx(1.0)
    expected = np.array([(sd_a**2 + sd_b**2) / S, 2 * PASS_SD_EXAMPLE**2 / M / (S * P), 2 * EXAMPLE_SD**2 / M])
    assert shares == pytest.approx(list(expected / expected.sum()), abs=0.05)
    # buys: one more seed shrinks the seed parts by S/(S+1); twice the examples halves the example part
    assert out[f"gain/{BUYS[2]}"] == pytest.approx(out["example_se"] ** 2 / 2)
    assert out[f"cost_s/{BUYS[0]}"] == pytest.approx(2 * 40.0)
    assert out[f"cost_s/{BUYS[2]}"] == pytest.approx(2 * S * 5.0)  # every test pass of every seed, twice
    assert out["best_buy"] in BUYS
