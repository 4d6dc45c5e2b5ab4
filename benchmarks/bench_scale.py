"""Scale benchmark of the user-model trainer: one training epoch over synthetic logs of growing
size, read from the memory-mapped event arrays (`NAME-events/`).

For each size it writes a synthetic dataset straight into the event-array form (users of
about 8 display sets of 2-10 items, Zipf-popular items, 10% no-click events), then trains
the user model for one epoch over the training users (50% of users) in a separate process,
and reports wall time, training events per second and that process's peak memory.

  python benchmarks/bench_scale.py --sizes=100000,1000000,4000000 --items=3000
  python benchmarks/bench_scale.py --sizes=1000000 --items=200000      # a large catalogue
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ganrl.data.dataset import EventArrays, ItemFeatures, SplitData, save_event_splits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAX_DISPLAY = 10


def synthetic_events(
    n_users: int, first_user: int, n_events_target: int, n_items: int, rng: np.random.Generator
) -> EventArrays:
    """About `n_events_target` events of `n_users` users, vectorised."""
    per_user = rng.poisson(n_events_target / n_users - 1, n_users) + 1
    n = int(per_user.sum())
    sizes = rng.integers(2, MAX_DISPLAY + 1, n)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    display = rng.choice(n_items, size=(n, MAX_DISPLAY), p=popularity).astype(np.int32)
    mask = np.arange(MAX_DISPLAY)[None, :] < sizes[:, None]
    display = np.where(mask, display, 0)
    quality = rng.normal(size=n_items).astype(np.float32)
    scores = np.where(mask, quality[display] + rng.gumbel(size=display.shape), -np.inf)
    clicked = np.argmax(scores, axis=1).astype(np.int32)
    clicked[rng.random(n) < 0.1] = -1
    return EventArrays(
        user_ids=np.arange(first_user, first_user + n_users),
        event_offsets=np.concatenate([[0], np.cumsum(per_user)]),
        display=display,
        display_mask=mask,
        clicked_pos=clicked,
        n_items=n_items,
    )


def write_dataset(folder: str, name: str, n_events: int, n_items: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n_users = max(4, n_events // 8)
    parts = {"train": n_users // 2, "vali": n_users // 20, "test": n_users // 20}
    splits, first = {}, 0
    for split, users in parts.items():
        share = n_events // 2 if split == "train" else n_events // 20
        splits[split] = synthetic_events(users, first, share, n_items, rng)
        first += users
    save_event_splits(folder, SplitData(name, ItemFeatures(n_items), splits))
    return {split: {"users": e.n_users, "events": e.n_events} for split, e in splits.items()}


def run_epoch(folder: str, name: str, train_users: int, batch_size: int, extra: list[str]) -> dict:
    itrs = math.ceil(train_users / batch_size)
    save_dir = os.path.join(folder, "run")
    cmd = [
        sys.executable,
        os.path.join(ROOT, "experiment_user_model/main_gan_user_model.py"),
        f"--data_folder={folder}",
        f"--dataset={name}",
        f"--save_dir={save_dir}",
        f"--num_itrs={itrs}",
        f"--eval_every={itrs}",
        f"--batch_size={batch_size}",
        *extra,
    ]
    tic = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    )
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    with open(os.path.join(save_dir, "results.json")) as f:
        results = json.load(f)
    return {
        "iterations": itrs,
        "wall_seconds": wall,
        "train_seconds": results["train_seconds"],
        "events_per_second": results["events_per_second"],
        "peak_rss_mb": results["peak_rss_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100000,1000000,4000000",
        help="display sets (events) in the whole dataset",
    )
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="ganrl-scale-") as folder:
            tic = time.perf_counter()
            counts = write_dataset(folder, "synth", size, args.items, args.seed)
            generate = time.perf_counter() - tic
            row = {
                "events_total": size,
                "items": args.items,
                "generate_seconds": generate,
                "train_events": counts["train"]["events"],
                "train_users": counts["train"]["users"],
            }
            row.update(run_epoch(folder, "synth", counts["train"]["users"], args.batch_size, extra))
        print(json.dumps(row), flush=True)
        rows.append(row)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "extra_flags": extra}, f, indent=2)
    print(
        "| display sets | items | train events | epoch itrs | train s | wall s | events/s "
        "| peak RSS MB |\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['events_total']:,} | {r['items']:,} | {r['train_events']:,} "
            f"| {r['iterations']:,} | {r['train_seconds']:.1f} | {r['wall_seconds']:.1f} "
            f"| {r['events_per_second']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
