"""MovieLens 100k as display sets and clicks.

MovieLens holds ratings, not impressions, so ganrl defines (docs/data.md):
- steps: a user's ratings in time order, ties (same second) broken by item id; one event per
  rating, so a user has as many steps as ratings;
- display set: the rated item plus `max_display - 1` filler items that the user had not rated
  by then (never, or only later), drawn without repetition with probability proportional to
  their number of ratings (popularity), from the seed; the set is then shuffled with the seed,
  so the rated item's position says nothing;
- click: a rating of 4 or more is a click on the rated item; a rating below 4 is a display set
  with no click (clicked id -1: the user saw the item and passed), so a model can learn how often
  users click nothing;
- item features: the one-hot id (an embedding lookup) plus dense side features: the 19
  GroupLens genre flags (`genre:unknown` ... `genre:Western`, same order from either source)
  and the release year scaled to [0, 1] over the catalogue (`year`; an unknown year gets the
  mean of the known ones);
- split: users 50/25/25 at random with the seed;
- ids: users and items re-indexed densely from 0 in numeric order (the MovieLens id of each
  dense id: `NAME-users.csv`, `NAME-items.csv`).
In the statistics, `rows` counts ratings and `rows_kept` the ratings kept (all of them: each
becomes one display set); the displayed rows, fillers included, are `events` x `max_display`.

Sources, in order: `--ml100k_path` (a file, GroupLens `u.data` or RecBole `ml-100k.inter`, or a
folder holding one; `u.item` or `ml-100k.item` beside it gives the side features), a copy in
the data folder, else the RecBole 1.2.1 wheel from the Python package index (`pip download`),
whose `ml-100k.inter` and `ml-100k.item` are checked by sha256 and cached in the data folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pandas as pd

from ganrl.data.convert import (
    Converted,
    IdMap,
    convert_rows,
    integer_column,
    require_columns,
)
from ganrl.data.dataset import ItemFeatures
from ganrl.data.released import line_numbers, read_table
from ganrl.data.safe_io import DataError, atomic_open

WHEEL = "recbole==1.2.1"
WHEEL_FOLDER = "recbole/dataset_example/ml-100k/"
# sha256 of the files taken from the wheel: the ratings (published) and the item file.
SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
# Ratings files looked for, in order, in a folder (the data folder or --ml100k_path).
RATINGS_NAMES = (
    "u.data",
    "ml-100k.inter",
    os.path.join("ml-100k", "u.data"),
    os.path.join("ml-100k", "ml-100k.inter"),
)
# The genre flags of GroupLens' u.item, in its column order.
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
FEATURE_COLUMNS = tuple(f"genre:{g}" for g in GENRES) + ("year",)
CLICK_RATING = 4
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")


def download_wheel(folder: str) -> str:
    """Downloads the RecBole wheel into `folder` with pip; returns its path.

    Raises:
      DataError: pip failed (no network, no index); the message says what to do instead.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "-d",
        folder,
        WHEEL,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        failure = proc.stderr.strip().splitlines()[-1:] if proc.returncode else []
    except OSError as e:
        failure = [str(e)]
    wheels = [f for f in os.listdir(folder) if f.endswith(".whl")]
    if failure or not wheels:
        raise DataError(
            f"MovieLens 100k: `pip download {WHEEL}` failed ({' '.join(failure) or 'no wheel'}); "
            "put GroupLens' u.data and u.item (or RecBole's ml-100k.inter and ml-100k.item) in "
            "the data folder, or pass --ml100k_path=/path/to/u.data"
        )
    return os.path.join(folder, wheels[0])


def fetch_ml100k(data_folder: str) -> str:
    """Path of `ml-100k.inter` in `data_folder`, extracted from the RecBole wheel if absent.

    Both files are checked against `SHA256` before anything is written to `data_folder`.
    """
    target = os.path.join(data_folder, "ml-100k.inter")
    if os.path.exists(target):
        return target
    with tempfile.TemporaryDirectory(prefix="ganrl-ml100k-") as tmp:
        wheel_path = download_wheel(tmp)
        contents = {}
        try:
            with zipfile.ZipFile(wheel_path) as wheel:
                for file_name in SHA256:
                    contents[file_name] = wheel.read(WHEEL_FOLDER + file_name)
        except (zipfile.BadZipFile, KeyError) as e:
            raise DataError(f"{wheel_path}: not the expected RecBole wheel: {e}") from None
        for file_name, data in contents.items():
            digest = hashlib.sha256(data).hexdigest()
            if digest != SHA256[file_name]:
                raise DataError(
                    f"{wheel_path}: {WHEEL_FOLDER}{file_name} has sha256 {digest}, "
                    f"expected {SHA256[file_name]}; refusing to use it"
                )
        for file_name, data in contents.items():
            with atomic_open(os.path.join(data_folder, file_name)) as f:
                f.write(data)
    return target


