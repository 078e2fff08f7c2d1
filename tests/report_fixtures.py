"""Fixtures shared by the report tests (tests/test_report_*.py), loaded by tests/conftest.py as a plugin.

The fake studies (tests/report_studies.py) go into one MLflow store per session and each is written and
reported once however many modules read it (the main study's report takes ~25 s). The imports of the
harness's report code are inside the fixtures so that a session without report tests does not load it.
"""

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient


@contextmanager
def clean_report_code():
    """The code writing the reports is a clean commit (`git_commit` says REPORT_COMMIT, whatever state
    this checkout is in while the tests run); undone on leaving."""
    from report_studies import REPORT_COMMIT

    import harness.report.build as report_build

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_build, "git_commit", lambda: REPORT_COMMIT)
        yield


@pytest.fixture(scope="module")
def clean_checkout():
    """clean_report_code() for a whole module whose tests build reports themselves (the module says
    ``pytestmark = pytest.mark.usefixtures("clean_checkout")``); tests about a dirty checkout patch it
    again. The session's studies below do not rely on it: each patches while it writes its report."""
    with clean_report_code():
        yield


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory, empty_mlflow_db):
    root = tmp_path_factory.mktemp("report-store")
    shutil.copy(empty_mlflow_db, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return {"uri": uri, "client": MlflowClient(tracking_uri=uri), "root": root}


@pytest.fixture(scope="session")
def main(mlflow_store):
    """The main study, its report (built from the store, logged to the study run) and the same report
    rebuilt from a copy of the folder's evidence files alone."""
    import pandas as pd
    from report_studies import (
        MAIN,
        MAIN_CONFIGS,
        MAIN_SWEPT,
        N_BOOT,
        REUSED_SOURCE,
        evidence_copy,
        log_hearing,
        log_study,
        log_trial,
    )

    from harness.report import build_report, rebuild_report

    client, root = mlflow_store["client"], mlflow_store["root"]
    parent, trials = log_study(client, MAIN, MAIN_SWEPT, MAIN_CONFIGS)
    hearing = log_hearing(client, parent)
    sft0 = next(t for t in trials if t["config_key"] == "sft" and t["seed"] == 0)
    client.set_tag(sft0["run_id"], "harness.reused_from", REUSED_SOURCE)  # a reused trial (from another study)
    exp_id = client.get_experiment_by_name(MAIN).experiment_id
    n, grpo = len(trials), MAIN_CONFIGS["grpo"][2]
    # trials that did not finish, with test values that would change a mean or an n if they were counted
    failed = log_trial(
        client,
        MAIN,
        exp_id,
        parent,
        n,
        "grpo",
        "grpo",
        7,
        grpo,
        None,
        state="FAIL",
        error="RuntimeError: CUDA out of memory | at step 3",
        distractor=99.0,
        val_steps=0,
    )
    pruned = log_trial(
        client, MAIN, exp_id, parent, n + 1, "sft", "sft", 7, {}, 0.5, state="PRUNED", distractor=1.0, val_steps=10
    )
    running = log_trial(
        client, MAIN, exp_id, parent, n + 2, "sft", "sft", 8, {}, None, state="RUNNING", distractor=1.0, val_steps=0
    )
    client.set_terminated(parent, "FINISHED")
    out = root / "main"
    with clean_report_code():
        path = build_report(MAIN, out, tracking_uri=mlflow_store["uri"], n_boot=N_BOOT)
        copy = evidence_copy(out, root / "main-copy")
        rebuild_report(copy, n_boot=N_BOOT)
    per_seed = pd.read_csv(out / "per_seed.csv", dtype={"run_id": str})
    return {
        **mlflow_store,
        "parent": parent,
        "trials": trials,
        "out": out,
        "copy": copy,
        "md": path.read_text(encoding="utf-8"),
        "failed": failed,
        "pruned": pruned,
        "running": running,
        "per_seed": per_seed,
        "comparisons": pd.read_csv(out / "comparisons.csv"),
        "findings": pd.read_csv(out / "findings.csv"),
        "hearing": hearing,
    }


@pytest.fixture(scope="session")
def lr(mlflow_store):
    """The lr x beta study's report, and the same folder rebuilt after changing the recorded lr default."""
    import json

    import pandas as pd
    from report_studies import LR, LR_CONFIGS, LR_SWEPT, N_BOOT, evidence_copy, log_study

    from harness.report import build_report, rebuild_report

    client, root = mlflow_store["client"], mlflow_store["root"]
    _, trials = log_study(client, LR, LR_SWEPT, LR_CONFIGS, duplicate_rouge=False)
    out = root / "lr"
    with clean_report_code():
        path = build_report(LR, out, tracking_uri=mlflow_store["uri"], n_boot=N_BOOT, log_to_parent=False)
        changed = evidence_copy(out, root / "lr-default-changed")
        (changed / "swept.json").write_text(json.dumps({**LR_SWEPT, "train.lr": 0.001}))
        rebuild_report(changed, n_boot=N_BOOT)
    return {
        "out": out,
        "md": path.read_text(encoding="utf-8"),
        "trials": trials,
        "changed": changed,
        "changed_md": (changed / "report.md").read_text(encoding="utf-8"),
        "comparisons": pd.read_csv(out / "comparisons.csv"),
        "changed_comparisons": pd.read_csv(changed / "comparisons.csv"),
    }


@pytest.fixture(scope="session")
def dirty_study(mlflow_store):
    from report_studies import DIRTY, DIRTY_COMMIT, DIRTY_CONFIGS, log_study

    log_study(mlflow_store["client"], DIRTY, {}, DIRTY_CONFIGS, commit=DIRTY_COMMIT)
    return mlflow_store


@pytest.fixture
def in_repo(monkeypatch):
    """A fresh folder under the checkout's reports/ (removed afterwards); write_index of the real
    reports/ is recorded, not run (its own test runs it on a temporary folder)."""
    import uuid

    import harness.report.build as report_build
    from harness import provenance

    folder = provenance.CHECKOUT / "reports" / f"test-report-{uuid.uuid4().hex[:12]}"
    indexed: list[Path] = []
    monkeypatch.setattr(report_build, "write_index", lambda reports: indexed.append(Path(reports)))
    try:
        yield folder, indexed
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        assert not folder.exists()
