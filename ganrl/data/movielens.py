"""MovieLens 100k as display sets and clicks.

MovieLens has ratings, not impressions, so ganrl defines:
- a user's ratings in time order (ties by item id) are that user's steps, one event each;
- at each step the display set is the rated item plus `max_display - 1` filler items that the
  user had not rated by then, drawn by popularity (number of ratings) with the seed; the
  set is shuffled, so the rated item's position says nothing;
- a rating of 4 or more is a click on the rated item; a rating below 4 is a display set with
  no click (the user saw the item and passed), so models learn how often users click nothing;
- item features: the one-hot id plus 19 genre flags and the release year scaled to [0, 1];
- users are split 50/25/25 with the seed.

Sources, in order: `--ml100k_path` (GroupLens `u.data` or RecBole `ml-100k.inter`, with `u.item`
or `ml-100k.item` beside it), a copy in the data folder, or the RecBole 1.2.1 wheel from the
Python package index (`pip download`), whose `ml-100k.inter` is checked by sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted, convert_rows
from ganrl.data.dataset import ItemFeatures
from ganrl.data.safe_io import DataError, atomic_open

INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
WHEEL = "recbole==1.2.1"
WHEEL_PREFIX = "recbole/dataset_example/ml-100k/"
GENRES = 19
CLICK_RATING = 4


def fetch_ml100k(data_folder: str) -> str:
    """Path of `ml-100k.inter` in `data_folder`, downloading the RecBole wheel if needed."""
    target = os.path.join(data_folder, "ml-100k.inter")
    if os.path.exists(target):
        return target
    with tempfile.TemporaryDirectory(prefix="ganrl-ml100k-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--quiet", "-d", tmp, WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if proc.returncode != 0 or not wheels:
            raise DataError(
                f"MovieLens 100k: no copy in {data_folder} and `pip download {WHEEL}` failed "
                f"({proc.stderr.strip()[-300:]}). Put GroupLens' u.data and u.item (or "
                f"RecBole's ml-100k.inter and ml-100k.item) in {data_folder}, or pass "
                "--ml100k_path=/path/to/u.data")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as wheel:
            for suffix in (".inter", ".item"):
                data = wheel.read(WHEEL_PREFIX + "ml-100k" + suffix)
                if suffix == ".inter" and hashlib.sha256(data).hexdigest() != INTER_SHA256:
                    raise DataError(f"{wheels[0]}: ml-100k.inter has an unexpected sha256; "
                                    "refusing to use it")
                with atomic_open(os.path.join(data_folder, "ml-100k" + suffix)) as f:
                    f.write(data)
    return target


def find_ml100k(data_folder: str, path: str | None) -> str:
    """The ratings file to read: `path`, else a copy in the data folder, else downloaded."""
    if path:
        if not os.path.exists(path):
            raise DataError(f"{path}: no such file (--ml100k_path)")
        return path
    for candidate in ("u.data", "ml-100k.inter", os.path.join("ml-100k", "u.data")):
        full = os.path.join(data_folder, candidate)
        if os.path.exists(full):
            return full
    return fetch_ml100k(data_folder)


def _read_ratings(path: str) -> pd.DataFrame:
    if path.endswith(".inter"):
        frame = pd.read_csv(path, sep="\t")
        frame.columns = [c.split(":")[0] for c in frame.columns]
        expected = ["user_id", "item_id", "rating", "timestamp"]
    else:
        frame = pd.read_csv(path, sep="\t", header=None,
                            names=["user_id", "item_id", "rating", "timestamp"])
        expected = list(frame.columns)
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}")
    for column in expected:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{path}: line {row + (2 if path.endswith('.inter') else 1)}, "
                            f"field {column!r}: expected a number, got {frame[column][row]!r}")
        frame[column] = values.astype(np.int64)
    if frame.empty:
        raise DataError(f"{path}: no ratings")
    return frame


def _read_items(ratings_path: str, item_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Genres and scaled release year per item (zeros when no item file is found)."""
    folder = os.path.dirname(ratings_path)
    features = np.zeros((len(item_ids), GENRES + 1), dtype=np.float32)
    columns = [f"genre_{g}" for g in range(GENRES)] + ["year"]
    index = {int(i): k for k, i in enumerate(item_ids)}
    years = np.full(len(item_ids), np.nan)
    grouplens = os.path.join(folder, "u.item")
    recbole = os.path.join(folder, "ml-100k.item")
    if os.path.exists(grouplens):
        items = pd.read_csv(grouplens, sep="|", header=None, encoding="latin-1")
        for _, row in items.iterrows():
            k = index.get(int(row[0]))
            if k is None:
                continue
            features[k, :GENRES] = row[5:5 + GENRES].to_numpy(dtype=np.float32)
            date = str(row[2])
            if date[-4:].isdigit():
                years[k] = int(date[-4:])
    elif os.path.exists(recbole):
        items = pd.read_csv(recbole, sep="\t")
        items.columns = [c.split(":")[0] for c in items.columns]
        names = sorted({g for gs in items["class"].fillna("") for g in str(gs).split()})
        columns = [f"genre_{g}" for g in names[:GENRES]] + columns[len(names[:GENRES]):]
        for _, row in items.iterrows():
            k = index.get(int(row["item_id"]))
            if k is None:
                continue
            for g in str(row["class"]).split():
                if g in names[:GENRES]:
                    features[k, names.index(g)] = 1.0
            year = pd.to_numeric(row.get("release_year"), errors="coerce")
            if not pd.isna(year):
                years[k] = year
    known = ~np.isnan(years)
    if known.any():
        lo, hi = years[known].min(), years[known].max()
        features[known, GENRES] = (years[known] - lo) / max(hi - lo, 1.0)
    return features, columns


