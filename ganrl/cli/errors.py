"""How the entry points report an error they stop on: one line, and where it came from when
that was not ganrl's own check.

ganrl's checks (bad data, bad flags, a config that does not fit a run folder) raise with a
message that names the file, field or flag; that message is all a user needs. An error that
no `raise` of ganrl's made (one from inside numpy or TensorFlow, Python's own) is more likely
a bug of ganrl than of the input: a second line then names where it was raised and the last
ganrl line it passed through, and `GANRL_TRACEBACK=1` prints the whole traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACEBACK_ENV = "GANRL_TRACEBACK"


def report_error(error: BaseException, stream=None) -> int:
    """Prints `error: MESSAGE` (and its origin or traceback, module docstring) to `stream`
    (default stderr); returns the exit status, 1."""
    stream = stream or sys.stderr
    print(f"error: {error}", file=stream)
    frames = traceback.extract_tb(error.__traceback__)
    if os.environ.get(TRACEBACK_ENV):
        traceback.print_exception(type(error), error, error.__traceback__, file=stream)
    elif frames and not _own_check(frames[-1]):
        ours = [f for f in frames if _in_package(f.filename)]
        where = ""
        if ours and ours[-1] is not frames[-1]:
            where = f", under {_short(ours[-1].filename)}:{ours[-1].lineno}"
        print(
            f"  ({type(error).__name__} raised at {_short(frames[-1].filename)}:"
            f"{frames[-1].lineno}{where}; {TRACEBACK_ENV}=1 prints the traceback)",
            file=stream,
        )
    return 1


def report_stop(stop: BaseException, stream=None) -> int:
    """Prints `stopped: MESSAGE` for a run stopped on a signal after saving its checkpoint
    (`ganrl.train.interrupt.Interrupted`); returns 130, the status a shell gives a command
    that Ctrl-C stopped."""
    print(f"stopped: {stop}", file=stream or sys.stderr, flush=True)
    return 130


def _own_check(frame: traceback.FrameSummary) -> bool:
    """Whether the innermost frame is a `raise` statement of ganrl's (or of its entry
    points')."""
    root = os.path.dirname(PACKAGE_DIR)
    inside = os.path.abspath(frame.filename).startswith(root + os.sep)
    return inside and (frame.line or "").lstrip().startswith("raise")


def _in_package(filename: str) -> bool:
    return os.path.abspath(filename).startswith(PACKAGE_DIR + os.sep)


def _short(filename: str) -> str:
    """A path relative to the repository when it is inside it."""
    root = os.path.dirname(PACKAGE_DIR)
    path = os.path.abspath(filename)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path
