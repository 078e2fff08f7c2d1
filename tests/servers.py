"""Real servers on loopback for the integration tests: an `mlflow server` that can be stopped and restarted
on the same port and store, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from harness.sweep.ui import server_command

POSTGRES_ENV = "HARNESS_TEST_POSTGRES_URL"  # set by `make test` (scripts/start_postgres.sh)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` (1 worker, no job runners) over a sqlite store in ``root``."""

    def __init__(self, root: Path, template_db: Path):
        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(template_db, root / "mlflow.db")  # skips ~3 s of schema migrations
        self.uri, self.proc = f"http://127.0.0.1:{self.port}", None

    def start(self, timeout: float = 120) -> MlflowServer:
        cmd, env = server_command(
            f"sqlite:///{self.root / 'mlflow.db'}", self.port, "--artifacts-destination", str(self.root / "artifacts")
        )
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not answer in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def postgres_database() -> tuple[str, callable]:
    """(URL of a new empty database, drop function) on the server of HARNESS_TEST_POSTGRES_URL, or
    raises LookupError saying why there is none."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        raise LookupError(f"{POSTGRES_ENV} is not set (`make test` starts PostgreSQL on loopback and sets it)")
    try:
        import psycopg
    except ImportError as err:
        raise LookupError(f"psycopg is not installed ({err})") from None
    try:
        admin = psycopg.connect(url, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as err:
        raise LookupError(f"no PostgreSQL answers at {POSTGRES_ENV} ({str(err).strip()})") from None
    name = f"harness_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    base, _, _ = url.rpartition("/")

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    return f"{base}/{name}", drop