def read_ml100k(path: str, name: str, seed: int, max_display: int = 10) -> Converted:
    """Converts MovieLens 100k ratings into display sets (see the module docstring)."""
    ratings = _read_ratings(path)
    user_ids, user = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    item_ids, item = np.unique(ratings["item_id"].to_numpy(), return_inverse=True)
    n_users, n_items = len(user_ids), len(item_ids)
    order = np.lexsort((item, ratings["timestamp"].to_numpy(), user))
    user, item = user[order], item[order]
    rating = ratings["rating"].to_numpy()[order]
    n = len(order)
    step = np.arange(n)  # global order; within a user, increasing in time

    # first_step[u, i]: the step at which u rated i (n when never).
    first_step = np.full((n_users, n_items), n, dtype=np.int64)
    first_step[user, item] = step
    popularity = np.bincount(item, minlength=n_items).astype(np.float64)
    popularity /= popularity.sum()
    rng = np.random.default_rng(seed)
    fillers = np.full((n, max_display - 1), -1, dtype=np.int64)
    need = np.ones(n, dtype=bool) if max_display > 1 else np.zeros(n, dtype=bool)
    filled = np.zeros(n, dtype=np.int64)
    for _ in range(50):  # rejection sampling, vectorised over all steps still short
        rows = np.flatnonzero(need)
        if len(rows) == 0:
            break
        draws = rng.choice(n_items, size=(len(rows), 2 * max_display), p=popularity)
        for j in range(draws.shape[1]):
            cand = draws[:, j]
            ok = (need[rows] & (first_step[user[rows], cand] > step[rows])
                  & (cand != item[rows])
                  & ~(fillers[rows] == cand[:, None]).any(axis=1))
            r = rows[ok]
            fillers[r, filled[r]] = cand[ok]
            filled[r] += 1
            need[r] = filled[r] < max_display - 1
    if need.any():
        raise DataError(f"{path}: could not find {max_display - 1} unrated filler items for "
                        f"{int(need.sum())} steps; lower --max_display")
    # Rows: the rated item (clicked if rating >= 4) and its fillers, one display set per step.
    row_event = np.concatenate([step, np.repeat(step, max_display - 1)])
    row_item = np.concatenate([item, fillers.reshape(-1)])
    row_click = np.concatenate([(rating >= CLICK_RATING).astype(np.int64),
                                np.zeros(n * (max_display - 1), dtype=np.int64)])
    row_user = user[row_event]
    dense, columns = _read_items(path, item_ids)
    features = ItemFeatures(n_items=n_items, identity=True, dense=dense, columns=tuple(columns))
    converted = convert_rows(name, row_user, row_event, row_item, row_click, n_items, seed,
                             path, item_features=features)
    converted.stats["rows"] = int(len(ratings))
    return converted
