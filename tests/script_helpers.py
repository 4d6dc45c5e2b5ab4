"""Running the repository's shell scripts in tests, and the tiny synthetic dataset they use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(args: list[str], cwd: str = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Runs `args` with this interpreter as $PYTHON; with `check`, fails the test on a
    non-zero exit."""
    env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert not check or proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def synthetic_data_folder(folder) -> str:
    """`folder` holding dataset 'synthetic': 20 users, 30 items, 4 display sets each."""
    run_script(
        [
            "./process_data.sh",
            "--dataset=synthetic",
            f"--data_folder={folder}",
            "--users=20",
            "--items=30",
            "--events_per_user=4",
            "--posterior_samples=50",
        ]
    )
    return str(folder)


def recorded_commands(
    args: list[str], stub_folder, cwd: str = ROOT
) -> tuple[list[list[str]], subprocess.CompletedProcess]:
    """Runs script `args` with a stub interpreter that records each command it is given and
    does nothing, so no data is prepared and nothing trains.

    Returns:
      The commands, in order, each `[working folder, argument, ...]` (the arguments after the
      interpreter), and the finished process.
    """
    stub, log = os.path.join(stub_folder, "python"), os.path.join(stub_folder, "commands.jsonl")
    with open(stub, "w") as f:
        f.write(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"with open({log!r}, 'a') as log:\n"
            "    log.write(json.dumps([os.getcwd()] + sys.argv[1:]) + '\\n')\n"
        )
    os.chmod(stub, 0o755)
    if os.path.exists(log):
        os.remove(log)
    env = dict(os.environ, PYTHON=stub)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    if not os.path.exists(log):
        return [], proc
    with open(log) as f:
        return [json.loads(line) for line in f], proc


def flags_of(command: list[str]) -> dict[str, str]:
    """The `--name=value` flags of a recorded command, the last of each name winning (as absl
    reads them); a bare `--name` maps to ''."""
    flags = {}
    for arg in command[1:]:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            flags[name] = value
    return flags