def find_ml100k(data_folder: str, path: str | None = None, download: bool = True) -> str:
    """The ratings file to read: `path` (a file or a folder holding one), else a copy in the
    data folder, else fetched (`fetch_ml100k`) when `download`."""
    if path:
        if os.path.isdir(path):
            for candidate in RATINGS_NAMES:
                if os.path.exists(os.path.join(path, candidate)):
                    return os.path.join(path, candidate)
            raise DataError(
                f"{path}: no MovieLens ratings file in this folder (--ml100k_path): "
                f"expected one of {list(RATINGS_NAMES)}"
            )
        if not os.path.exists(path):
            raise DataError(f"{path}: no such file (--ml100k_path)")
        return path
    for candidate in RATINGS_NAMES:
        if os.path.exists(os.path.join(data_folder, candidate)):
            return os.path.join(data_folder, candidate)
    if not download:
        raise DataError(f"{data_folder}: no MovieLens 100k ratings (u.data or ml-100k.inter)")
    return fetch_ml100k(data_folder)


def read_ratings(path: str) -> dict[str, np.ndarray]:
    """The four rating fields of a GroupLens `u.data` (tab-separated, no header) or a RecBole
    `.inter` file (header `user_id:token item_id:token rating:float timestamp:float`), as int64
    arrays keyed by `RATING_FIELDS`, and `line`: the line number of each rating."""
    if path.endswith(".inter"):
        frame = read_table(path, "\t")
        frame.columns = [str(c).split(":")[0] for c in frame.columns]
        header_lines = 1
    else:
        frame = read_table(path, "\t", header=None)
        if frame.shape[1] != len(RATING_FIELDS):
            raise DataError(
                f"{path}: line 1: {frame.shape[1]} fields, expected "
                f"{len(RATING_FIELDS)} ({', '.join(RATING_FIELDS)})"
            )
        frame.columns = list(RATING_FIELDS)
        header_lines = 0
    require_columns(frame, list(RATING_FIELDS), path)
    fields = {c: integer_column(frame, c, path, header_lines) for c in RATING_FIELDS}
    fields["line"] = line_numbers(frame, header_lines)
    return fields


def read_item_features(ratings_path: str, item_ids: np.ndarray) -> np.ndarray:
    """`[len(item_ids), 20]` float32 side features (`FEATURE_COLUMNS`) of the items, from the
    `u.item` or `ml-100k.item` beside the ratings (zeros and a 0.5 year when neither is there).
    """
    folder = os.path.dirname(ratings_path)
    genres = np.zeros((len(item_ids), len(GENRES)), dtype=np.float32)
    years = np.full(len(item_ids), np.nan)
    grouplens, recbole = os.path.join(folder, "u.item"), os.path.join(folder, "ml-100k.item")
    if os.path.exists(grouplens):
        items = pd.read_csv(
            grouplens, sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False
        )
        ids = pd.to_numeric(items[0], errors="coerce").to_numpy()
        flags = items.iloc[:, 5 : 5 + len(GENRES)].apply(pd.to_numeric, errors="coerce")
        item_genres = flags.fillna(0).to_numpy(dtype=np.float32)
        item_years = pd.to_numeric(items[2].str[-4:], errors="coerce").to_numpy()
    elif os.path.exists(recbole):
        items = pd.read_csv(recbole, sep="\t", dtype=str, keep_default_na=False)
        items.columns = [str(c).split(":")[0] for c in items.columns]
        require_columns(items, ["item_id", "release_year", "class"], recbole)
        ids = pd.to_numeric(items["item_id"], errors="coerce").to_numpy()
        item_genres = np.stack(
            [items["class"].str.split().apply(lambda gs, g=g: g in gs) for g in GENRES], axis=1
        ).astype(np.float32)
        item_years = pd.to_numeric(items["release_year"], errors="coerce").to_numpy()
    else:
        ids = np.zeros(0)
        item_genres, item_years = np.zeros((0, len(GENRES)), np.float32), np.zeros(0)
    # Rows of the item file -> positions in item_ids (rows of unrated items are dropped).
    position = np.searchsorted(item_ids, ids)
    found = (position < len(item_ids)) & (item_ids[np.minimum(position, len(item_ids) - 1)] == ids)
    genres[position[found]] = item_genres[found]
    years[position[found]] = item_years[found]
    known = ~np.isnan(years)
    scaled = np.full(len(item_ids), 0.5)
    if known.any():
        lo, hi = years[known].min(), years[known].max()
        scaled[known] = (years[known] - lo) / max(hi - lo, 1.0)
        scaled[~known] = scaled[known].mean()
    return np.concatenate([genres, scaled[:, None].astype(np.float32)], axis=1)


