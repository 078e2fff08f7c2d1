"""bench/gpu_check.py, the prepared one-call GPU check, run at tiny shapes on CPU (`--tiny`): every
section must run and report, so the device call spends its minutes measuring, not debugging."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_every_section_at_tiny_shapes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HARNESS_TORCH_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "gpu_check.md").read_text()
    assert "tiny shapes on CPU" in report and "**FAILED**" not in report and "Not run: " not in report.split("## 4.")[0]
    step = report.split("## 1.")[1].split("## 2.")[0]
    assert (
        "| 1 | " in step
        and "**Median step" in step
        and "| rollout |" in step
        and "trainable (projector + LoRA r 64" in step
    )
    assert "bf16 vs fp32 encoder: max |delta log-prob|" in report
    e2e = report.split("## 3.")[1].split("## 4.")[0]
    assert "--no-report` exited 0" in e2e and "status **FINISHED**" in e2e and "state tag COMPLETE" in e2e
    assert "checkpoint revision tag `sha256:" in e2e and "validation BLEU by step: [(0," in e2e
    assert "test/sampled/bleu" in e2e
    trl = report.split("## 4.")[1]
    assert "TRL / ours:" in trl or "Not run: trl is not installed" in trl
