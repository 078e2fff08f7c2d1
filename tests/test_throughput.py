"""The throughput work (issue 13) changes no result: a trial run with every per-process and on-disk
cache off gives exactly the scores it gives with warm caches (tolerance 0: the caches hold the very
tensors and numbers the computation produces), and a failing trial leaves the caches as they were."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config import TrialConfig
from harness.models import audio_cache
from harness.train import trial as trial_lib

SMALL = {
    "task": "sqa",
    "method": "grpo",
    "data": {"train_size": 16, "validation_size": 8, "test_size": 12},
    "train": {"steps": 4, "batch_size": 2, "eval_every": 2, "warmup_steps": 0, "lr": 1e-3},
    "grpo": {"group_size": 3, "max_new_tokens": 8},
    "eval": {"max_new_tokens": 8, "bertscore": False, "sampling_passes": 1},
}


def _trial(seed: int, **changes) -> trial_lib.TrialResult:
    cfg = TrialConfig.model_validate({**SMALL, "seed": seed, **changes})
    return trial_lib.run_trial(cfg)


def _same(a: trial_lib.TrialResult, b: trial_lib.TrialResult) -> None:
    assert a.test.scores == b.test.scores  # exact: tolerance 0
    assert a.validation == b.validation and a.best_step == b.best_step
    assert a.test.hypotheses == b.test.hypotheses and a.test.sampled_hypotheses == b.test.sampled_hypotheses
    for metric in a.test.per_example:
        np.testing.assert_array_equal(a.test.per_example[metric], b.test.per_example[metric])
    np.testing.assert_array_equal(a.test.bleu_stats, b.test.bleu_stats)


@pytest.mark.slow
def test_warm_caches_give_exactly_the_uncached_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # a fresh on-disk cache (features, encoder)
    monkeypatch.setenv(audio_cache.BUDGET_ENV, "0")  # the encoder runs for every clip, every time
    trial_lib.clear_process_caches()
    plain = _trial(seed=1)
    assert audio_cache.stats["hits"] == audio_cache.stats["disk"] == 0

    monkeypatch.delenv(audio_cache.BUDGET_ENV)
    trial_lib.clear_process_caches()
    _trial(seed=0)  # another trial warms the caches: data, step-0 validation, encoder outputs (memory + disk)
    warm = _trial(seed=1)
    assert audio_cache.stats["hits"] > 0
    _same(plain, warm)

    trial_lib.clear_process_caches()  # a new process: encoder outputs come from disk
    from_disk = _trial(seed=1)
    assert audio_cache.stats["disk"] > 0
    _same(plain, from_disk)


@pytest.mark.slow
def test_a_failing_trial_leaves_the_caches_as_they_were(monkeypatch) -> None:
    trial_lib.clear_process_caches()
    alone = _trial(seed=2)
    real_load = trial_lib.load_task_data

    def break_test_split(cfg):  # the failing trial replaces a split of the data it was handed ...
        data = real_load(cfg)
        data["test"] = data["train"]
        return data

    def nan_reward(*args, **kwargs):  # ... and then fails at its first step
        raise FloatingPointError("reward is nan")

    with monkeypatch.context() as patch:
        patch.setattr(trial_lib, "load_task_data", break_test_split)
        patch.setattr(trial_lib, "grpo_step", nan_reward)
        with pytest.raises(FloatingPointError):
            _trial(seed=3)
    _same(alone, _trial(seed=2))  # the next trial in the process gets its own data and results
