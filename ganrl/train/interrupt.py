"""Stopping a training run at its next evaluation on Ctrl-C or SIGTERM, with a checkpoint.

A run killed outright loses what it trained since its last checkpoint (`checkpoint_secs`).
Within `stop_requests()`, the first SIGINT (Ctrl-C) or SIGTERM (what schedulers and `kill`
send) only asks the run to stop: the trainer saves a resumable checkpoint at its next
evaluation and raises `Interrupted`, and the same command resumes from there. A second
Ctrl-C stops at once, as without the handler.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator


class Interrupted(Exception):
    """Training stopped on a signal after saving a checkpoint that a rerun resumes from."""


@contextlib.contextmanager
def stop_requests(enabled: bool = True) -> Iterator[Callable[[], bool]]:
    """Yields a function that tells whether a stop was asked for within the block.

    Args:
      enabled: False (and outside the main thread, where Python cannot install signal
        handlers) nothing is installed and the function always says no; a multi-worker
        run, whose checkpoints are collective, must not stop one worker alone.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    asked: list[int] = []

    def handler(signum, frame):
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signum)
        print(
            f"\n{signal.Signals(signum).name}: stopping at the next evaluation, after saving a "
            "checkpoint (Ctrl-C again: stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(asked)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
