"""Where things go: the MLflow tracking URI, the artifact root and the Optuna storage, each opened with a
check and a message that never shows a password.

Defaults need no server; everything under ``./mlruns``::

    MLflow tracking   sqlite:///<cwd>/mlruns/mlflow.db    (--tracking-uri / MLFLOW_TRACKING_URI)
    MLflow artifacts  <cwd>/mlruns/artifacts              (set on the experiment when it is created)
    Optuna storage    <cwd>/mlruns/optuna-journal.log     (--storage / HARNESS_OPTUNA_STORAGE;
                      JournalStorage, safe for several local processes; an RDB URL such as
                      postgresql://... uses RDBStorage with heartbeats for crashed workers)
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow.artifacts
import optuna
from mlflow.tracking import MlflowClient

__all__ = [
    "download_artifact",
    "quiet_downloads",
    "HEARTBEAT_ENV",
    "MAX_RETRIES",
    "STORAGE_ENV",
    "STORE_DIR",
    "StorageError",
    "TRACKING_ENV",
    "artifact_root",
    "mask_url",
    "open_storage",
    "open_tracking",
    "resolve_storage_url",
    "resolve_tracking_uri",
]

STORE_DIR = "mlruns"
STORAGE_ENV, TRACKING_ENV = "HARNESS_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
HEARTBEAT_ENV = "HARNESS_HEARTBEAT_S"  # RDB heartbeat interval; a trial is stale after 2 intervals
MAX_RETRIES = 2  # automatic re-runs of a trial whose worker died (failed trials: once per `harness sweep`)


class StorageError(ValueError):
    """An Optuna storage or MLflow tracking URI that cannot be used (the message never shows a password)."""


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def resolve_tracking_uri(uri: str | None = None) -> str:
    uri = uri or os.environ.get(TRACKING_ENV) or f"sqlite:///{Path(STORE_DIR, 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts next to a local sqlite store (``<its dir>/artifacts``); a server or remote DB decides itself."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return str(db.parent / "artifacts")
    return None


def resolve_storage_url(url: str | None = None) -> str:
    return url or os.environ.get(STORAGE_ENV) or str(Path(STORE_DIR, "optuna-journal.log").resolve())


def open_storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """A journal file (a path, or ``journal:///path``) or an RDB URL (sqlite:///, postgresql://, ...)."""
    url = resolve_storage_url(url)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "journal", "file"):
        path = Path(url.split("://", 1)[1] if scheme else url).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise StorageError(f"Optuna journal {path}: cannot open ({err}). Fix: use a writable path.") from None
    if scheme not in _RDB_SCHEMES:
        raise StorageError(
            f"Optuna storage {mask_url(url)!r}: unknown scheme {scheme!r}. Fix: use a file path (journal), "
            "sqlite:///path.db or postgresql://user:password@host/db."
        )
    heartbeat = _heartbeat_s()
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental; they are the feature we want
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(  # a crashed worker's trial: FAIL after 2 beats, retried twice
                url,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
    except Exception as err:  # sqlalchemy raises many types (ArgumentError, OperationalError, ...)
        problem = mask_url(str(err).splitlines()[0]).rstrip(".") if str(err) else type(err).__name__
        raise StorageError(
            f"Optuna storage {mask_url(url)!r} cannot be opened: {problem}. Fix: check the URL, that the "
            "database is reachable and its driver installed (postgresql:// uses psycopg: "
            "pip install 'psycopg[binary]')."
        ) from None


def _heartbeat_s() -> int:
    text = os.environ.get(HEARTBEAT_ENV, "60")
    if not text.isdigit() or int(text) < 1:
        raise StorageError(
            f"{HEARTBEAT_ENV}={text!r}: not a whole number of seconds >= 1. Fix: e.g. "
            f"{HEARTBEAT_ENV}=60 (a dead worker's trial is failed after two intervals)."
        )
    return int(text)


def open_tracking(uri: str) -> MlflowClient:
    """A client for ``uri``, checked with one cheap call (a server is asked once, without retries)."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(uri)  # without user:password (MLflow takes those from MLFLOW_TRACKING_USERNAME/...)
        probe = urlunsplit(
            (
                parts.scheme,
                parts.hostname + (f":{parts.port}" if parts.port else ""),
                parts.path.rstrip("/") + "/health",
                "",
                "",
            )
        )
        try:
            urllib.request.urlopen(probe, timeout=10).close()
        except urllib.error.HTTPError:
            pass  # it answered (e.g. 401 behind auth): the client will deal with it
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise StorageError(
                f"MLflow tracking server {mask_url(uri)!r} is not reachable ({reason}). Fix: start "
                "it (harness ui serves the local store) or correct --tracking-uri / "
                "MLFLOW_TRACKING_URI."
            ) from None
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except Exception as err:  # mlflow raises several types for unusable URIs
        problem = mask_url(str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise StorageError(
            f"MLflow tracking URI {mask_url(uri)!r} cannot be used: {problem[:300]}. Fix: use "
            "sqlite:///path/mlflow.db (default sqlite:///mlruns/mlflow.db), http://host:port "
            "or postgresql://host/db."
        ) from None
    return client


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No per-file MLflow progress bar while artifacts are downloaded (unless the user set one)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def download_artifact(tracking_uri: str, run_id: str, path: str, dst: Path) -> Path | None:
    """The run's artifact ``path`` downloaded into the folder ``dst`` (no progress bar), or None when the run
    has no such file (an older run, or one that ended before writing it)."""
    try:
        with quiet_downloads():
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=tracking_uri
            )
    except Exception:
        return None
    return Path(local)
