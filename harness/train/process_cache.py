"""What a process computes once and its trials share: the task's data (kept for the next trials; its
features on disk) and the evaluations of an untouched starting model (validation at step 0, the base
model's greedy test; kept per process and on disk). Both are exact: the same computation on the same
inputs gives the same numbers (tests/test_throughput.py checks a trial's results with and without
them). `harness.train.trial` uses them (and names `load_task_data` and `clear_process_caches` there too,
where the sweep and the tests reach them)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
from collections import OrderedDict

from harness import distributed
from harness.config import TrialConfig
from harness.data.dataset import SpokenSet
from harness.eval.evaluate import EVALUATION_VERSION, Evaluation, evaluate
from harness.paths import cache_root

__all__ = ["clear_process_caches", "evaluate_initial", "load_task_data"]


_data: OrderedDict[str, dict[str, SpokenSet]] = OrderedDict()  # a worker's trials share their task's data
_initial_evaluations: dict[str, Evaluation] = {}  # evaluations of an untouched starting model


def clear_process_caches() -> None:
    """Forget everything this process kept between trials (data, initial evaluations, encoder outputs in
    memory). Never needed for correctness: the next trial recomputes what it needs."""
    from harness.models import audio_cache

    _data.clear()
    _initial_evaluations.clear()
    audio_cache.clear()


def _data_key(cfg: TrialConfig) -> str:
    return json.dumps([cfg.task, cfg.data.model_dump(mode="json")], sort_keys=True)


def load_task_data(cfg: TrialConfig) -> dict[str, SpokenSet]:
    """The task's train / validation / test splits (kept for the process's next trials: two tasks)."""
    key = _data_key(cfg)
    if key in _data:
        _data.move_to_end(key)
        return dict(_data[key])  # a copy: a caller replacing a split leaves the next trial's data alone
    if cfg.data.source != "synthetic":  # LibriSQA / CoVoST2 / saved HF dataset (harness/data/real.py)
        from harness.data.real import load_real

        splits, report = load_real(cfg.data, cfg.task)  # bad clips are logged there, with their paths
        # features on demand (a corpus does not fit in memory as features), except validation: it is
        # capped by data.validation_size and decoded at every evaluation, so it is computed once
        data = {
            name: SpokenSet.from_examples(examples, lazy=name != "validation", skipped=report.skipped.get(name))
            for name, examples in splits.items()
        }
    else:
        from harness.data.synthetic import load_synthetic

        sizes = {"train": cfg.data.train_size, "validation": cfg.data.validation_size, "test": cfg.data.test_size}
        splits = load_synthetic(cfg.task, sizes, seed=cfg.data.seed, voice=cfg.data.voice)
        data = {name: SpokenSet.from_examples(examples) for name, examples in splits.items()}
    _data[key] = data
    while len(_data) > 2:
        _data.popitem(last=False)
    return dict(data)


def evaluate_initial(policy, data: SpokenSet, split: str, cfg: TrialConfig, start: str, full: bool) -> Evaluation:
    """`evaluate` of the model as loaded (no step taken), done once and reused: every trial from the same
    starting point, data and evaluation settings gets the same greedy numbers. Kept per process and on
    disk (``<cache>/evaluations/``), like the data's features. Sampled passes depend on the trial's
    seed, so a full evaluation with them is not reused."""
    if full and cfg.eval.sampling_passes:
        return evaluate(policy, data, cfg.eval, seed=cfg.seed, full=True)
    key = hashlib.blake2b(
        json.dumps(
            [
                EVALUATION_VERSION,
                start,
                cfg.model.model_dump(mode="json"),
                _data_key(cfg),
                split,
                cfg.eval.model_dump(mode="json"),
                full,
                distributed.world().size,
            ],
            sort_keys=True,
        ).encode(),
        digest_size=16,
    ).hexdigest()
    if key not in _initial_evaluations:
        path = cache_root() / "evaluations" / f"{key}.pkl"
        try:
            _initial_evaluations[key] = pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            _initial_evaluations[key] = evaluate(policy, data, cfg.eval, seed=cfg.seed, full=full)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(_initial_evaluations[key]))
            os.replace(tmp, path)
    return copy.deepcopy(_initial_evaluations[key])
