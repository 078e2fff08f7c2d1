"""A finished trial's best checkpoint as an MLflow model (MLflow 3 ``LoggedModel``) under its run.

The model is named after its trial's configuration (``grpo-rouge1-s1``, `model_name`), so the UI's
model list says which configuration each is. It is what training changed and no more: the trainable
tensors of the selected checkpoint (`harness.train.checkpoint.trained`) as one safetensors file, the
trial's resolved config (``trial_config.yaml``) and the identity of the starting checkpoint they apply
to (tag and model config ``harness.checkpoint_revision``), with the code's commit (tag
``harness.git_commit``). A 2B model is not copied: `BestCheckpoint.load_context` loads the starting
checkpoint the config names, checks it is the recorded one, and puts the trained tensors on it. The
MLflow UI lists the model under the trial's run (its "Logged models"), from where it can be registered.

The model's code is `harness.sweep.best_checkpoint_model` (MLflow's "models from code": stored with the
model, nothing pickled). Loading (``mlflow.pyfunc.load_model("models:/<model_id>")``) needs this harness
importable (at the commit in the tag) and the starting checkpoint (the shipped tiny base, or the named checkpoint in the
local Hugging Face cache). ``predict`` takes a DataFrame with ``audio`` (clip paths) and ``prompt``
(with one ``<|audio|>``) and returns the greedy answers.

``HARNESS_LOG_MODEL=0`` turns logging off (huge sweeps of full-model fine-tuning, where the trained
tensors are the whole model).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
import yaml
from mlflow.entities import LoggedModelOutput, Run
from mlflow.tracking import MlflowClient

from harness.sweep.stores import quiet_downloads
from harness.vocabulary import LOGGED_MODEL, TAG_CHECKPOINT, TAG_COMMIT, TRIAL_CONFIG_ARTIFACT

__all__ = [
    "LOG_MODEL_ENV",
    "MODEL_CODE",
    "WEIGHTS_FILE",
    "BestCheckpoint",
    "link_model",
    "log_best_checkpoint",
    "model_logging",
    "model_name",
]

LOG_MODEL_ENV = "HARNESS_LOG_MODEL"
WEIGHTS_FILE = "trained.safetensors"
MODEL_CODE = Path(__file__).with_name("best_checkpoint_model.py")  # MLflow's "models from code": no pickle
_REQUIREMENTS = ("torch", "transformers", "peft", "safetensors", "pyyaml", "pydantic", "mlflow")


def model_name(trial_name: str) -> str:
    """A trial's name (`harness.sweep.tracking.trial_name`, ``grpo-0.0001-s1``) as an MLflow model name
    (``grpo-0_0001-s1``: MLflow refuses ``/ : . % " '`` in one); `LOGGED_MODEL` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9_=-]+", "_", trial_name).strip("_") or LOGGED_MODEL


def model_logging() -> bool:
    """Whether finished trials log their best checkpoint (``HARNESS_LOG_MODEL``, default on)."""
    return os.environ.get(LOG_MODEL_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class BestCheckpoint(mlflow.pyfunc.PythonModel):
    """The policy of a trial's best checkpoint, rebuilt from the model's files (module docstring)."""

    def load_context(self, context) -> None:
        import torch
        from safetensors.torch import load_file

        from harness.config import TrialConfig
        from harness.models.loader import load_speech_lm
        from harness.train import checkpoint
        from harness.train.base_model import starting_point

        config = yaml.safe_load(Path(context.artifacts["config"]).read_text(encoding="utf-8"))
        self.config = TrialConfig.model_validate(config)
        start = starting_point(self.config.model)
        recorded = (context.model_config or {}).get(TAG_CHECKPOINT)
        if recorded and start.identity != recorded:
            raise RuntimeError(
                f"the trained tensors apply to starting checkpoint {recorded!r}, but model "
                f"{self.config.model.name!r} resolves to {start.identity!r} here"
            )
        self.policy = load_speech_lm(self.config.model, path=start.path)
        weights = load_file(context.artifacts["weights"], device="cpu")
        with torch.no_grad():
            checkpoint.restore(self.policy.model, weights)
        self.policy.model.eval()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        from harness.data.dataset import SpokenSet
        from harness.data.example import Example
        from harness.eval.evaluate import decode

        missing = {"audio", "prompt"} - set(model_input.columns)
        if missing:
            raise ValueError(
                f"model input lacks column(s) {sorted(missing)}: give 'audio' (clip paths) and "
                "'prompt' (text with one <|audio|>)"
            )
        examples = [
            Example(str(i), self.config.task, str(row["audio"]), str(row["prompt"]), "", "")
            for i, row in model_input.reset_index(drop=True).iterrows()
        ]
        return decode(self.policy, SpokenSet.from_examples(examples, lazy=True), self.config.eval, greedy=True)


def log_best_checkpoint(
    weights: Mapping[str, object],
    config_yaml: str,
    start: str,
    commit: str,
    best_step: int,
    params: Mapping[str, str],
    name: str = LOGGED_MODEL,
) -> str:
    """Log the trained tensors of the best checkpoint as the active run's LoggedModel named ``name``
    (`model_name`); returns its id."""
    from safetensors.torch import save_file

    tensors = {
        name: tensor.detach().to("cpu").contiguous().clone()  # clone: tied weights share storage
        for name, tensor in weights.items()
    }
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        save_file(tensors, str(Path(tmp, WEIGHTS_FILE)))
        Path(tmp, TRIAL_CONFIG_ARTIFACT).write_text(config_yaml, encoding="utf-8")
        with quiet_downloads(), _no_type_hint_notice():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),
                artifacts={"weights": str(Path(tmp, WEIGHTS_FILE)), "config": str(Path(tmp, TRIAL_CONFIG_ARTIFACT))},
                pip_requirements=_requirements(),
                model_config={TAG_CHECKPOINT: start},
                metadata={
                    "trained_tensors": len(tensors),
                    "trained_parameters": sum(t.numel() for t in tensors.values()),
                },
                params={"best_step": str(best_step), **params},
                tags={TAG_COMMIT: commit, TAG_CHECKPOINT: start},
                step=best_step,
            )
    return info.model_id


class _TypeHintNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature: Type hint")


@contextmanager
def _no_type_hint_notice() -> Iterator[None]:
    """MLflow says at every logged model that ``predict``'s type hints (a DataFrame in, a list of str out) do
    not make a signature: true and harmless, and it would cut the sweep's progress lines on the terminal."""
    notice, log = _TypeHintNotice(), logging.getLogger("mlflow.pyfunc")
    log.addFilter(notice)
    try:
        yield
    finally:
        log.removeFilter(notice)


def link_model(client: MlflowClient, source: Run, run_id: str) -> list[str]:
    """A reused trial's run gets the original trial's logged model as its output too (no copy)."""
    models = client.search_logged_models(
        experiment_ids=[source.info.experiment_id], filter_string=f"source_run_id = '{source.info.run_id}'"
    )
    outputs = [LoggedModelOutput(m.model_id, _step(source, m.model_id)) for m in models]
    if outputs:
        client.log_outputs(run_id, outputs)
    return [m.model_id for m in models]


def _step(run: Run, model_id: str) -> int:
    outputs = run.outputs.model_outputs if run.outputs is not None else []
    return next((o.step for o in outputs if o.model_id == model_id), 0)


def _requirements() -> list[str]:
    """Pinned versions of what loading the model imports (MLflow would otherwise infer them by loading it)."""
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out
