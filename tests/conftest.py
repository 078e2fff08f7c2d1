import os

os.environ.setdefault("HARNESS_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.runtime import configure_threads  # noqa: E402

configure_threads()


# Fixtures shared by test_sweep.py and test_cli.py ---------------------------------------------
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from fakes import fake_data, fake_trial  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

import harness.train.trial as trial_lib  # noqa: E402

pytest_plugins = ("report_fixtures",)  # the report tests' studies and fixtures


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An initialised MLflow sqlite store, copied into each test (creating one runs ~3 s of migrations)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stores(tmp_path: Path, empty_mlflow_db: Path) -> tuple[str, str]:
    """(Optuna journal path, MLflow tracking URI) in tmp_path."""
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    return str(tmp_path / "optuna.log"), f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def fake(monkeypatch):
    def install(**kwargs):
        monkeypatch.setattr(trial_lib, "run_trial", fake_trial(**kwargs))
        monkeypatch.setattr(trial_lib, "load_task_data", fake_data)

    return install


@pytest.fixture(scope="session")
def base_model() -> Path:
    """Build the tiny base model once (minutes, cached in HARNESS_CACHE) outside any timed wait."""
    import os

    from harness.config import TrialConfig
    from harness.train.base_model import ensure_tiny_base

    cache = os.environ.get("HARNESS_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "harness"))
    previous = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = cache
    try:
        return ensure_tiny_base(TrialConfig().model.tiny)
    finally:
        if previous is None:
            os.environ.pop("HARNESS_CACHE")
        else:
            os.environ["HARNESS_CACHE"] = previous


def pytest_terminal_summary(terminalreporter) -> None:
    """The CPU family at the end of every test log (shown under -q too): float reduction order differs
    between Intel and AMD, and the suite is meant to pass on both; CI's log says which one ran."""
    from harness.provenance import machine

    terminalreporter.write_line(f"machine: {machine()}")