def draw_fillers(
    user: np.ndarray,
    item: np.ndarray,
    n_users: int,
    n_items: int,
    count: int,
    rng: np.random.Generator,
    source: str,
) -> np.ndarray:
    """Filler items of every step: `count` distinct items the user had not rated by then.

    Args:
      user, item: `[N]` dense ids of the ratings, sorted by user then time (row = step).
      n_users, n_items: sizes of the id ranges.
      count: fillers per step.
      rng: the draws (popularity-weighted, by rejection, vectorised over steps).
      source: file name for the error message.

    Returns:
      `[N, count]` int64 item ids.
    """
    n = len(user)
    step = np.arange(n)
    # rated_at[u, i]: the step at which u rated i (n when never); a filler must be rated later.
    rated_at = np.full((n_users, n_items), n, dtype=np.int64)
    rated_at[user, item] = step
    popularity = np.bincount(item, minlength=n_items).astype(np.float64)
    popularity /= popularity.sum()
    fillers = np.full((n, count), -1, dtype=np.int64)
    filled = np.zeros(n, dtype=np.int64)
    short = np.ones(n, dtype=bool) if count > 0 else np.zeros(n, dtype=bool)
    for _ in range(50):  # rounds of rejection sampling over the steps still short
        rows = np.flatnonzero(short)
        if len(rows) == 0:
            break
        draws = rng.choice(n_items, size=(len(rows), 2 * count + 2), p=popularity)
        for j in range(draws.shape[1]):
            candidate = draws[:, j]
            ok = (
                short[rows]
                & (rated_at[user[rows], candidate] > step[rows])
                & ~(fillers[rows] == candidate[:, None]).any(axis=1)
            )
            accepted = rows[ok]
            fillers[accepted, filled[accepted]] = candidate[ok]
            filled[accepted] += 1
            short[accepted] = filled[accepted] < count
    if short.any():
        raise DataError(
            f"{source}: could not find {count} unrated filler items for "
            f"{int(short.sum())} ratings; lower --max_display"
        )
    return fillers


def read_ml100k(path: str, name: str, seed: int, max_display: int = 10) -> Converted:
    """Converts MovieLens ratings into display sets (see the module docstring)."""
    if max_display < 1:
        raise DataError(f"--max_display: expected at least 1, got {max_display}")
    ratings = read_ratings(path)
    user_ids, user = np.unique(ratings["user_id"], return_inverse=True)
    item_ids, item = np.unique(ratings["item_id"], return_inverse=True)
    pairs = user.astype(np.int64) * len(item_ids) + item
    unique_pairs, first = np.unique(pairs, return_index=True)
    if len(unique_pairs) < len(pairs):
        again = np.setdiff1d(np.arange(len(pairs)), first)[0]
        raise DataError(
            f"{path}: line {ratings['line'][again]}: user {ratings['user_id'][again]} rates "
            f"item {ratings['item_id'][again]} a second time; expected one rating "
            "per user and item"
        )
    order = np.lexsort((item, ratings["timestamp"], user))  # time order, ties by item id
    user, item, rating = user[order], item[order], ratings["rating"][order]
    n, fill = len(order), max_display - 1
    rng = np.random.default_rng(seed)
    fillers = draw_fillers(user, item, len(user_ids), len(item_ids), fill, rng, path)
    # Rows: the rated item (clicked when rating >= 4) and its fillers; step = display set.
    step = np.arange(n)
    row_step = np.concatenate([step, np.repeat(step, fill)])
    row_item = np.concatenate([item, fillers.reshape(-1)])
    row_click = np.concatenate(
        [(rating >= CLICK_RATING).astype(np.int64), np.zeros(n * fill, dtype=np.int64)]
    )
    features = ItemFeatures(
        n_items=len(item_ids),
        identity=True,
        dense=read_item_features(path, item_ids),
        columns=FEATURE_COLUMNS,
    )
    converted = convert_rows(
        name,
        user[row_step],
        row_step,
        row_item,
        row_click,
        len(item_ids),
        seed,
        path,
        item_features=features,
    )
    # The rows convert_rows kept include ganrl's fillers, which are no input rows.
    converted.stats["rows"] = converted.stats["rows_kept"] = int(n)
    converted.user_map = IdMap("user_id", user_ids)
    converted.item_map = IdMap("item_id", item_ids)
    return converted
