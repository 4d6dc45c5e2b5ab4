"""Running the repository's shell scripts in tests, and the tiny synthetic dataset they use."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(args: list[str], cwd: str = ROOT, check: bool = True
               ) -> subprocess.CompletedProcess:
    """Runs `args` with this interpreter as $PYTHON; with `check`, fails the test on a
    non-zero exit."""
    env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert not check or proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def synthetic_data_folder(folder) -> str:
    """`folder` holding dataset 'synthetic': 20 users, 30 items, 4 display sets each."""
    run_script(["./process_data.sh", "--dataset=synthetic", f"--data_folder={folder}",
                "--users=20", "--items=30", "--events_per_user=4", "--posterior_samples=50"])
    return str(folder)
