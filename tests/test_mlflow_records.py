"""What a trial leaves in MLflow besides metrics: its best checkpoint as an MLflow model (LoggedModel) that
loads back to the same trained tensors, its data as dataset inputs, its Optuna record, and what a reused
trial gets of them. Real MLflow sqlite stores and Optuna journals; fake trials (tests/fakes.py), whose
best checkpoint is the shipped tiny base with its trainable tensors changed."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest
import torch
import yaml
from fakes import TINY, study_file
from mlflow import MlflowClient
from optuna.distributions import json_to_distribution
from optuna.trial import TrialState

from harness.config import TrialConfig
from harness.study import load_study
from harness.sweep import run_sweep
from harness.train import checkpoint
from harness.vocabulary import (
    OPTUNA_TRIAL_ARTIFACT,
    TAG_CHECKPOINT,
    TAG_COMMIT,
    TAG_REUSED,
    TRIAL_CONFIG_ARTIFACT,
)


@pytest.fixture(scope="module")
def trained_weights() -> dict[str, torch.Tensor]:
    """The tiny base's trainable tensors, each parameter shifted by a distinct amount (as if training changed
    them; a tied weight is one parameter under two names, shifted once)."""
    from harness.models.loader import load_speech_lm
    from harness.train.base_model import starting_point

    cfg = TrialConfig().model
    policy = load_speech_lm(cfg, path=starting_point(cfg).path)
    with torch.no_grad():
        for i, param in enumerate(p for p in policy.model.parameters() if p.requires_grad):
            param.add_(0.001 * (i + 1))
    return {name: t.clone() for name, t in checkpoint.trained(policy.model, policy.model.state_dict()).items()}


def trial_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.role` = 'trial'")
    return sorted(runs, key=lambda r: int(r.data.tags["harness.trial_number"]))


def test_best_checkpoint_is_a_logged_model_that_loads_back(tmp_path: Path, stores, fake, trained_weights) -> None:
    fake(weights=lambda cfg: trained_weights)
    path = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu, rouge1]}\n", "models")
    storage, uri = stores
    run_sweep(load_study(path), storage=storage, tracking_uri=uri, progress=False)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    runs = trial_runs(client, "models")
    assert len(runs) == 2
    experiment_id = runs[0].info.experiment_id
    for run in runs:
        (model,) = mlflow.search_logged_models(
            experiment_ids=[experiment_id], output_format="list", filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        # named after its configuration and seed
        assert model.name == f"grpo-{run.data.params['grpo.reward']}-s0" and model.status == "READY"
        # the UI lists it under the run: it is the run's output, at the selected step
        assert [(o.model_id, o.step) for o in client.get_run(run.info.run_id).outputs.model_outputs] == [
            (model.model_id, 1)
        ]
        assert model.tags[TAG_COMMIT] == run.data.tags["harness.git_commit"]
        assert model.tags[TAG_CHECKPOINT] == run.data.tags[TAG_CHECKPOINT]
        assert model.params["best_step"] == "1" and model.params["grpo.reward"] == run.data.params["grpo.reward"]
        files = {Path(a.path).name for a in client.list_logged_model_artifacts(model.model_id, "artifacts")}
        assert files == {"trained.safetensors", TRIAL_CONFIG_ARTIFACT}  # what training changed, not the model

        loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}").unwrap_python_model()
        assert loaded.config == TrialConfig.model_validate(
            yaml.safe_load(
                Path(
                    client.download_artifacts(run.info.run_id, TRIAL_CONFIG_ARTIFACT, str(tmp_path / run.info.run_id))
                ).read_text()
            )
        )
        state = loaded.policy.model.state_dict()
        back = checkpoint.trained(loaded.policy.model, state)
        assert back.keys() == trained_weights.keys()
        for name, tensor in trained_weights.items():
            assert torch.equal(back[name], tensor), name
    # registrable: the model registry takes it by its models:/ URI
    version = mlflow.register_model(f"models:/{model.model_id}", "tiny-best")
    assert int(version.version) == 1 and version.source == f"models:/{model.model_id}"


def test_no_logged_model_when_nothing_trained_or_turned_off(
    tmp_path: Path, stores, fake, trained_weights, monkeypatch
) -> None:
    fake(weights=lambda cfg: trained_weights if cfg.method == "grpo" else None)
    body = """
        space:
          grpo.reward: {choices: [bleu]}
        baselines:
          - {label: base, method: base-eval}
        """
    storage, uri = stores
    client = MlflowClient(uri)
    run_sweep(load_study(study_file(tmp_path, body, "on")), storage=storage, tracking_uri=uri, progress=False)
    base, grpo = trial_runs(client, "on")  # (baselines run first)
    assert (base.data.tags["harness.label"], grpo.data.tags["harness.label"]) == ("base", "grpo")
    models = client.search_logged_models([base.info.experiment_id])
    assert [m.source_run_id for m in models] == [grpo.info.run_id]  # the base model trained nothing

    monkeypatch.setenv("HARNESS_LOG_MODEL", "0")
    run_sweep(load_study(study_file(tmp_path, body, "off")), storage=storage, tracking_uri=uri, progress=False)
    runs = trial_runs(client, "off")
    assert len(runs) == 2 and client.search_logged_models([runs[0].info.experiment_id]) == []


def test_datasets_records_and_reuse(tmp_path: Path, stores, fake, trained_weights, monkeypatch) -> None:
    """Each trial run has its three splits as dataset inputs and its Optuna record; a trial that reuses a
    finished identical one gets the same inputs, its own record, and the original's model as its output."""
    import harness.sweep.objective as objective

    monkeypatch.setattr(objective, "git_commit", lambda: "0123abcd")  # a clean commit: results are reused
    fake(weights=lambda cfg: trained_weights)
    storage, uri = stores
    first = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu]}\n", "first")
    run_sweep(load_study(first), storage=storage, tracking_uri=uri, progress=False)
    second = study_file(tmp_path, "space:\n  grpo.reward: {choices: [bleu]}\n", "second")
    optuna_study = run_sweep(load_study(second), storage=storage, tracking_uri=uri, progress=False)
    client = MlflowClient(uri)
    (original,), (reused,) = trial_runs(client, "first"), trial_runs(client, "second")
    assert reused.data.tags[TAG_REUSED] == original.info.run_id

    sizes = {"train": 8, "validation": 4, "test": 4}  # TINY's data sizes
    for run in (original, reused):
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        contexts = {i.tags[0].value: i.dataset for i in inputs}
        assert set(contexts) == set(sizes)
        for split, dataset in contexts.items():
            assert dataset.name == f"sqa-{split}"
            assert json.loads(dataset.profile)["num_rows"] == sizes[split]
            columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
            assert columns == ["id", "task", "prompt", "answer", "audio", "transcript"]
            assert json.loads(dataset.source) == {"uri": f"/fake/sqa/{split}"}

    def names_and_digests(run) -> set[tuple[str, str]]:
        return {(i.dataset.name, i.dataset.digest) for i in client.get_run(run.info.run_id).inputs.dataset_inputs}

    assert names_and_digests(original) == names_and_digests(reused)

    (model,) = client.search_logged_models([original.info.experiment_id])
    assert model.source_run_id == original.info.run_id
    assert [o.model_id for o in client.get_run(reused.info.run_id).outputs.model_outputs] == [model.model_id]
    assert client.search_logged_models([reused.info.experiment_id]) == []  # linked, not copied

    trial = optuna_study.trials[0]
    record = json.loads(
        Path(client.download_artifacts(reused.info.run_id, OPTUNA_TRIAL_ARTIFACT, str(tmp_path / "record"))).read_text()
    )
    assert trial.state == TrialState.COMPLETE
    assert (record["number"], record["state"], record["values"]) == (trial.number, "COMPLETE", [trial.value])
    assert record["params"] == trial.params
    assert {k: json_to_distribution(v) for k, v in record["distributions"].items()} == trial.distributions
    assert {int(k): v for k, v in record["intermediate_values"].items()} == trial.intermediate_values
    assert record["intermediate_metric"] == "val/bleu"
    assert record["user_attrs"]["mlflow_run_id"] == reused.info.run_id


