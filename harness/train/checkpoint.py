"""Resumable training state of one trial: saved every ``train.checkpoint_every`` steps, loaded on a re-run.

A checkpoint is one ``torch.save`` file, ``<dir>/last.pt``, written to a temporary name and renamed,
so a kill during the write leaves the previous checkpoint intact. It holds the trained weights (only
the parameters that train: the frozen rest is reloaded from the base model, so a projector+LoRA
checkpoint of a 2B model stays small), optimizer and scheduler states, every random generator the
trial draws from (python, numpy, torch, the rollout generator, the batch sampler), the step, the
best validation scores, step and weights so far, and the sample tables and counters, so a resumed
trial continues exactly where the saved one was.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FILE", "load", "restore", "rng_state", "save", "set_rng_state", "trained"]

FILE = "last.pt"


def trained(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a state dict that training changes (parameters with requires_grad, under every name
    of a tied weight such as lm_head / embed_tokens)."""
    names = {name for name, param in model.named_parameters(remove_duplicate=False) if param.requires_grad}
    return {name: tensor for name, tensor in state.items() if name in names}


def restore(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(trained(model, model.state_dict())) - set(weights):
        raise RuntimeError(f"checkpoint does not match the model (unexpected keys: {unexpected[:5]})")


def rng_state(generator: torch.Generator, sampler) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "sampler": sampler.generator.get_state(),
        "sampler_order": list(sampler.order),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator, sampler) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    sampler.generator.set_state(state["sampler"])
    sampler.order = list(state["sampler_order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(directory: Path, state: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path, tmp = directory / FILE, directory / f".{FILE}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a reader sees the old or the new checkpoint, never half of one
    return path


def load(directory: Path | None, config_digest: str) -> dict[str, Any] | None:
    """The saved state of this very config, or None (no directory, no checkpoint, or another config's)."""
    path = directory / FILE if directory is not None else None
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written by save()
    return state if state.get("config") == config_digest else None
