"""Conversion speed: a released-format file of about 2 million rows (40,000 users, 3,000 items,
about 8 display sets a user) through `process_data.sh`'s reader and writers.

  python benchmarks/bench_convert.py [--users=40000 --items=3000 --events_per_user=8]

Reports rows per second and the peak memory of the process (target: under 60 s, under 4 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganrl.data.pipeline import Prepared, write_outputs  # noqa: E402
from ganrl.data.released import read_released  # noqa: E402


def make_file(path: str, users: int, items: int, events_per_user: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    n = users * events_per_user
    sizes = rng.integers(2, 11, n)
    event = np.repeat(np.arange(n), sizes)
    item = rng.integers(0, items, len(event))
    first = np.cumsum(sizes) - sizes
    click = np.zeros(len(event), dtype=np.int64)
    click[first + rng.integers(0, sizes)] = 1
    user = event // events_per_user
    split = rng.integers(0, 3, users)[user]
    pd.DataFrame({"SessionId": user, "Time": event, "ItemId": item, "is_click": click,
                  "raw_index": np.arange(len(event)), "session_new_index": user,
                  "item_new_index": item, "tr_val_tst": split}).to_csv(path, sep="\t",
                                                                       index=False)
    return len(event)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=40000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--events_per_user", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganrl-convert-") as folder:
        path = os.path.join(folder, "big.txt")
        rows = make_file(path, args.users, args.items, args.events_per_user, args.seed)
        tic = time.perf_counter()
        converted = read_released(path, "big", args.seed)
        write_outputs(folder, Prepared(converted))
        seconds = time.perf_counter() - tic
    result = {"rows": rows, "events": converted.stats["events"], "seconds": seconds,
              "rows_per_second": rows / seconds,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
