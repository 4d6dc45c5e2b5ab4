"""Claiming a run folder: one run at a time, the same flags on every rerun, no leftovers of a
checkpoint write that was killed.

Shared by the user-model trainer (`UserModelRunner`) and the policy runner
(`ganrl.policy.runner.PolicyRunner`); both resume an interrupted run and reuse a finished one
from their run folder, which is right only when the rerun has the run's flags and no other
process writes there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from typing import Any, Callable, Iterable, Iterator

from ganrl.data import safe_io
from ganrl.data.dataset import DATA_RECORD


class RunFolderError(ValueError):
    """The run folder cannot take this run: another process holds it, or it holds a run
    with other flags. A `ValueError`, so entry points report it as bad input."""


@contextlib.contextmanager
def claim(
    save_dir: str, config: dict, saved_config: Callable[[dict], dict], ignore: Iterable[str] = ()
) -> Iterator[None]:
    """Holds the run folder `save_dir` (created if missing) for the block.

    Refuses with `RunFolderError` when another process holds the folder or when its
    config.json differs from `config` (beyond the keys in `ignore`), then deletes the
    temporary folders of unfinished checkpoint writes (`remove_partial_checkpoints`).

    Args:
      save_dir: the run folder.
      config: this run's configuration, as written to config.json.
      saved_config: turns the config.json found in the folder into the same form as
        `config` (a folder written before a setting existed gets its default).
      ignore: keys that do not change the results (the run folder itself, how often to
        save), compared at any nesting level.
    """
    safe_io.make_folder(save_dir, "--save_dir")
    # flock(2) on the folder itself: the kernel releases it however the process ends, so a
    # killed run never leaves a stale lock, and no lock file is written.
    fd = os.open(save_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"{save_dir}: another run is writing to this run folder; "
                "wait for it to end or pass another --save_dir"
            ) from None
        path = os.path.join(save_dir, "config.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = saved_config(json.load(f))
            require_same_settings(saved, config, ignore, f"{save_dir}: holds a run", "--save_dir")
        remove_partial_checkpoints(os.path.join(save_dir, "checkpoints"))
        yield
    finally:
        os.close(fd)


def require_same_data(save_dir: str, description: str, fingerprint: str) -> None:
    """Records the fingerprint of the data a run trains on (`SplitData.fingerprint`) in its
    folder, or, when the folder holds one, refuses with `RunFolderError` a rerun on other
    data: the run's ids would point at other users and items. A folder written before the
    record existed takes this run's data as its own.

    Args:
      save_dir: the run folder.
      description: the data, for the message ("dataset 'yelp' in dropbox").
      fingerprint: its sha256.
    """
    path = os.path.join(save_dir, DATA_RECORD)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f).get("sha256")
        if saved != fingerprint:
            raise RunFolderError(
                f"{save_dir}: holds a run trained on other data than {description} now "
                f"(sha256 {str(saved)[:12]}... there, {fingerprint[:12]}... now: the data was "
                "prepared again since); pass another --save_dir, or delete the folder to train "
                "again"
            )
        return
    safe_io.dump_json(path, {"data": description, "sha256": fingerprint})


def require_same_settings(
    saved: dict, current: dict, ignore: Iterable[str], holder: str, flag: str
) -> None:
    """Raises `RunFolderError` naming each setting of `current` that differs from `saved`
    (`differing_settings`): "{holder} with other flags (...): rerun with its flags or pass
    another {flag}"."""
    differ = differing_settings(saved, current, ignore)
    if differ:
        raise RunFolderError(
            f"{holder} with other flags ("
            + "; ".join(f"{key}={old!r} there, {new!r} now" for key, old, new in differ)
            + f"): rerun with its flags or pass another {flag}"
        )


def differing_settings(
    saved: dict, current: dict, ignore: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) of every setting that differs, nested dicts
    flattened to their keys (the config fields are named after their flags)."""
    ignore = set(ignore)

    def flat(d: dict) -> dict:
        out = {}
        for key, value in json.loads(json.dumps(d)).items():  # tuples become lists
            if key in ignore:
                continue
            out.update(flat(value) if isinstance(value, dict) else {key: value})
        return out

    old, new = flat(saved), flat(current)
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def remove_partial_checkpoints(root: str) -> list[str]:
    """Deletes, under `root`, the `{prefix}_temp/` folders of `part-*` shards that a
    `tf.train.Checkpoint` write fills and renames into place when it completes; a process
    killed meanwhile leaves one behind, and nothing reads it. Returns the deleted paths."""
    removed = []
    for folder, subfolders, _ in os.walk(root):
        for name in list(subfolders):
            path = os.path.join(folder, name)
            if name.endswith("_temp") and all(f.startswith("part-") for f in os.listdir(path)):
                shutil.rmtree(path)
                subfolders.remove(name)
                removed.append(path)
    return removed
