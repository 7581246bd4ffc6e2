"""The GPU check, ``benchmarks/gpu_check.sh``, run with ``--dry-run``: its steps on the CPU, tiny.

A GPU machine is lent rarely and briefly; this keeps the script that runs there working.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {
    "check.log",
    "tests.log",
    "gpu_fit.json",
    "gpu_fit.log",
    "speed.md",
    "speed.log",
    "summary.json",
}


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and coreutils' timeout",
)
def test_dry_run_passes_every_step_and_writes_its_outputs(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
        cwd=tmp_path,  # it finds the repository from its own path
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The device tool brings back at most 8 files.
    assert {path.name for path in out.iterdir()} == OUTPUTS
    summary = json.loads((out / "summary.json").read_text())
    statuses = {step["name"]: step["status"] for step in summary["steps"]}
    # Without a GPU the CUDA tests skip; the rest runs on the CPU.
    assert statuses == {
        "environment": "passed",
        "tests": "passed" if torch.cuda.is_available() else "skipped",
        "gpu_fit": "passed",
        "speed": "passed",
    }
    assert summary["passed"] and summary["dry_run"] and summary["device"] == "cpu"
    fit = json.loads((out / "gpu_fit.json").read_text())
    assert fit["passed"] and fit["loaded_on_cpu_only_process"]["device"] == "cpu"
    assert fit["loaded_on_cpu_only_process"]["max_abs_difference"] == 0  # the same device
    assert "| TorchMLPRegressor |" in (out / "speed.md").read_text()


def test_unknown_option_is_refused_with_the_usage():
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--fast"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown option --fast" in result.stderr and "--dry-run" in result.stderr