def test_a_dataset_another_worker_registered_meanwhile_is_linked(
    tmp_path: Path, stores, fake, trained_weights, monkeypatch
) -> None:
    """Two workers starting trials at once both insert the experiment's new datasets; the slower insert
    fails on the store's unique key. The trial logs its inputs again (the dataset exists by then) and
    goes on: every trial completes with its three inputs."""
    import harness.sweep.datasets as datasets_lib

    real, calls = mlflow.log_inputs, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # as if another worker had inserted the same datasets a moment before
            real(*args, **kwargs)
            raise mlflow.exceptions.MlflowException(
                "(sqlite3.IntegrityError) UNIQUE constraint failed: "
                "datasets.experiment_id, datasets.name, datasets.digest"
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets_lib.mlflow, "log_inputs", racing)
    fake()
    storage, uri = stores
    study = tmp_path / "race.yaml"
    study.write_text(TINY + "space:\n  grpo.reward: {choices: [bleu]}\n")
    result = run_sweep(load_study(study), storage=storage, tracking_uri=uri, progress=False)
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] and len(calls) == 2
    client = MlflowClient(uri)
    run = client.get_run(result.trials[0].user_attrs["mlflow_run_id"])
    assert sorted(i.tags[0].value for i in run.inputs.dataset_inputs) == ["test", "train", "validation"]
