"""A trial killed mid-way resumes from its last checkpoint and ends exactly where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import TrialConfig
from harness.train import checkpoint
from harness.train.trial import run_trial

CFG = {
    "task": "sqa",
    "method": "grpo",
    "seed": 3,
    "train": {"steps": 4, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2},
    "grpo": {"group_size": 3, "max_new_tokens": 8},
    "data": {"train_size": 8, "validation_size": 4, "test_size": 4},
    "eval": {"bertscore": False, "max_new_tokens": 8},
}


class Killed(Exception):
    pass


@pytest.mark.slow
def test_resumed_trial_continues_from_the_saved_step(tmp_path: Path, base_model, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(base_model.parent.parent))
    cfg = TrialConfig.model_validate(CFG)
    steps: list[int] = []

    def killed_at_3(metrics, step):
        if "loss" in metrics:
            steps.append(step)
            if step == 3:
                raise Killed

    with pytest.raises(Killed):
        run_trial(cfg, log=killed_at_3, checkpoint_dir=tmp_path / "ckpt")
    saved = checkpoint.load(tmp_path / "ckpt", cfg.digest())
    assert steps == [1, 2, 3] and saved["step"] == 2

    resumed_steps: list[tuple[int, dict]] = []
    resumed = run_trial(cfg, log=lambda m, s: resumed_steps.append((s, m)), checkpoint_dir=tmp_path / "ckpt")
    assert resumed.resumed_from == 2
    assert [s for s, m in resumed_steps if "loss" in m] == [3, 4]  # steps 1-2 were not trained again
    assert [s for s, m in resumed_steps if "val/bleu" in m] == [4]  # nor validated again

    fresh_steps: list[tuple[int, dict]] = []
    fresh = run_trial(cfg, log=lambda m, s: fresh_steps.append((s, m)))
    assert fresh.resumed_from == 0
    fresh_by_step = {s: m for s, m in fresh_steps if "loss" in m}
    for step, metrics in resumed_steps:  # same RNG, weights and optimizer state: the same steps 3-4
        if "loss" in metrics:
            assert metrics["loss"] == pytest.approx(fresh_by_step[step]["loss"], rel=1e-5)
            assert metrics["reward"] == pytest.approx(fresh_by_step[step]["reward"], rel=1e-5)
    assert resumed.test.scores == pytest.approx(fresh.test.scores, rel=1e-5)
    assert resumed.best_step == fresh.best_step and resumed.generated_tokens == fresh.generated_tokens


def test_checkpoint_of_another_config_is_ignored(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, {"config": "aaaa", "step": 5})
    assert checkpoint.load(tmp_path, "bbbb") is None
    assert checkpoint.load(tmp_path, "aaaa")["step"] == 5
    assert checkpoint.load(None, "aaaa") is None and checkpoint.load(tmp_path / "none", "aaaa") is None
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_checkpoint_holds_only_trained_weights_under_every_tied_name() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False), torch.nn.BatchNorm1d(5))
    model[1].weight = model[0].weight  # tied, like lm_head and embed_tokens
    model[2].requires_grad_(False)  # frozen, like the base model under projector+lora
    state = checkpoint.trained(model, model.state_dict())
    assert set(state) == {"0.weight", "1.weight"}  # not the frozen norm's weights or running statistics
    fresh = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False), torch.nn.BatchNorm1d(5))
    fresh[1].weight = fresh[0].weight
    fresh[2].requires_grad_(False)
    checkpoint.restore(fresh, state)
    assert torch.equal(fresh[0].weight, model[0].weight) and torch.equal(fresh[1].weight, model[0].weight)
    with pytest.raises(RuntimeError, match="does not match the model"):
        checkpoint.restore(fresh, {"0.weight": state["0.weight"], "9.weight": state["0.weight"]})
