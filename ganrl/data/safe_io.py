"""Safe reading and atomic writing of the files ganrl exchanges with its users.

Pickles handed to ganrl are read through `SafeUnpickler`, which admits only the builtin
containers and the numpy types that the dataset layout needs; anything else (a pickle that
would import a module or call a function) is refused with `UnsafePickleError`. Every file ganrl
writes goes first to a temporary name in the same folder and is then renamed, so a crash or a
kill never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pickle
import tempfile
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

import numpy as np

# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class DataError(ValueError):
    """Bad input: the message names the file, the line or field, and what was expected."""


def check_folder_path(path: str | os.PathLike, what: str) -> None:
    """A `DataError` naming `what` (the flag, such as `--save_dir`) when `path`, or the
    nearest of its parents that exists, is not a folder; writes nothing (for checks made
    before anything is built)."""
    here = os.path.abspath(os.fspath(path))
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    if not os.path.isdir(here):
        raise DataError(
            f"{what}={os.fspath(path)}: it or a folder above it is a file; expected a folder"
        )


def make_folder(path: str | os.PathLike, what: str) -> None:
    """`os.makedirs(path, exist_ok=True)`, with a `DataError` naming `what` (the flag, such
    as `--save_dir`) when `path` or a folder above it is a file, or cannot be made."""
    check_folder_path(path, what)
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(
            f"{what}={os.fspath(path)}: it or a folder above it is a file; expected a folder"
        ) from None
    except PermissionError as e:
        raise DataError(f"{what}={os.fspath(path)}: cannot make the folder: {e.strerror}") from None


class UnsafePickleError(DataError):
    """A pickle asked for a type outside the admitted set."""


def check_settings(config: Any, checks: list[tuple[str, bool, str]]) -> None:
    """Raises `DataError` for the first `(field, ok, need)` of `checks` that is not ok, naming
    the flag `--field`, the config's value of it and what it needs."""
    for field, ok, need in checks:
        if not ok:
            raise DataError(f"--{field}: {getattr(config, field)!r} is out of range: need {need}")


# (module, name) pairs a dataset pickle may reference. Builtin containers and numbers need no
# global at all; numpy arrays and scalars are rebuilt through these few callables.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("builtins", "complex"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("builtins", "str"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "dict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("_codecs", "encode"),  # Python-2 era pickles of numpy arrays encode bytes this way.
    }
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only containers, numbers, strings and numpy arrays."""

    def __init__(self, file: BinaryIO, *, source: str = "<pickle>"):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refused to load global '{module}.{name}': a ganrl data pickle may "
            "hold only lists, tuples, dicts, numbers, strings and numpy arrays"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed in a data pickle")


def load_pickles(path: str | os.PathLike, count: int) -> list[Any]:
    """Reads `count` consecutive pickled objects from `path` through `SafeUnpickler`.

    Raises:
      DataError: the file is missing, truncated, or not a pickle of admitted types.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    objects = []
    with open(path, "rb") as f:
        for index in range(count):
            try:
                objects.append(SafeUnpickler(f, source=path).load())
            except UnsafePickleError:
                raise
            except EOFError as e:
                raise DataError(
                    f"{path}: truncated pickle: expected {count} pickled objects, "
                    f"object {index + 1} ends early ({e or 'end of file'})"
                ) from None
            except (
                pickle.UnpicklingError,
                ValueError,
                TypeError,
                AttributeError,
                IndexError,
                KeyError,
                MemoryError,
            ) as e:
                raise DataError(
                    f"{path}: object {index + 1} of {count} is not a valid pickle: {e}"
                ) from None
    return objects


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[io.IOBase]:
    """Opens a temporary file beside `path`; renames it to `path` only if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; an output gets the usual 0666 less the umask.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV file with a header that ganrl appends to (its curves), less a last
    row that a kill cut short (missing fields); [] if there is no file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if None not in row and None not in row.values()]


def write_csv_rows(
    path: str | os.PathLike, fields: Sequence[str], rows: Iterable[dict], **options: Any
) -> None:
    """Writes `rows` under a header of `fields` to the CSV file `path`, atomically
    (`atomic_open`); `options` go to `csv.DictWriter` (e.g. `extrasaction`)."""
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fields, **options)
        writer.writeheader()
        writer.writerows(rows)


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON file holding one object; a `DataError` naming the file (and the line) if not."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def dump_pickles(path: str | os.PathLike, *objects: Any) -> None:
    """Pickles `objects` one after the other into `path`, atomically."""
    with atomic_open(path, "wb") as f:
        for obj in objects:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def dump_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON to `path`, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Writes a compressed `.npz` atomically."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
