"""Small file writers and a `process_data.sh` runner shared by the data tests."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED_HEADER = (
    "SessionId\tTime\tItemId\tis_click\traw_index\tsession_new_index\titem_new_index\ttr_val_tst\n"
)


def released_row(user, time, item, click, split=0):
    """A released-format row: (user, time, item, click, split) in their columns."""
    return ("s", time, "i", click, 0, user, item, split)


def write_released(path, rows) -> str:
    with open(path, "w") as f:
        f.write(RELEASED_HEADER)
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")
    return str(path)


def process_data(folder, *args) -> subprocess.CompletedProcess:
    """Runs `process_data.sh --data_folder=FOLDER ARGS` from another directory (`folder`), so
    the script must not depend on the caller's directory."""
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        [os.path.join(ROOT, "process_data.sh"), f"--data_folder={folder}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(folder),
        timeout=300,
    )


def outputs(folder, name) -> list[str]:
    """Files `process_data.sh` would write for `name` (and temporary files) in `folder`."""
    return sorted(
        f
        for f in os.listdir(folder)
        if (
            f.startswith(name)
            and (not f.endswith((".txt", ".csv")) or f.endswith(("-users.csv", "-items.csv")))
        )
        or f.endswith(".tmp")
    )
