"""Accuracy and speed of the user model over datasets, encoders and seeds.

Runs `experiment_user_model/run_gan_user_model.sh` (the original script's settings unless
overridden) once per (dataset, encoder, seed) as a separate process, so each wall time
includes the TensorFlow import, and reports the mean and standard deviation of test prec@1,
prec@2 and loss, the wall seconds, the training events per second and the peak memory.

  python benchmarks/bench_user_model.py --datasets=yelp,tb,rsc --user_models=LSTM,PW \
      --seeds=0,1,2,3,4 --out=benchmarks/results/user_model

Extra flags after `--` go to every run (e.g. `-- --num_itrs=500`). Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(
    dataset: str, user_model: str, seed: int, out: str, data_folder: str, extra: list[str]
) -> dict:
    save_dir = os.path.join(out, "runs", f"{dataset}__{user_model}__{seed}")
    results_path = os.path.join(save_dir, "results.json")
    timing_path = os.path.join(save_dir, "bench_wall.json")
    if not os.path.exists(results_path):
        cmd = [
            "experiment_user_model/run_gan_user_model.sh",
            f"--dataset={dataset}",
            f"--user_model={user_model}",
            f"--seed={seed}",
            f"--save_dir={save_dir}",
            f"--data_folder={data_folder}",
            *extra,
        ]
        env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3")
        tic = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tic
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        with open(timing_path, "w") as f:
            json.dump({"wall_seconds": wall}, f)
    with open(results_path) as f:
        results = json.load(f)
    wall = float("nan")
    if os.path.exists(timing_path):
        with open(timing_path) as f:
            wall = json.load(f)["wall_seconds"]
    return {
        "dataset": dataset,
        "user_model": user_model,
        "seed": seed,
        "prec1": results["test"]["prec1"],
        "prec2": results["test"]["prec2"],
        "loss": results["test"]["loss"],
        "wall_seconds": wall,
        "train_seconds": results["train_seconds"],
        "events_per_second": results["events_per_second"],
        "peak_rss_mb": results["peak_rss_mb"],
    }


def summarise(records: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["user_model"]), []).append(r)
    rows = []
    for (dataset, user_model), rs in groups.items():
        row = {"dataset": dataset, "user_model": user_model, "seeds": len(rs)}
        for key in (
            "prec1",
            "prec2",
            "loss",
            "wall_seconds",
            "train_seconds",
            "events_per_second",
            "peak_rss_mb",
        ):
            values = np.array([r[key] for r in rs], dtype=float)
            row[key] = float(np.mean(values))
            row[key + "_std"] = float(np.std(values))
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | encoder | seeds | test prec@1 | test prec@2 | test loss | wall s "
        "| train events/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['user_model']} | {r['seeds']} "
            f"| {r['prec1']:.3f} ({r['prec1_std']:.3f}) | {r['prec2']:.3f} ({r['prec2_std']:.3f}) "
            f"| {r['loss']:.3f} ({r['loss_std']:.3f}) | {r['wall_seconds']:.1f} "
            f"| {r['events_per_second']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="yelp,tb,rsc")
    parser.add_argument("--user_models", default="LSTM,PW")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--data_folder", default="dropbox")
    parser.add_argument("--out", default="benchmarks/results/user_model")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    out = os.path.abspath(args.out)
    records = []
    for dataset in args.datasets.split(","):
        for user_model in args.user_models.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                record = run_one(dataset, user_model, seed, out, args.data_folder, extra)
                print(json.dumps(record), flush=True)
                records.append(record)
    rows = summarise(records)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"runs": records, "summary": rows, "extra_flags": extra}, f, indent=2)
    table = markdown(rows)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
