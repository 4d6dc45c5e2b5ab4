"""Conversion speed and memory of `process_data.sh`'s readers and writers.

  python benchmarks/bench_convert.py                      # released format, ~2M rows
  python benchmarks/bench_convert.py --format=retailrocket --rows=2700000
  python benchmarks/bench_convert.py --out=benchmarks/results/convert.json

released: a synthetic released-format file of about 2 million rows (40,000 users, 3,000 items,
8 display sets of 2-10 rows per user, random repeats within a set). retailrocket: an
`events.csv` of `--rows` rows shaped like the real one (1.4M visitors for 2.7M rows, 235k
items, 3% add-to-cart / transaction, four and a half months of timestamps). Reports the
conversion time (reading, converting and writing every output), rows per second and the peak
resident memory of the process (`ru_maxrss`, file generation included), as one JSON line (and
to `--out`). Target for the released file: under 60 s and under 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np
import pandas as pd

from ganrl.data.pipeline import Prepared, write_outputs  # noqa: E402
from ganrl.data.released import read_released  # noqa: E402
from ganrl.data.retailrocket import read_retailrocket  # noqa: E402


def make_released(path: str, args: argparse.Namespace) -> int:
    """Writes the released-format file; returns its row count."""
    rng = np.random.default_rng(args.seed)
    n = args.users * args.events_per_user
    sizes = rng.integers(2, 11, n)
    event = np.repeat(np.arange(n), sizes)
    item = rng.integers(0, args.items, len(event))
    first = np.cumsum(sizes) - sizes
    click = np.zeros(len(event), dtype=np.int64)
    click[first + rng.integers(0, sizes)] = 1
    user = event // args.events_per_user
    split = rng.integers(0, 3, args.users)[user]
    pd.DataFrame(
        {
            "SessionId": user,
            "Time": event,
            "ItemId": item,
            "is_click": click,
            "raw_index": np.arange(len(event)),
            "session_new_index": user,
            "item_new_index": item,
            "tr_val_tst": split,
        }
    ).to_csv(path, sep="\t", index=False)
    return len(event)


def make_retailrocket(path: str, args: argparse.Namespace) -> int:
    """Writes the `events.csv`; returns its row count."""
    rng = np.random.default_rng(args.seed)
    n = args.rows
    visitors = max(1, int(n * 0.52))
    start_ms, span_ms = 1_430_000_000_000, 139 * 24 * 3600 * 1000
    event = rng.choice(np.array(["view", "addtocart", "transaction"]), n, p=[0.967, 0.025, 0.008])
    pd.DataFrame(
        {
            "timestamp": start_ms + rng.integers(0, span_ms, n),
            # most visitors come once or twice, a few very often
            "visitorid": np.where(
                rng.random(n) < 0.8, rng.integers(0, visitors, n), rng.zipf(1.6, n) % visitors
            ),
            "event": event,
            "itemid": rng.zipf(1.3, n) % 235_000,
            "transactionid": np.where(event == "transaction", "1", ""),
        }
    ).to_csv(path, index=False)
    return n


FORMATS = {
    "released": (make_released, lambda path, seed: read_released(path, "big", seed)),
    "retailrocket": (make_retailrocket, lambda path, seed: read_retailrocket(path, "big", seed)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="released")
    parser.add_argument("--users", type=int, default=40000, help="released: users")
    parser.add_argument("--items", type=int, default=3000, help="released: items")
    parser.add_argument("--events_per_user", type=int, default=8, help="released")
    parser.add_argument("--rows", type=int, default=2_700_000, help="retailrocket: rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="also write the JSON result here")
    args = parser.parse_args()
    make_file, read = FORMATS[args.format]
    with tempfile.TemporaryDirectory(prefix="ganrl-convert-") as folder:
        path = os.path.join(folder, "big.txt")
        rows = make_file(path, args)
        tic = time.perf_counter()
        converted = read(path, args.seed)
        write_outputs(folder, Prepared(converted))
        seconds = time.perf_counter() - tic
    result = {
        "format": args.format,
        "rows": rows,
        "events": converted.stats["events"],
        "users": converted.stats["users"],
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
